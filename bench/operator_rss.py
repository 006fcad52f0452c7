"""The operator's memory with many DatasetJobs: the real `python -m dataset_operator` against a local
control plane (no node) and a real Redis, quota 0 so every chunk stays queued.

    .venv/bin/python bench/operator_rss.py [--jobs 1000] [--images-each 5000]

Each DatasetJob is a keyword search (planned from its `limit`, so no list-count Job is needed and
nothing is fetched). Printed: RSS once the operator leads with no DatasetJob, RSS once every job has
status.phase set (and after a few more status cycles), the peak seen in between, and the goal (200 MiB
at 1,000 jobs; 300 MiB at 10,000 jobs and 1,000,000 queued chunks, issue 13's scale); then where the
memory is: open connections by peer (each idle TLS connection costs a few hundred KiB) and the largest mappings.
The operator runs on the packages its image installs (a cached venv, see shipped_venv.py); `--dev-venv`
runs it on the dev venv instead, which adds the modules of the dev extras kopf imports when present.

    .venv/bin/python bench/operator_rss.py --jobs 10000 --images-each 50000   # issue 13's scale
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
from kubernetes_asyncio import client, config

from dataset_operator import jobs
from localcluster import ControlPlane
from peakrss import PeakRss
from localservices import RedisServer
from ports import free_port
from shipped_venv import shipped_python, shipped_pythonpath

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
DATASET_JOBS = 1_000
IMAGES_EACH = 5_000  # 10 chunks of 500 each: 10,000 queued chunks in all
CREATE_CONCURRENCY = 16
STATUS_INTERVAL = 3.0
GOALS_MIB = {1_000: 200.0, 10_000: 300.0}  # at least this many DatasetJobs -> RSS goal
MIB = 1024 * 1024


def start_operator(kubeconfig: Path, redis_url: str, port: int, log: Path, python: Path | None) -> subprocess.Popen:
    """`python` None: this process's own (the dev venv); otherwise one with the image's packages only."""
    env = {
        **os.environ,
        **({"PYTHONPATH": shipped_pythonpath()} if python else {}),
        "KUBECONFIG": str(kubeconfig),
        "PIXCRAWLER_REDIS_URL": redis_url,
        "PIXCRAWLER_REDIS_PREFIX": "rss:",
        "PIXCRAWLER_STORAGE": f"file://{log.parent / 'datasets'}",
        "PIXCRAWLER_NAMESPACE": NAMESPACE,
        "PIXCRAWLER_LEASE_NAMESPACE": NAMESPACE,
        "PIXCRAWLER_MAX_CONCURRENT_CHUNKS": "0",
        "PIXCRAWLER_STATUS_INTERVAL_SECONDS": str(STATUS_INTERVAL),
        "PIXCRAWLER_HTTP_PORT": str(port),
    }
    with log.open("ab") as output:
        return subprocess.Popen([str(python or sys.executable), "-m", "dataset_operator", "--log-format", "text"],
                                env=env, stdout=output, stderr=subprocess.STDOUT)


def wait_leader(process: subprocess.Popen, port: int, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the operator exited {process.returncode}:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.read().decode().startswith("leader"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the operator did not lead within {timeout} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def manifest(n: int) -> dict:
    return {"apiVersion": f"{jobs.GROUP}/{jobs.VERSION}", "kind": "DatasetJob", "metadata": {"name": f"rss-{n:05d}"},
            "spec": {"tier": ("new-user", "enterprise", "free")[n % 3], "chunkSize": 500, "maxImages": IMAGES_EACH,
                     "sources": [{"label": f"label-{n % 10}",
                                  "search": {"provider": "openverse", "query": f"query {uuid.uuid4().hex}",
                                             "limit": IMAGES_EACH}}]}}


async def create_all(custom: client.CustomObjectsApi) -> float:
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(n: int) -> None:
        async with gate:
            await custom.create_namespaced_custom_object(jobs.GROUP, jobs.VERSION, NAMESPACE, jobs.PLURAL, manifest(n),
                                                         _preload_content=False)

    started = time.monotonic()
    await asyncio.gather(*(create(n) for n in range(DATASET_JOBS)))
    return time.monotonic() - started


async def phases(custom: client.CustomObjectsApi) -> dict[str, int]:
    response = await custom.list_namespaced_custom_object(jobs.GROUP, jobs.VERSION, NAMESPACE, jobs.PLURAL,
                                                          _preload_content=False)
    counts: dict[str, int] = {}
    for item in (await response.json())["items"]:
        phase = (item.get("status") or {}).get("phase") or "unset"
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def footprint(process: psutil.Process, api_url: str, redis_port: int) -> str:
    """Open connections by peer, threads, and the largest mappings by RSS (anonymous ones are heap)."""
    api_port = int(api_url.rsplit(":", 1)[1].rstrip("/"))
    peers = {"API server": 0, "Redis": 0, "other": 0}
    for conn in process.net_connections(kind="tcp"):
        if conn.raddr and conn.status == psutil.CONN_ESTABLISHED:
            peers["API server" if conn.raddr.port == api_port else "Redis" if conn.raddr.port == redis_port
                  else "other"] += 1
    maps = sorted(process.memory_maps(grouped=True), key=lambda m: -m.rss)[:4]
    return (f"connections {', '.join(f'{name} {count}' for name, count in peers.items())}; "
            f"threads {process.num_threads()}; largest mappings "
            + ", ".join(f"{Path(m.path).name or m.path} {m.rss / MIB:.0f} MiB" for m in maps))


def goal_mib() -> float:
    return max((goal for jobs_at_least, goal in GOALS_MIB.items() if DATASET_JOBS >= jobs_at_least),
               default=min(GOALS_MIB.values()))


def rss_mib(process: psutil.Process) -> str:
    info = process.memory_full_info()
    return f"RSS {info.rss / MIB:.0f} MiB (USS {info.uss / MIB:.0f} MiB)"


async def drive(cluster: ControlPlane, operator: psutil.Process, peak: PeakRss, redis_port: int,
                timeout: float | None = None) -> None:
    await config.load_kube_config(config_file=str(cluster.kubeconfig))
    async with client.ApiClient() as api:
        custom = client.CustomObjectsApi(api)
        took = await create_all(custom)
        print(f"created {DATASET_JOBS:,} DatasetJobs of {IMAGES_EACH:,} images "
              f"({DATASET_JOBS * -(-IMAGES_EACH // 500):,} chunks) in {took:.0f} s")
        timeout = timeout or 120 + DATASET_JOBS * 0.2
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = await phases(custom)
            if counts.get("unset", 0) == 0 and sum(counts.values()) == DATASET_JOBS:
                break
            await asyncio.sleep(2)
        else:
            print(f"  at the timeout: {rss_mib(operator)}; {footprint(operator, cluster.api_url, redis_port)}")
            raise TimeoutError(f"not every DatasetJob got a phase within {timeout} s: {counts}")
        print(f"every DatasetJob has a phase {time.monotonic() - started:.0f} s after the last create: {counts}")
        settled, goal = operator.memory_info().rss / MIB, goal_mib()
        print(f"operator with {DATASET_JOBS:,} DatasetJobs: {rss_mib(operator)} -> {settled / goal:.2f}x the goal "
              f"of {goal:g} MiB: {'met' if settled <= goal else 'MISSED'}")
        await asyncio.sleep(STATUS_INTERVAL * 4)
        later = operator.memory_info().rss / MIB
        print(f"  {STATUS_INTERVAL * 4:.0f} s (4 status cycles) later: {rss_mib(operator)}; peak so far "
              f"{peak.bytes / MIB:.0f} MiB -> {max(later, peak.bytes / MIB) / goal:.2f}x the goal")
        cpu = operator.cpu_times()
        print(f"  operator CPU over the whole run: {cpu.user + cpu.system:.1f} s")
        print(f"  where it is: {footprint(operator, cluster.api_url, redis_port)}")


def stop(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM, as Kubernetes does; a process that outlives the grace period is killed, and it is said."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
        print(f"operator stopped {time.monotonic() - started:.1f} s after SIGTERM (exit {process.returncode})")
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        print(f"operator still running {grace:.0f} s after SIGTERM: killed")


def main() -> None:
    global DATASET_JOBS, IMAGES_EACH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=DATASET_JOBS, help=f"DatasetJobs (default {DATASET_JOBS:,})")
    parser.add_argument("--images-each", type=int, default=IMAGES_EACH,
                        help=f"maxImages of each, 500 per chunk (default {IMAGES_EACH:,})")
    parser.add_argument("--dev-venv", action="store_true",
                        help="run the operator on the dev venv (it holds the dev extras, the image does not)")
    args = parser.parse_args()
    DATASET_JOBS, IMAGES_EACH = args.jobs, args.images_each
    python = None if args.dev_venv else shipped_python("operator")
    print(f"operator on {'the dev venv' if python is None else 'the operator image packages: ' + str(python)}")
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        cluster = ControlPlane(Path(tmp) / "cluster")
        cluster.start()  # the control plane only: quota 0 admits nothing, so no node is needed
        try:
            cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/datasetjobs.pixcrawler.io")
            cluster.kubectl("create", "namespace", NAMESPACE)
            with RedisServer() as redis_server:
                redis_url = redis_server.url
                port, log = free_port(), Path(tmp) / "operator.log"
                process = start_operator(cluster.kubeconfig, redis_url, port, log, python)
                try:
                    wait_leader(process, port, log)
                    time.sleep(STATUS_INTERVAL)
                    operator = psutil.Process(process.pid)
                    print(f"operator leading, no DatasetJob: {rss_mib(operator)}")
                    with PeakRss(interval=0.2) as peak:
                        peak.watch(process.pid)
                        asyncio.run(drive(cluster, operator, peak, int(redis_url.rsplit(":", 1)[1].split("/")[0])))
                finally:
                    stop(process)
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
