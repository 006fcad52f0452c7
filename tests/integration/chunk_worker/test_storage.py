"""Storage backends against a real directory and a real Azurite: idempotent, typed, failing fast."""

import errno
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.storage.blob import BlobServiceClient

from chunk_worker import errors
from chunk_worker.contract import image_blob_name, manifest_name
from chunk_worker.storage import STAGING_DIR, FileStorage, open_storage
from ports import free_port

NAME = image_blob_name("ab" * 32, "PNG")
SHARD = "shards/00003.tar"
BIG = 3 * 4 * 1024 * 1024 + 12345  # several upload blocks and download ranges, and a partial last one
TAR = "application/x-tar"
# Names whose byte order differs from a naive directory walk: "a-b" < "a/b" < "a0".
LISTED = ["a-b", "a/b", "a/c/d", "a0", "shards/00000.parquet", "shards/00000.tar", "shards/00001.tar"]

UPLOADER = """
import sys
from pathlib import Path
from chunk_worker.storage import FileStorage, open_storage
storage = open_storage(sys.argv[1], pool_size=2)
storage.put_file(sys.argv[2], Path(sys.argv[3]), "application/x-tar")
"""

KILLED_WRITER = """
import sys
from chunk_worker.storage import open_storage
storage = open_storage(sys.argv[1])
storage.check()
temp = storage._temp_for(storage._path("images/ab/x.png"))
temp.write_bytes(b"half an image")
print("staged", flush=True)
import time
time.sleep(600)
"""

MEASURED_UPLOADER = """
import resource, sys
from pathlib import Path
from chunk_worker.storage import FileStorage, open_storage
storage = open_storage(sys.argv[1], pool_size=2)
storage.check()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
storage.put_file(sys.argv[2], Path(sys.argv[3]), "application/x-tar")
reader = storage.open(sys.argv[2])
while reader.read(1 << 20):
    pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.fixture
def file_storage(tmp_path):
    storage = open_storage(f"file://{tmp_path}/out", pool_size=4)
    storage.check()
    yield storage
    storage.close()


@pytest.fixture
def azure_storage(azure_container):
    storage = open_storage(f"azure://{azure_container}/default/cats", pool_size=4)
    storage.check()
    yield storage
    storage.close()


@pytest.fixture(params=["file", "azure"])
def any_storage(request, tmp_path):
    """The same behaviour is promised by both backends."""
    if request.param == "file":
        storage = open_storage(f"file://{tmp_path}/out", pool_size=4)
    else:
        storage = open_storage(f"azure://{request.getfixturevalue('azure_container')}/default/cats", pool_size=4)
    storage.check()
    yield storage
    storage.close()


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.tar"
    path.write_bytes(os.urandom(BIG))
    return path


def read_all(storage, name):
    reader = storage.open(name)
    assert reader is not None
    with reader:
        return b"".join(iter(lambda: reader.read(65536), b""))


def start_uploader(url, name, source):
    return subprocess.Popen([sys.executable, "-c", UPLOADER, url, name, str(source)])


def wait_for(condition, process, what):
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None, f"the uploader ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.005)


@pytest.fixture
def blobs(azure_env, azure_container):
    with BlobServiceClient.from_connection_string(azure_env.connection_string) as service:
        yield service.get_container_client(azure_container)


def test_file_image_is_written_once_and_never_replaced(file_storage, tmp_path):
    assert file_storage.put_image(NAME, b"first", "image/png") is True
    assert file_storage.put_image(NAME, b"other", "image/png") is False
    assert (tmp_path / "out" / NAME).read_bytes() == b"first"
    assert file_storage.exists(NAME)


def test_file_image_a_crash_left_short_is_completed(file_storage, tmp_path):
    leftover = tmp_path / "out" / NAME
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"fi")
    file_storage.put_image(NAME, b"first", "image/png")
    assert leftover.read_bytes() == b"first"


def every_file(root):
    """Every file under `root`, hidden ones included, as relative names."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def staged_files(root):
    return [p for p in (root / STAGING_DIR).rglob("*") if p.is_file() and p.name != ".lock"]


def test_file_writes_leave_no_temp_files(file_storage, tmp_path):
    file_storage.put_image(NAME, b"data", "image/png")
    file_storage.put_manifest(manifest_name(0), b"{}\n")
    file_storage.close()
    assert every_file(tmp_path / "out") == [NAME, manifest_name(0)]
    assert sorted(os.listdir(tmp_path / "out")) == ["images", "manifests"]


def test_file_temp_files_live_only_in_the_staging_dir(file_storage, tmp_path):
    file_storage.put_image(NAME, b"data", "image/png")
    hidden = [name for name in every_file(tmp_path / "out") if name not in (NAME,)]
    assert hidden and all(name.startswith(f"{STAGING_DIR}/") for name in hidden)
    assert list(file_storage.list()) == [NAME]


def test_file_writes_after_close_fail_and_leave_nothing(file_storage, tmp_path):
    """A download thread still running when the chunk is stopped must not leave a temp file."""
    file_storage.check()
    file_storage.close()
    with pytest.raises(errors.StorageUnavailable, match="closed"):
        file_storage.put_image(NAME, b"late", "image/png")
    assert every_file(tmp_path / "out") == []


def test_file_a_killed_writers_staging_dir_goes_at_the_next_start(tmp_path):
    out = tmp_path / "out"
    killed = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, out.as_uri()], stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "staged"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert staged_files(out), "the killed writer left its temp file"
    retry = open_storage(out.as_uri())
    retry.check()
    retry.close()
    assert every_file(out) == []


def test_file_a_live_writers_staging_dir_is_kept(tmp_path):
    out = tmp_path / "out"
    live = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, out.as_uri()], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "staged"
        other = open_storage(out.as_uri())
        other.check()
        other.close()
        assert staged_files(out), "another writer's temp file was swept while it was alive"
    finally:
        live.kill()
        live.wait()


def test_file_manifest_is_replaced_by_a_retry(file_storage, tmp_path):
    file_storage.put_manifest(manifest_name(3), b"attempt 1\n")
    file_storage.put_manifest(manifest_name(3), b"attempt 2\n")
    assert (tmp_path / "out" / manifest_name(3)).read_bytes() == b"attempt 2\n"


def test_file_concurrent_writers_of_one_image_have_one_winner(file_storage):
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: file_storage.put_image(NAME, b"same bytes", "image/png"), range(16)))
    assert results.count(True) == 1


def test_file_missing_name_does_not_exist(file_storage):
    assert not file_storage.exists(NAME)


def test_file_names_cannot_climb_out_of_the_output(file_storage):
    with pytest.raises(ValueError):
        file_storage.put_manifest("../escape.jsonl", b"x")


def test_file_output_that_cannot_be_created_is_unavailable(tmp_path):
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(errors.StorageUnavailable):
        open_storage(f"file://{tmp_path}/a-file/out", pool_size=1).check()


@pytest.mark.parametrize(
    "url",
    ["s3://bucket/x", "azure://", "azure://Bad_Name/x", "azure://ab/x", "file://otherhost/data", "file:relative",
     "file:///data?x=1", "/plain/path"],
)
def test_malformed_output_url_is_a_spec_error_naming_it(url):
    with pytest.raises(errors.SpecError, match="output URL"):
        open_storage(url, pool_size=1)


def test_azure_check_creates_the_missing_container(azure_storage, blobs):
    assert blobs.exists()


def test_azure_image_is_uploaded_once_under_the_prefix_with_its_type(azure_storage, blobs):
    assert azure_storage.put_image(NAME, b"first", "image/png") is True
    assert azure_storage.put_image(NAME, b"second", "image/png") is False
    blob = blobs.get_blob_client(f"default/cats/{NAME}")
    assert blob.download_blob().readall() == b"first"
    assert blob.get_blob_properties().content_settings.content_type == "image/png"
    assert azure_storage.exists(NAME)
    assert not azure_storage.exists(image_blob_name("cd" * 32, "JPEG"))


def test_azure_manifest_is_replaced_by_a_retry(azure_storage, blobs):
    azure_storage.put_manifest(manifest_name(1), b"attempt 1\n")
    azure_storage.put_manifest(manifest_name(1), b"attempt 2\n")
    assert blobs.get_blob_client(f"default/cats/{manifest_name(1)}").download_blob().readall() == b"attempt 2\n"


def test_azure_check_leaves_only_the_outputs_behind(azure_storage, blobs):
    azure_storage.put_image(NAME, b"x", "image/png")
    assert [b.name for b in blobs.list_blobs()] == [f"default/cats/{NAME}"]


def test_azure_check_writes_no_blob_and_repeated_checks_keep_one_staged_block(azure_storage, blobs):
    """The probe is a staged, never committed block: nothing a stopped check could leave is a blob."""
    azure_storage.check()
    assert [b.name for b in blobs.list_blobs()] == []
    assert not azure_storage.exists(".probe")
    staged = [b.name for b in blobs.list_blobs(include=["uncommittedblobs"])]
    assert staged == ["default/cats/.probe"]
    committed, uncommitted = blobs.get_blob_client(staged[0]).get_block_list("all")
    assert (committed, len(uncommitted)) == ([], 1)


def test_azure_without_a_prefix_writes_at_the_container_root(azure_container, blobs):
    storage = open_storage(f"azure://{azure_container}", pool_size=2)
    storage.check()
    storage.put_image(NAME, b"x", "image/png")
    storage.close()
    assert [b.name for b in blobs.list_blobs()] == [NAME]


def test_azure_unreachable_account_is_storage_unavailable(monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint={endpoint};",
    )
    storage = open_storage("azure://datasets/x", pool_size=2)
    with pytest.raises(errors.StorageUnavailable):
        storage.check()


def test_azure_without_credentials_is_a_spec_error(monkeypatch):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(errors.SpecError, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_storage("azure://datasets/x", pool_size=2)


def test_put_file_round_trips_through_open(any_storage, big_file):
    any_storage.put_file(SHARD, big_file, TAR)
    assert any_storage.exists(SHARD)
    assert read_all(any_storage, SHARD) == big_file.read_bytes()


def test_put_file_replaces_a_previous_object_whole(any_storage, big_file, tmp_path):
    small = tmp_path / "small.tar"
    small.write_bytes(b"attempt 2")
    any_storage.put_file(SHARD, big_file, TAR)
    any_storage.put_file(SHARD, small, TAR)
    assert read_all(any_storage, SHARD) == b"attempt 2"


def test_put_file_of_an_empty_file_is_an_empty_object(any_storage, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    any_storage.put_file(SHARD, empty, TAR)
    assert read_all(any_storage, SHARD) == b""


def test_open_of_a_missing_object_is_none(any_storage):
    assert any_storage.open(SHARD) is None


def test_list_is_sorted_and_filtered_by_prefix(any_storage, tmp_path):
    source = tmp_path / "x"
    source.write_bytes(b"x")
    for name in reversed(LISTED):
        any_storage.put_file(name, source, TAR)
    assert list(any_storage.list()) == sorted(LISTED)
    assert list(any_storage.list("a/")) == ["a/b", "a/c/d"]
    assert list(any_storage.list("shards/00000")) == ["shards/00000.parquet", "shards/00000.tar"]
    assert list(any_storage.list("a")) == ["a-b", "a/b", "a/c/d", "a0"]
    assert list(any_storage.list("nothing/")) == []


def test_list_prefix_cannot_climb_out_of_the_output(any_storage):
    with pytest.raises(ValueError):
        list(any_storage.list("../"))


def test_file_put_file_leaves_no_temp_file_when_the_copy_fails(file_storage, tmp_path):
    (tmp_path / "out" / "shards").mkdir(parents=True)
    (tmp_path / "out" / SHARD).mkdir()  # a directory under the final name: the rename must fail
    source = tmp_path / "x"
    source.write_bytes(b"x")
    with pytest.raises(errors.StorageUnavailable):
        file_storage.put_file(SHARD, source, TAR)
    assert os.listdir(tmp_path / "out" / "shards") == ["00003.tar"]


def test_file_writer_killed_mid_copy_leaves_nothing_under_the_final_name(file_storage, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    uploader = start_uploader(f"file://{tmp_path}/out", SHARD, fifo)
    try:
        with open(fifo, "wb") as feed:
            feed.write(os.urandom(BIG))
            feed.flush()
            wait_for(lambda: any(p.stat().st_size for p in staged_files(tmp_path / "out")), uploader,
                     "the temp file grow")
            uploader.send_signal(signal.SIGKILL)
            uploader.wait()
    finally:
        uploader.kill()
        uploader.wait()
    assert uploader.returncode == -signal.SIGKILL
    assert not file_storage.exists(SHARD)
    assert file_storage.open(SHARD) is None
    assert list(file_storage.list()) == []


def read_offset(process, path):
    """How far the process has read `path` (its file offset in /proc), 0 before it opens it."""
    fds = f"/proc/{process.pid}/fd"
    try:
        for fd in os.listdir(fds):
            if os.readlink(f"{fds}/{fd}") == str(path):
                with open(f"/proc/{process.pid}/fdinfo/{fd}") as info:
                    return int(info.readline().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def test_azure_writer_killed_mid_upload_leaves_nothing_under_the_final_name(azure_storage, blobs, tmp_path):
    big = tmp_path / "big"
    big.write_bytes(os.urandom(64 * 1024 * 1024))
    uploader = start_uploader(f"azure://{blobs.container_name}/default/cats", SHARD, big)
    try:
        wait_for(lambda: read_offset(uploader, big) >= 3 * 4 * 1024 * 1024, uploader, "blocks being staged")
        uploader.send_signal(signal.SIGKILL)
        uploader.wait()
    finally:
        uploader.kill()
        uploader.wait()
    assert uploader.returncode == -signal.SIGKILL
    assert not azure_storage.exists(SHARD)
    assert azure_storage.open(SHARD) is None
    assert list(azure_storage.list()) == []


def test_azure_put_file_sets_the_content_type(azure_storage, blobs, big_file):
    azure_storage.put_file(SHARD, big_file, TAR)
    assert blobs.get_blob_client(f"default/cats/{SHARD}").get_blob_properties().content_settings.content_type == TAR


def test_put_file_and_open_hold_a_few_blocks_not_the_file(any_storage, tmp_path):
    size = 96 * 1024 * 1024
    big = tmp_path / "big"
    big.write_bytes(os.urandom(size))
    url = f"file://{tmp_path}/out" if isinstance(any_storage, FileStorage) else \
        f"azure://{any_storage.container}/default/cats"
    grown_kib = int(subprocess.run([sys.executable, "-c", MEASURED_UPLOADER, url, SHARD, str(big)],
                                   check=True, capture_output=True, text=True).stdout)
    assert grown_kib * 1024 < size / 3


def test_file_put_file_links_a_file_on_the_same_file_system(file_storage, tmp_path):
    """No byte is copied: the shard the layout wrote becomes the object (and the caller may remove it)."""
    source = tmp_path / "shard.tar"
    source.write_bytes(b"t" * 10000)
    file_storage.put_file(SHARD, source, TAR)
    assert (tmp_path / "out" / SHARD).stat().st_ino == source.stat().st_ino
    source.unlink()
    assert file_storage.read(SHARD) == b"t" * 10000


def test_file_put_file_copies_where_it_cannot_link(file_storage, tmp_path, monkeypatch):
    source = tmp_path / "shard.tar"
    source.write_bytes(b"c" * 10000)

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    file_storage.put_file(SHARD, source, TAR)
    assert (tmp_path / "out" / SHARD).stat().st_ino != source.stat().st_ino
    assert file_storage.read(SHARD) == b"c" * 10000
