"""The real node: containerd (CRI, runc, bridge CNI), the kubelet, kube-proxy and CoreDNS (the cluster DNS,
answering only for cluster.local), all state under <state dir>/node, the project's images imported from
hack/node-images.sh's cached archives.

The recipe fits this machine: cgroup v1 without systemd (cgroupfs driver, `failCgroupV1: false`), root
without CAP_SYS_RESOURCE (containerd's `restrict_oom_score_adj`, the kubelet's `oomScoreAdj: 0`), no
registry (a locally built pause image; pods use images already imported).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from ports import free_port

from . import binaries, certs, kubeconfig, network, process

CONTAINERD = "containerd"
KUBELET = "kubelet"
KUBE_PROXY = "kube-proxy"
COREDNS = "coredns"
COMPONENTS = (CONTAINERD, KUBELET, KUBE_PROXY, COREDNS)
CLUSTER_DOMAIN = "cluster.local"
CRI_NAMESPACE = "k8s.io"
ROOT = Path(__file__).resolve().parents[2]
# unix socket paths must stay under 104 bytes, which a state dir's may not: containerd's sockets and the
# kubelet's root (its plugin and pod-resources sockets) live at fixed short paths, removed by `down`
RUN_DIR = Path("/run/pixcrawler-node")
KUBELET_ROOT = Path("/var/lib/kubelet")
CONTAINERD_TMPFS = "8g"


class NodeFailed(RuntimeError):
    """A node component did not start; the message carries its log tail."""


@dataclass(frozen=True)
class Images:
    """The images hack/node-images.sh built for the current sources: refs and their archives."""

    pause: str
    worker: str
    operator: str
    archives: tuple[Path, ...]

    @classmethod
    def current(cls) -> Images:
        done = subprocess.run(["bash", str(ROOT / "hack" / "node-images.sh"), "refs"], capture_output=True,
                              text=True, check=True)
        refs = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        archives = tuple(Path(refs[f"{n}_ARCHIVE"]) for n in ("PAUSE", "WORKER", "OPERATOR"))
        missing = [str(a) for a in archives if not a.exists()]
        if missing:
            raise NodeFailed(f"images not built ({', '.join(missing)}): run `make node-images`")
        return cls(refs["PAUSE_IMAGE"], refs["WORKER_IMAGE"], refs["OPERATOR_IMAGE"], archives)


def _yaml(path: Path, body: dict) -> Path:
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


class Node:
    """containerd, kubelet and kube-proxy for one cluster whose files live in `state`."""

    def __init__(self, state: Path, name: str, api_url: str, pki: certs.ClusterPKI | None):
        self.state = state
        self.dir = state / "node"
        self.name = name
        self.api_url = api_url
        self.pki = pki
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def socket(self) -> Path:
        return RUN_DIR / "containerd.sock"

    def start(self, images: Images, deadline: float) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._start_containerd(images, deadline)
        self._import(images)
        self._start_coredns()
        self._start_kubelet()
        self._start_kube_proxy()

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(["ctr", f"--address={self.socket}", f"--namespace={CRI_NAMESPACE}", *args],
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise NodeFailed(f"ctr {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def _start_containerd(self, images: Images, deadline: float) -> None:
        base = self.dir / "containerd"
        (base / "root").mkdir(parents=True, exist_ok=True)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        # images and snapshots on a tmpfs: `down` unmounts it in an instant, where deleting the unpacked
        # images file by file takes most of a minute on a disk mounted with `discard`
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={CONTAINERD_TMPFS},mode=0700", "tmpfs",
                        str(base / "root")], check=True, capture_output=True)
        network.write_cni_config(self.dir / "cni" / "net.d", self.dir / "cni" / "ipam")
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{self.socket}"

[metrics]
  address = ""

[{cri}]
  sandbox_image = "{images.pause}"
  # root here lacks CAP_SYS_RESOURCE: never ask for a lower oom_score_adj than containerd's own
  restrict_oom_score_adj = true
  enable_selinux = false
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{base / 'runc'}"
  [{cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{self.dir / 'cni' / 'net.d'}"
"""
        (base / "config.toml").write_text(config)
        self.procs[CONTAINERD] = process.start(CONTAINERD, ["containerd", f"--config={base / 'config.toml'}"],
                                               self.state)
        while time.monotonic() < deadline:
            if self.procs[CONTAINERD].poll() is not None:
                break
            if self.socket.exists() and self.ctr("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise NodeFailed(f"containerd did not start\n{process.log_tail(CONTAINERD, self.state, 40)}")

    def _import(self, images: Images) -> None:
        for archive in images.archives:
            self.ctr("images", "import", str(archive))

    def _start_kubelet(self) -> None:
        assert self.pki is not None
        work = self.dir / "kubelet"
        work.mkdir(parents=True, exist_ok=True)
        kubeconfig.write(work / "kubeconfig", self.api_url, self.pki.server_ca.cert_pem(),
                         kubeconfig.cert_user(self.pki.kubelet.cert_pem(), self.pki.kubelet.key_pem()))
        self.kubelet_port, self.kubelet_healthz = free_port(), free_port()
        config = _yaml(work / "config.yaml", {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            # this machine: cgroup v1, PID 1 is not systemd, root without CAP_SYS_RESOURCE
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "oomScoreAdj": 0,
            "address": network.NODE_HOST,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.kubelet_healthz,
            "tlsCertFile": str(self.pki.kubelet_serving.cert),
            "tlsPrivateKeyFile": str(self.pki.kubelet_serving.key),
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(self.pki.client_ca.cert)}},
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "clusterDomain": CLUSTER_DOMAIN,
            "clusterDNS": [network.NODE_HOST],
            # pods resolve cluster names only: the machine's own resolvers are not theirs to use
            "resolvConf": "",
            "failSwapOn": False,
            "protectKernelDefaults": False,
            "serializeImagePulls": False,
            "podLogsDir": str(self.dir / "pod-logs"),
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "shutdownGracePeriod": "0s",
            "podPidsLimit": 4096,
        })
        self.procs[KUBELET] = process.start(KUBELET, [
            str(binaries.binary(KUBELET)), f"--config={config}", f"--kubeconfig={work / 'kubeconfig'}",
            f"--root-dir={KUBELET_ROOT}", f"--hostname-override={self.name}", f"--node-ip={network.NODE_HOST}",
            "--v=1",
        ], self.state)

    def _start_kube_proxy(self) -> None:
        assert self.pki is not None
        work = self.dir / "kube-proxy"
        work.mkdir(parents=True, exist_ok=True)
        self.proxy_healthz = free_port()
        kubeconfig.write(work / "kubeconfig", self.api_url, self.pki.server_ca.cert_pem(),
                         kubeconfig.cert_user(self.pki.kube_proxy.cert_pem(), self.pki.kube_proxy.key_pem()))
        self.proxy_config = _yaml(work / "config.yaml", {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(work / "kubeconfig")},
            "mode": "iptables",
            "hostnameOverride": self.name,
            "clusterCIDR": network.POD_CIDR,
            "healthzBindAddress": f"127.0.0.1:{self.proxy_healthz}",
            "metricsBindAddress": f"127.0.0.1:{free_port()}",
            # NodePorts only on the bridge address, never on this machine's other interfaces
            "nodePortAddresses": [f"{network.NODE_HOST}/32"],
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
            # leave the machine's conntrack settings alone
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        })
        self.procs[KUBE_PROXY] = process.start(KUBE_PROXY, [
            str(binaries.binary(KUBE_PROXY)), f"--config={self.proxy_config}", "--v=1"], self.state)

    def _start_coredns(self) -> None:
        """The cluster DNS on the node's address, port 53: Service names from the API; every other name
        gets NXDOMAIN, nothing is forwarded off this machine."""
        work = self.dir / "coredns"
        work.mkdir(parents=True, exist_ok=True)
        self.dns_ready = free_port()
        corefile = work / "Corefile"
        corefile.write_text(f"""{CLUSTER_DOMAIN}:53 {{
    bind {network.NODE_HOST}
    errors
    ready 127.0.0.1:{self.dns_ready}
    kubernetes {CLUSTER_DOMAIN} {{
        kubeconfig {self.state / 'kubeconfig'}
        pods disabled
    }}
    cache 5
}}
.:53 {{
    bind {network.NODE_HOST}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
""")
        self.procs[COREDNS] = process.start(COREDNS, [str(binaries.binary(COREDNS)), "-conf", str(corefile)],
                                            self.state)

    def dns_ready_now(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.dns_ready}/ready", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def alive(self) -> list[str]:
        """Components that have exited (empty while all run)."""
        return [name for name, proc in self.procs.items() if proc.poll() is not None]

    def stop(self) -> None:
        """kube-proxy and the kubelet first (nothing restarts containers), then every container, then
        containerd; kube-proxy's own cleanup removes its iptables rules."""
        for name in (KUBE_PROXY, KUBELET, COREDNS):
            process.stop(name, self.state, self.procs.pop(name, None))
        if process.pid_of(CONTAINERD, self.state) is not None:
            self._kill_containers()
        process.stop(CONTAINERD, self.state, self.procs.pop(CONTAINERD, None))
        self._kill_shims()
        config = self.dir / "kube-proxy" / "config.yaml"
        if config.exists():
            try:
                subprocess.run([str(binaries.binary(KUBE_PROXY)), f"--config={config}", "--cleanup"],
                               capture_output=True, timeout=60)
            except binaries.BinariesMissing:
                pass

    def _kill_containers(self) -> None:
        listed = self.ctr("tasks", "list", "--quiet", check=False, timeout=30)
        tasks = listed.stdout.split() if listed.returncode == 0 else []
        for task in tasks:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False, timeout=30)
        for task in tasks:
            deadline = time.monotonic() + 10
            while self.ctr("tasks", "delete", task, check=False, timeout=30).returncode != 0 \
                    and time.monotonic() < deadline:
                time.sleep(0.2)
        containers = self.ctr("containers", "list", "--quiet", check=False, timeout=30).stdout.split()
        if containers:
            self.ctr("containers", "delete", *containers, check=False, timeout=60)

    def _kill_shims(self) -> None:
        """containerd's shims outlive it by design; they are ours when their -address is our socket."""
        mark = str(self.socket).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and mark in argv:
                try:
                    os.kill(int(entry.name), 9)
                except ProcessLookupError:
                    pass

    def running(self) -> dict[str, int | None]:
        return {c: process.pid_of(c, self.state) for c in COMPONENTS}
