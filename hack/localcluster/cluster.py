"""A whole local cluster: the control plane plus the node runner, started and stopped together."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client, config
from pinned import cache_dir

from . import binaries, process
from .controlplane import ControlPlane, StartupFailed

NODE_NAME = "pixcrawler-node"
RUNNER = "noderunner"


class KubectlFailed(RuntimeError):
    """kubectl exited non-zero."""


def default_state_dir() -> Path:
    return cache_dir() / "cluster"


class LocalCluster(ControlPlane):
    """Control plane + node runner; everything a test or a human needs is under `state`."""

    node_name = NODE_NAME

    def __init__(self, state: Path, node_capacity: dict[str, str] | None = None):
        """`node_capacity` overrides the node's cpu/memory/pods (default: this machine's CPUs and memory)."""
        super().__init__(state)
        self.runner: subprocess.Popen | None = None
        self.node_capacity = node_capacity or {}

    def client(self) -> client.ApiClient:
        """A fresh admin (system:masters) API client; close it when done."""
        return config.new_client_from_config(str(self.kubeconfig))

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the pinned kubectl as admin; with `check`, a failure raises with kubectl's stderr."""
        done = subprocess.run(
            [str(binaries.binary("kubectl")), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, timeout=120,
        )
        if check and done.returncode != 0:
            raise KubectlFailed(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def up(self, timeout: float = 180.0) -> None:
        """Start the control plane and the node runner; return once the node is Ready."""
        deadline = time.monotonic() + timeout
        self.start(timeout)
        try:
            hack = str(Path(__file__).resolve().parent.parent)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [hack, os.environ.get("PYTHONPATH")]))}
            self.runner = process.start(RUNNER, [
                sys.executable, "-m", "localcluster.noderunner", f"--kubeconfig={self.kubeconfig}",
                f"--node-name={self.node_name}", f"--work-dir={self.state / 'pods'}",
                *(f"--{key}={value}" for key, value in self.node_capacity.items()),
            ], self.state, env)
            self._wait_node_ready(deadline)
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop everything `up` started, the node runner first (it stops its pods), then the control plane."""
        process.stop(RUNNER, self.state, self.runner)
        self.runner = None
        self.stop()

    def running(self) -> dict[str, int | None]:
        return {**super().running(), RUNNER: process.pid_of(RUNNER, self.state)}

    def _wait_node_ready(self, deadline: float) -> None:
        """The node is Ready and the default ServiceAccount exists, so pods can be created and scheduled."""
        with self.client() as api:
            core = client.CoreV1Api(api)
            while time.monotonic() < deadline:
                if self.runner is not None and self.runner.poll() is not None:
                    break
                if node_ready(core, self.node_name) and _exists(core.read_namespaced_service_account, "default", "default"):
                    return
                time.sleep(0.5)
        raise StartupFailed(f"node {self.node_name} did not become Ready\n{process.log_tail(RUNNER, self.state, 60)}")


def node_ready(core: client.CoreV1Api, name: str) -> bool:
    try:
        node = core.read_node(name)
    except client.ApiException:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def _exists(read, *args) -> bool:
    try:
        read(*args)
    except client.ApiException:
        return False
    return True
