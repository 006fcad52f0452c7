"""A worker stopped mid-chunk (SIGTERM, or SIGKILL as the OOM killer does it) at different moments:
no stray file or blob is left in the output, and the retry completes the chunk.

The worker runs in-cluster mode (chunk spec and near dedup through the real Redis) against the real
image server's /slow-noise/ route: incompressible PNGs of about 3 MB, so that writes take long enough
to be caught in progress (the "mid-write" moments wait for one on file:// outputs)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from chunk_worker.contract import ChunkField, Keys, manifest_name, run_name

ALLOW = ["--allow-network", "127.0.0.1/32"]
ITEMS = 24
SIZE = (1000, 1000)
MOMENTS = [("start", 0), ("stored", 1), ("stored", 5), ("mid-write", 0), ("mid-write", 8)]
"""When the signal is sent: as soon as the chunk has started; once n images are stored; while an image
is being written (a temp file with bytes in it) once n are stored (on Azure: once n are stored)."""


def item_urls(image_server) -> list[str]:
    w, h = SIZE
    return [image_server.url(f"/slow-noise/{n}.png?delay=0.1&w={w}&h={h}") for n in range(ITEMS)]


class FileOutput:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()
        self.env: dict[str, str] = {}

    def _walk(self) -> tuple[list[str], list[str]]:
        """(files, directories) under the output, hidden ones included; tolerant of a worker removing
        entries while it runs (os.walk skips what vanished)."""
        files, dirs = [], []
        for top, subdirs, names in os.walk(self.root):
            relative = Path(top).relative_to(self.root)
            dirs += [(relative / name).as_posix() for name in subdirs]
            files += [(relative / name).as_posix() for name in names]
        return sorted(files), sorted(dirs)

    def names(self) -> list[str]:
        return self._walk()[0]

    def dirs(self) -> list[str]:
        return self._walk()[1]

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def writing(self) -> bool:
        """A file with bytes in it under a hidden name: a temp file being written."""
        for name in self.names():
            if any(part.startswith(".") for part in name.split("/")):
                try:
                    if (self.root / name).stat().st_size:
                        return True
                except FileNotFoundError:
                    continue
        return False


class AzureOutput:
    def __init__(self, connection_string: str, container: str, prefix: str) -> None:
        self.client = BlobServiceClient.from_connection_string(connection_string).get_container_client(container)
        self.prefix = prefix
        self.url = f"azure://{container}/{prefix}"
        self.env = {"AZURE_STORAGE_CONNECTION_STRING": connection_string}

    def names(self) -> list[str]:
        """Every committed blob in the container (an upload killed before Put Block List has none)."""
        try:
            return sorted(blob.name.removeprefix(f"{self.prefix}/") for blob in self.client.list_blobs())
        except ResourceNotFoundError:  # the worker's check() has not created the container yet
            return []

    def dirs(self) -> list[str]:
        return []

    def read(self, name: str) -> bytes:
        return self.client.download_blob(f"{self.prefix}/{name}").readall()

    def writing(self) -> bool:
        return True  # staged blocks are not listed: no way to see an upload in progress


@pytest.fixture(params=["file", "azure"])
def output(request, tmp_path):
    if request.param == "file":
        return FileOutput(tmp_path / "out")
    azurite = request.getfixturevalue("azurite")
    return AzureOutput(azurite.connection_string, request.getfixturevalue("azure_container"), "default/kill")


def put_chunk(redis_client, urls: list[str], output_url: str) -> str:
    uid = uuid.uuid4().hex[:12]
    spec = {"job": "default/kill", "job_uid": uid, "chunk": 0, "output": output_url,
            "items": [{"url": url} for url in urls],
            "validation": {"minWidth": 32, "minHeight": 32, "maxBytes": 16 * 1024 * 1024, "dedup": "near"}}
    chunk_id = f"{uid}-00000"
    redis_client.hset(Keys("pc:").chunk(chunk_id), ChunkField.SPEC, json.dumps(spec))
    return chunk_id


def worker_command(chunk_id: str, redis_url: str) -> list[str]:
    return [sys.executable, "-m", "chunk_worker", "run", "--chunk-id", chunk_id, "--redis-url", redis_url,
            *ALLOW, "--threads", "8", "--progress", "none"]


def wait_until(condition: Callable[[], bool], process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
    while not condition():
        assert process.poll() is None, f"the worker ended before {what}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.01)


def images_in(output) -> int:
    return sum(1 for name in output.names() if name.startswith("images/"))


def assert_only_whole_outputs(output) -> None:
    """Every object is a manifest or an image whose bytes hash to its content address: no temp
    file, no probe, no partial image under a final name."""
    for name in output.names():
        if name in (manifest_name(0), run_name(0)):
            continue
        assert name.startswith("images/") and name.endswith(".png"), f"stray object in the output: {name}"
        assert hashlib.sha256(output.read(name)).hexdigest() == name.rsplit("/", 1)[1].removesuffix(".png"), \
            f"partial image under a final name: {name}"
    assert all(not part.startswith(".") for name in output.dirs() for part in name.split("/")), output.dirs()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
@pytest.mark.parametrize(("moment", "stored"), MOMENTS, ids=[f"{moment}-{n}" for moment, n in MOMENTS])
def test_a_stopped_chunk_leaves_no_stray_files_and_its_retry_completes_it(image_server, redis_url, redis_client,
                                                                          output, stop, moment, stored, tmp_path):
    urls = item_urls(image_server)
    chunk_id = put_chunk(redis_client, urls, output.url)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, **output.env, "PIXCRAWLER_TMP_DIR": str(scratch)}
    worker = subprocess.Popen(worker_command(chunk_id, redis_url), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: any(scratch.iterdir()), worker, "the chunk start")
        wait_until(lambda: images_in(output) >= stored, worker, f"{stored} images stored")
        if moment == "mid-write":
            wait_until(output.writing, worker, "an image being written")
        worker.send_signal(stop)
        code = worker.wait(timeout=60)
    finally:
        worker.kill()
        worker.communicate()
    assert code == (143 if stop == signal.SIGTERM else -signal.SIGKILL)
    assert manifest_name(0) not in output.names(), "the chunk finished before it was stopped"
    if stop == signal.SIGTERM:
        assert_only_whole_outputs(output)

    retry = subprocess.run(worker_command(chunk_id, redis_url), env={**env, "PIXCRAWLER_TMP_DIR": str(tmp_path)},
                           capture_output=True, text=True, timeout=300)
    assert retry.returncode == 0, retry.stderr[-2000:]
    assert_only_whole_outputs(output)
    lines = [json.loads(line) for line in output.read(manifest_name(0)).decode().splitlines()]
    assert [line["url"] for line in lines] == urls
    assert {line["status"] for line in lines} == {"ok"}, [line.get("reason") for line in lines]
    assert sorted(name for name in output.names() if name.startswith("images/")) == \
        sorted(line["blob"] for line in lines)
