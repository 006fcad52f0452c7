"""What the node changes on this machine outside its state dir, recorded before it starts and undone after
it stops: kernel settings the kubelet, kube-proxy and the CNI bridge plugin write, iptables chains,
directories the kubelet and containerd create at fixed paths, network namespaces, cgroups and mounts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

SYSCTLS = (
    # the kubelet's kernel tunables
    "kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "vm/panic_on_oom",
    "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
    # the bridge plugin (isGateway) turns on forwarding; kube-proxy's conntrack and localnet settings
    "net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding", "net/ipv4/conf/default/forwarding",
    "net/ipv4/conf/all/route_localnet", "net/ipv6/conf/all/forwarding", "net/ipv6/conf/default/forwarding",
    "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max", "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait", "net/netfilter/nf_conntrack_tcp_be_liberal",
)
FIXED_PATHS = ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/cni", "/run/containerd",
               "/var/lib/containerd", "/etc/cni/net.d", "/run/netns", "/run/pixcrawler-node")
NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS = "kubepods"
TABLES = ("filter", "nat", "mangle", "raw")
IPTABLES = ("iptables", "ip6tables")
CHAIN_PREFIXES = ("KUBE-", "CNI-")


def _read_sysctl(key: str) -> str | None:
    try:
        return Path("/proc/sys", key).read_text().strip()
    except OSError:
        return None


def _write_sysctl(key: str, value: str) -> None:
    try:
        Path("/proc/sys", key).write_text(value)
    except OSError:
        pass


def chains(tool: str, table: str) -> set[str]:
    done = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True)
    if done.returncode != 0:
        return set()
    return {line.split()[1] for line in done.stdout.splitlines() if line.startswith("-N ")}


def _netns() -> set[str]:
    try:
        return {p.name for p in NETNS_DIR.iterdir()}
    except OSError:
        return set()


def _mountpoints() -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        points.append(line.split()[4].replace("\\040", " "))
    return points


@dataclass
class Footprint:
    """The machine as it was before the node started; `undo()` puts it back."""

    sysctls: dict[str, str] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)

    @classmethod
    def record(cls) -> Footprint:
        return cls(
            sysctls={k: v for k in SYSCTLS if (v := _read_sysctl(k)) is not None},
            chains={f"{tool}:{table}": sorted(chains(tool, table)) for tool in IPTABLES for table in TABLES},
            absent=[p for p in FIXED_PATHS if not os.path.lexists(p)],
            netns=sorted(_netns()),
            cgroups=[str(d) for d in CGROUP_ROOT.glob(f"*/{KUBEPODS}")],
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Footprint | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError):
            return None

    def undo(self, state: Path) -> list[str]:
        """Undo every change; returns what could not be undone (empty when the machine is as it was)."""
        problems: list[str] = []
        unmount_under([str(state), *self.absent, *(str(NETNS_DIR / n) for n in _netns() - set(self.netns))])
        for name in sorted(_netns() - set(self.netns)):
            if name.startswith("cni-"):
                (NETNS_DIR / name).unlink(missing_ok=True)
        self._undo_chains(problems)
        self._undo_cgroups(problems)
        for key, value in self.sysctls.items():
            if _read_sysctl(key) != value:
                _write_sysctl(key, value)
                if _read_sysctl(key) != value:
                    problems.append(f"sysctl {key} is {_read_sysctl(key)}, was {value}")
        for path in self.absent:
            if os.path.lexists(path):
                if any(m == path or m.startswith(path + "/") for m in _mountpoints()):
                    problems.append(f"{path} still has mounts")
                    continue
                shutil.rmtree(path, ignore_errors=True)
        return problems

    def _undo_chains(self, problems: list[str]) -> None:
        for tool in IPTABLES:
            for table in TABLES:
                before = set(self.chains.get(f"{tool}:{table}", []))
                ours = {c for c in chains(tool, table) - before if c.startswith(CHAIN_PREFIXES)}
                if not ours:
                    continue
                rules = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
                for line in rules.splitlines():
                    parts = line.split()
                    if parts[:1] == ["-A"] and parts[1] not in ours and "-j" in parts \
                            and parts[parts.index("-j") + 1] in ours:
                        subprocess.run([tool, "-w", "-t", table, "-D", *parts[1:]], capture_output=True)
                for chain in ours:
                    subprocess.run([tool, "-w", "-t", table, "-F", chain], capture_output=True)
                for chain in ours:
                    subprocess.run([tool, "-w", "-t", table, "-X", chain], capture_output=True)
                left = {c for c in chains(tool, table) - before if c.startswith(CHAIN_PREFIXES)}
                problems.extend(f"{tool} -t {table} chain {c} is left" for c in sorted(left))

    def _undo_cgroups(self, problems: list[str]) -> None:
        """Removes the node's pod cgroups; a container still in one (its containerd and shim were killed
        with the run that started it) is killed first: every process under a kubepods cgroup that was
        not there before the node is one of its pods'."""
        tops = [top for top in CGROUP_ROOT.glob(f"*/{KUBEPODS}") if str(top) not in self.cgroups]
        _kill_members(tops)
        for top in tops:
            for directory in sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts)):
                try:
                    directory.rmdir()
                except OSError:
                    pass
            try:
                top.rmdir()
            except OSError as err:
                problems.append(f"cgroup {top} is left: {err}")


def _kill_members(tops: list[Path], timeout: float = 10.0) -> None:
    """SIGKILL every process in a cgroup under `tops`, and wait until they are gone."""
    deadline = time.monotonic() + timeout
    while True:
        members = {int(pid) for top in tops for procs in top.rglob("cgroup.procs")
                   for pid in _read_lines(procs) if pid.isdigit()}
        if not members or time.monotonic() > deadline:
            return
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def unmount_under(prefixes: list[str]) -> None:
    """Unmount every mount at or below one of `prefixes`, deepest first (lazily, if it is busy)."""
    targets = [m for m in _mountpoints() if any(m == p or m.startswith(p.rstrip("/") + "/") for p in prefixes)]
    for point in sorted(set(targets), key=lambda m: -m.count("/")):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True)
