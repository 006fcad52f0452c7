"""The local node is a real one: pods of the images built from the Dockerfiles run under containerd and runc,
limits hold, the `kubernetes` Service answers in-cluster clients by name, `kubectl logs` works, pods have no
route off this machine, and `localcluster up/down` leave the machine as they found it."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubernetes import client, config

from localcluster import binary, process
from localcluster.cluster import OWNER
from localcluster.footprint import Footprint
from localcluster.network import BRIDGE, NODE_HOST, ROUTED, SERVICE_IP
from localcluster.node import Images
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
            "cgroups": state.cgroups, "bridge": Path(f"/sys/class/net/{BRIDGE}").exists(), "mounts": mounts,
            "owner": OWNER.exists()}


def localcluster(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "hack")}
    return subprocess.run([sys.executable, "-m", "localcluster", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def node_state(kubeconfig: Path) -> list[str]:
    nodes = subprocess.run([str(binary("kubectl")), f"--kubeconfig={kubeconfig}", "get", "nodes", "--no-headers"],
                           capture_output=True, text=True, timeout=60, check=True)
    return nodes.stdout.split()[:2]


def start_sleeper(state: Path) -> None:
    """A pod that runs until it is killed: its shim, container, netns and mounts are what a killed run leaves."""
    with config.new_client_from_config(str(state / "kubeconfig")) as api:
        core = client.CoreV1Api(api)
        spec = {"restartPolicy": "Never",
                "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "main", "image": Images.current().worker, "imagePullPolicy": "Never",
                                "command": ["python", "-c", "import time; time.sleep(3600)"],
                                "securityContext": {"allowPrivilegeEscalation": False,
                                                    "capabilities": {"drop": ["ALL"]}}}]}
        core.create_namespaced_pod("default", {"metadata": {"name": "sleeper"}, "spec": spec})
        wait_for(lambda: core.read_namespaced_pod("sleeper", "default").status.phase == "Running", timeout=120,
                 what="the sleeper pod running")


def kill_components(state: Path) -> list[str]:
    """SIGKILL every component the node's `up` started (by the pids it recorded), as when the run that
    started them is killed; containerd's shims and the containers outlive it, as they do then."""
    killed = []
    for pid_file in sorted((state / "pids").glob("*.pid")):
        pid = process.pid_of(pid_file.stem, state)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid_file.stem)
    wait_for(lambda: not any(process.pid_of(p.stem, state) for p in (state / "pids").glob("*.pid")),
             what="the killed components gone")
    return killed


@pytest.mark.machine
def test_cluster_up_prints_node_host_and_kubeconfig_and_down_leaves_the_machine_as_it_was(tmp_path):
    state = tmp_path / "state"
    before = _machine_now()
    try:
        up = localcluster("up", f"--state-dir={state}")
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip().splitlines()[-2:] == [f"export PIXCRAWLER_NODE_HOST={NODE_HOST}",
                                                      f"export KUBECONFIG={state / 'kubeconfig'}"]
        assert node_state(state / "kubeconfig") == ["pixcrawler-node", "Ready"]
        assert _machine_now() != before
    finally:
        down = localcluster("down", f"--state-dir={state}", timeout=180)
    assert down.returncode == 0, down.stderr
    assert _machine_now() == before
    status = localcluster("status", f"--state-dir={state}", timeout=60)
    assert status.returncode == 3, status.stdout


@contextmanager
def machine_restored(*states: Path) -> Iterator[None]:
    """Runs the block, then `down` on each state dir whatever happened; the machine is then as it was."""
    before = _machine_now()
    try:
        yield
    finally:
        for state in states:
            localcluster("down", f"--state-dir={state}", timeout=180)
    assert _machine_now() == before


@pytest.mark.machine
def test_up_undoes_the_node_a_killed_run_left_behind(tmp_path):
    killed, fresh = tmp_path / "killed", tmp_path / "fresh"
    with machine_restored(fresh, killed):
        assert localcluster("up", f"--state-dir={killed}").returncode == 0
        start_sleeper(killed)
        assert "containerd" in kill_components(killed)
        up = localcluster("up", f"--state-dir={fresh}")
        assert up.returncode == 0, up.stderr
        assert f"undoing the node a killed run left in {killed}" in up.stderr
        assert node_state(fresh / "kubeconfig") == ["pixcrawler-node", "Ready"]


@pytest.mark.machine
def test_up_beside_a_running_node_names_it_and_cluster_down_stops_it(tmp_path):
    running, second = tmp_path / "running", tmp_path / "second"
    with machine_restored(running):
        assert localcluster("up", f"--state-dir={running}").returncode == 0
        refused = localcluster("up", f"--state-dir={second}")
        assert refused.returncode == 1
        assert f"another local node is running from {running}" in refused.stderr
        assert "`make cluster-down` stops it" in refused.stderr
        localcluster("down", f"--state-dir={second}", timeout=180)
        assert node_state(running / "kubeconfig") == ["pixcrawler-node", "Ready"]
        down = localcluster("down", timeout=180)  # what `make cluster-down` runs: no state dir given
        assert down.returncode == 0, down.stderr
