"""`make demo`: the whole operator path on this machine, no cloud account.

A local Kubernetes cluster (built from source by hack/control-plane.sh; one real node running the
worker image built from Dockerfile.worker) starts, with Redis, Azurite and the sample image server on
the node's address, where the worker pods reach them; the operator runs out of cluster;
examples/cats-vs-dogs.yaml (a resized WebDataset with train/validation/test splits) is applied with
kubectl and followed until Complete; then the dataset is copied from Azurite to ./out/demo, its card
is shown, the shards are read back with the webdataset loader, the report's local path is printed
(./out/demo/report.html), and everything is stopped again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from azure.storage.blob import BlobServiceClient
from imageserver import ImageServer
from localcluster import LocalCluster
from localservices import Azurite, RedisServer
from outofcluster import install_datasetjob_api, operator_env

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "demo"
NAME = "cats-vs-dogs"


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def apply_example(cluster: LocalCluster, server: ImageServer, workdir: Path) -> None:
    text = (ROOT / "examples" / f"{NAME}.yaml").read_text().replace("http://127.0.0.1:8000", server.base_url)
    manifest = workdir / f"{NAME}.yaml"
    manifest.write_text(text)
    print(cluster.kubectl("apply", "-f", str(manifest)).stdout.strip(), flush=True)


def follow(cluster: LocalCluster, timeout: float = 600) -> dict:
    """One line per change of the job's status, until it is Succeeded or Failed."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        body = yaml.safe_load(cluster.kubectl("get", "dsj", NAME, "-o", "yaml").stdout)
        status = body.get("status") or {}
        images = status.get("images") or {}
        line = (f"phase={status.get('phase', 'Pending'):<9} chunks={status.get('progress', '-'):<6} "
                f"running={(status.get('chunks') or {}).get('running', 0)} "
                f"images uploaded={images.get('uploaded', 0)} duplicates={images.get('duplicates', 0)} "
                f"rejected={images.get('rejected', 0)} failed={images.get('failed', 0)}"
                + (f"  ({status['reason']})" if status.get("reason") else ""))
        if line != last:
            print(f"  {line}", flush=True)
            last = line
        if status.get("phase") in ("Succeeded", "Failed"):
            return status
        time.sleep(1)
    raise TimeoutError(f"{NAME} did not finish within {timeout:.0f} s")


def load_with_webdataset(root: Path) -> None:
    """The loader line from the README, run on what the demo just built."""
    import webdataset

    shards = sorted(str(path) for path in (root / "shards").glob("*.tar"))
    print(f"  >>> webdataset.WebDataset({len(shards)} shards, shardshuffle=False).decode('pil')"
          ".to_tuple('jpg', 'cls', 'json')", flush=True)
    splits: dict[str, int] = {}
    sizes = set()
    for image, cls, meta in webdataset.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple(
            "jpg", "cls", "json"):
        splits[meta["split"]] = splits.get(meta["split"], 0) + 1
        sizes.add(min(image.size))
    print(f"  {sum(splits.values())} samples {dict(sorted(splits.items()))}, shorter side {sorted(sizes)} px",
          flush=True)


def show_card(root: Path) -> None:
    card = (root / "README.md").read_text()
    body = card.split("---", 2)[-1].strip().splitlines()
    print("\n".join(f"  | {line}" for line in body[:24]), flush=True)
    if len(body) > 24:
        print(f"  | ... ({len(body) - 24} more lines)", flush=True)


def export(connection_string: str, location: str) -> int:
    """Copies the dataset (index, manifests, images) from Azurite to ./out/demo."""
    container, _, prefix = location.removeprefix("azure://").partition("/")
    blobs = BlobServiceClient.from_connection_string(connection_string).get_container_client(container)
    count = 0
    for blob in blobs.list_blobs(name_starts_with=f"{prefix}/"):
        target = OUT / blob.name.removeprefix(f"{prefix}/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blobs.download_blob(blob.name).readall())
        count += 1
    return count


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="pixcrawler-demo-") as tmp:
        work = Path(tmp)
        cluster = LocalCluster(work / "cluster")
        say("starting the local cluster (etcd, kube-apiserver, controller-manager, scheduler; containerd, kubelet, "
            "kube-proxy, CoreDNS)")
        cluster.up()
        operator = None
        try:
            host = cluster.node_host
            with RedisServer(work / "redis", host=host) as redis_server, \
                    Azurite(work / "azurite", host=host) as azurite, ImageServer(count=200, host=host) as images:
                say(f"redis {redis_server.url}, azurite {azurite.blob_endpoint}, sample images {images.base_url}")
                install_datasetjob_api(cluster, azurite)
                env = operator_env(cluster, redis_server.url, azurite, "azure://datasets",
                                   PIXCRAWLER_STATUS_INTERVAL_SECONDS="1")
                log = (OUT / "operator.log").open("wb")
                operator = subprocess.Popen([sys.executable, "-m", "dataset_operator", "--log-format", "text"],
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
                say(f"operator started (log: {OUT / 'operator.log'}); applying examples/{NAME}.yaml")
                apply_example(cluster, images, work)
                status = follow(cluster)
                print(cluster.kubectl("get", "dsj", "-o", "wide").stdout, flush=True)
                waited = cluster.kubectl("wait", "--for=condition=Complete", f"dsj/{NAME}", "--timeout=10s",
                                         check=False)
                print(waited.stdout.strip() or waited.stderr.strip(), flush=True)
                copied = export(azurite.connection_string, status["output"]["location"])
                say(f"{copied} objects copied from {status['output']['location']} to {OUT}")
                if status["phase"] != "Succeeded":
                    return 1
                say(f"dataset card: {status['output']['card']} (copied to {OUT / 'README.md'}); it begins:")
                show_card(OUT)
                say("loading the shards with webdataset:")
                load_with_webdataset(OUT)
                report = status["output"].get("report", "report.html")
                say(f"dataset report: {report} (copied to {OUT / 'report.html'}); open it in a browser:")
                print(f"  {(OUT / 'report.html').as_uri()}", flush=True)
                return 0
        finally:
            if operator is not None:
                operator.terminate()
                operator.wait(timeout=30)
            say("stopping the local cluster")
            cluster.down()


if __name__ == "__main__":
    sys.exit(main())
