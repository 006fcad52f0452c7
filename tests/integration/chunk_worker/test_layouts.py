"""Each output layout, written through real storage (a directory and Azurite) and read back by the
loaders users would run: webdataset, pyarrow and Hugging Face `datasets`."""

import io
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import imageserver
import pyarrow.parquet as pq
import pytest
import webdataset
from PIL import Image

from chunk_worker.contract import (
    EXTENSIONS,
    ChunkSpec,
    ManifestLine,
    Split,
    Validation,
    image_blob_name,
    parquet_name,
    sample_key,
    shard_metadata_name,
    shard_name,
)
from chunk_worker.layouts import open_layout
from chunk_worker.layouts.records import record_of
from chunk_worker.splits import class_index, split_of
from chunk_worker.storage import open_storage
from chunk_worker.validate import validate

CHUNK = 3
SPLIT = Split(val=0.3, test=0.2)
CLASSES = ["bird", "cat", "dog"]
LABELS = ["cat", "dog", "bird", "fish"]  # fish is in no class list: its samples carry no .cls
FORMATS = ["JPEG", "PNG", "WEBP", "GIF"]
CREDITS = [
    {"license": "by-sa", "license_url": "https://creativecommons.org/licenses/by-sa/4.0/", "creator": "Jane Roe",
     "attribution": "Photo: Jane Roe, CC BY-SA 4.0", "caption": "A cat, asleep"},
    {"license": "cc0", "landing_url": "https://example.org/p/2"},
    {},
]


def accepted_sample(position: int) -> tuple[ManifestLine, bytes]:
    """A real generated image described the way the runner describes it."""
    data = imageserver.make_image(position, FORMATS[position % len(FORMATS)], w=64 + position, h=48 + position)
    info = validate(data, Validation(min_width=16, min_height=16))
    label = LABELS[position % len(LABELS)]
    line = ManifestLine(
        url=f"https://example.org/{position}", label=label, status="ok", key=sample_key(CHUNK, position),
        split=split_of(info.sha256, SPLIT), cls=class_index(label, CLASSES), sha256=info.sha256,
        phash=info.phash_hex, width=info.width, height=info.height, original_width=info.original_width,
        original_height=info.original_height, bytes=info.bytes, format=info.format,
        **CREDITS[position % len(CREDITS)],
    )
    return line, data


SAMPLES = [accepted_sample(position) for position in range(24)]


def chunk_spec(output_format: str, chunk: int = CHUNK) -> ChunkSpec:
    return ChunkSpec(job="default/cats", chunk=chunk, items=[{"url": "https://example.org/0"}],
                     format=output_format, split=SPLIT, classes=CLASSES)


@pytest.fixture(params=["file", "azure"])
def output_url(request, tmp_path):
    if request.param == "file":
        return f"file://{tmp_path}/out"
    return f"azure://{request.getfixturevalue('azure_container')}/default/cats"


@pytest.fixture
def storage(output_url):
    opened = open_storage(output_url, pool_size=8)
    opened.check()
    yield opened
    opened.close()


def write_chunk(storage, tmp_dir: Path, output_format: str, samples, order_seed: int = 0,
                chunk: int = CHUNK) -> list[ManifestLine]:
    """Adds from 8 threads at once, in an order that differs by seed, as the runner's item threads do."""
    shuffled = list(samples)
    random.Random(order_seed).shuffle(shuffled)
    tmp_dir.mkdir(parents=True)
    layout = open_layout(chunk_spec(output_format, chunk), storage, tmp_dir)
    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = list(pool.map(lambda sample: layout.add(*sample), shuffled))
    layout.commit()
    return stored


def download(storage, tmp_path: Path) -> dict[str, Path]:
    """Every object under the output as a local file, by name, through the storage's own reader."""
    local = {}
    for name in storage.list():
        path = tmp_path / "download" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with storage.open(name) as reader, open(path, "wb") as out:
            out.write(reader.read())
        local[name] = path
    return local


def object_bytes(storage) -> dict[str, bytes]:
    result = {}
    for name in storage.list():
        with storage.open(name) as reader:
            result[name] = reader.read()
    return result


def by_key(lines):
    return {line.key: line for line in lines}


def load_split(builder: str, files, split: str, cache: Path):
    import datasets

    return datasets.load_dataset(builder, data_files={split: files}, split=split, cache_dir=str(cache))


def other_chunk(samples, chunk: int):
    """The same images as if another chunk had accepted them: keys renumbered into that chunk."""
    return [(line.model_copy(update={"key": sample_key(chunk, int(line.key[5:]))}), data) for line, data in samples]


def test_webdataset_iterates_every_sample_with_its_members(storage, tmp_path):
    stored = by_key(write_chunk(storage, tmp_path / "work", "webdataset", SAMPLES))
    local = download(storage, tmp_path)
    assert sorted(local) == [shard_metadata_name(CHUNK), shard_name(CHUNK)]
    loaded = list(webdataset.WebDataset(str(local[shard_name(CHUNK)]), shardshuffle=False).decode("pil"))
    assert sorted(sample["__key__"] for sample in loaded) == sorted(stored)
    for sample in loaded:
        line = stored[sample["__key__"]]
        image_member = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}[line.format]
        assert isinstance(sample[image_member], Image.Image)
        sample[image_member].load()
        assert sample[image_member].size == (line.width, line.height)
        assert sample["json"] == record_of(line)
        assert sample["txt"] == (line.caption or line.label)
        assert sample.get("cls") == line.cls


def test_webdataset_samples_without_a_class_have_no_cls_member(storage, tmp_path):
    write_chunk(storage, tmp_path / "work", "webdataset", SAMPLES)
    with storage.open(shard_name(CHUNK)) as reader, tarfile.open(fileobj=io.BytesIO(reader.read())) as tar:
        names = tar.getnames()
    fish = [line.key for line, _ in SAMPLES if line.label == "fish"]
    assert fish and not any(f"{key}.cls" in names for key in fish)
    assert all(f"{line.key}.cls" in names for line, _ in SAMPLES if line.label != "fish")


def test_webdataset_lines_point_at_the_shard(storage, tmp_path):
    stored = write_chunk(storage, tmp_path / "work", "webdataset", SAMPLES)
    assert {line.blob for line in stored} == {shard_name(CHUNK)}


def test_webdataset_sidecar_parquet_holds_the_json_records_in_key_order(storage, tmp_path):
    stored = by_key(write_chunk(storage, tmp_path / "work", "webdataset", SAMPLES))
    local = download(storage, tmp_path)
    rows = pq.read_table(local[shard_metadata_name(CHUNK)]).to_pylist()
    assert rows == [record_of(stored[key]) for key in sorted(stored)]


def test_webdataset_members_are_normalised_and_grouped_by_key(storage, tmp_path):
    write_chunk(storage, tmp_path / "work", "webdataset", SAMPLES)
    with storage.open(shard_name(CHUNK)) as reader, tarfile.open(fileobj=io.BytesIO(reader.read())) as tar:
        members = tar.getmembers()
    assert [m.name.split(".")[0] for m in members] == sorted(m.name.split(".")[0] for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


@pytest.mark.parametrize("output_format", ["webdataset", "parquet"])
def test_a_retried_chunk_writes_byte_identical_objects(output_url, output_format, tmp_path):
    """Same samples, another thread interleaving, a fresh staging dir and output: the same bytes."""
    written = []
    for attempt, url in enumerate([output_url, f"{output_url}-retry"]):
        storage = open_storage(url, pool_size=8)
        storage.check()
        write_chunk(storage, tmp_path / f"attempt-{attempt}", output_format, SAMPLES, order_seed=attempt)
        written.append(object_bytes(storage))
        storage.close()
    assert written[0] and written[0] == written[1]


def test_webdataset_shards_of_one_image_format_load_with_datasets(storage, tmp_path):
    """Hugging Face's webdataset builder wants every sample to have the same members (one image
    format: what encode.format gives), and infers them from the first shard; later empty shards are fine."""
    jpeg = [sample for sample in SAMPLES if sample[0].format == "JPEG" and sample[0].cls is not None]
    write_chunk(storage, tmp_path / "work-3", "webdataset", jpeg)
    write_chunk(storage, tmp_path / "work-4", "webdataset", [], chunk=4)
    local = download(storage, tmp_path)
    files = [str(local[shard_name(chunk)]) for chunk in (CHUNK, 4)]
    loaded = load_split("webdataset", files, "train", tmp_path / "hf-cache")
    assert sorted(row["__key__"] for row in loaded) == sorted(line.key for line, _ in jpeg)
    for row in loaded:
        line = next(line for line, _ in jpeg if line.key == row["__key__"])
        assert row["jpg"].size == (line.width, line.height)
        assert (row["json"]["label"], row["cls"]) == (line.label, line.cls)


def test_webdataset_empty_chunk_is_an_empty_shard_and_sidecar(storage, tmp_path):
    write_chunk(storage, tmp_path / "work", "webdataset", [])
    local = download(storage, tmp_path)
    assert list(webdataset.WebDataset(str(local[shard_name(CHUNK)]), shardshuffle=False, empty_check=False)) == []
    assert pq.read_table(local[shard_metadata_name(CHUNK)]).num_rows == 0


def test_parquet_layout_loads_images_and_labels_with_datasets(storage, tmp_path):
    stored = write_chunk(storage, tmp_path / "work", "parquet", SAMPLES)
    local = download(storage, tmp_path)
    assert sorted(local) == sorted(parquet_name(split, CHUNK) for split in ("train", "validation", "test"))
    for split in ("train", "validation", "test"):
        expected = sorted((line for line in stored if line.split == split), key=lambda line: line.key)
        assert expected, f"the fixture should put samples in {split}"
        loaded = load_split("parquet", str(local[parquet_name(split, CHUNK)]), split, tmp_path / "hf-cache")
        assert [row["key"] for row in loaded] == [line.key for line in expected]
        for row, line in zip(loaded, expected):
            assert isinstance(row["image"], Image.Image)
            assert row["image"].size == (line.width, line.height)
            assert (row["label"], row["cls"], row["split"]) == (line.label, line.cls, split)
            assert line.blob == parquet_name(split, CHUNK)


def test_parquet_layout_holds_the_stored_bytes_and_a_named_path(storage, tmp_path):
    write_chunk(storage, tmp_path / "work", "parquet", SAMPLES)
    local = download(storage, tmp_path)
    data_of = {line.key: data for line, data in SAMPLES}
    rows = [row for name in sorted(local) for row in pq.read_table(local[name]).to_pylist()]
    assert len(rows) == len(SAMPLES)
    for row in rows:
        assert row["image"]["bytes"] == data_of[row["key"]]
        assert row["image"]["path"] == f"{row['key']}.{row['format'].lower().replace('jpeg', 'jpg')}"


def test_parquet_layout_writes_every_possible_split_even_when_empty(storage, tmp_path):
    only_train = [sample for sample in SAMPLES if sample[0].split == "train"]
    write_chunk(storage, tmp_path / "work", "parquet", only_train)
    local = download(storage, tmp_path)
    assert pq.read_table(local[parquet_name("test", CHUNK)]).num_rows == 0
    assert pq.read_table(local[parquet_name("validation", CHUNK)]).num_rows == 0
    assert pq.read_table(local[parquet_name("train", CHUNK)]).num_rows == len(only_train)


def test_parquet_split_with_an_empty_file_from_one_chunk_loads_the_others(storage, tmp_path):
    """How the dataset card's `data/<split>-*.parquet` pattern meets a chunk with nothing in that split."""
    write_chunk(storage, tmp_path / "work-3", "parquet", [s for s in SAMPLES if s[0].split == "train"])
    write_chunk(storage, tmp_path / "work-4", "parquet", other_chunk(SAMPLES, 4), chunk=4)
    local = download(storage, tmp_path)
    files = [str(local[parquet_name("validation", chunk)]) for chunk in (CHUNK, 4)]
    loaded = load_split("parquet", files, "validation", tmp_path / "hf-cache")
    assert len(loaded) == sum(1 for line, _ in SAMPLES if line.split == "validation")


def test_parquet_row_groups_stay_small(storage, tmp_path, monkeypatch):
    from chunk_worker.layouts import parquet

    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 4)
    write_chunk(storage, tmp_path / "work", "parquet", SAMPLES)
    local = download(storage, tmp_path)
    metadata = pq.ParquetFile(local[parquet_name("train", CHUNK)]).metadata
    assert metadata.num_row_groups == -(-metadata.num_rows // 4)


def test_files_layout_stores_each_image_content_addressed(storage, tmp_path):
    stored = write_chunk(storage, tmp_path / "work", "files", SAMPLES)
    data_of = {line.key: data for line, data in SAMPLES}
    for line in stored:
        assert line.blob == image_blob_name(line.sha256, line.format)
        with storage.open(line.blob) as reader:
            assert reader.read() == data_of[line.key]
    assert sorted(storage.list()) == sorted(line.blob for line in stored)


def test_files_layout_names_a_transformed_image_by_the_download_hash_and_stored_format(storage, tmp_path):
    line, _ = SAMPLES[1]  # a PNG download
    webp = imageserver.make_image(1, "WEBP")
    stored = write_chunk(storage, tmp_path / "work", "files", [(line.model_copy(update={"format": "WEBP"}), webp)])
    assert stored[0].blob == image_blob_name(line.sha256, "WEBP")
    with storage.open(stored[0].blob) as reader:
        assert reader.read() == webp


@pytest.mark.parametrize("bad, message", [
    ({"status": "duplicate"}, "only accepted"),
    ({"key": "00003.0001"}, "no dots"),
    ({"key": None}, "sample key"),
])
def test_a_line_a_layout_cannot_store_is_refused_naming_it(storage, tmp_path, bad, message):
    line, data = SAMPLES[0]
    layout = open_layout(chunk_spec("webdataset"), storage, tmp_path)
    with pytest.raises(ValueError, match=message):
        layout.add(line.model_copy(update=bad), data)


def test_a_key_added_twice_is_refused(storage, tmp_path):
    layout = open_layout(chunk_spec("webdataset"), storage, tmp_path)
    layout.add(*SAMPLES[0])
    with pytest.raises(ValueError, match="already added"):
        layout.add(*SAMPLES[0])


KILLED_WRITER = """
import os, sys
from pathlib import Path
from chunk_worker.contract import ChunkSpec, ManifestLine
from chunk_worker.layouts import open_layout
from chunk_worker.storage import open_storage

url, tmp = sys.argv[1], Path(sys.argv[2])
storage = open_storage(url, pool_size=2)
spec = ChunkSpec(job="default/cats", chunk=3, items=[{"url": "https://example.org/0"}], format=sys.argv[3])
layout = open_layout(spec, storage, tmp)
for position in range(48):
    line = ManifestLine(url=f"https://example.org/{position}", status="ok", key=f"0000300{position:02d}",
                        split="train", sha256=f"{position:064x}", format="JPEG", label="cat")
    layout.add(line, os.urandom(2 * 1024 * 1024))  # layouts never decode: any bytes stand for an image
layout.commit()
"""


def read_offset(process, path: Path) -> int:
    """How far the process has read `path` (the offset /proc shows for a read-only descriptor of it)."""
    fds = f"/proc/{process.pid}/fd"
    try:
        for fd in os.listdir(fds):
            if os.readlink(f"{fds}/{fd}") == str(path):
                with open(f"/proc/{process.pid}/fdinfo/{fd}") as info:
                    fields = dict(line.split(":", 1) for line in info.read().splitlines() if ":" in line)
                if int(fields["flags"], 8) & os.O_ACCMODE == os.O_RDONLY:
                    return int(fields["pos"])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@pytest.mark.parametrize("output_format, uploaded", [("webdataset", "shard.tar"), ("parquet", "train.parquet")])
def test_a_writer_killed_while_committing_leaves_no_final_name_half_written(storage, output_url, tmp_path,
                                                                            output_format, uploaded):
    work = tmp_path / "work"
    work.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, output_url, str(work), output_format])
    deadline = time.monotonic() + 120

    def committed() -> int:
        """How far the commit has gone: an Azure upload reads the file; a file:// output on the same
        file system links it into place whole, so there the kill comes while it is being written."""
        if output_url.startswith("azure://"):
            return read_offset(writer, work / uploaded)
        try:
            return (work / uploaded).stat().st_size
        except FileNotFoundError:
            return 0

    try:
        while committed() < 16 * 1024 * 1024:
            assert writer.poll() is None, "the writer finished before it could be killed mid-upload"
            assert time.monotonic() < deadline, "never saw the upload start"
            time.sleep(0.002)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    final = shard_name(CHUNK) if output_format == "webdataset" else parquet_name("train", CHUNK)
    assert not storage.exists(final)
    assert storage.open(final) is None
    assert final not in list(storage.list())
    for name in storage.list():  # only what was committed before the kill: the shard's sidecar
        assert name == shard_metadata_name(CHUNK)
        with storage.open(name) as reader:
            assert pq.read_table(io.BytesIO(reader.read())).num_rows == 48


FULL_SCRATCH_DISK = """
import os, resource, signal, sys
from pathlib import Path
from chunk_worker import errors
from chunk_worker.contract import ChunkSpec, ManifestLine
from chunk_worker.layouts import open_layout
from chunk_worker.storage import open_storage

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, writes fail with EFBIG: a disk that is full
resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, resource.RLIM_INFINITY))
spec = ChunkSpec(job="default/cats", chunk=3, items=[{"url": "https://example.org/0"}], format="webdataset")
layout = open_layout(spec, open_storage(sys.argv[1]), Path(sys.argv[2]))
line = ManifestLine(url="https://example.org/0", status="ok", key="000030000", split="train",
                    sha256="0" * 64, format="JPEG")
try:
    layout.add(line, os.urandom(2 * 1024 * 1024))
except errors.StorageUnavailable:
    samples = Path(sys.argv[2]) / "samples"  # the staged bytes wait in one spool file: none of these may stay
    print("StorageUnavailable", sum(path.stat().st_size for path in samples.iterdir()), layout.samples.sorted())
"""


def test_a_full_scratch_disk_ends_the_chunk_and_leaves_no_partial_sample(tmp_path):
    result = subprocess.run([sys.executable, "-c", FULL_SCRATCH_DISK, f"file://{tmp_path}/out", str(tmp_path / "work")],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["StorageUnavailable", "0", "[]"]


FILES_CHUNK = """
import sys
from pathlib import Path
import chunk_worker.__main__, chunk_worker.runner  # everything a chunk process imports up front
from chunk_worker.contract import ChunkSpec, ManifestLine
from chunk_worker.layouts import open_layout
from chunk_worker.storage import open_storage

spec = ChunkSpec(job="default/cats", chunk=3, items=[{"url": "https://example.org/0"}], format="files")
layout = open_layout(spec, open_storage(sys.argv[1]), Path(sys.argv[2]))
layout.add(ManifestLine(url="https://example.org/0", status="ok", key="000030000", split="train",
                        sha256="0" * 64, format="JPEG"), b"any bytes")
layout.commit()
print(sorted(name for name in sys.modules if name.split(".")[0] == "pyarrow"))
"""


def test_a_files_chunk_never_loads_pyarrow(tmp_path):
    """pyarrow is about 50 MiB of a chunk process; only formats that write Parquet need it."""
    result = subprocess.run([sys.executable, "-c", FILES_CHUNK, f"file://{tmp_path}/out", str(tmp_path / "work")],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["[]"]


WEBDATASET_CHUNK = """
import sys
from pathlib import Path
from chunk_worker.contract import ChunkSpec, ManifestLine
from chunk_worker.layouts import open_layout
from chunk_worker.storage import open_storage

spec = ChunkSpec(job="default/cats", chunk=3, items=[{"url": "https://example.org/0"}], format="webdataset")
layout = open_layout(spec, open_storage(sys.argv[1]), Path(sys.argv[2]))
for position in range(20):
    layout.add(ManifestLine(url=f"https://example.org/{position}", status="ok", key=f"0000300{position:02d}",
                            split="train", sha256=f"{position:064x}", format="JPEG", label="cat"), b"any bytes")
layout.commit()
print("pandas" in sys.modules)
"""


def test_a_webdataset_commit_writes_its_parquet_without_loading_pandas(tmp_path):
    """pyarrow imports pandas, when installed, for Table.from_pylist: about 50 MiB a chunk process needs not."""
    pytest.importorskip("pandas")  # installed beside `datasets`: otherwise nothing could load it
    result = subprocess.run([sys.executable, "-c", WEBDATASET_CHUNK, f"file://{tmp_path}/out", str(tmp_path / "work")],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False"]
    assert pq.read_table(tmp_path / "out" / shard_metadata_name(CHUNK)).num_rows == 20


def test_webdataset_shard_is_byte_for_byte_what_tarfile_writes(tmp_path):
    """The shard writer builds USTAR headers itself and copies images from the spool: the result is
    the tar `tarfile` writes for the same members, in the same order, with the same normalised fields."""
    from chunk_worker.layouts.records import record_json
    from chunk_worker.layouts.webdataset import _member

    storage = open_storage(f"file://{tmp_path}/out")
    stored = write_chunk(storage, tmp_path / "work", "webdataset", SAMPLES, order_seed=5)
    expected = io.BytesIO()
    with tarfile.open(fileobj=expected, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for line in sorted(stored, key=lambda line: line.key):
            record = record_of(line)
            members = [(f"{line.key}.json", record_json(record))]
            if record["cls"] is not None:
                members.append((f"{line.key}.cls", str(record["cls"]).encode()))
            members.append((f"{line.key}.txt", (record["caption"] or record["label"]).encode()))
            data = next(data for sample, data in SAMPLES if sample.key == line.key)
            members.append((f"{line.key}.{line.blob and EXTENSIONS[line.format]}", data))
            for name, payload in members:
                tar.addfile(_member(name, len(payload)), io.BytesIO(payload))
    assert storage.read(shard_name(CHUNK)) == expected.getvalue()
    storage.close()


def test_member_header_is_tarfiles_for_any_name_and_size():
    from chunk_worker.layouts.webdataset import _member, member_header

    for name, size in [("000030000.jpg", 12345), ("a.json", 0), ("x" * 99, 8 ** 11 - 1), ("x" * 100, 5),
                       ("y" * 150 + "/z.txt", 1), ("é.txt", 3), ("k" * 64 + ".webp", 8 ** 11 - 1)]:
        assert member_header(name, size) == _member(name, size).tobuf(tarfile.USTAR_FORMAT, "utf-8",
                                                                     "surrogateescape"), (name, size)


def test_a_committed_chunk_leaves_no_scratch_bytes(tmp_path):
    storage = open_storage(f"file://{tmp_path}/out")
    write_chunk(storage, tmp_path / "work", "webdataset", SAMPLES)
    assert not (tmp_path / "work" / "samples" / "spool").exists()
    storage.close()
