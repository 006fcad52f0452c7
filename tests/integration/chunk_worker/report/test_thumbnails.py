"""The report's thumbnails are made from the stored bytes of exactly the samples it names, read back
from each layout (image files, tar shards, Parquet row groups) on file:// and on Azurite."""

from __future__ import annotations

import os
import re
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient

from chunk_worker.contract import EXTENSIONS, run_name
from chunk_worker.report.thumbnails import thumbnail_uri
from chunk_worker.storage import open_storage
from tests.fixtures.dataset_outputs import accepted, finalize, spec_json, write_output

THUMB = re.compile(r'<img class="thumb" src="([^"]+)" alt="[^"]* (\d{9})">')


def stored(out: Path, fmt: str, line) -> bytes:
    """A sample's bytes, read the way a user would: the file, the tar member, the Parquet row."""
    if fmt == "files":
        return (out / line.blob).read_bytes()
    if fmt == "webdataset":
        with tarfile.open(out / line.blob) as tar:
            return tar.extractfile(f"{line.key}.{EXTENSIONS[line.format]}").read()
    rows = pq.read_table(out / line.blob, filters=[("key", "=", line.key)]).to_pylist()
    return rows[0]["image"]["bytes"]


def shown(html: str) -> dict[str, str]:
    return {key: uri for uri, key in THUMB.findall(html)}


@pytest.mark.parametrize("fmt", ["files", "webdataset", "parquet"])
def test_every_thumbnail_is_its_samples_stored_image(tmp_path, fmt):
    out = tmp_path / "out"
    lines = accepted(write_output(open_storage(out.as_uri()), fmt, [0, 1], 10, tmp_path))
    result = finalize(out.as_uri(), "--spec-json", spec_json())
    assert result.returncode == 0, result.stderr
    thumbnails = shown((out / "report.html").read_text())
    assert thumbnails == {line.key: thumbnail_uri(stored(out, fmt, line)) for line in lines}


def test_shards_on_azure_give_the_same_thumbnails_as_on_files(azure_container, tmp_path):
    azure = f"azure://{azure_container}/jobs/pets"
    storage = open_storage(azure)
    storage.check()
    write_output(storage, "webdataset", [0, 1], 6, tmp_path / "a")
    local = tmp_path / "local"
    write_output(open_storage(local.as_uri()), "webdataset", [0, 1], 6, tmp_path / "l")
    assert finalize(azure, "--spec-json", spec_json()).returncode == 0
    assert finalize(local.as_uri(), "--spec-json", spec_json()).returncode == 0
    with BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"]) as service:
        html = service.get_container_client(azure_container).download_blob("jobs/pets/report.html").readall().decode()
    assert len(shown(html)) == 12
    assert shown(html) == shown((local / "report.html").read_text())


def test_a_damaged_run_record_exits_2_naming_it(tmp_path):
    out = tmp_path / "out"
    write_output(open_storage(out.as_uri()), "files", [0], 4, tmp_path)
    (out / run_name(0)).write_text('{"chunk": 0, "started_at": "yesterday"}')
    result = finalize(out.as_uri())
    assert result.returncode == 2
    assert "manifests/chunk-00000.run.json: started_at" in result.stderr
    assert not (out / "report.html").exists() and not (out / "README.md").exists()


def test_a_sample_whose_image_is_gone_is_left_off_the_sheet(tmp_path):
    out = tmp_path / "out"
    lines = accepted(write_output(open_storage(out.as_uri()), "files", [0], 4, tmp_path))
    (out / lines[0].blob).unlink()
    result = finalize(out.as_uri())
    assert result.returncode == 0, result.stderr
    html = (out / "report.html").read_text()
    assert set(shown(html)) == {line.key for line in lines[1:]}
    assert html.count('data-total="') == len({(line.label, line.split) for line in lines})


def test_a_damaged_shard_costs_its_thumbnails_not_the_report(tmp_path):
    out = tmp_path / "out"
    lines = accepted(write_output(open_storage(out.as_uri()), "webdataset", [0, 1], 5, tmp_path))
    shard = out / "shards" / "00000.tar"
    with tarfile.open(shard) as tar:
        image = next(member for member in tar if member.name.endswith(".jpg"))
    shard.write_bytes(shard.read_bytes()[:image.offset_data + 100])  # cut inside its first image
    result = finalize(out.as_uri())
    assert result.returncode == 0, result.stderr
    assert "cannot read thumbnails from shards/00000.tar" in result.stderr
    assert set(shown((out / "report.html").read_text())) == {line.key for line in lines if line.key >= "000010000"}
