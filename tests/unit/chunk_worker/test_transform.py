"""The stored image: img2dataset's resize modes to the exact pixel, upright, in a mode the target
format can hold, byte-identical on a retry, and the downloaded bytes themselves when nothing changes."""

import io
from fractions import Fraction
from functools import partial

import numpy
import pytest
from PIL import Image, ImageOps

from chunk_worker.contract import Reason, Transform, Validation
from chunk_worker.transform import Geometry, geometry, pixels_for, transform_image
from chunk_worker.validate import Rejected, validate, validate_decoded

ANY_SIZE = Validation(min_width=1, min_height=1, max_bytes=64 * 1024 * 1024)
RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def transform(mode: str = "none", size: int = 512, only_if_bigger: bool = False, fmt: str = "keep",
              quality: int = 90) -> Transform:
    return Transform.model_validate(
        {"resize": {"mode": mode, "size": size, "onlyIfBigger": only_if_bigger},
         "encode": {"format": fmt, "quality": quality}})


def run(data: bytes, spec: Transform):
    """Validate then transform, as the worker does; returns the result and the decoded output."""
    result = transform_image(data, validate(data, ANY_SIZE), spec)
    return result, Image.open(io.BytesIO(result.data))


def close(actual, expected, tolerance: int = 12) -> bool:
    actual = actual if isinstance(actual, tuple) else (actual,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    return len(actual) == len(expected) and all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


# --- geometry: the pure decision -------------------------------------------------------------

@pytest.mark.parametrize("source, only_if_bigger, resized", [
    ((1024, 768), False, (683, 512)),  # 1024 * 512 / 768 = 682.67
    ((768, 1024), False, (512, 683)),
    ((4000, 3000), True, (683, 512)),
    ((512, 512), False, (512, 512)),
    ((100, 50), False, (1024, 512)),  # enlarged
    ((100, 50), True, (100, 50)),  # never enlarged
    ((700, 512), True, (700, 512)),  # the smaller side is not bigger than size
    ((700, 513), True, (699, 512)),  # 698.64
    ((1025, 1024), False, (512, 512)),  # 512.5: a tie rounds to even
    ((1027, 1024), False, (514, 512)),  # 513.5
    ((10000, 64), False, (80000, 512)),
])
def test_keep_ratio_fits_the_smaller_side(source, only_if_bigger, resized):
    assert geometry("keep_ratio", *source, 512, only_if_bigger) == Geometry(source, resized)


@pytest.mark.parametrize("source, only_if_bigger, resized", [
    ((1024, 768), False, (512, 384)),
    ((768, 1024), True, (384, 512)),
    ((600, 100), True, (512, 85)),  # 85.33
    ((100, 50), False, (512, 256)),
    ((100, 50), True, (100, 50)),
    ((512, 300), True, (512, 300)),
    ((10000, 10), False, (512, 1)),  # 0.512
    ((20000, 16), False, (512, 1)),  # 0.41 would round to 0: sizes are never 0
    ((1, 20000), False, (1, 512)),
])
def test_keep_ratio_largest_fits_the_larger_side(source, only_if_bigger, resized):
    assert geometry("keep_ratio_largest", *source, 512, only_if_bigger) == Geometry(source, resized)


@pytest.mark.parametrize("source, only_if_bigger, resized, crop", [
    ((1024, 768), False, (683, 512), (85, 0, 597, 512)),
    ((768, 1024), True, (512, 683), (0, 85, 512, 597)),
    ((512, 700), False, (512, 700), (0, 94, 512, 606)),  # no resample, only the crop
    ((100, 50), False, (1024, 512), (256, 0, 768, 512)),
    ((10000, 64), False, (80000, 512), (39744, 0, 40256, 512)),
])
def test_center_crop_fills_the_square_and_cuts_the_middle(source, only_if_bigger, resized, crop):
    plan = geometry("center_crop", *source, 512, only_if_bigger)
    assert plan == Geometry(source, resized, crop=crop)
    assert plan.size == (512, 512)


@pytest.mark.parametrize("source", [(512, 512), (100, 50), (512, 300)])
def test_only_if_bigger_leaves_a_small_image_uncropped_and_unpadded(source):
    for mode in ("center_crop", "border"):
        plan = geometry(mode, *source, 512, True)
        assert plan == Geometry(source, source) and not plan.changes_pixels


@pytest.mark.parametrize("source, only_if_bigger, resized, offset", [
    ((1024, 768), False, (512, 384), (0, 64)),
    ((768, 1024), True, (384, 512), (64, 0)),
    ((1000, 999), False, (512, 511), (0, 0)),  # 511.49; the odd pixel of padding goes to the bottom
    ((512, 300), False, (512, 300), (0, 106)),  # no resample, only the padding
    ((20000, 16), False, (512, 1), (0, 255)),
])
def test_border_fits_inside_the_square_and_pads_the_rest(source, only_if_bigger, resized, offset):
    plan = geometry("border", *source, 512, only_if_bigger)
    assert plan == Geometry(source, resized, canvas=(512, 512), offset=offset)
    assert plan.size == (512, 512)


def test_an_image_already_at_the_target_is_left_alone_in_every_mode():
    for mode in ("none", "keep_ratio", "keep_ratio_largest", "center_crop", "border"):
        for only_if_bigger in (False, True):
            assert not geometry(mode, 256, 256, 256, only_if_bigger).changes_pixels


def test_mode_none_never_changes_anything():
    for source in ((1, 1), (100, 50), (9000, 7000)):
        assert geometry("none", *source, 16, False) == Geometry(source, source)


SIZES = (1, 2, 3, 15, 16, 17, 100, 511, 512, 513, 1000, 4095, 8192, 30000)


@pytest.mark.parametrize("mode", ["keep_ratio", "keep_ratio_largest", "center_crop", "border"])
def test_every_geometry_fits_the_right_side_exactly_and_rounds_the_other_to_the_nearest(mode):
    largest = mode in ("keep_ratio_largest", "border")
    for width in SIZES:
        for height in SIZES:
            for size in (16, 333, 512, 8192):
                plan = geometry(mode, width, height, size, False)
                fitted_is_width = (width >= height) if largest else (width <= height)
                fitted, other, other_source = (
                    (plan.resized[0], plan.resized[1], height) if fitted_is_width
                    else (plan.resized[1], plan.resized[0], width))
                exact = Fraction(other_source * size, width if fitted_is_width else height)
                assert fitted == size
                assert other >= 1 and (abs(other - exact) <= Fraction(1, 2) or exact < 1)
                assert plan.size == ((size, size) if mode in ("center_crop", "border") else plan.resized)
                if plan.crop:
                    left, top, right, bottom = plan.crop
                    assert 0 <= left and 0 <= top and right <= plan.resized[0] and bottom <= plan.resized[1]
                if plan.canvas:
                    assert all(0 <= o and o + r <= size for o, r in zip(plan.offset, plan.resized))


@pytest.mark.parametrize("args", [("keep_ratio", 0, 10, 512), ("border", 10, 10, 0), ("stretch", 10, 10, 512)])
def test_impossible_geometry_is_refused_by_name(args):
    with pytest.raises(ValueError):
        geometry(*args, False)


# --- transform_image: the pixels -------------------------------------------------------------

def quadrants(width: int = 96, height: int = 64) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right: any flip or turn shows."""
    image = Image.new("RGB", (width, height), WHITE)
    image.paste(RED, (0, 0, width // 2, height // 2))
    image.paste(GREEN, (width // 2, 0, width, height // 2))
    image.paste(BLUE, (0, height // 2, width // 2, height))
    return image


def corners(image: Image.Image) -> list:
    """The colour at the middle of each quadrant: top-left, top-right, bottom-left, bottom-right."""
    width, height = image.size
    rgb = image.convert("RGB")
    return [rgb.getpixel((x, y)) for y in (height // 4, 3 * height // 4) for x in (width // 4, 3 * width // 4)]


# How each EXIF orientation stores the upright picture (the EXIF spec's 0th row / 0th column), in numpy.
STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # 0th row top, 0th column right
    3: lambda a: a[::-1, ::-1],  # bottom, right
    4: lambda a: a[::-1],  # bottom, left
    5: lambda a: a.transpose(1, 0, 2),  # 0th row left, 0th column top
    6: lambda a: a[:, ::-1].transpose(1, 0, 2),  # right, top: the phone held upright
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # right, bottom
    8: lambda a: a[::-1].transpose(1, 0, 2),  # left, bottom
}


def stored_with_orientation(upright: Image.Image, orientation: int, image_format: str = "JPEG") -> bytes:
    stored = Image.fromarray(numpy.ascontiguousarray(STORED[orientation](numpy.asarray(upright))))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, image_format, exif=exif.tobytes(), **({"quality": 95} if image_format == "JPEG" else {}))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(orientation):
    upright = quadrants()
    data = stored_with_orientation(upright, orientation)
    result, out = run(data, transform(fmt="jpeg"))
    assert (result.width, result.height) == out.size == upright.size
    assert all(close(got, want, 40) for got, want in zip(corners(out), [RED, GREEN, BLUE, WHITE]))
    assert out.getexif().get(0x0112) is None  # a viewer must not turn it a second time


def test_a_sideways_jpeg_with_nothing_asked_keeps_its_bytes_and_its_orientation_tag():
    data = stored_with_orientation(quadrants(), 6)
    result, out = run(data, transform())
    assert result.data is data
    assert out.getexif().get(0x0112) == 6
    assert (result.width, result.height) == ImageOps.exif_transpose(out).size


def test_a_sideways_jpeg_is_resized_by_its_upright_sides():
    upright = quadrants(768, 1024)
    data = stored_with_orientation(upright, 6)
    assert Image.open(io.BytesIO(data)).size == (1024, 768)  # stored landscape
    result, out = run(data, transform("keep_ratio_largest", 512))
    assert out.size == (384, 512) == (result.width, result.height)
    assert all(close(got, want, 40) for got, want in zip(corners(out), [RED, GREEN, BLUE, WHITE]))


def test_a_sideways_png_comes_out_upright():
    result, out = run(stored_with_orientation(quadrants(), 8, "PNG"), transform(fmt="png"))
    assert corners(out) == [RED, GREEN, BLUE, WHITE]


@pytest.mark.parametrize("mode, source, expected", [
    ("keep_ratio", (1024, 768), (683, 512)),
    ("keep_ratio", (300, 200), (768, 512)),
    ("keep_ratio_largest", (768, 1024), (384, 512)),
    ("center_crop", (1024, 768), (512, 512)),
    ("center_crop", (200, 600), (512, 512)),
    ("border", (1024, 768), (512, 512)),
    ("border", (4096, 64), (512, 512)),
])
@pytest.mark.parametrize("fmt", ["keep", "jpeg", "png", "webp"])
def test_the_stored_image_has_exactly_the_sizes_the_mode_promises(mode, source, expected, fmt):
    result, out = run(encode(quadrants(*source), "JPEG"), transform(mode, 512, fmt=fmt))
    assert out.size == expected == (result.width, result.height)
    assert out.format == result.format == ("JPEG" if fmt == "keep" else fmt.upper())


def test_a_big_jpeg_shrunk_on_load_still_gets_the_exact_size_and_picture():
    result, out = run(encode(quadrants(4000, 3000), "JPEG"), transform("keep_ratio", 512, True))
    assert out.size == (683, 512)
    assert all(close(got, want, 40) for got, want in zip(corners(out), [RED, GREEN, BLUE, WHITE]))


def test_center_crop_keeps_the_middle():
    stripes = Image.new("RGB", (1536, 512), RED)
    stripes.paste(GREEN, (512, 0, 1024, 512))
    stripes.paste(BLUE, (1024, 0, 1536, 512))
    _, out = run(encode(stripes, "PNG"), transform("center_crop", 256, fmt="png"))
    assert out.size == (256, 256)
    assert out.getpixel((128, 128)) == GREEN
    assert all(close(out.getpixel((x, y)), GREEN, 20) for x in (0, 255) for y in (0, 255))  # the filter reaches across


def test_border_pads_with_white_around_the_centred_picture():
    _, out = run(encode(Image.new("RGB", (1024, 512), BLACK), "PNG"), transform("border", 256, fmt="jpeg"))
    assert out.size == (256, 256)
    assert close(out.getpixel((128, 10)), WHITE) and close(out.getpixel((128, 245)), WHITE)
    assert close(out.getpixel((128, 128)), BLACK) and close(out.getpixel((5, 128)), BLACK)


def test_border_pads_an_image_with_alpha_with_transparency():
    _, out = run(encode(Image.new("RGBA", (1024, 512), (0, 0, 0, 255)), "PNG"), transform("border", 256, fmt="png"))
    assert out.mode == "RGBA"
    assert out.getpixel((128, 10))[3] == 0 and out.getpixel((128, 128)) == (0, 0, 0, 255)


def cmyk_cyan() -> bytes:
    return encode(Image.new("CMYK", (128, 96), (255, 0, 0, 0)), "JPEG", quality=95)


@pytest.mark.parametrize("fmt", ["keep", "jpeg", "png", "webp"])
def test_cmyk_jpeg_becomes_rgb_with_its_colour(fmt):
    _, out = run(cmyk_cyan(), transform("keep_ratio", 64, fmt=fmt))
    assert out.mode == "RGB" and close(out.getpixel((32, 24)), (0, 255, 255), 16)


def palette_with_transparency() -> bytes:
    """A palette PNG: index 0 transparent, index 1 red; the left half transparent."""
    image = Image.new("P", (128, 64), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    image.paste(0, (0, 0, 64, 64))
    return encode(image, "PNG", transparency=0)


def test_palette_transparency_is_flattened_on_white_for_jpeg():
    _, out = run(palette_with_transparency(), transform(fmt="jpeg"))
    assert out.mode == "RGB"
    assert close(out.getpixel((16, 32)), WHITE) and close(out.getpixel((112, 32)), RED)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_palette_transparency_survives_formats_with_alpha(fmt):
    _, out = run(palette_with_transparency(), transform("keep_ratio", 32, fmt=fmt))
    rgba = out.convert("RGBA")
    assert out.size == (64, 32)
    assert rgba.getpixel((8, 16))[3] == 0 and close(rgba.getpixel((56, 16)), (*RED, 255))


def grey_with_alpha() -> bytes:
    """LA: left half fully transparent, right half opaque grey 80, a middle column half transparent black."""
    image = Image.new("LA", (128, 64), (80, 255))
    image.paste((0, 0), (0, 0, 48, 64))
    image.paste((0, 128), (48, 0, 64, 64))
    return encode(image, "PNG")


def test_grey_with_alpha_is_flattened_on_white_for_jpeg():
    _, out = run(grey_with_alpha(), transform(fmt="jpeg"))
    assert out.mode == "L"
    assert close(out.getpixel((16, 32)), 255) and close(out.getpixel((100, 32)), 80)
    assert close(out.getpixel((56, 32)), 127)  # half transparent black over white


def test_grey_with_alpha_keeps_it_in_png_and_webp():
    _, png = run(grey_with_alpha(), transform(fmt="png"))
    assert png.mode == "LA" and png.getpixel((16, 32))[1] == 0 and png.getpixel((100, 32)) == (80, 255)
    _, webp = run(grey_with_alpha(), transform(fmt="webp"))
    assert webp.mode == "RGBA" and webp.getpixel((16, 32))[3] == 0
    assert close(webp.getpixel((100, 32)), (80, 80, 80, 255))


def rgba_picture() -> bytes:
    image = Image.new("RGBA", (128, 64), (*BLUE, 255))
    image.paste((0, 0, 0, 0), (0, 0, 48, 64))
    image.paste((0, 0, 0, 128), (48, 0, 80, 64))
    return encode(image, "PNG")


def test_rgba_is_flattened_on_white_for_jpeg():
    _, out = run(rgba_picture(), transform(fmt="jpeg"))
    assert out.mode == "RGB"
    assert close(out.getpixel((16, 32)), WHITE) and close(out.getpixel((64, 32)), (127, 127, 127))
    assert close(out.getpixel((110, 32)), BLUE)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_rgba_keeps_its_alpha_in_png_and_webp(fmt):
    _, out = run(rgba_picture(), transform("keep_ratio_largest", 64, fmt=fmt))
    assert out.mode == "RGBA" and out.size == (64, 32)
    assert out.getpixel((8, 16))[3] == 0 and close(out.getpixel((32, 16))[3], 128, 4)
    assert close(out.getpixel((56, 16)), (*BLUE, 255))


def sixteen_bit_ramp() -> tuple[bytes, numpy.ndarray]:
    """A 16-bit greyscale PNG (Pillow's I;16) holding dark, mid and full values."""
    values = numpy.repeat(numpy.array([[0, 1000, 40000, 65535]], dtype=numpy.uint16).repeat(32, axis=1), 32, axis=0)
    image = Image.fromarray(values)
    return encode(image, "PNG"), numpy.rint(values[0, ::32].astype(float) * 255 / 65535)


def test_sixteen_bit_png_is_scaled_to_eight_bits_not_clipped():
    data, expected = sixteen_bit_ramp()
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    _, out = run(data, transform(fmt="png"))
    assert out.mode == "L"
    assert [out.getpixel((16 + 32 * i, 16)) for i in range(4)] == list(expected)  # 0, 4, 156, 255


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_sixteen_bit_png_is_scaled_for_lossy_targets(fmt):
    data, expected = sixteen_bit_ramp()
    _, out = run(data, transform(fmt=fmt))
    grey = out.convert("L")
    assert all(close(grey.getpixel((16 + 32 * i, 16)), int(e), 6) for i, e in enumerate(expected))


def test_sixteen_bit_png_resized_with_keep_stays_a_png():
    data, _ = sixteen_bit_ramp()
    result, out = run(data, transform("keep_ratio_largest", 64))
    assert result.format == "PNG" and out.mode == "L" and out.size == (64, 16)


def test_a_gif_resized_with_keep_is_its_first_frame_as_a_gif_with_transparency():
    first = Image.new("RGBA", (128, 64), (*RED, 255))
    first.paste((0, 0, 0, 0), (0, 0, 64, 64))
    second = Image.new("RGBA", (128, 64), (*GREEN, 255))
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    result, out = run(data, transform("keep_ratio_largest", 64))
    assert result.format == "GIF" and out.size == (64, 32) and getattr(out, "n_frames", 1) == 1
    rgba = out.convert("RGBA")
    assert rgba.getpixel((8, 16))[3] == 0 and rgba.getpixel((56, 16)) == (*RED, 255)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF"])
def test_nothing_to_do_returns_the_downloaded_bytes_themselves(image_format):
    data = encode(quadrants(300, 200), image_format)
    for spec in (transform(), transform("keep_ratio", 512, only_if_bigger=True), transform("keep_ratio", 200),
                 transform("border", 300, only_if_bigger=True)):
        result = transform_image(data, validate(data, ANY_SIZE), spec)
        assert result.data is data
        assert (result.format, result.width, result.height) == (image_format, 300, 200)


def test_an_explicit_format_reencodes_even_the_same_format():
    data = encode(quadrants(300, 200), "JPEG", quality=100)
    result, out = run(data, transform(fmt="jpeg", quality=50))
    assert result.data != data and len(result.data) < len(data) and out.size == (300, 200)


@pytest.mark.parametrize("fmt", ["keep", "jpeg", "png", "webp"])
@pytest.mark.parametrize("mode", ["keep_ratio", "center_crop", "border"])
def test_the_same_bytes_and_transform_give_identical_bytes(mode, fmt):
    data = stored_with_orientation(Image.effect_mandelbrot((640, 480), (-2, -1.2, 1, 1.2), 60).convert("RGB"), 6)
    info = validate(data, ANY_SIZE)
    first = transform_image(data, info, transform(mode, 200, fmt=fmt))
    again = transform_image(bytes(data), validate(bytes(data), ANY_SIZE), transform(mode, 200, fmt=fmt))
    assert first.data == again.data and first.data is not data


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_quality_runs_from_1_to_100_and_changes_the_size(fmt):
    data = encode(Image.effect_mandelbrot((320, 240), (-2, -1.2, 1, 1.2), 60).convert("RGB"), "PNG")
    lowest, _ = run(data, transform(fmt=fmt, quality=1))
    highest, out = run(data, transform(fmt=fmt, quality=100))
    assert len(lowest.data) < len(highest.data) and out.size == (320, 240)


def test_quality_outside_1_to_100_is_refused_by_the_contract():
    for quality in (0, 101):
        with pytest.raises(ValueError, match="quality"):
            transform(fmt="jpeg", quality=quality)


def test_bytes_that_do_not_decode_as_validated_fail_the_transform():
    data = encode(quadrants(), "PNG")
    info = validate(data, ANY_SIZE)
    with pytest.raises(Rejected) as caught:
        transform_image(data[:60], info, transform(fmt="jpeg"))
    assert caught.value.reason is Reason.TRANSFORM_FAILED


def test_a_resize_that_would_make_gigapixels_is_refused_before_allocating():
    data = encode(Image.new("L", (64, 8192), 128), "PNG")
    with pytest.raises(Rejected) as caught:
        transform_image(data, validate(data, ANY_SIZE), transform("keep_ratio", 8192))
    assert caught.value.reason is Reason.TRANSFORM_FAILED and "8192x1048576" in caught.value.detail


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_an_rgb_colour_profile_travels_with_the_pixels(fmt):
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    _, out = run(encode(quadrants(), "PNG", icc_profile=profile), transform("keep_ratio", 32, fmt=fmt))
    assert out.info.get("icc_profile") == profile


def test_a_cmyk_profile_is_not_attached_to_rgb_pixels():
    source_profile = b"a CMYK profile as far as the file is concerned"
    data = encode(Image.new("CMYK", (128, 96), (255, 0, 0, 0)), "JPEG", icc_profile=source_profile)
    assert Image.open(io.BytesIO(data)).info["icc_profile"] == source_profile
    _, out = run(data, transform(fmt="jpeg"))
    assert out.mode == "RGB" and "icc_profile" not in out.info


# --- pixels decoded once, by validation ------------------------------------------------------

@pytest.mark.parametrize("source, spec", [
    (lambda: encode(quadrants(1600, 1200), "JPEG"), transform("keep_ratio", 512, True, "jpeg")),
    (lambda: encode(quadrants(700, 600), "JPEG"), transform("keep_ratio", 512, True, "jpeg")),
    (lambda: encode(quadrants(640, 480), "JPEG"), transform("keep_ratio", 512, True, "jpeg")),
    (lambda: stored_with_orientation(quadrants(1200, 900), 6), transform("keep_ratio", 300, True, "jpeg")),
    (lambda: stored_with_orientation(quadrants(96, 64), 3, "PNG"), transform(fmt="webp")),
    (lambda: encode(quadrants(900, 600), "JPEG"), transform("center_crop", 256, fmt="png")),
    (lambda: encode(quadrants(900, 600), "JPEG"), transform("border", 256)),
    (cmyk_cyan, transform("keep_ratio", 48, fmt="webp")),
    (palette_with_transparency, transform(fmt="jpeg")),
    (grey_with_alpha, transform("keep_ratio_largest", 40, fmt="png")),
    (rgba_picture, transform(fmt="jpeg")),
    (lambda: sixteen_bit_ramp()[0], transform(fmt="jpeg")),
    (lambda: encode(quadrants(), "GIF"), transform("keep_ratio", 32)),
])
def test_pixels_validation_decoded_give_the_same_bytes_as_decoding_again(source, spec):
    data = source()
    info, decoded = validate_decoded(data, ANY_SIZE, partial(pixels_for, spec))
    assert decoded is not None
    assert transform_image(data, info, spec, decoded) == transform_image(data, validate(data, ANY_SIZE), spec)


@pytest.mark.parametrize("mode", ["none", "keep_ratio", "center_crop", "border"])
def test_no_pixels_are_wanted_when_the_downloaded_bytes_are_stored_as_they_are(mode):
    assert pixels_for(transform(mode, 512, True), 400, 300) is None
    assert pixels_for(transform(mode, 512, True, "jpeg"), 400, 300) == (400, 300)
