"""The local node is a real one: pods of the images built from the Dockerfiles run under containerd and runc,
limits hold, the `kubernetes` Service answers in-cluster clients by name, `kubectl logs` works, pods have no
route off this machine, and `localcluster up/down` leave the machine as they found it."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from localcluster import binary
from localcluster.footprint import Footprint
from localcluster.network import BRIDGE, NODE_HOST, ROUTED, SERVICE_IP
from tests.cluster.conftest import wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def run_pod(core: client.CoreV1Api, namespace: str, name: str, image: str, script: str, **container) -> client.V1Pod:
    """A restricted, non-root pod running `script` in `image`; returns it once it has terminated."""
    spec = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "main", "image": image, "imagePullPolicy": "Never", "command": ["python", "-c", script],
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            **container,
        }],
    }
    core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec})

    def terminated() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return wait_for(terminated)


def logs(core: client.CoreV1Api, namespace: str, name: str) -> str:
    return core.read_namespaced_pod_log(name, namespace)


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service_with_its_token(admin, namespace,
                                                                                    worker_image):
    core = client.CoreV1Api(admin)
    script = (
        "import json, os, ssl, urllib.request\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "host = os.environ['KUBERNETES_SERVICE_HOST']\n"
        "pods = f'https://{host}/api/v1/namespaces/' + open(sa + 'namespace').read() + '/pods'\n"
        "request = urllib.request.Request(pods, headers={'Authorization': 'Bearer ' + open(sa + 'token').read()})\n"
        "context = ssl.create_default_context(cafile=sa + 'ca.crt')\n"
        "listed = json.load(urllib.request.urlopen(request, context=context, timeout=10))\n"
        "print(host, [p['metadata']['name'] for p in listed['items']])\n"
    )
    client.RbacAuthorizationV1Api(admin).create_namespaced_role_binding(namespace, {
        "metadata": {"name": "view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]})
    pod = run_pod(core, namespace, "incluster", worker_image, script)
    output = logs(core, namespace, "incluster")
    assert pod.status.phase == "Succeeded", output
    assert output.strip() == f"{SERVICE_IP} ['incluster']"


def test_a_pod_resolves_service_names_and_nothing_outside_the_cluster(admin, namespace, worker_image):
    core = client.CoreV1Api(admin)
    script = (
        "import socket\n"
        "print(socket.gethostbyname('kubernetes.default.svc'))\n"
        "try:\n"
        "    socket.getaddrinfo('example.org', 443)\n"
        "    print('resolved')\n"
        "except socket.gaierror as err:\n"
        "    print('unresolved')\n"
    )
    pod = run_pod(core, namespace, "resolver", worker_image, script)
    output = logs(core, namespace, "resolver")
    assert pod.status.phase == "Succeeded", output
    assert output.split() == [SERVICE_IP, "unresolved"]


def test_a_container_over_its_memory_limit_is_oom_killed(admin, namespace, worker_image):
    core = client.CoreV1Api(admin)
    pod = run_pod(core, namespace, "hungry", worker_image, "blocks = [bytearray(16 << 20) for _ in range(32)]",
                  resources={"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}})
    terminated = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Failed"
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137)


def test_kubectl_logs_shows_what_the_container_printed(cluster, admin, namespace, worker_image):
    run_pod(client.CoreV1Api(admin), namespace, "talker", worker_image, "print('hello from the node')")
    shown = cluster.kubectl("logs", "-n", namespace, "talker").stdout
    assert shown.strip() == "hello from the node"


def test_a_pod_has_routes_only_within_the_node_ranges(admin, namespace, worker_image):
    core = client.CoreV1Api(admin)
    script = "print(open('/proc/net/route').read())"
    pod = run_pod(core, namespace, "routes", worker_image, script)
    assert pod.status.phase == "Succeeded"
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(ROUTED)
    allowed = ipaddress.ip_network(ROUTED)
    routes = []
    for line in logs(core, namespace, "routes").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination = ipaddress.ip_address(bytes.fromhex(fields[1])[::-1])
        mask = ipaddress.ip_address(bytes.fromhex(fields[7])[::-1])
        routes.append(ipaddress.ip_network(f"{destination}/{mask}"))
    assert routes, "the pod has no routes at all"
    assert all(route.subnet_of(allowed) for route in routes), routes


def _machine_now() -> dict:
    state = Footprint.record()
    mounts = sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
    return {"sysctls": state.sysctls, "chains": state.chains, "absent": state.absent, "netns": state.netns,
            "cgroups": state.cgroups, "bridge": Path(f"/sys/class/net/{BRIDGE}").exists(), "mounts": mounts}


@pytest.mark.machine
def test_cluster_up_prints_node_host_and_kubeconfig_and_down_leaves_the_machine_as_it_was(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "hack")}
    state = tmp_path / "state"
    command = [sys.executable, "-m", "localcluster"]
    before = _machine_now()
    try:
        up = subprocess.run([*command, "up", f"--state-dir={state}"], env=env, capture_output=True, text=True,
                            timeout=300)
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip().splitlines()[-2:] == [f"export PIXCRAWLER_NODE_HOST={NODE_HOST}",
                                                      f"export KUBECONFIG={state / 'kubeconfig'}"]
        nodes = subprocess.run([str(binary("kubectl")), f"--kubeconfig={state / 'kubeconfig'}", "get", "nodes",
                                "--no-headers"], capture_output=True, text=True, timeout=60, check=True)
        assert nodes.stdout.split()[:2] == ["pixcrawler-node", "Ready"]
        assert _machine_now() != before
    finally:
        down = subprocess.run([*command, "down", f"--state-dir={state}"], env=env, capture_output=True, text=True,
                              timeout=180)
    assert down.returncode == 0, down.stderr
    assert _machine_now() == before
    status = subprocess.run([*command, "status", f"--state-dir={state}"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert status.returncode == 3, status.stdout
