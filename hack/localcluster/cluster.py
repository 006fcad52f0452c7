"""A whole local cluster: the control plane plus one real node (containerd, kubelet, kube-proxy, bridge CNI),
started and stopped together; `down` leaves the machine as `up` found it."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from kubernetes import client
from pinned import cache_dir

from . import binaries, network, process
from .controlplane import ControlPlane, KubectlFailed, StartupFailed
from .footprint import Footprint
from .node import Images, Node, NodeFailed

FOOTPRINT = "footprint.json"
OWNER = Path("/run/pixcrawler-localcluster")
"""The state dir of the node on this machine: written before `up` changes anything, removed by a clean
`down`, so a run killed before its `down` is found from here (by the next `up`, or `make cluster-down`).
Under /run, it goes with a reboot, as does everything it points at."""


def default_state_dir() -> Path:
    return cache_dir() / "cluster"


def recorded_owner() -> Path | None:
    """The state dir of the node this machine runs, or was left running by a killed run."""
    try:
        text = OWNER.read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


class LocalCluster(ControlPlane):
    """Control plane + node; everything a test or a human needs is under `state`."""

    node_name = network.NODE_NAME
    node_host = network.NODE_HOST
    """Where pods reach services on this machine (Redis, Azurite, an image server): the bridge address."""

    def __init__(self, state: Path):
        super().__init__(state, network.NODE_HOST)
        self.node: Node | None = None
        self.images: Images | None = None

    def up(self, timeout: float = 240.0) -> None:
        """Bridge, control plane, node; return once the node is Ready and kube-proxy has synced."""
        deadline = time.monotonic() + timeout
        for component in ("kubelet", "kube-proxy", "coredns"):
            binaries.binary(component)
        self.images = Images.current()
        self.state.mkdir(parents=True, exist_ok=True)
        if (self.state / FOOTPRINT).exists():
            self.down()
        self._undo_abandoned()
        if network.bridge_exists():
            raise network.NetworkBusy(
                f"bridge {network.BRIDGE} exists, but no local node is recorded in {OWNER}: something else "
                f"made it (`ip link delete {network.BRIDGE}` once nothing uses it)")
        Footprint.record().save(self.state / FOOTPRINT)
        OWNER.write_text(f"{self.state.resolve()}\n")
        try:
            network.create_bridge()
            network.add_guard()
            self.start(timeout)
            self.node = Node(self.state, self.node_name, self.api_url, self.pki)
            self.node.start(self.images, deadline)
            self._wait_node_ready(deadline)
        except BaseException:
            self.down()
            raise

    def _other_owner(self) -> Path | None:
        """The state dir of the node this machine records, when it is not this one."""
        owner = recorded_owner()
        return owner if owner is not None and owner != self.state.resolve() else None

    def _undo_abandoned(self) -> None:
        """Undoes the node a run killed before its `down` left behind (its components gone; its containers,
        mounts, chains and bridge still there), so this node starts on the machine as it was before that
        run. A node that still runs is left alone."""
        owner = self._other_owner()
        if owner is None:
            return
        left = LocalCluster(owner)
        alive = sorted(name for name, pid in left.running().items() if pid)
        if alive:
            raise network.NetworkBusy(f"another local node is running from {owner} ({', '.join(alive)}): "
                                      "`make cluster-down` stops it")
        print(f"localcluster: undoing the node a killed run left in {owner}", file=sys.stderr)
        problems = left.down()
        if problems:
            raise NodeFailed(f"the node a killed run left in {owner} could not be undone: {'; '.join(problems)}")

    def down(self) -> list[str]:
        """Stop everything `up` started and undo its changes to the machine; returns what is left, if any.
        The bridge, guard and machine changes are undone only by the node they belong to: a `down` after an
        `up` that found another node running stops nothing of that node."""
        (self.node or Node(self.state, self.node_name, "", None)).stop()
        self.node = None
        self.stop()
        if self._other_owner() is not None:
            return []
        network.remove_guard()
        network.delete_bridge()
        footprint = Footprint.load(self.state / FOOTPRINT)
        problems = footprint.undo(self.state) if footprint is not None else []
        if not problems:
            subprocess.run(["rm", "-rf", "--one-file-system", str(self.state / "node")], capture_output=True)
            (self.state / FOOTPRINT).unlink(missing_ok=True)
            OWNER.unlink(missing_ok=True)
        return problems

    def running(self) -> dict[str, int | None]:
        node = self.node or Node(self.state, self.node_name, "", None)
        return {**super().running(), **node.running()}

    def _wait_node_ready(self, deadline: float) -> None:
        """The node is Ready, kube-proxy has programmed the Services, the cluster DNS has synced and the
        default ServiceAccount exists."""
        assert self.node is not None
        with self.client() as api:
            core = client.CoreV1Api(api)
            while time.monotonic() < deadline:
                if self.node.alive():
                    break
                if node_ready(core, self.node_name) and _proxy_synced(self.node) and self.node.dns_ready_now() \
                        and _exists(core.read_namespaced_service_account, "default", "default"):
                    return
                time.sleep(0.25)
        dead = self.node.alive()
        logs = "\n".join(f"--- {n} ---\n{process.log_tail(n, self.state, 40)}"
                         for n in ("kubelet", "kube-proxy", "coredns"))
        raise StartupFailed(f"node {self.node_name} did not become Ready"
                            + (f" ({', '.join(dead)} exited)" if dead else "") + f"\n{logs}")


def _proxy_synced(node: Node) -> bool:
    """kube-proxy's /healthz answers 200 once it has written its rules."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.proxy_healthz}/healthz", timeout=1) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


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


__all__ = ["KubectlFailed", "LocalCluster", "NodeFailed", "StartupFailed", "default_state_dir"]
