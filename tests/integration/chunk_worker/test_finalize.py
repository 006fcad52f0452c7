"""`python -m chunk_worker finalize` over outputs the real layouts wrote (real images, real manifests),
on file:// and on Azurite, read back with the real loaders: pyarrow, Hugging Face datasets, webdataset."""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from azure.storage.blob import BlobServiceClient

from chunk_worker import licenses
from chunk_worker.contract import ManifestLine, manifest_name
from chunk_worker.layouts.records import record_of
from chunk_worker.storage import open_storage
from tests.fixtures.dataset_outputs import CLASSES, accepted, chunk_lines, finalize, spec_json, write_output

OUTPUTS = ["index.parquet", "index.jsonl", "ATTRIBUTION.md", "report.html", "README.md"]


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n", 2)[1])


def snippet(card: str, library: str) -> str:
    """The card's loading lines for one library, as a reader would paste them."""
    return card.split(f"**{library}**\n\n```python\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def files_output(tmp_path) -> tuple[Path, list[ManifestLine]]:
    out = tmp_path / "out"
    storage = open_storage(out.as_uri())
    return out, write_output(storage, "files", [0, 1], 12, tmp_path)


def test_imagefolder_loads_a_files_output_with_labels_and_the_split_column(files_output, hf_cache):
    import datasets

    out, lines = files_output
    assert finalize(out.as_uri()).returncode == 0  # by hand: nothing but the output given
    dataset = datasets.load_dataset("imagefolder", data_dir=str(out))["train"]
    expected = Counter((line.label, line.split) for line in accepted(lines))
    assert Counter(zip(dataset["label"], dataset["split"])) == expected
    assert dataset["cls"] == [CLASSES.index(label) for label in dataset["label"]]
    assert all(image.size[0] >= 40 for image in dataset["image"])  # every image decodes


def test_the_cards_configs_load_each_split_with_its_images(files_output, hf_cache):
    import datasets

    out, lines = files_output
    assert finalize(out.as_uri(), "--spec-json", spec_json()).returncode == 0
    dataset = datasets.load_dataset(str(out))
    expected = Counter(line.split for line in accepted(lines))
    assert {split: dataset[split].num_rows for split in dataset} == dict(expected)
    for split in dataset:
        assert set(dataset[split]["split"]) == {split}
        assert {row["sha256"] for row in dataset[split]} == {line.sha256 for line in accepted(lines)
                                                            if line.split == split}


def test_index_parquet_and_jsonl_hold_the_accepted_records_in_manifest_order(files_output):
    out, lines = files_output
    result = finalize(out.as_uri())
    assert result.returncode == 0, result.stderr
    records = [record_of(line) for line in accepted(lines)]
    assert pq.read_table(out / "index.parquet").to_pylist() == records
    assert [json.loads(row) for row in (out / "index.jsonl").read_text().splitlines()] == records


def test_the_cards_yaml_parses_and_its_configs_name_existing_files(files_output):
    out, lines = files_output
    assert finalize(out.as_uri(), "--spec-json", spec_json()).returncode == 0
    meta = front_matter((out / "README.md").read_text())
    assert meta["task_categories"] == ["image-classification"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["license"] == "other" and meta["license_link"] == "ATTRIBUTION.md"
    names = [str(path.relative_to(out)) for path in out.rglob("*") if path.is_file()]
    for entry in meta["configs"][0]["data_files"]:
        for pattern in [entry["path"]] if isinstance(entry["path"], str) else entry["path"]:
            assert fnmatch.filter(names, pattern), f"{pattern} matches no file"


def test_attribution_lists_exactly_the_images_whose_licence_asks_for_credit(files_output):
    out, lines = files_output
    assert finalize(out.as_uri()).returncode == 0
    rows = [row for row in (out / "ATTRIBUTION.md").read_text().splitlines() if row.startswith("| 0")]
    credited = [line for line in accepted(lines) if licenses.requires_attribution(line.license)]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [line.key for line in credited]
    assert all(line.landing_url in row and line.creator in row for row, line in zip(rows, credited))


def test_a_rerun_writes_identical_bytes(files_output):
    out, _ = files_output
    produced = OUTPUTS + ["metadata.jsonl", "metadata-split=train.jsonl"]
    assert finalize(out.as_uri(), "--spec-json", spec_json()).returncode == 0
    first = {name: (out / name).read_bytes() for name in produced}
    assert finalize(out.as_uri(), "--spec-json", spec_json()).returncode == 0
    assert {name: (out / name).read_bytes() for name in produced} == first


def test_missing_chunks_are_reported_in_the_summary_and_the_card(tmp_path):
    out = tmp_path / "out"
    write_output(open_storage(out.as_uri()), "files", [0, 2], 4, tmp_path)
    result = finalize(out.as_uri(), "--spec-json", spec_json(chunks=4))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["missingChunks"] == [1, 3]
    assert "manifests of 2 chunk(s) are missing: 1, 3" in (out / "README.md").read_text()


@pytest.mark.parametrize(("spec", "field"), [('{"split": {"val": 1.5}}', "split.val"),
                                             ('{"chunks": 0}', "chunks"), ('{"format": "zip"}', "format"),
                                             ('{"colour": "red"}', "colour")])
def test_a_bad_spec_exits_2_naming_the_field(tmp_path, spec, field):
    result = finalize((tmp_path / "out").as_uri(), "--spec-json", spec)
    assert result.returncode == 2
    assert f"{field}:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_storage_trouble_exits_1_and_leaves_no_temp_file(files_output, tmp_path):
    out, _ = files_output
    (out / "README.md").mkdir()  # the card cannot be written under its name
    result = finalize(out.as_uri())
    assert result.returncode == 1
    assert "README.md" in result.stderr
    assert not [path for path in out.rglob(".*") if path.is_file()]  # no temp file left behind


def test_sigterm_mid_finalize_exits_143_and_leaves_no_temp_files(tmp_path):
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    scratch.mkdir()
    lines = [line for line, _ in chunk_lines(0, 500) if line.status == "ok"]
    manifest = b"".join(line.model_dump_json().encode() + b"\n" for line in lines)
    (out / "manifests").mkdir(parents=True)
    for chunk in range(400):  # 200,000 rows: seconds of work, far longer than the wait below
        (out / manifest_name(chunk)).write_bytes(manifest)
    process = subprocess.Popen([sys.executable, "-m", "chunk_worker", "finalize", "--output", out.as_uri(),
                                "--log-format", "text"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PIXCRAWLER_TMP_DIR": str(scratch)})
    while not list(scratch.iterdir()):  # its temp dir exists: it is reading manifests
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert list(scratch.iterdir()) == []
    assert sorted(path.name for path in out.iterdir()) == ["manifests"]


def test_a_damaged_manifest_exits_2_naming_file_and_line(files_output):
    out, _ = files_output
    with open(out / "manifests" / "chunk-00001.jsonl", "a") as manifest:
        manifest.write('{"url": "http://x/1.jpg", "status": "maybe"}\n')
    result = finalize(out.as_uri())
    assert result.returncode == 2
    assert "manifests/chunk-00001.jsonl line 15: status" in result.stderr
    assert not (out / "README.md").exists()


def test_a_webdataset_output_loads_with_the_cards_own_snippets(tmp_path, hf_cache):
    out = tmp_path / "out"
    lines = write_output(open_storage(out.as_uri()), "webdataset", [0, 1], 6, tmp_path)
    result = finalize(out.as_uri(), "--spec-json", spec_json())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["format"] == "webdataset"
    card = (out / "README.md").read_text()
    assert front_matter(card)["configs"][0]["data_files"] == [{"split": "train", "path": "shards/*.tar"}]
    scope: dict = {}
    exec(snippet(card, "webdataset"), scope)  # the card's three lines, as a reader would paste them
    assert scope["image"].size[0] >= 40 and scope["target"] in (0, 1)
    exec(snippet(card, "Hugging Face datasets"), scope)
    assert scope["dataset"]["train"].num_rows == len(accepted(lines))


def test_a_parquet_output_loads_by_split_with_the_cards_snippet(tmp_path, hf_cache):
    out = tmp_path / "out"
    lines = write_output(open_storage(out.as_uri()), "parquet", [0, 1], 8, tmp_path)
    result = finalize(out.as_uri(), "--spec-json", spec_json())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["format"] == "parquet"
    scope: dict = {}
    exec(snippet((out / "README.md").read_text(), "Hugging Face datasets"), scope)
    dataset = scope["dataset"]
    assert {split: dataset[split].num_rows for split in dataset} == dict(Counter(l.split for l in accepted(lines)))
    assert dataset["train"][0]["image"].size == (dataset["train"][0]["width"], dataset["train"][0]["height"])


def test_finalize_on_azurite_writes_the_same_index_as_on_files(azure_container, tmp_path):
    azure = f"azure://{azure_container}/jobs/pets"
    storage = open_storage(azure)
    storage.check()
    write_output(storage, "files", [0, 1], 8, tmp_path)
    local = tmp_path / "local"
    write_output(open_storage(local.as_uri()), "files", [0, 1], 8, tmp_path)
    result = finalize(azure, "--spec-json", spec_json())
    assert result.returncode == 0, result.stderr
    assert finalize(local.as_uri(), "--spec-json", spec_json()).returncode == 0
    with BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"]) as service:
        container = service.get_container_client(azure_container)
        for name in ["index.parquet", "index.jsonl", "ATTRIBUTION.md", "metadata.jsonl"]:
            assert container.download_blob(f"jobs/pets/{name}").readall() == (local / name).read_bytes()
        card = container.download_blob("jobs/pets/README.md").readall().decode()
        report = container.download_blob("jobs/pets/report.html").readall().decode()
    assert front_matter(card)["configs"] == front_matter((local / "README.md").read_text())["configs"]
    assert report.count('class="thumb"') == (local / "report.html").read_text().count('class="thumb"') == 16
    assert json.loads(result.stdout)["images"] == 16
