"""Where a chunk's images and manifest go: a local directory or an Azure Blob container.

Images are content-addressed (contract.image_blob_name), so a write that finds the name
already taken is a success, never an overwrite: a retried chunk or a duplicate costs
nothing and can never replace good bytes with bad. Manifests are written last and may
be replaced by a retry. Failures a later attempt may get past raise
errors.StorageUnavailable; an output URL that can never work raises errors.SpecError.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings, LinearRetry
from urllib3.util.retry import Retry

from chunk_worker import errors

MANIFEST_CONTENT_TYPE = "application/x-ndjson"
DEFAULT_POOL_SIZE = 32

_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class Storage(Protocol):
    def check(self) -> None:
        """Probe that the output can be written; raise errors.StorageUnavailable if not."""
        ...

    def put_image(self, name: str, data: bytes, content_type: str) -> bool:
        """True if written now, False if the name already existed (which is just as good)."""
        ...

    def put_manifest(self, name: str, data: bytes) -> None: ...

    def exists(self, name: str) -> bool: ...

    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None if there is none (the operator reads manifests to build the index)."""
        ...

    def delete_all(self) -> int:
        """Removes everything under this output (a DatasetJob deleted with retainPolicy Delete)."""
        ...

    def close(self) -> None: ...


def object_name(name: str) -> str:
    """A relative, normalised name that cannot climb out of the output ("..", absolute paths)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise ValueError(f"not a storage object name: {name!r}")
    return str(path)


def open_storage(url: str, pool_size: int = DEFAULT_POOL_SIZE) -> Storage:
    """`file:///dir` or `azure://<container>/<prefix>`."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise errors.SpecError(f"output URL {url!r}: no query or fragment allowed")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise errors.SpecError(f"output URL {url!r}: expected file:///absolute/dir")
        return FileStorage(Path(unquote(parts.path)))
    if parts.scheme == "azure":
        container = parts.netloc
        if not _CONTAINER_NAME.match(container):
            raise errors.SpecError(
                f"output URL {url!r}: expected azure://<container>/<prefix> with a valid container name "
                "(3-63 lowercase letters, digits and single hyphens)"
            )
        return AzureStorage(container, unquote(parts.path).strip("/"), pool_size)
    raise errors.SpecError(f"output URL {url!r}: the scheme must be file:// or azure://")


class FileStorage:
    """A local (or mounted) directory. Writes go to a temp name first, so a crash never leaves
    a half-written file under a final name."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-"):
                pass
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot write to {self.root}: {exc}") from exc

    def _path(self, name: str) -> Path:
        return self.root / object_name(name)

    def _write_temp(self, final: Path, data: bytes) -> str:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            os.unlink(temp)
            raise
        return temp

    def put_image(self, name: str, data: bytes, content_type: str) -> bool:
        final = self._path(name)
        try:
            if final.exists():
                return False
            temp = self._write_temp(final, data)
            try:
                os.link(temp, final)
                return True
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                # No hard links here (some network file systems): replacing is safe too,
                # because whoever won wrote the very same bytes under this content address.
                os.replace(temp, final)
                return True
            finally:
                if os.path.lexists(temp):
                    os.unlink(temp)
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot write {final}: {exc}") from exc

    def put_manifest(self, name: str, data: bytes) -> None:
        final = self._path(name)
        try:
            os.replace(self._write_temp(final, data), final)
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot write {final}: {exc}") from exc

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def read(self, name: str) -> bytes | None:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise errors.StorageUnavailable(f"cannot read {name}: {exc}") from exc

    def delete_all(self) -> int:
        count = sum(1 for path in self.root.rglob("*") if path.is_file())
        shutil.rmtree(self.root, ignore_errors=True)
        return count

    def close(self) -> None:
        pass


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
