"""Jobs created per second against a real kube-apiserver (hack/localcluster's control plane alone, no
node: nothing runs), through the operator's own client path (kubernetes_asyncio, CREATE_CONCURRENCY at a time).

Two figures, each over a fresh batch of Jobs:
- raw: `jobs.build_job` manifests with `suspend: true` posted by `BatchV1Api.create_namespaced_job`,
  the API server's cost alone (the job controller has nothing to do for a suspended Job);
- scheduler: `JobCreator.create_jobs` for chunks claimed from a real Redis queue, what the leader does
  when slots open (load the plan, write each chunk's spec to Redis, create the Job). These Jobs are
  not suspended, so the job controller creates their pods while the benchmark runs, as in production.
Compared with the goal (50 Jobs/s) and Kueue's published ~42 admissions/s.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import psutil
import redis.asyncio as aioredis
from kubernetes_asyncio import client, config

from chunk_worker.contract import Keys
from chunkqueue import plan_for
from dataset_operator import jobs
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import Registry
from dataset_operator.running_chunks import RunningChunks
from dataset_operator.job_creation import CREATE_CONCURRENCY, JobCreator
from dataset_operator.settings import OperatorSettings
from localcluster import ControlPlane
from localservices import RedisServer

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
JOBS_PER_RUN = 300
RAW_RUNS = 3
GOAL_PER_SECOND = 50.0
KUEUE_PER_SECOND = 42.0


def compare(rate: float) -> str:
    return (f"{rate / GOAL_PER_SECOND:.2f}x the goal of {GOAL_PER_SECOND:g}/s "
            f"({'met' if rate >= GOAL_PER_SECOND else 'MISSED'}), "
            f"{rate / KUEUE_PER_SECOND:.2f}x Kueue's ~{KUEUE_PER_SECOND:g}/s")


async def owner(api: client.ApiClient, name: str, images: int) -> dict:
    """A real, suspended DatasetJob to own the Jobs (the garbage collector deletes Jobs whose owner is missing)."""
    body = {"apiVersion": f"{jobs.GROUP}/{jobs.VERSION}", "kind": "DatasetJob", "metadata": {"name": name},
            "spec": {"suspend": True, "chunkSize": 500, "maxImages": images,
                     "sources": [{"label": "any", "urlList": {"url": "http://127.0.0.1:9/list.txt", "count": images}}]}}
    return await client.CustomObjectsApi(api).create_namespaced_custom_object(
        jobs.GROUP, jobs.VERSION, NAMESPACE, jobs.PLURAL, body)


class CpuMeter:
    """CPU seconds spent by this process and by the control plane's processes inside its blocks, summed."""

    def __init__(self, cluster: ControlPlane) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in cluster.running().items() if pid}
        self.spent: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        now = {"bench client": time.process_time()}
        for name, process in self.processes.items():
            times = process.cpu_times()
            now[name] = times.user + times.system
        return now

    def __enter__(self) -> "CpuMeter":
        self._before = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        after = self._read()
        for name in after:
            self.spent[name] = self.spent.get(name, 0.0) + after[name] - self._before[name]

    def per_job(self, count: int) -> str:
        """Per-Job CPU of each process, and the rate this machine's cores would allow if nothing else ran."""
        parts = ", ".join(f"{name} {seconds / count * 1000:.1f}" for name, seconds in
                          sorted(self.spent.items(), key=lambda item: -item[1]) if seconds / count >= 0.0001)
        total = sum(self.spent.values()) / count
        cores = psutil.cpu_count() or 1
        return f"{parts}; total {total * 1000:.1f} ms -> CPU-bound ceiling on {cores} cores ~{cores / total:.0f} Jobs/s"


async def create_raw(api: client.ApiClient, settings: OperatorSettings, dataset: dict, count: int,
                     preload: bool = True) -> float:
    batch = client.BatchV1Api(api)
    uid, name = dataset["metadata"]["uid"], dataset["metadata"]["name"]
    manifests = []
    for index in range(count):
        manifest = jobs.build_job(dataset=name, namespace=NAMESPACE, uid=uid, tier="free",
                                  chunk_id=f"{uid}-{index:05d}", index=index, attempt=1, settings=settings)
        manifest["spec"]["suspend"] = True
        manifests.append(manifest)
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(manifest: dict) -> None:
        async with gate:
            await batch.create_namespaced_job(NAMESPACE, manifest, _preload_content=preload)

    started = time.perf_counter()
    await asyncio.gather(*(create(manifest) for manifest in manifests))
    return count / (time.perf_counter() - started)


async def create_by_scheduler(api: client.ApiClient, settings: OperatorSettings, dataset: dict, redis_url: str,
                              count: int) -> tuple[float, int]:
    redis = aioredis.from_url(redis_url)
    try:
        queue = ChunkQueue(redis, Keys(settings.redis_prefix))
        uid, name = dataset["metadata"]["uid"], dataset["metadata"]["name"]
        await queue.enqueue(plan_for(uid, name, count * 500, "free"), time.time())
        await queue.lead(1)
        registry = Registry()
        ref = registry.observe({**dataset, "spec": {**dataset["spec"], "suspend": False}})
        creator = JobCreator(settings, queue, api, RunningChunks(queue))
        claimed = await queue.claim(count, time.time() + 600, {})
        started = time.perf_counter()
        await creator.create_jobs(claimed, {uid: ref})
        elapsed = time.perf_counter() - started
        selector = f"{jobs.LABEL_JOB_UID}={uid}"
        created = len((await client.BatchV1Api(api).list_namespaced_job(NAMESPACE, label_selector=selector)).items)
        return created / elapsed, created
    finally:
        await redis.aclose()


async def measure(cluster: ControlPlane, redis_url: str) -> None:
    await config.load_kube_config(config_file=str(cluster.kubeconfig))
    settings = OperatorSettings(redis_url=redis_url, redis_prefix="api:", namespace=NAMESPACE)
    async with client.ApiClient() as api:
        core = client.CoreV1Api(api)
        await core.create_namespace({"metadata": {"name": NAMESPACE}})
        await core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": settings.worker_service_account}})
        warm = await owner(api, "warm-up", 20 * 500)
        await create_raw(api, settings, warm, 20)  # connections, admission plugins and caches warm
        variants = {True: "responses parsed into V1Job objects, as the JobCreator's call does",
                    False: "_preload_content=False: responses left unparsed"}
        rates: dict[bool, list[float]] = {True: [], False: []}
        meters = {preload: CpuMeter(cluster) for preload in variants}
        for run in range(RAW_RUNS):  # interleaved, so a busier moment or a fuller etcd hurts both alike
            for preload in variants:
                dataset = await owner(api, f"raw-{int(preload)}-{run}", JOBS_PER_RUN * 500)
                with meters[preload]:
                    rates[preload].append(await create_raw(api, settings, dataset, JOBS_PER_RUN, preload))
        for preload, what in variants.items():
            raw = rates[preload]
            print(f"raw creation of suspended Jobs ({what}), {JOBS_PER_RUN} per run, {CREATE_CONCURRENCY} in flight: "
                  f"{', '.join(f'{rate:.0f}' for rate in raw)} Jobs/s -> median {statistics.median(raw):.0f}/s, "
                  f"{compare(statistics.median(raw))}")
            print(f"  CPU ms per Job: {meters[preload].per_job(JOBS_PER_RUN * RAW_RUNS)}")
        dataset = await owner(api, "scheduled", JOBS_PER_RUN * 500)
        with CpuMeter(cluster) as cpu:
            rate, created = await create_by_scheduler(api, settings, dataset, redis_url, JOBS_PER_RUN)
        print(f"JobCreator.create_jobs of {created} claimed chunks (Redis spec writes + Job creation, pods created "
              f"by the job controller meanwhile): {rate:.0f} Jobs/s -> {compare(rate)}")
        print(f"  CPU ms per Job (Redis setup included): {cpu.per_job(created)}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-apiserver-") as state:
        cluster = ControlPlane(Path(state))
        started = time.monotonic()
        cluster.start()  # the control plane only: without a node no pod runs
        print(f"control plane up in {time.monotonic() - started:.0f} s")
        try:
            cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/datasetjobs.pixcrawler.io")
            with RedisServer() as redis_server:
                asyncio.run(measure(cluster, redis_server.url))
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
