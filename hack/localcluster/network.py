"""The node's network: a Linux bridge holding the node's address, pod and Service ranges from 198.18.0.0/15
(reserved for benchmarking, never routed beyond this machine), and a bridge CNI config without masquerading.

Pods get a route to 198.18.0.0/15 only (no default route), so nothing they send can leave this machine; a
FORWARD guard drops anything routed between the bridge and another interface all the same.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

BRIDGE = "pixcrawler0"
NODE_HOST = "198.18.0.1"
"""The node's address on the bridge: the apiserver, the kubelet and the services pods need listen here."""
POD_CIDR = "198.18.0.0/24"
SERVICE_CIDR = "198.19.0.0/24"
SERVICE_IP = "198.19.0.1"
"""The `kubernetes` Service's ClusterIP (the first address of SERVICE_CIDR)."""
ROUTED = "198.18.0.0/15"
GUARD_CHAIN = "PIXCRAWLER-NODE"
CNI_NETWORK = "pixcrawler"
NODE_NAME = "pixcrawler-node"


class NetworkBusy(RuntimeError):
    """The bridge already exists: another local node runs on this machine."""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def create_bridge() -> None:
    """The bridge with the node's address, made before the apiserver binds it (CNI reuses it)."""
    if bridge_exists():
        raise NetworkBusy(f"bridge {BRIDGE} exists: another local node is running")
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", f"{NODE_HOST}/{POD_CIDR.split('/')[1]}", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


def delete_bridge() -> None:
    if bridge_exists():
        _run("ip", "link", "delete", BRIDGE, check=False)


def add_guard() -> None:
    """Drop whatever would be forwarded between the bridge and any other interface."""
    _run("iptables", "-w", "-N", GUARD_CHAIN)
    _run("iptables", "-w", "-A", GUARD_CHAIN, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
    _run("iptables", "-w", "-A", GUARD_CHAIN, "!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP")
    _run("iptables", "-w", "-I", "FORWARD", "1", "-j", GUARD_CHAIN)


def remove_guard() -> None:
    while _run("iptables", "-w", "-D", "FORWARD", "-j", GUARD_CHAIN, check=False).returncode == 0:
        pass
    _run("iptables", "-w", "-F", GUARD_CHAIN, check=False)
    _run("iptables", "-w", "-X", GUARD_CHAIN, check=False)


def write_cni_config(conf_dir: Path, ipam_dir: Path) -> Path:
    """A conflist for containerd's CRI: bridge + host-local IPAM, no masquerading, no default route."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": True,
            "isDefaultGateway": False,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": POD_CIDR, "rangeStart": "198.18.0.10", "gateway": NODE_HOST}]],
                "routes": [{"dst": ROUTED}],
                "dataDir": str(ipam_dir),
            },
        }],
    }
    path = conf_dir / "10-pixcrawler.conflist"
    path.write_text(json.dumps(config, indent=2))
    return path
