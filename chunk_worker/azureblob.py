"""Azure Blob Storage output: `azure://<container>/<prefix>` (see storage.py for the contract)."""

from __future__ import annotations

import os
import uuid

import requests
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings, LinearRetry
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from chunk_worker import errors
from chunk_worker.storage import object_name

MANIFEST_CONTENT_TYPE = "application/x-ndjson"


class AzureStorage:
    """A container (created if missing) and a prefix in Azure Blob Storage.

    Credentials: AZURE_STORAGE_CONNECTION_STRING, else AZURE_STORAGE_ACCOUNT_URL (or
    AZURE_STORAGE_ACCOUNT) with DefaultAzureCredential (workload identity on AKS).
    The SDK's retry policy is bounded so an unreachable account fails in seconds.
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

        try:
            try:
                self.client.create_container()
            except ResourceExistsError:
                pass
            except HttpResponseError as exc:
                if exc.status_code != 403:  # may write blobs without the right to create containers
                    raise
            probe = self._blob(f".probe-{uuid.uuid4().hex}")
            probe.upload_blob(b"", overwrite=True)
        except AzureError as exc:
            raise self._unavailable("cannot write", exc) from exc
        try:
            probe.delete_blob()
        except AzureError:
            pass  # an empty probe left behind is harmless; the write is what mattered

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
        count = 0
        try:
            names = [blob.name for blob in self.client.list_blobs(name_starts_with=f"{self.prefix}/" if self.prefix else None)]
            for start in range(0, len(names), 256):
                self.client.delete_blobs(*names[start:start + 256])
                count += len(names[start:start + 256])
        except AzureError as exc:
            raise self._unavailable("cannot delete blobs", exc) from exc
        return count

    def close(self) -> None:
        self.service.close()
