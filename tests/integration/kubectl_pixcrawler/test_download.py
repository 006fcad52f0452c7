"""`kubectl pixcrawler download`'s transfer on real finalized outputs (file:// and Azurite): every image
checked against the index, a re-run resumes what an interruption left, and a damaged object is named."""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from chunk_worker.storage import open_storage
from kubectl_pixcrawler.dataset_files import wanted_files
from kubectl_pixcrawler.download import DownloadSummary, index_rows, save
from tests.fixtures.dataset_outputs import finalize, spec_json, write_output

CHUNKS, PER_CHUNK = [0, 1], 6


def finalized(url: str, fmt: str, tmp_path: Path) -> int:
    """A finalized dataset at `url`; the number of images it holds."""
    lines = write_output(open_storage(url), fmt, CHUNKS, PER_CHUNK, tmp_path)
    result = finalize(url, "--spec-json", spec_json())
    assert result.returncode == 0, result.stderr
    return sum(line.status == "ok" for line in lines)


def download(url: str, fmt: str, directory: Path, split: str | None = None) -> DownloadSummary:
    summary = DownloadSummary()
    with contextlib.closing(open_storage(url)) as storage:
        for wanted in wanted_files(index_rows(storage), fmt, split):
            save(storage, wanted, directory, summary)
    return summary


def test_a_files_dataset_is_saved_whole_and_every_image_checked(tmp_path):
    out = tmp_path / "out"
    images = finalized(out.as_uri(), "files", tmp_path)
    summary = download(out.as_uri(), "files", tmp_path / "copy")
    assert summary.ok and summary.images_verified == images
    saved = sorted(p.relative_to(tmp_path / "copy") for p in (tmp_path / "copy").rglob("*") if p.is_file())
    assert saved == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and "manifests" not in p.parts)


def test_a_rerun_fetches_only_what_an_interruption_left_missing(tmp_path):
    out, copy = tmp_path / "out", tmp_path / "copy"
    finalized(out.as_uri(), "files", tmp_path)
    first = download(out.as_uri(), "files", copy)
    images = sorted((copy / "images").rglob("*.jpg"))
    images[0].unlink()                                   # never fetched
    half = images[1].read_bytes()[: images[1].stat().st_size // 2]
    images[1].unlink()
    images[1].with_name(images[1].name + ".part").write_bytes(half)  # cut off mid-transfer
    images[2].write_bytes(b"not the image")              # a damaged copy in place
    again = download(out.as_uri(), "files", copy)
    assert again.ok and again.fetched == 3 and again.already_there == first.fetched - 3
    assert again.bytes_fetched == images[0].stat().st_size + (images[1].stat().st_size - len(half)) + \
        images[2].stat().st_size
    assert not list(copy.rglob("*.part"))


def test_an_object_with_other_bytes_than_the_index_says_is_refused_by_name(tmp_path):
    out = tmp_path / "out"
    finalized(out.as_uri(), "files", tmp_path)
    damaged = sorted((out / "images").rglob("*.jpg"))[0]
    damaged.write_bytes(damaged.read_bytes()[:-10])
    summary = download(out.as_uri(), "files", tmp_path / "copy")
    name = damaged.relative_to(out).as_posix()
    assert not summary.ok and len(summary.mismatched) == 1 and summary.mismatched[0].startswith(f"{name}: sha256")
    assert not (tmp_path / "copy" / name).exists() and not list((tmp_path / "copy").rglob("*.part"))


def test_webdataset_shards_from_azurite_are_checked_member_by_member(azure_container, tmp_path):
    url = f"azure://{azure_container}/jobs/pets"
    open_storage(url).check()
    images = finalized(url, "webdataset", tmp_path)
    summary = download(url, "webdataset", tmp_path / "copy")
    assert summary.ok and summary.images_verified == images
    shards = sorted((tmp_path / "copy" / "shards").glob("*.tar"))
    assert len(shards) == len(CHUNKS) and len(list((tmp_path / "copy" / "shards").glob("*.parquet"))) == len(CHUNKS)
    with tarfile.open(shards[0]) as tar:
        record = json.loads(tar.extractfile(next(m for m in tar if m.name.endswith(".json"))).read())
        image = tar.extractfile(f"{record['key']}.jpg").read()
    assert hashlib.sha256(image).hexdigest() == record["stored_sha256"]


def test_a_complete_part_left_on_azurite_is_kept_without_refetching(azure_container, tmp_path):
    url = f"azure://{azure_container}/jobs/pets"
    open_storage(url).check()
    finalized(url, "files", tmp_path)
    copy = tmp_path / "copy"
    download(url, "files", copy)
    image = sorted((copy / "images").rglob("*.jpg"))[0]
    image.rename(image.with_name(image.name + ".part"))  # fetched whole, interrupted before the rename
    again = download(url, "files", copy)
    assert again.ok and again.fetched == 1 and again.bytes_fetched == 0 and image.exists()


def test_one_split_of_a_parquet_dataset(tmp_path):
    out = tmp_path / "out"
    finalized(out.as_uri(), "parquet", tmp_path)
    summary = download(out.as_uri(), "parquet", tmp_path / "copy", split="train")
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert summary.ok and summary.images_verified == sum(row["split"] == "train" for row in rows)
    assert {p.name.split("-")[0] for p in (tmp_path / "copy" / "data").iterdir()} == {"train"}


@pytest.mark.parametrize("fmt", ["files", "parquet"])
def test_a_split_download_loads_with_the_printed_hint(fmt, tmp_path, hf_cache):
    import datasets

    from kubectl_pixcrawler.dataset_files import loading_hint

    out = tmp_path / "out"
    finalized(out.as_uri(), fmt, tmp_path)
    copy = tmp_path / "copy"
    summary = download(out.as_uri(), fmt, copy, split="train")
    hint = loading_hint(str(copy), fmt, "train")
    loaded = eval(hint.split("  #")[0], {"datasets": datasets})  # the line the command prints, as a user pastes it
    dataset = loaded["train"]
    assert len(dataset) == summary.images_verified and dataset[0]["image"].size[0] > 0
