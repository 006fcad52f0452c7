"""What `download` asks for: one entry per object with the hashes of the images in it, the dataset-wide
files, and a clear refusal for what cannot be downloaded."""

from __future__ import annotations

import pytest

from kubectl_pixcrawler.dataset_files import NotDownloadable, finished_output, wanted_files


def row(key: str, blob: str, split: str = "train", sha: str | None = "s") -> dict:
    return {"key": key, "blob": blob, "split": split, "format": "JPEG", "stored_sha256": f"{sha}{key}" if sha else None}


def names(files) -> list[str]:
    return [wanted.local_name for wanted in files]


def test_shard_members_are_checked_by_key_and_extension():
    files = wanted_files([row("000000000", "shards/00000.tar"), row("000000001", "shards/00000.tar", "test")],
                         "webdataset")
    assert files[0].name == "shards/00000.tar" and files[0].kind == "tar"
    assert files[0].images == {"000000000.jpg": "s000000000", "000000001.jpg": "s000000001"}
    assert "shards/00000.parquet" in names(files)


def test_a_split_takes_only_its_rows_and_that_splits_metadata_as_imagefolders():
    files = wanted_files([row("a", "images/a.jpg"), row("b", "images/b.jpg", "test")], "files", split="test")
    assert [w.name for w in files if w.images] == ["images/b.jpg"]
    metadata = next(w for w in files if w.local_name == "metadata.jsonl")
    assert metadata.name == "metadata-split=test.jsonl"
    assert "README.md" not in names(files)


def test_a_whole_download_brings_the_card_and_the_index():
    assert {"README.md", "index.jsonl", "index.parquet", "metadata.jsonl"} <= set(
        names(wanted_files([row("a", "images/a.jpg")], "files")))


def test_rows_older_than_stored_sha256_are_fetched_unchecked():
    files = wanted_files([row("a", "data/train-00000.parquet", sha=None)], "parquet")
    assert files[0].name == "data/train-00000.parquet" and files[0].images == {}


def test_a_webdataset_split_is_refused_saying_why():
    with pytest.raises(NotDownloadable, match="mix the splits"):
        wanted_files([], "webdataset", split="train")


def test_an_unknown_split_is_refused_naming_the_known_ones():
    with pytest.raises(NotDownloadable, match="train, validation, test"):
        wanted_files([], "files", split="dev")


def test_a_running_job_has_nothing_to_download_yet():
    body = {"metadata": {"name": "cats"}, "status": {"phase": "Running", "output": {"location": "file:///x"}}}
    with pytest.raises(NotDownloadable, match="cats is Running"):
        finished_output(body)


def test_a_succeeded_job_gives_its_location_and_layout():
    output = {"location": "azure://c/p", "format": "parquet", "index": "azure://c/p/index.parquet"}
    assert finished_output({"metadata": {"name": "x"}, "status": {"phase": "Succeeded", "output": output}}) == (
        "azure://c/p", "parquet")
