"""The operator run out of cluster against the local cluster, as `make demo` and the node benchmark run it:
the DatasetJob API installed, the worker's storage Secret and ServiceAccount in `default`, and the
operator's environment pointing at the node-bound services."""

from __future__ import annotations

import os
from pathlib import Path

from localcluster import LocalCluster
from localservices import Azurite
from ports import free_port

ROOT = Path(__file__).resolve().parent.parent
STORAGE_SECRET = "pixcrawler-storage"


def install_datasetjob_api(cluster: LocalCluster, azurite: Azurite) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    cluster.wait_established("datasetjobs.pixcrawler.io")
    cluster.kubectl("create", "secret", "generic", STORAGE_SECRET,
                    f"--from-literal=AZURE_STORAGE_CONNECTION_STRING={azurite.connection_string}")
    cluster.kubectl("create", "serviceaccount", "pixcrawler-worker")


def operator_env(cluster: LocalCluster, redis_url: str, azurite: Azurite, storage: str,
                 **settings: str) -> dict[str, str]:
    """`settings` are further PIXCRAWLER_* values, e.g. PIXCRAWLER_STATUS_INTERVAL_SECONDS="1"."""
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "PIXCRAWLER_REDIS_URL": redis_url,
            "PIXCRAWLER_STORAGE": storage, "PIXCRAWLER_ALLOW_NETWORKS": f"{cluster.node_host}/32",
            "PIXCRAWLER_WORKER_ENV_SECRET": STORAGE_SECRET, "PIXCRAWLER_LEASE_NAMESPACE": "default",
            "PIXCRAWLER_HTTP_PORT": str(free_port()), "PIXCRAWLER_WORKER_IMAGE": cluster.images.worker,
            "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, **settings}
