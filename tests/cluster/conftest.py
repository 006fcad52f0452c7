"""Fixtures for the operator on the real cluster: the CRD installed once, and operator processes
(`python -m dataset_operator`, out of cluster) scoped to each test's namespace and Redis prefix, so
tests never see each other's chunks. Their chunk Jobs run as pods of the worker image on the node, which
reach Redis, Azurite and the image server on the node's address."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from kubernetes import client

from ports import free_port
from tests.fixtures.on_node import azurite, image_server, redis_url  # noqa: F401 (node-bound, for pods)

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "pixcrawler.io", "v1alpha1", "datasetjobs"
STORAGE_SECRET = "pixcrawler-storage"
CHUNK_JOBS = "app.kubernetes.io/managed-by=pixcrawler-operator,pixcrawler.io/chunk"  # not the finalize Jobs


@pytest.fixture(scope="session")
def crd(cluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    cluster.wait_established("datasetjobs.pixcrawler.io")


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
                                              label_selector=CHUNK_JOBS).items

    def logs(self) -> str:
        return "\n".join(f"--- operator {i} ---\n{p.tail(200)}" for i, p in enumerate(self.processes))

    def failed_pods(self) -> str:
        """Each failed pod's termination and the tail of its log (`kubectl logs`), to tell why a chunk failed."""
        out = []
        for pod in client.CoreV1Api(self.api).list_namespaced_pod(self.namespace).items:
            if pod.status.phase != "Failed":
                continue
            states = [s.state.terminated for s in pod.status.container_statuses or [] if s.state.terminated]
            ended = "; ".join(f"exit {t.exit_code} {t.reason}" for t in states)
            shown = self.cluster.kubectl("logs", "-n", self.namespace, pod.metadata.name, "--tail=30", check=False)
            out.append(f"--- {pod.metadata.name}: {ended} ---\n{shown.stdout}{shown.stderr}")
        return "\n".join(out) or "(none)"


def example(name: str, base_url: str) -> dict[str, Any]:
    """An example manifest from examples/, pointed at the test's image server."""
    text = (ROOT / "examples" / name).read_text().replace("http://127.0.0.1:8000", base_url)
    return yaml.safe_load(text)


def wait_for(check: Callable[[], Any], timeout: float = 90.0, what: str = "condition", interval: float = 0.3) -> Any:
    """Poll `check` until it returns something truthy and return that; fail naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last value: {value!r}")


def phase(body: dict[str, Any]) -> str | None:
    return (body.get("status") or {}).get("phase")


@pytest.fixture
def operator(cluster, crd, namespace, admin, redis_url, azurite, image_server, worker_image,
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
        # the node's address is where the test's services listen; nothing else is widened
        "PIXCRAWLER_ALLOW_NETWORKS": f"{cluster.node_host}/32",
        "PIXCRAWLER_WORKER_IMAGE": worker_image,
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
        report.sections.append(("failed worker pods", harness.failed_pods()))


def redis_client(harness: OperatorHarness) -> "redis.Redis":
    """A client on the operator's Redis (the caller closes it); keys start with `harness.prefix`."""
    import redis

    return redis.Redis.from_url(harness.env["PIXCRAWLER_REDIS_URL"], decode_responses=True)


def prefix_of(harness: OperatorHarness) -> str:
    return harness.env["PIXCRAWLER_REDIS_PREFIX"]


def inline_job(name: str, urls: list[str], chunk_size: int, tier: str = "free", **spec: Any) -> dict[str, Any]:
    """A DatasetJob whose images are given inline: len(urls) / chunk_size chunks, no list to count."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DatasetJob",
        "metadata": {"name": name},
        "spec": {
            "tier": tier,
            "sources": [{"label": name, "urls": urls}],
            "chunkSize": chunk_size,
            "validation": {"minWidth": 16, "minHeight": 16, "dedup": "exact"},
            "retries": {"maxAttempts": 3},
            **spec,
        },
    }


def image_urls(base_url: str, first: int, count: int, route: str = "img", query: str = "") -> list[str]:
    """URLs of distinct generated pictures first..first+count-1 (`route` "slow" makes each take a while)."""
    suffix = f"?{query}" if query else ""
    return [f"{base_url}/{route}/{n}.jpg{suffix}" for n in range(first, first + count)]


def is_active(job: client.V1Job) -> bool:
    """A chunk Job without a Complete or Failed condition: what the operator counts against the quota."""
    return not any(c.type in ("Complete", "Failed") and c.status == "True" for c in (job.status.conditions or []))


def chunk_key(job: client.V1Job) -> tuple[str, int]:
    labels = job.metadata.labels or {}
    return labels["pixcrawler.io/job"], int(labels["pixcrawler.io/chunk"])


def attempt_of(job: client.V1Job) -> int:
    return int((job.metadata.labels or {})["pixcrawler.io/attempt"])


class JobSampler:
    """Lists the namespace's chunk Jobs every `interval` seconds on a thread, for the whole run: the most
    active at once, chunks seen with two active Jobs in one sample, and the order Jobs first appeared
    (ties within one sample broken by creationTimestamp, then name)."""

    def __init__(self, harness: OperatorHarness, interval: float = 0.1) -> None:
        self.harness = harness
        self.interval = interval
        self.max_active = 0
        self.samples = 0
        self.doubled: set[tuple[str, int]] = set()
        self.order: list[str] = []
        self.jobs: dict[str, client.V1Job] = {}
        self.errors: list[Exception] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-sampler", daemon=True)
        self._batch = client.BatchV1Api(harness.cluster.client())

    def __enter__(self) -> "JobSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._batch.api_client.close()

    def sample(self) -> list[client.V1Job]:
        items = self._batch.list_namespaced_job(
            self.harness.namespace, label_selector=CHUNK_JOBS).items
        active = [job for job in items if is_active(job)]
        per_chunk = Counter(chunk_key(job) for job in active)
        self.doubled.update(key for key, count in per_chunk.items() if count > 1)
        self.max_active = max(self.max_active, len(active))
        new = sorted((job for job in items if job.metadata.name not in self.jobs),
                     key=lambda job: (job.metadata.creation_timestamp, job.metadata.name))
        self.order.extend(job.metadata.name for job in new)
        self.jobs.update({job.metadata.name: job for job in items})
        self.samples += 1
        return items

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # a failed list is reported by the test, not lost in the thread
                self.errors.append(exc)
            self._stop.wait(self.interval)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Polls until `predicate()` is truthy and returns its value; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
