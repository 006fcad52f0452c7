"""Storage backends against a real directory and a real Azurite: idempotent, typed, failing fast."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.storage.blob import BlobServiceClient

from chunk_worker import errors
from chunk_worker.contract import image_blob_name, manifest_name
from chunk_worker.storage import open_storage
from ports import free_port

NAME = image_blob_name("ab" * 32, "PNG")


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


def test_file_writes_leave_no_temp_files(file_storage, tmp_path):
    file_storage.put_image(NAME, b"data", "image/png")
    file_storage.put_manifest(manifest_name(0), b"{}\n")
    names = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert names == [NAME, manifest_name(0)]


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


def test_azure_without_a_prefix_writes_at_the_container_root(azure_container, blobs):
    storage = open_storage(f"azure://{azure_container}", pool_size=2)
    storage.check()
    storage.put_image(NAME, b"x", "image/png")
    storage.close()
    assert [b.name for b in blobs.list_blobs()] == [NAME]


def test_azure_unreachable_account_fails_within_seconds(monkeypatch):
    endpoint = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint={endpoint};",
    )
    storage = open_storage("azure://datasets/x", pool_size=2)
    started = time.monotonic()
    with pytest.raises(errors.StorageUnavailable):
        storage.check()
    assert time.monotonic() - started < 20


def test_azure_without_credentials_is_a_spec_error(monkeypatch):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(errors.SpecError, match="AZURE_STORAGE_CONNECTION_STRING"):
        open_storage("azure://datasets/x", pool_size=2)
