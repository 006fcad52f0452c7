"""`python -m chunk_worker run` writing training formats, read back by the real loaders: webdataset shards,
Hugging Face Parquet, resized and upright, identical on a retry, never half-visible after a kill."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import datasets
import numpy
import pytest
import webdataset
from PIL import Image, ImageOps

from tests.fixtures.worker_cli import ALLOW, manifest, run_worker, write_spec

RESIZE_256 = {"resize": {"mode": "keep_ratio", "size": 256}, "encode": {"format": "jpeg", "quality": 90}}


def items(image_server, count: int, route: str = "img", query: str = "w=640&h=480") -> list[dict]:
    return [{"url": image_server.url(f"/{route}/{n}.jpg?{query}"), "label": "cat" if n % 2 else "dog"}
            for n in range(1, count + 1)]


def hidden(name: str) -> bool:
    """Staging and temp files live under names starting with a dot; a final name has none."""
    return any(part.startswith(".") for part in name.split("/"))


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()) if root.exists() else []


def test_webdataset_shard_holds_every_accepted_sample_resized_with_class_and_split(image_server, tmp_path):
    spec = write_spec(tmp_path, items(image_server, 12), format="webdataset", transform=RESIZE_256,
                      split={"val": 0.25, "test": 0.25}, classes=["cat", "dog"])
    out = tmp_path / "out"
    result = run_worker("--spec", str(spec), "--output", out.as_uri(), *ALLOW)
    assert result.returncode == 0, result.stderr
    lines = {line["key"]: line for line in manifest(out) if line["status"] == "ok"}
    assert len(lines) == 12
    samples = list(webdataset.WebDataset(str(out / "shards" / "00000.tar"), shardshuffle=False).decode("pil"))
    assert sorted(sample["__key__"] for sample in samples) == sorted(lines)
    for sample in samples:
        line = lines[sample["__key__"]]
        assert len(sample["__key__"]) == 9 and sample["__key__"].isdigit()
        assert sample["jpg"].size == (341, 256) == (line["width"], line["height"])
        assert sample["cls"] == ["cat", "dog"].index(line["label"])
        assert sample["json"]["split"] == line["split"]
        assert sample["txt"] == line["label"]
    assert {line["split"] for line in lines.values()} <= {"train", "validation", "test"}


def test_each_resized_sample_names_the_sha256_of_its_stored_bytes(image_server, tmp_path):
    spec = write_spec(tmp_path, items(image_server, 4), format="webdataset", transform=RESIZE_256)
    out = tmp_path / "out"
    assert run_worker("--spec", str(spec), "--output", out.as_uri(), *ALLOW).returncode == 0
    lines = {line["key"]: line for line in manifest(out) if line["status"] == "ok"}
    samples = list(webdataset.WebDataset(str(out / "shards" / "00000.tar"), shardshuffle=False))
    assert len(samples) == len(lines) == 4
    for sample in samples:
        line = lines[sample["__key__"]]
        assert hashlib.sha256(sample["jpg"]).hexdigest() == line["stored_sha256"] != line["sha256"]


def test_a_phone_photo_with_exif_orientation_6_comes_out_upright_in_parquet(image_server, tmp_path):
    url = image_server.url("/exif/5.jpg?orientation=6&w=400&h=300")
    spec = write_spec(tmp_path, [{"url": url, "label": "cat"}], format="parquet",
                      transform={"encode": {"format": "png"}})
    out = tmp_path / "out"
    result = run_worker("--spec", str(spec), "--output", out.as_uri(), *ALLOW)
    assert result.returncode == 0, result.stderr
    (line,) = manifest(out)
    assert (line["original_width"], line["original_height"], line["width"], line["height"]) == (400, 300, 300, 400)
    loaded = datasets.load_dataset("parquet", data_files=str(out / "data" / "train-*.parquet"), split="train")
    stored = loaded[0]["image"]
    assert stored.size == (300, 400)
    with urllib.request.urlopen(url, timeout=10) as response:
        source = Image.open(io.BytesIO(response.read()))
    upright = numpy.asarray(ImageOps.exif_transpose(source).convert("RGB"), dtype=numpy.int16)
    assert numpy.abs(numpy.asarray(stored.convert("RGB"), dtype=numpy.int16) - upright).mean() < 4


def test_a_retried_chunk_writes_byte_identical_shards(image_server, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    for attempt, out in ((1, first), (2, again)):
        spec = write_spec(tmp_path, items(image_server, 10), format="webdataset", transform=RESIZE_256,
                          split={"val": 0.2}, classes=["cat", "dog"], attempt=attempt)
        result = run_worker("--spec", str(spec), "--output", out.as_uri(), *ALLOW)
        assert result.returncode == 0, result.stderr
    for name in ("shards/00000.tar", "shards/00000.parquet"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name


def start_slow_chunk(image_server, tmp_path: Path, out: Path) -> subprocess.Popen:
    spec = write_spec(tmp_path, items(image_server, 16, route="slow", query="delay=0.4"), format="webdataset",
                      classes=["cat", "dog"])
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "chunk_worker", "run", "--spec", str(spec), "--output",
                             out.as_uri(), *ALLOW, "--threads", "2", "--progress", "none"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PIXCRAWLER_TMP_DIR": str(scratch)})


def slow_downloads(image_server) -> int:
    return sum(image_server.completed(f"/slow/{n}.jpg") for n in range(1, 17))


def wait_for_downloads(image_server, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while slow_downloads(image_server) < count:
        assert time.monotonic() < deadline, "the worker never started downloading"
        time.sleep(0.05)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM])
def test_a_chunk_stopped_mid_shard_shows_nothing_and_its_retry_completes(image_server, tmp_path, stop):
    out = tmp_path / "out"
    before = slow_downloads(image_server)
    process = start_slow_chunk(image_server, tmp_path, out)
    wait_for_downloads(image_server, before + 4)
    process.send_signal(stop)
    process.communicate(timeout=30)
    assert process.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 143)
    assert [name for name in files_under(out) if not hidden(name)] == [], "nothing under a final name"
    if stop == signal.SIGTERM:
        assert files_under(tmp_path / "scratch") == [], "SIGTERM leaves the chunk's temp dir removed"
    retry = start_slow_chunk(image_server, tmp_path, out)
    retry.communicate(timeout=60)
    assert retry.returncode == 0
    assert len(list(webdataset.WebDataset(str(out / "shards" / "00000.tar"), shardshuffle=False))) == 16
    assert {line["status"] for line in manifest(out)} == {"ok"}
    assert [name for name in files_under(out) if hidden(name)] == [], "the retry sweeps what the kill left"
