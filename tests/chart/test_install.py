"""`helm install` on the real cluster with the images built from the Dockerfiles: the operator runs in-cluster
as the chart's Deployment in a namespace enforcing Pod Security "restricted", its RBAC is enough to run a
DatasetJob end to end and grants nothing it must not have, the node agent reports the node's real figures,
and `helm upgrade` applies CRD changes."""

from __future__ import annotations

import shutil
import time

import psutil
import pytest
import yaml
from kubernetes import client, config

from localcluster.node import KUBELET_ROOT
from tests.chart.chart import CHART, CRD_FILE, helm

pytestmark = pytest.mark.cluster
GIB = 1 << 30


def test_example_completes_with_the_chart_service_account(release, completed):
    assert completed["status"]["phase"] == "Succeeded", completed["status"]
    assert completed["status"]["chunks"]["succeeded"] == completed["status"]["chunks"]["total"] == 6
    assert completed["status"]["images"]["uploaded"] == 121
    wait = release.cluster.kubectl("wait", "-n", release.namespace, "--for=condition=Complete", "--timeout=30s",
                                   "dsj/cats-vs-dogs", check=False)
    assert wait.returncode == 0, wait.stderr


def test_the_operator_runs_in_cluster_as_two_replicas_one_of_them_leading(release, completed):
    pods = release.operators.pods()
    assert len(pods) == 2
    assert all(p.status.phase == "Running" and p.spec.service_account_name == release.fullname for p in pods)
    assert release.operators.leader() in {p.metadata.name for p in pods}
    assert all(c.image == release.cluster.images.operator for p in pods for c in p.spec.containers)


def test_operator_logs_no_permission_error(release, completed):
    lines = release.operators.logs().splitlines()
    denied = [line for line in lines if any(sign in line for sign in ("Forbidden", "forbidden", "Not enough permissions"))]
    assert not denied, "\n".join(denied[:5])


def test_chunk_jobs_run_as_the_chart_worker_account(release, completed):
    jobs = client.BatchV1Api(release.api).list_namespaced_job(
        release.namespace, label_selector="app.kubernetes.io/managed-by=pixcrawler-operator").items
    assert jobs
    assert {j.spec.template.spec.service_account_name for j in jobs} == {f"{release.fullname}-worker"}


def test_node_agent_daemonset_reports_the_node_real_disk_and_memory(release):
    import redis

    prefix = yaml.safe_load(release.values.read_text())["redis"]["prefix"]
    url = yaml.safe_load(release.values.read_text())["redis"]["external"]["url"]
    with redis.Redis.from_url(url, decode_responses=True) as r:
        key = f"{prefix}node:{release.cluster.node_name}"
        deadline = time.monotonic() + 60
        while not (report := r.hgetall(key)) and time.monotonic() < deadline:
            time.sleep(0.5)
    assert report, f"the node agent wrote no report under {key} in 60 s\n{_node_agent_state(release)}"
    # its emptyDir lies on the kubelet's file system; a container sees the machine's memory
    disk, memory = psutil.disk_usage(str(KUBELET_ROOT)).free, psutil.virtual_memory().available
    assert abs(int(report["disk_free"]) - disk) < GIB, (report, disk)
    assert abs(int(report["memory_available"]) - memory) < 2 * GIB, (report, memory)


def _node_agent_state(release) -> str:
    shown = release.cluster.kubectl("get", "pods", "-n", release.namespace, "-l", "app.kubernetes.io/component=node-agent",
                                    "-o", "wide", check=False)
    logs = release.cluster.kubectl("logs", "-n", release.namespace, "--tail=20", "-l",
                                   "app.kubernetes.io/component=node-agent", check=False)
    return f"{shown.stdout}{shown.stderr}{logs.stdout}{logs.stderr}"


def _denied(call) -> int:
    try:
        call()
    except client.ApiException as exc:
        return exc.status
    return 200


def test_operator_token_is_denied_what_it_must_not_do(release):
    with config.new_client_from_config(str(release.kubeconfig)) as api:
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        assert _denied(lambda: core.list_namespaced_secret("kube-system")) == 403
        assert _denied(lambda: core.read_namespaced_secret("anything", "default")) == 403
        assert _denied(lambda: core.list_secret_for_all_namespaces()) == 403
        assert _denied(lambda: core.delete_node(release.cluster.node_name, dry_run="All")) == 403
        role = {"metadata": {"name": "escalate"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
        assert _denied(lambda: rbac.create_cluster_role(role, dry_run="All")) == 403
        assert _denied(lambda: rbac.create_namespaced_role(release.namespace, role, dry_run="All")) == 403
        binding = {"metadata": {"name": "escalate"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                   "subjects": [{"kind": "ServiceAccount", "name": release.fullname, "namespace": release.namespace}]}
        assert _denied(lambda: rbac.create_namespaced_role_binding(release.namespace, binding, dry_run="All")) == 403


def test_worker_account_has_no_api_rights(release):
    review = client.AuthorizationV1Api(release.api).create_subject_access_review({
        "spec": {"user": f"system:serviceaccount:{release.namespace}:{release.fullname}-worker",
                 "resourceAttributes": {"namespace": release.namespace, "verb": "list", "resource": "pods"}}})
    assert review.status.allowed is False


def _crd_spec_properties(api: client.ApiClient) -> dict:
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition("datasetjobs.pixcrawler.io")
    return crd.spec.versions[0].schema.open_apiv3_schema.properties["spec"].properties


def test_helm_upgrade_applies_a_field_added_to_the_crd(release, completed, tmp_path):
    changed = tmp_path / "pixcrawler-operator"
    shutil.copytree(CHART, changed, symlinks=False)
    crd = yaml.safe_load(CRD_FILE.read_text())
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["upgradeProbe"] = {
        "type": "string", "description": "added by the upgrade test"}
    (changed / "files" / CRD_FILE.name).write_text(yaml.safe_dump(crd, sort_keys=False))
    kube = f"--kubeconfig={release.cluster.kubeconfig}"
    try:
        upgraded = helm("upgrade", release.name, str(changed), kube, "-n", release.namespace, "-f",
                        str(release.values), check=False)
        assert upgraded.returncode == 0, upgraded.stderr
        assert _crd_spec_properties(release.api)["upgradeProbe"].type == "string"
    finally:
        restored = helm("upgrade", release.name, str(CHART), kube, "-n", release.namespace, "-f",
                        str(release.values), check=False)
    assert restored.returncode == 0, restored.stderr
    assert "upgradeProbe" not in _crd_spec_properties(release.api)
