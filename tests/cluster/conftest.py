"""Fixtures for the operator on the real control plane: the CRD installed once, and operator
processes (`python -m dataset_operator`) scoped to each test's namespace and Redis prefix, so
tests never see each other's chunks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from kubernetes import client

from localservices import free_port

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "pixcrawler.io", "v1alpha1", "datasetjobs"
STORAGE_SECRET = "pixcrawler-storage"


@pytest.fixture(scope="session")
def crd(cluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/datasetjobs.pixcrawler.io")


@dataclass
class OperatorProcess:
    process: subprocess.Popen
    log: Path
    port: int

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
            return response.read().decode()

    def healthz(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def tail(self, lines: int = 80) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class OperatorHarness:
    """Everything a cluster test needs to drive the operator in its own namespace."""

    cluster: Any
    namespace: str
    env: dict[str, str]
    tmp: Path
    api: client.ApiClient
    processes: list[OperatorProcess] = field(default_factory=list)

    def start(self, **overrides: str) -> OperatorProcess:
        port = free_port()
        log = self.tmp / f"operator-{len(self.processes)}.log"
        env = {**os.environ, **self.env, "PIXCRAWLER_HTTP_PORT": str(port), **overrides}
        with log.open("ab") as output:
            process = subprocess.Popen([sys.executable, "-m", "dataset_operator", "--log-format", "text"],
                                       env=env, stdout=output, stderr=subprocess.STDOUT)
        started = OperatorProcess(process, log, port)
        self.processes.append(started)
        return started

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, manifest)

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec})

    def wait_for(self, name: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 180,
                 what: str = "condition") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.get(name)
            if predicate(body):
                return body
            time.sleep(0.5)
        raise AssertionError(f"{name}: timed out waiting for {what}; status: {body.get('status')}\n"
                             + "\n".join(p.tail() for p in self.processes))

    def chunk_jobs(self) -> list[client.V1Job]:
        return self.batch.list_namespaced_job(self.namespace,
                                              label_selector="app.kubernetes.io/managed-by=pixcrawler-operator").items

    def logs(self) -> str:
        return "\n".join(f"--- operator {i} ---\n{p.tail(200)}" for i, p in enumerate(self.processes))


def example(name: str, base_url: str) -> dict[str, Any]:
    """An example manifest from examples/, pointed at the test's image server."""
    text = (ROOT / "examples" / name).read_text().replace("http://127.0.0.1:8000", base_url)
    return yaml.safe_load(text)


def phase(body: dict[str, Any]) -> str | None:
    return (body.get("status") or {}).get("phase")


@pytest.fixture
def operator(cluster, crd, namespace, admin, redis_url, azurite, image_server,
             tmp_path) -> Iterator[OperatorHarness]:
    core = client.CoreV1Api(admin)
    core.create_namespaced_secret(namespace, {"metadata": {"name": STORAGE_SECRET},
                                              "stringData": {"AZURE_STORAGE_CONNECTION_STRING":
                                                             azurite.connection_string}})
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "pixcrawler-worker"}})
    env = {
        "KUBECONFIG": str(cluster.kubeconfig),
        "PIXCRAWLER_REDIS_URL": redis_url,
        "PIXCRAWLER_REDIS_PREFIX": f"t{uuid.uuid4().hex[:8]}:",
        "PIXCRAWLER_STORAGE": f"azure://ds{uuid.uuid4().hex[:12]}",
        "PIXCRAWLER_ALLOW_NETWORKS": "127.0.0.1/32",
        "PIXCRAWLER_WORKER_ENV_SECRET": STORAGE_SECRET,
        "PIXCRAWLER_NAMESPACE": namespace,
        "PIXCRAWLER_LEASE_NAMESPACE": namespace,
        "PIXCRAWLER_STATUS_INTERVAL_SECONDS": "1",
        "PIXCRAWLER_WORKER_FETCH_THREADS": "8",
        "PIXCRAWLER_RETRY_BASE_SECONDS": "1",
        "PIXCRAWLER_RETRY_MAX_SECONDS": "4",
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }
    harness = OperatorHarness(cluster, namespace, env, tmp_path, admin)
    yield harness
    for process in harness.processes:
        process.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    harness = item.funcargs.get("operator") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(harness, OperatorHarness):
        report.sections.append(("operator logs", harness.logs()))
