"""Fixtures for the chart on the real cluster: a namespace enforcing Pod Security "restricted", the
prometheus-operator CRD stand-ins, and one release installed with `helm install` from the images built
from the Dockerfiles: the operator runs in-cluster as the chart's Deployment (two replicas, one leader),
the node-agent DaemonSet and the chunk Jobs as pods on the node."""

from __future__ import annotations

import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client

from localcluster import kubeconfig
from tests.chart.chart import CRD_FILE, ROOT, helm
from tests.fixtures.on_node import azurite, image_server, redis_url  # noqa: F401 (node-bound, for pods)

RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}
CRD_NAME = "datasetjobs.pixcrawler.io"


def restricted_namespace(api: client.ApiClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name, "labels": RESTRICTED}})
    return name


@pytest.fixture
def chart_namespace(cluster, admin) -> Iterator[str]:
    """A fresh namespace that enforces Pod Security "restricted"."""
    name = restricted_namespace(admin, "chart")
    yield name
    client.CoreV1Api(admin).delete_namespace(name)


@pytest.fixture(scope="session")
def monitoring_crds(cluster) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(Path(__file__).with_name("monitoring-crds.yaml")))
    for name in ("servicemonitors", "prometheusrules"):
        cluster.wait_established(f"{name}.monitoring.coreos.com")


def adopt_crd(cluster, release: str, namespace: str) -> None:
    """Let the release take over a CRD applied earlier with kubectl (Helm's documented adoption)."""
    if cluster.kubectl("get", f"crd/{CRD_NAME}", check=False).returncode != 0:
        return
    cluster.kubectl("label", "--overwrite", f"crd/{CRD_NAME}", "app.kubernetes.io/managed-by=Helm")
    cluster.kubectl("annotate", "--overwrite", f"crd/{CRD_NAME}", f"meta.helm.sh/release-name={release}",
                    f"meta.helm.sh/release-namespace={namespace}")


def service_account_kubeconfig(cluster, api: client.ApiClient, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of ServiceAccount namespace/name (what the pod would mount)."""
    token = client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    return kubeconfig.write(path, cluster.api_url, cluster.ca.read_bytes(), kubeconfig.token_user(token),
                            name=f"{namespace}-{name}")


class OperatorPods:
    """The release's operator pods: which one leads, their logs and the leader's /metrics."""

    def __init__(self, cluster, api: client.ApiClient, namespace: str, fullname: str, port: int = 8080):
        self.cluster, self.api, self.namespace, self.fullname, self.port = cluster, api, namespace, fullname, port

    def pods(self) -> list[client.V1Pod]:
        selector = "app.kubernetes.io/component=operator"
        return [p for p in client.CoreV1Api(self.api).list_namespaced_pod(self.namespace, label_selector=selector).items
                if p.metadata.deletion_timestamp is None]

    def leader(self) -> str | None:
        """The pod holding the Lease (the chart sets each pod's identity to its name)."""
        try:
            lease = client.CoordinationV1Api(self.api).read_namespaced_lease(self.fullname, self.namespace)
        except client.ApiException:
            return None
        return lease.spec.holder_identity

    def pod_ip(self, name: str) -> str:
        return client.CoreV1Api(self.api).read_namespaced_pod(name, self.namespace).status.pod_ip

    def metrics(self) -> str:
        """The leader's /metrics, fetched from its pod address on the node's bridge."""
        with urllib.request.urlopen(f"http://{self.pod_ip(self.leader())}:{self.port}/metrics", timeout=5) as response:
            return response.read().decode()

    def logs(self) -> str:
        """Every operator container's log, `kubectl logs` as a user would read it."""
        out = []
        for pod in self.pods():
            shown = self.cluster.kubectl("logs", "-n", self.namespace, pod.metadata.name, check=False)
            out.append(f"--- {pod.metadata.name} ---\n{shown.stdout}{shown.stderr}")
        return "\n".join(out)

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])


class Release:
    """The installed release, its operator pods and a kubeconfig holding the operator ServiceAccount's token."""

    def __init__(self, cluster, api, namespace: str, name: str, values: Path, kubeconfig: Path):
        self.cluster, self.api, self.namespace, self.name = cluster, api, namespace, name
        self.values, self.kubeconfig = values, kubeconfig
        self.fullname = f"{name}-pixcrawler-operator"
        self.operators = OperatorPods(cluster, api, namespace, self.fullname)


def image_values(ref: str) -> str:
    repository, tag = ref.rsplit(":", 1)
    return f"{{repository: {repository}, tag: {tag}}}"


@pytest.fixture(scope="session")
def release(cluster, redis_url, azurite, image_server, tmp_path_factory) -> Iterator[Release]:
    """`helm install --wait` into a restricted namespace with the images built from the Dockerfiles; the
    operator's two replicas elect a leader through the chart's Lease with the chart's ServiceAccount."""
    tmp = tmp_path_factory.mktemp("release")
    with cluster.client() as api:
        namespace = restricted_namespace(api, "release")
        name = "pxc"
        values = tmp / "values.yaml"
        values.write_text(f"""
operator:
  image: {image_values(cluster.images.operator)}
  replicas: 2
  extraEnv:
    PIXCRAWLER_STATUS_INTERVAL_SECONDS: "1"
redis:
  mode: external
  prefix: "r{uuid.uuid4().hex[:8]}:"
  external:
    url: {redis_url}
storage:
  default: azure://chart{uuid.uuid4().hex[:12]}
  azure:
    connectionString: "{azurite.connection_string}"
worker:
  image: {image_values(cluster.images.worker)}
  fetchThreads: 8
  allowNetworks: [{cluster.node_host}/32]
scheduling:
  retryBaseSeconds: 1
  retryMaxSeconds: 4
nodeAgent:
  intervalSeconds: 2
""")
        adopt_crd(cluster, name, namespace)
        kube = f"--kubeconfig={cluster.kubeconfig}"
        installed = helm("install", name, str(ROOT / "helm" / "pixcrawler-operator"), kube, "--namespace",
                         namespace, "-f", str(values), "--wait", "--timeout", "180s", check=False)
        fullname = f"{name}-pixcrawler-operator"
        token_config = service_account_kubeconfig(cluster, api, namespace, fullname, tmp / "operator.kubeconfig")
        installed_release = Release(cluster, api, namespace, name, values, token_config)
        assert installed.returncode == 0, f"{installed.stderr}\n{installed_release.operators.logs()}"
        deadline = time.monotonic() + 60
        while installed_release.operators.leader() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        try:
            yield installed_release
        finally:
            custom = client.CustomObjectsApi(api)
            for item in custom.list_namespaced_custom_object("pixcrawler.io", "v1alpha1", namespace,
                                                             "datasetjobs")["items"]:
                try:
                    custom.delete_namespaced_custom_object("pixcrawler.io", "v1alpha1", namespace, "datasetjobs",
                                                           item["metadata"]["name"])
                except client.ApiException as exc:
                    if exc.status != 404:  # 404: it finished deleting since the list
                        raise
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and custom.list_namespaced_custom_object(
                    "pixcrawler.io", "v1alpha1", namespace, "datasetjobs")["items"]:
                time.sleep(0.5)
            helm("uninstall", name, kube, "--namespace", namespace, "--wait", check=False)
            client.CoreV1Api(api).delete_namespace(namespace)


def wait_for_phase(api: client.ApiClient, namespace: str, name: str, phases: tuple[str, ...],
                   timeout: float, log: OperatorPods) -> dict:
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = custom.get_namespaced_custom_object("pixcrawler.io", "v1alpha1", namespace, "datasetjobs", name)
        if (body.get("status") or {}).get("phase") in phases:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{name}: no phase in {phases} after {timeout}s; status {body.get('status')}\n{log.tail()}")


@pytest.fixture(scope="session")
def completed(release: Release, image_server, tmp_path_factory) -> dict:
    """The repository's example DatasetJob, applied in the release namespace and run to an end."""
    from tests.cluster.conftest import example
    import yaml

    manifest = tmp_path_factory.mktemp("example") / "cats-vs-dogs.yaml"
    manifest.write_text(yaml.safe_dump(example("cats-vs-dogs.yaml", image_server.base_url)))
    release.cluster.kubectl("apply", "-n", release.namespace, "-f", str(manifest))
    return wait_for_phase(release.api, release.namespace, "cats-vs-dogs", ("Succeeded", "Failed"), 240,
                          release.operators)
