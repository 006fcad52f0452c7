"""Fixtures for the chart on the real control plane: a namespace enforcing Pod Security "restricted",
the prometheus-operator CRD stand-ins, and one release installed with `helm install` whose operator
runs as a local process with the chart's own ServiceAccount token."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client

from localcluster import kubeconfig
from localcluster.noderunner import NodeRunner
from localservices import free_port
from tests.chart.chart import CRD_FILE, ROOT, helm
from tests.cluster.conftest import OperatorProcess

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
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}.monitoring.coreos.com")


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


def deployment_process(api: client.ApiClient, namespace: str, name: str, work: Path,
                       overrides: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment of the Deployment's container, resolved as the kubelet would (Secrets, field
    refs, $(VAR) expansion): the operator process runs with exactly what the chart gives its pods."""
    deployment = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name=f"{name}-local", namespace=namespace, uid="local"),
                       spec=deployment.spec.template.spec)
    runner = NodeRunner(api, "local", work, "1", "1Gi", "1")
    argv, env, _, _ = runner.prepare(pod)
    return argv, {**env, **overrides}


class Release:
    """The installed release, its operator process and the ServiceAccount kubeconfig it runs with."""

    def __init__(self, cluster, api, namespace: str, name: str, values: Path, kubeconfig: Path,
                 process: OperatorProcess):
        self.cluster, self.api, self.namespace, self.name = cluster, api, namespace, name
        self.values, self.kubeconfig, self.process = values, kubeconfig, process
        self.fullname = f"{name}-pixcrawler-operator"


@pytest.fixture(scope="session")
def release(cluster, redis_url, azurite, image_server, tmp_path_factory) -> Iterator[Release]:
    """`helm install` into a restricted namespace (operator replicas 0: the node runner cannot give pods a
    ServiceAccount token), then the operator process with the Deployment's command and env and the chart's
    operator ServiceAccount token. The node-agent DaemonSet and the chunk Jobs run under the node runner."""
    tmp = tmp_path_factory.mktemp("release")
    with cluster.client() as api:
        namespace = restricted_namespace(api, "release")
        name = "pxc"
        values = tmp / "values.yaml"
        values.write_text(f"""
operator:
  replicas: 0
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
  fetchThreads: 8
  allowNetworks: [127.0.0.1/32]
scheduling:
  retryBaseSeconds: 1
  retryMaxSeconds: 4
nodeAgent:
  intervalSeconds: 2
""")
        adopt_crd(cluster, name, namespace)
        kube = f"--kubeconfig={cluster.kubeconfig}"
        installed = helm("install", name, str(ROOT / "helm" / "pixcrawler-operator"), kube, "--namespace",
                         namespace, "-f", str(values), "--wait", "--timeout", "120s", check=False)
        assert installed.returncode == 0, installed.stderr
        fullname = f"{name}-pixcrawler-operator"
        token_config = service_account_kubeconfig(cluster, api, namespace, fullname, tmp / "operator.kubeconfig")
        port = free_port()
        argv, env = deployment_process(api, namespace, fullname, tmp / "pod",
                                       {"KUBECONFIG": str(token_config), "PIXCRAWLER_HTTP_PORT": str(port)})
        log = tmp / "operator.log"
        with log.open("ab") as output:
            started = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
        process = OperatorProcess(started, log, port)
        try:
            yield Release(cluster, api, namespace, name, values, token_config, process)
        finally:
            custom = client.CustomObjectsApi(api)
            for item in custom.list_namespaced_custom_object("pixcrawler.io", "v1alpha1", namespace,
                                                             "datasetjobs")["items"]:
                custom.delete_namespaced_custom_object("pixcrawler.io", "v1alpha1", namespace, "datasetjobs",
                                                       item["metadata"]["name"])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and custom.list_namespaced_custom_object(
                    "pixcrawler.io", "v1alpha1", namespace, "datasetjobs")["items"]:
                time.sleep(0.5)
            process.stop()
            helm("uninstall", name, kube, "--namespace", namespace, check=False)
            client.CoreV1Api(api).delete_namespace(namespace)


def wait_for_phase(api: client.ApiClient, namespace: str, name: str, phases: tuple[str, ...],
                   timeout: float, log: OperatorProcess) -> dict:
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
                          release.process)
