"""Azure Blob Storage output: `azure://<container>/<prefix>` (see storage.py for the contract)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import requests
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings, LinearRetry, StorageStreamDownloader
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from chunk_worker import errors
from chunk_worker.object_names import is_listed, name_prefix, object_name

MANIFEST_CONTENT_TYPE = "application/x-ndjson"
TRANSFER_CHUNK = 4 * 1024 * 1024
"""Largest single upload, block size and download range: what one transfer holds in memory."""
UPLOAD_CONCURRENCY = 4
DELETE_THREADS = 8  # concurrent Delete Blob requests of one delete_all/delete_tree
PROBE_NAME = ".probe"
PROBE_BLOCK_ID = "cHJvYmU="  # base64 of "probe"


class AzureStorage:
    """A container (created if missing) and a prefix in Azure Blob Storage.

    Credentials: AZURE_STORAGE_CONNECTION_STRING, else AZURE_STORAGE_ACCOUNT_URL (or
    AZURE_STORAGE_ACCOUNT) with DefaultAzureCredential (workload identity on AKS).
    The SDK's retry policy is bounded so an unreachable account fails in seconds. Transfers move in
    TRANSFER_CHUNK pieces (the SDK's defaults hold up to 64 MiB per upload and 32 MiB per download).
    """

    CONNECT_TIMEOUT_SECONDS = 5
    READ_TIMEOUT_SECONDS = 60
    RETRIES = 3
    RETRY_BACKOFF_SECONDS = 1

    def __init__(self, container: str, prefix: str, pool_size: int) -> None:
        self.container = container
        self.prefix = prefix
        session = requests.Session()
        # One pool per host sized for the worker's upload threads; retries belong to the SDK.
        adapter = HTTPAdapter(
            pool_connections=4,
            pool_maxsize=pool_size,
            max_retries=Retry(total=False, redirect=False, raise_on_status=False),
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        options = {
            "transport": RequestsTransport(
                session=session,
                session_owner=True,
                connection_timeout=self.CONNECT_TIMEOUT_SECONDS,
                read_timeout=self.READ_TIMEOUT_SECONDS,
            ),
            "retry_policy": LinearRetry(
                backoff=self.RETRY_BACKOFF_SECONDS, retry_total=self.RETRIES, random_jitter_range=0.5
            ),
            "max_single_put_size": TRANSFER_CHUNK,
            "max_block_size": TRANSFER_CHUNK,
            "max_single_get_size": TRANSFER_CHUNK,
            "max_chunk_get_size": TRANSFER_CHUNK,
        }
        connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        account_url = os.environ.get("AZURE_STORAGE_ACCOUNT_URL")
        account = os.environ.get("AZURE_STORAGE_ACCOUNT")
        try:
            if connection_string:
                service = BlobServiceClient.from_connection_string(connection_string, **options)
            elif account_url or account:
                url = account_url or f"https://{account}.blob.core.windows.net"
                service = BlobServiceClient(url, credential=DefaultAzureCredential(), **options)
            else:
                raise errors.SpecError(
                    "azure output needs AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL "
                    "(or AZURE_STORAGE_ACCOUNT) with a workload identity"
                )
        except ValueError as exc:
            raise errors.SpecError(f"azure credentials are malformed: {exc}") from exc
        self.service = service
        self.client = service.get_container_client(container)

    def _blob(self, name: str) -> BlobClient:
        name = object_name(name)
        return self.client.get_blob_client(f"{self.prefix}/{name}" if self.prefix else name)

    def _unavailable(self, action: str, exc: Exception) -> errors.StorageUnavailable:
        message = getattr(exc, "message", None) or str(exc)
        return errors.StorageUnavailable(f"azure container {self.container!r}: {action}: {message.splitlines()[0]}")

    def check(self) -> None:
        """Proves the right to write by staging one block under a probe name, never committed: a staged
        block is not a blob (not listed, not readable) and the service discards it unused, so a check
        stopped at any point, even by SIGKILL, leaves nothing in the output. The fixed name and block
        id mean a new check replaces the old block instead of piling up."""
        try:
            try:
                self.client.create_container()
            except ResourceExistsError:
                pass
            except HttpResponseError as exc:
                if exc.status_code != 403:  # may write blobs without the right to create containers
                    raise
            self._blob(PROBE_NAME).stage_block(PROBE_BLOCK_ID, b"\0")
        except AzureError as exc:
            raise self._unavailable("cannot write", exc) from exc

    def put_image(self, name: str, data: bytes, content_type: str) -> bool:

        try:
            self._blob(name).upload_blob(
                data, overwrite=False, content_settings=ContentSettings(content_type=content_type)
            )
            return True
        except ResourceExistsError:
            return False
        except AzureError as exc:
            raise self._unavailable(f"cannot upload {name}", exc) from exc

    def put_manifest(self, name: str, data: bytes) -> None:

        try:
            self._blob(name).upload_blob(
                data, overwrite=True, content_settings=ContentSettings(content_type=MANIFEST_CONTENT_TYPE)
            )
        except AzureError as exc:
            raise self._unavailable(f"cannot upload {name}", exc) from exc

    def put_file(self, name: str, path: Path, content_type: str) -> None:
        """Above TRANSFER_CHUNK the SDK stages the file as blocks (Put Block) and commits the block list
        last (Put Block List); below it, one Put Blob. Staged blocks "don't yet form part of the blob"
        (Get Block List, Azure REST docs) and a single Put Blob is atomic, so until the upload completes
        the name shows the previous blob or none, and a killed writer leaves only uncommitted blocks,
        which the service discards after 7 days. At most UPLOAD_CONCURRENCY blocks are in memory."""
        with open(path, "rb") as source:  # a missing source is the caller's bug, not an outage
            try:
                self._blob(name).upload_blob(
                    source, length=os.fstat(source.fileno()).st_size, overwrite=True,
                    max_concurrency=UPLOAD_CONCURRENCY, content_settings=ContentSettings(content_type=content_type),
                )
            except AzureError as exc:
                raise self._unavailable(f"cannot upload {name}", exc) from exc

    def list(self, prefix: str = "") -> Iterator[str]:
        """List Blobs returns names in alphabetical (byte) order, which is Python's order for str, and
        only committed blobs, so an upload in progress is never listed."""
        root = f"{self.prefix}/" if self.prefix else ""
        try:
            for blob_name in self.client.list_blob_names(name_starts_with=root + name_prefix(prefix)):
                name = blob_name[len(root):]
                if is_listed(name):
                    yield name
        except AzureError as exc:
            raise self._unavailable(f"cannot list {prefix!r}", exc) from exc

    def open(self, name: str, offset: int = 0) -> BinaryIO | None:
        try:
            downloader = self._blob(name).download_blob(max_concurrency=1, offset=offset or None)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if exc.status_code == 416:  # the range starts at or past the end: nothing is left to read
                return io.BytesIO(b"")
            raise self._unavailable(f"cannot read {name}", exc) from exc
        except AzureError as exc:
            raise self._unavailable(f"cannot read {name}", exc) from exc
        return io.BufferedReader(_DownloadReader(downloader, name, self), buffer_size=io.DEFAULT_BUFFER_SIZE)

    def exists(self, name: str) -> bool:

        try:
            return self._blob(name).exists()
        except AzureError as exc:
            raise self._unavailable(f"cannot look up {name}", exc) from exc

    def read(self, name: str) -> bytes | None:
        try:
            return self._blob(name).download_blob().readall()
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self._unavailable(f"cannot read {name}", exc) from exc

    def delete_all(self) -> int:
        return self._delete_listed(f"{self.prefix}/" if self.prefix else None, "cannot delete blobs")

    def delete_tree(self, prefix: str) -> int:
        root = f"{self.prefix}/" if self.prefix else ""
        return self._delete_listed(root + object_name(prefix.removesuffix("/")) + "/", f"cannot delete {prefix!r}")

    def _delete_listed(self, starts_with: str | None, failure: str) -> int:
        """One Delete Blob per name, a few at a time: the batch API would take 256 in one request, but
        Azurite answers it with a partial failure (Azure/Azurite#1809). A blob already gone counts as deleted."""

        def delete(name: str) -> None:
            try:
                self.client.delete_blob(name)
            except ResourceNotFoundError:
                pass

        try:
            names = list(self.client.list_blob_names(name_starts_with=starts_with))
            with ThreadPoolExecutor(DELETE_THREADS) as pool:
                for _ in pool.map(delete, names):
                    pass
        except AzureError as exc:
            raise self._unavailable(failure, exc) from exc
        return len(names)

    def close(self) -> None:
        self.service.close()


class _DownloadReader(io.RawIOBase):
    """A file-like view of a streaming download: the SDK fetches one TRANSFER_CHUNK range at a time
    (pinned to the blob's ETag, so a blob replaced mid-read fails instead of mixing versions)."""

    def __init__(self, downloader: StorageStreamDownloader, name: str, storage: AzureStorage) -> None:
        self._downloader = downloader
        self._name = name
        self._storage = storage

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._downloader.read(len(buffer))
        except AzureError as exc:
            raise self._storage._unavailable(f"cannot read {self._name}", exc) from exc
        buffer[:len(data)] = data
        return len(data)
