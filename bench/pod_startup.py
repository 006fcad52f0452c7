"""apply -> first worker pod Running on the real local node (containerd, kubelet, the worker image).

    python bench/pod_startup.py [--jobs 20]

Starts its own local cluster, Redis, Azurite and the image server on the node's address and one operator
out of cluster, then applies one small DatasetJob at a time (one chunk of 4 images) and times, on this
client's clock, from the create call to a watch event showing the job's first pod in phase Running; each
job is awaited to Succeeded before the next is applied. Also prints how long `up` took.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubernetes import client, watch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "hack")]

from imageserver import ImageServer  # noqa: E402
from localcluster import LocalCluster  # noqa: E402
from localservices import Azurite, RedisServer  # noqa: E402
from outofcluster import install_datasetjob_api, operator_env  # noqa: E402

GROUP, VERSION, PLURAL = "pixcrawler.io", "v1alpha1", "datasetjobs"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def manifest(name: str, base_url: str, first: int) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "DatasetJob", "metadata": {"name": name},
            "spec": {"tier": "free", "chunkSize": 4,
                     "sources": [{"label": "x", "urls": [f"{base_url}/img/{n}.jpg" for n in range(first, first + 4)]}],
                     "validation": {"minWidth": 16, "minHeight": 16, "dedup": "exact"}}}


def first_running(api: client.ApiClient, namespace: str, name: str, timeout: float) -> float:
    """Seconds on the monotonic clock when the job's first pod is seen Running (or Succeeded, if the
    watch saw it only after it had already finished)."""
    core = client.CoreV1Api(api)
    stream = watch.Watch()
    try:
        for event in stream.stream(core.list_namespaced_pod, namespace, label_selector=f"pixcrawler.io/job={name}",
                                   timeout_seconds=int(timeout)):
            if event["object"].status.phase in ("Running", "Succeeded"):
                return time.monotonic()
    finally:
        stream.stop()
    raise TimeoutError(f"{name}: no pod Running within {timeout} s")


def wait_phase(custom: client.CustomObjectsApi, namespace: str, name: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        phase = (custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name).get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return phase
        time.sleep(0.5)
    raise TimeoutError(f"{name} did not finish")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pixcrawler-bench-node-") as tmp:
        work = Path(tmp)
        cluster = LocalCluster(work / "cluster")
        started = time.monotonic()
        cluster.up()
        up_seconds = time.monotonic() - started
        operator = None
        try:
            host = cluster.node_host
            with RedisServer(work / "redis", host=host) as redis_server, \
                    Azurite(work / "azurite", host=host) as azurite, ImageServer(count=200, host=host) as images:
                install_datasetjob_api(cluster, azurite)
                env = operator_env(cluster, redis_server.url, azurite, "azure://bench")
                with (work / "operator.log").open("wb") as log:
                    operator = subprocess.Popen([sys.executable, "-m", "dataset_operator", "--log-format", "text"],
                                                env=env, stdout=log, stderr=subprocess.STDOUT)
                seconds = []
                with cluster.client() as api:
                    custom = client.CustomObjectsApi(api)
                    for number in range(args.jobs):
                        name = f"startup-{number:02d}"
                        applied = time.monotonic()
                        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL,
                                                               manifest(name, images.base_url, 4 * number))
                        seconds.append(first_running(api, "default", name, 120) - applied)
                        phase = wait_phase(custom, "default", name)
                        print(f"  {name}: first pod Running after {seconds[-1]:.2f} s ({phase})", flush=True)
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(timeout=30)
            cluster.down()
    print(f"local cluster up (control plane + node, images imported): {up_seconds:.1f} s")
    print(f"apply -> first worker pod Running over {len(seconds)} DatasetJobs: p50 {statistics.median(seconds):.2f} s, "
          f"p95 {percentile(seconds, 0.95):.2f} s, min {min(seconds):.2f} s, max {max(seconds):.2f} s")


if __name__ == "__main__":
    main()
