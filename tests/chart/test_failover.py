"""Failover of the in-cluster operator: the chart's two replicas share one Lease; deleting the leader pod, or
SIGKILL of its container, hands the lead on and a running DatasetJob still completes with every chunk."""

from __future__ import annotations


import pytest
from kubernetes import client

from tests.chart.conftest import wait_for_phase
from tests.cluster.conftest import image_urls, inline_job, wait_for

pytestmark = pytest.mark.cluster


def _chunks_done(release, name: str) -> int:
    body = client.CustomObjectsApi(release.api).get_namespaced_custom_object(
        "pixcrawler.io", "v1alpha1", release.namespace, "datasetjobs", name)
    return ((body.get("status") or {}).get("chunks") or {}).get("succeeded", 0)


def _start_slow_job(release, image_server, name: str, first: int) -> None:
    # 8 chunks of 3 images taking about a second each: mid-run when the leader goes
    manifest = inline_job(name, image_urls(image_server.base_url, first, 24, route="slow", query="delay=1"), 3)
    client.CustomObjectsApi(release.api).create_namespaced_custom_object(
        "pixcrawler.io", "v1alpha1", release.namespace, "datasetjobs", manifest)
    wait_for(lambda: _chunks_done(release, name) >= 1, 180, f"{name}: a first chunk done")


def _container_id(pod: client.V1Pod) -> str:
    return pod.status.container_statuses[0].container_id.removeprefix("containerd://")


def test_deleting_the_leader_pod_hands_the_lease_to_the_other_replica(release, completed, image_server):
    _start_slow_job(release, image_server, "deleted-leader", 20000)
    leader = release.operators.leader()
    client.CoreV1Api(release.api).delete_namespaced_pod(leader, release.namespace)
    successor = wait_for(lambda: (h := release.operators.leader()) not in (None, leader) and h, 90, "a new leader")
    done = wait_for_phase(release.api, release.namespace, "deleted-leader", ("Succeeded", "Failed"), 300,
                          release.operators)
    assert successor in {p.metadata.name for p in release.operators.pods()}
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["chunks"]["succeeded"] == 8
    wait_for(lambda: len([p for p in release.operators.pods() if p.status.phase == "Running"]) == 2, 120,
          "the Deployment to bring back its second replica")


def test_sigkill_of_the_leader_container_restarts_it_and_the_job_completes(release, completed, image_server):
    _start_slow_job(release, image_server, "killed-leader", 21000)
    core = client.CoreV1Api(release.api)
    leader = release.operators.leader()
    pod = core.read_namespaced_pod(leader, release.namespace)
    restarts = pod.status.container_statuses[0].restart_count
    release.cluster.node.ctr("tasks", "kill", "--signal", "SIGKILL", _container_id(pod))
    wait_for(lambda: core.read_namespaced_pod(leader, release.namespace).status.container_statuses[0].restart_count
          > restarts, 120, "the kubelet to restart the killed container")
    done = wait_for_phase(release.api, release.namespace, "killed-leader", ("Succeeded", "Failed"), 300,
                          release.operators)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["chunks"]["succeeded"] == 8
    last = core.read_namespaced_pod(leader, release.namespace).status.container_statuses[0].last_state.terminated
    assert (last.exit_code, last.reason) == (137, "Error")
