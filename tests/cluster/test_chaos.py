"""The operator under faults on the real control plane and node: ten leader kills in a row, the API
server frozen for 20 s, etcd restarted, Redis restarted empty, the leader cut off from Redis while a
standby reaches it. Each case runs the same three jobs (one per tier) with two operator processes,
kept running the way a Deployment would restart them, injects its fault mid-run, and checks the
same invariants afterwards:

- every job ends Succeeded, and every chunk index has exactly one Job that completed;
- each job's status counts equal what its manifests in storage record;
- the quota is never exceeded (the chunk Jobs sampled at 5 Hz);
- deleting the jobs leaves no Redis key and no Job of theirs.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from kubernetes import client
from localservices import RedisServer

from tests.cluster.conftest import (
    JobSampler, chunk_key, image_urls, inline_job, phase, prefix_of, redis_client, wait_until,
)
from tests.fixtures.services import running
from tests.fixtures.tcp_proxy import TcpProxy

pytestmark = pytest.mark.cluster

QUOTA = 3
CHUNKS, PER_CHUNK = 8, 2
TIERS = ("new-user", "enterprise", "free")
FAST_LEASE = {"PIXCRAWLER_LEASE_DURATION_SECONDS": "4", "PIXCRAWLER_LEASE_RENEW_DEADLINE_SECONDS": "3",
              "PIXCRAWLER_LEASE_RETRY_SECONDS": "0.5"}


class Operators:
    """Two operator processes kept alive: one that exits (a lost lease) or is killed is started again
    with its identity, as the Deployment's restart policy would."""

    def __init__(self, harness, per_identity: dict[str, dict[str, str]] | None = None, **env: str) -> None:
        common = {"PIXCRAWLER_MAX_CONCURRENT_CHUNKS": str(QUOTA), **env}
        self.harness = harness
        self.env = {identity: {**common, **(per_identity or {}).get(identity, {})} for identity in ("a", "b")}
        self.current = {}
        for identity in self.env:  # "a" first: it leads unless something stops it
            self.current[identity] = harness.start(PIXCRAWLER_IDENTITY=identity, **self.env[identity])
            if identity == "a":
                wait_until(lambda: self.leader() == "a", 60, "a to lead")
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="operators", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        while not self._stop.wait(0.2):
            for identity, started in list(self.current.items()):
                if not started.alive():
                    self.current[identity] = self.harness.start(PIXCRAWLER_IDENTITY=identity, **self.env[identity])
                    self.restarts += 1

    def term(self) -> tuple[str | None, int]:
        """(holder, epoch) of the Lease; every new term has a higher epoch."""
        try:
            lease = client.CoordinationV1Api(self.harness.api).read_namespaced_lease("pixcrawler-operator",
                                                                                     self.harness.namespace)
        except client.ApiException:
            return None, 0
        return lease.spec.holder_identity, lease.spec.lease_transitions or 0

    def leader(self) -> str | None:
        return self.term()[0]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def start_jobs(harness, image_server, first: int) -> list[str]:
    names = []
    for number, tier in enumerate(TIERS):
        name = f"chaos-{tier}"
        urls = image_urls(image_server.base_url, first + number * CHUNKS * PER_CHUNK, CHUNKS * PER_CHUNK,
                          route="slow", query="delay=1")
        harness.apply(inline_job(name, urls, PER_CHUNK, tier=tier))
        names.append(name)
    return names


def wait_all(harness, names: list[str], timeout: float = 420) -> dict[str, dict]:
    return {name: harness.wait_for(name, lambda b: phase(b) in ("Succeeded", "Failed"), timeout=timeout,
                                   what=f"{name} to end") for name in names}


def manifest_counts(azurite, location: str) -> Counter:
    """What the manifests of an output record: items by status, over every chunk."""
    container, _, prefix = location.removeprefix("azure://").partition("/")
    counts: Counter = Counter()
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        blobs = service.get_container_client(container)
        for blob in blobs.list_blobs(name_starts_with=f"{prefix}/manifests/chunk-"):
            if blob.name.endswith(".jsonl"):
                for line in blobs.download_blob(blob.name).readall().splitlines():
                    counts[json.loads(line)["status"]] += 1
    return counts


def check_invariants(harness, azurite, sampler: JobSampler, ended: dict[str, dict], sampling_failed_ok=False) -> None:
    for name, body in ended.items():
        assert phase(body) == "Succeeded", (name, body.get("status"))
        completed = Counter(chunk_key(job)[1] for job in sampler.jobs.values() if chunk_key(job)[0] == name
                            and any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or []))
        assert completed == Counter({index: 1 for index in range(CHUNKS)}), (name, completed)
        recorded = manifest_counts(azurite, body["status"]["output"]["location"])
        images = body["status"]["images"]
        assert (images["uploaded"], images.get("rejected", 0), images.get("failed", 0), images.get("duplicates", 0)) \
            == (recorded["ok"], recorded["rejected"], recorded["failed"], recorded["duplicate"]), (name, images, recorded)
        assert recorded["ok"] == CHUNKS * PER_CHUNK
    assert sampling_failed_ok or not sampler.errors, sampler.errors[:3]
    assert sampler.samples > 50 and sampler.max_active <= QUOTA, (sampler.samples, sampler.max_active)


def check_deletion_leaves_nothing(harness, ended: dict[str, dict]) -> None:
    uids = [body["metadata"]["uid"] for body in ended.values()]
    for name in ended:
        harness.custom.delete_namespaced_custom_object("pixcrawler.io", "v1alpha1", harness.namespace,
                                                       "datasetjobs", name)
    wait_until(lambda: not harness.custom.list_namespaced_custom_object(
        "pixcrawler.io", "v1alpha1", harness.namespace, "datasetjobs")["items"], 120, "the DatasetJobs to go")
    wait_until(lambda: harness.chunk_jobs() == [], 120, "their Jobs to go")
    with redis_client(harness) as redis:
        left = [key for key in redis.scan_iter(match=f"{prefix_of(harness)}*") if any(uid in key for uid in uids)]
        queued = [m for zset in ("queue", "admitted", "delayed", "running", "waiting")
                  for m in redis.zrange(f"{prefix_of(harness)}{zset}", 0, -1) if any(m.startswith(u) for u in uids)]
    assert left == [] and queued == []


def test_ten_leader_kills_in_a_row(operator, image_server, azurite):
    operators = Operators(operator, **FAST_LEASE)
    try:
        with JobSampler(operator, interval=0.2) as sampler:
            names = start_jobs(operator, image_server, 9000)
            for _ in range(10):
                leader, epoch = operators.term()
                os.kill(operators.current[leader].process.pid, signal.SIGKILL)
                wait_until(lambda: operators.term()[1] > epoch, 30, "a new term", interval=0.05)
                time.sleep(1)  # the new leader claims and creates before the next kill
            ended = wait_all(operator, names)
        check_invariants(operator, azurite, sampler, ended)
        assert operators.restarts >= 10
        check_deletion_leaves_nothing(operator, ended)
    finally:
        operators.stop()


def test_the_api_server_frozen_for_20_seconds(operator, image_server, azurite, cluster):
    operators = Operators(operator)
    apiserver = cluster.running()["kube-apiserver"]
    try:
        with JobSampler(operator, interval=0.2) as sampler:
            names = start_jobs(operator, image_server, 11000)
            operator.wait_for(names[0], lambda b: (b.get("status") or {}).get("chunks", {}).get("succeeded", 0) >= 2,
                              timeout=180, what="two chunks done")
            os.kill(apiserver, signal.SIGSTOP)
            try:
                time.sleep(20)
            finally:
                os.kill(apiserver, signal.SIGCONT)
            ended = wait_all(operator, names)
        # the sampler's lists fail while the API server is stopped: that is the fault, not a finding
        check_invariants(operator, azurite, sampler, ended, sampling_failed_ok=True)
        check_deletion_leaves_nothing(operator, ended)
    finally:
        operators.stop()


def test_etcd_restarted_mid_run(operator, image_server, azurite, cluster):
    operators = Operators(operator)
    try:
        with JobSampler(operator, interval=0.2) as sampler:
            names = start_jobs(operator, image_server, 17000)
            operator.wait_for(names[0], lambda b: (b.get("status") or {}).get("chunks", {}).get("succeeded", 0) >= 2,
                              timeout=180, what="two chunks done")
            cluster.restart("etcd")
            ended = wait_all(operator, names)
        # the sampler's lists fail while etcd is down: that is the fault, not a finding
        check_invariants(operator, azurite, sampler, ended, sampling_failed_ok=True)
        check_deletion_leaves_nothing(operator, ended)
    finally:
        operators.stop()


def test_redis_restarted_with_its_data_lost(operator, image_server, azurite, cluster, tmp_path: Path):
    with running(RedisServer(tmp_path / "redis", host=cluster.node_host), 10) as own:
        operator.env["PIXCRAWLER_REDIS_URL"] = own.url
        operators = Operators(operator)
        try:
            with JobSampler(operator, interval=0.2) as sampler:
                names = start_jobs(operator, image_server, 13000)
                operator.wait_for(names[0], lambda b: (b.get("status") or {}).get("chunks", {}).get("succeeded", 0)
                                  >= 3, timeout=180, what="three chunks done")
                own.stop()
                own.start(timeout=10)  # the same address, nothing in it
                ended = wait_all(operator, names)
            check_invariants(operator, azurite, sampler, ended)
            check_deletion_leaves_nothing(operator, ended)
        finally:
            operators.stop()


def test_the_leader_cut_off_from_redis_while_a_standby_reaches_it(operator, image_server, azurite, cluster):
    host, port = operator.env["PIXCRAWLER_REDIS_URL"].removeprefix("redis://").rsplit("/", 1)[0].rsplit(":", 1)
    proxy = TcpProxy(cluster.node_host, (host, int(port)))
    through_proxy = {"PIXCRAWLER_REDIS_URL": f"redis://{proxy.host}:{proxy.port}/0"}
    operators = Operators(operator, per_identity={"a": through_proxy}, PIXCRAWLER_REDIS_STEP_DOWN_SECONDS="10")
    try:
        with JobSampler(operator, interval=0.2) as sampler:
            names = start_jobs(operator, image_server, 15000)
            operator.wait_for(names[0], lambda b: (b.get("status") or {}).get("chunks", {}).get("succeeded", 0) >= 2,
                              timeout=180, what="two chunks done")
            proxy.cut()
            wait_until(lambda: operators.leader() == "b", 120, "b, which reaches Redis, to lead")
            ended = wait_all(operator, names)
        assert operators.leader() == "b", "a, cut off from Redis, competed for the lease again"
        check_invariants(operator, azurite, sampler, ended)
        check_deletion_leaves_nothing(operator, ended)
    finally:
        operators.stop()
        proxy.close()
