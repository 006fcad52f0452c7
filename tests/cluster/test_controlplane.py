"""The local control plane behaves as a real cluster: versions, CRDs, Jobs whose pods run on the node,
garbage collection, Leases, RBAC with ServiceAccount tokens."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from localcluster import restricted_kubeconfig
from localcluster.binaries import versions
from tests.cluster.conftest import wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
PINNED = versions()


def job(name: str, image: str, command: list[str], **spec) -> dict:
    """A Job of one pod running `command` in `image` (already on the node: never pulled)."""
    container = {"name": "main", "image": image, "imagePullPolicy": "Never", "command": command}
    container.update(spec.pop("container", {}))
    pod_spec = {"restartPolicy": "Never", "containers": [container], "terminationGracePeriodSeconds": 5}
    pod_spec.update(spec.pop("pod", {}))
    return {
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}, **spec},
    }


def condition(obj, kind: str):
    return next((c for c in obj.status.conditions or [] if c.type == kind and c.status == "True"), None)


def job_condition(batch: client.BatchV1Api, namespace: str, name: str, kind: str):
    return condition(batch.read_namespaced_job_status(name, namespace), kind)


def job_pods(core: client.CoreV1Api, namespace: str, name: str) -> list:
    return core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items


def test_api_server_reports_the_pinned_release(admin):
    assert client.VersionApi(admin).get_code().git_version == PINNED["KUBERNETES_VERSION"]


def test_kubectl_reports_the_pinned_release(cluster):
    out = json.loads(cluster.kubectl("version", "--output=json").stdout)
    assert out["clientVersion"]["gitVersion"] == PINNED["KUBERNETES_VERSION"]
    assert out["serverVersion"]["gitVersion"] == PINNED["KUBERNETES_VERSION"]


def test_every_crd_in_crds_installs_and_becomes_established(cluster, admin):
    files = sorted(CRDS.glob("*.yaml"))
    assert files, "crds/ holds no CRD"
    cluster.kubectl("apply", "--server-side", *(f"--filename={f}" for f in files))
    names = [doc["metadata"]["name"] for f in files for doc in yaml.safe_load_all(f.read_text()) if doc]
    ext = client.ApiextensionsV1Api(admin)
    for name in names:
        wait_for(lambda: condition(ext.read_custom_resource_definition(name), "Established"))


def test_datasetjob_round_trips_through_the_api(cluster, admin, namespace):
    cluster.kubectl("apply", "--server-side", f"--filename={CRDS}")
    wait_for(lambda: condition(
        client.ApiextensionsV1Api(admin).read_custom_resource_definition("datasetjobs.pixcrawler.io"), "Established"))
    custom = client.CustomObjectsApi(admin)
    group = ("pixcrawler.io", "v1alpha1", namespace, "datasetjobs")
    body = {
        "apiVersion": "pixcrawler.io/v1alpha1",
        "kind": "DatasetJob",
        "metadata": {"name": "cats"},
        "spec": {"tier": "free", "sources": [{"label": "cat", "urls": ["https://example.org/a.jpg"]}]},
    }
    wait_for(lambda: _create_when_served(custom, group, body))
    custom.patch_namespaced_custom_object_status(*group, "cats", {"status": {"phase": "Queued"}})

    stored = custom.get_namespaced_custom_object(*group, "cats")
    assert stored["spec"]["sources"] == body["spec"]["sources"]
    assert stored["status"]["phase"] == "Queued"


def _create_when_served(custom: client.CustomObjectsApi, group: tuple, body: dict) -> bool:
    """A just-established CRD can take a moment to be served; retry only on 404."""
    try:
        custom.create_namespaced_custom_object(*group, body)
    except client.ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def test_job_whose_pod_exits_0_completes(admin, namespace, worker_image):
    batch = client.BatchV1Api(admin)
    batch.create_namespaced_job(namespace, job("ok", worker_image, ["python", "-c", "import sys; sys.exit(0)"]))
    wait_for(lambda: job_condition(batch, namespace, "ok", "Complete"))


def test_job_whose_pod_exits_3_fails_with_the_exit_code_in_pod_status(admin, namespace, worker_image):
    batch, core = client.BatchV1Api(admin), client.CoreV1Api(admin)
    batch.create_namespaced_job(namespace, job("three", worker_image, ["python", "-c", "import sys; sys.exit(3)"]))
    wait_for(lambda: job_condition(batch, namespace, "three", "Failed"))
    (pod,) = job_pods(core, namespace, "three")
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3


def test_pod_failure_policy_fails_the_job_on_its_exit_code(admin, namespace, worker_image):
    batch = client.BatchV1Api(admin)
    rules = [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}}]
    spec = job("policy", worker_image, ["python", "-c", "import sys; sys.exit(2)"], backoffLimit=3,
               podFailurePolicy={"rules": rules})
    batch.create_namespaced_job(namespace, spec)
    failed = wait_for(lambda: job_condition(batch, namespace, "policy", "Failed"))
    assert failed.reason == "PodFailurePolicy"


def test_active_deadline_fails_the_job_and_stops_its_container(cluster, admin, namespace, worker_image):
    batch, core = client.BatchV1Api(admin), client.CoreV1Api(admin)
    batch.create_namespaced_job(namespace, job("slow", worker_image, ["python", "-c", "import time; time.sleep(600)"],
                                               activeDeadlineSeconds=3))

    def running_container() -> str | None:
        pods = job_pods(core, namespace, "slow")
        statuses = pods[0].status.container_statuses if pods else None
        running = statuses and statuses[0].state.running and statuses[0].container_id
        return running.removeprefix("containerd://") if running else None

    container = wait_for(running_container)
    failed = wait_for(lambda: job_condition(batch, namespace, "slow", "Failed"))
    assert failed.reason == "DeadlineExceeded"
    wait_for(lambda: not job_pods(core, namespace, "slow"))
    wait_for(lambda: container not in cluster.node.ctr("tasks", "list", "--quiet").stdout.split())


def test_pod_gets_env_field_refs_and_a_writable_empty_dir_on_a_read_only_root(admin, namespace, worker_image):
    batch = client.BatchV1Api(admin)
    check = (
        "import os, pathlib, sys, chunk_worker\n"
        "scratch = pathlib.Path(os.environ['PIXCRAWLER_TMP_DIR'])\n"
        "(scratch / 'probe').write_text('x')\n"
        "try:\n"
        "    pathlib.Path('/probe').write_text('x')\n"
        "    sys.exit(4)\n"
        "except OSError:\n"
        "    pass\n"
        "sys.exit(0 if os.environ['POD_NAMESPACE'] == sys.argv[1] and os.getuid() == 10001 else 1)"
    )
    container = {
        "args": [namespace],
        "env": [
            {"name": "PIXCRAWLER_TMP_DIR", "value": "/scratch"},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
    }
    spec = job("env", worker_image, ["python", "-c", check], container=container,
               pod={"volumes": [{"name": "scratch", "emptyDir": {}}]})
    batch.create_namespaced_job(namespace, spec)
    wait_for(lambda: job_condition(batch, namespace, "env", "Complete") or job_condition(batch, namespace, "env", "Failed"))
    assert job_condition(batch, namespace, "env", "Complete")


def test_owned_child_is_garbage_collected_with_its_owner(admin, namespace):
    core = client.CoreV1Api(admin)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", namespace)
        except client.ApiException as err:
            return err.status == 404
        return False

    wait_for(child_gone)


def test_lease_can_be_created_and_renewed(admin, namespace):
    leases = client.CoordinationV1Api(admin)
    spec = {"holderIdentity": "operator-a", "leaseDurationSeconds": 15, "renewTime": "2030-01-01T00:00:00.000001Z"}
    created = leases.create_namespaced_lease(namespace, {"metadata": {"name": "leader"}, "spec": spec})
    renewal = datetime.datetime(2030, 1, 1, 0, 0, 10, 500000, tzinfo=datetime.timezone.utc)
    created.spec.renew_time = renewal
    leases.replace_namespaced_lease("leader", namespace, created)
    assert leases.read_namespaced_lease("leader", namespace).spec.renew_time == renewal


def test_stale_lease_renewal_is_rejected(admin, namespace):
    leases = client.CoordinationV1Api(admin)
    spec = {"holderIdentity": "operator-a", "leaseDurationSeconds": 15}
    created = leases.create_namespaced_lease(namespace, {"metadata": {"name": "leader"}, "spec": spec})
    taken = leases.read_namespaced_lease("leader", namespace)
    taken.spec.holder_identity = "operator-b"
    leases.replace_namespaced_lease("leader", namespace, taken)
    with pytest.raises(client.ApiException) as err:
        leases.replace_namespaced_lease("leader", namespace, created)
    assert err.value.status == 409


@pytest.fixture
def reader(cluster, admin, namespace, tmp_path):
    """An ApiClient authenticated by a ServiceAccount token whose Role may only read ConfigMaps."""
    rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
    path = restricted_kubeconfig(admin, namespace, "reader", rules, tmp_path / "reader.kubeconfig",
                                 cluster.api_url, cluster.ca.read_bytes())
    with config.new_client_from_config(str(path)) as api:
        yield api


def test_service_account_token_may_do_what_its_role_grants(reader, namespace):
    def listed():
        try:
            return client.CoreV1Api(reader).list_namespaced_config_map(namespace) is not None
        except client.ApiException as err:
            if err.status == 403:  # RBAC caches catch up with a fresh RoleBinding within a moment
                return False
            raise

    assert wait_for(listed, timeout=15)


def test_service_account_token_gets_403_on_what_its_role_does_not_grant(reader, namespace):
    with pytest.raises(client.ApiException) as err:
        client.CoreV1Api(reader).list_namespaced_secret(namespace)
    assert err.value.status == 403
