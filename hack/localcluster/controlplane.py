"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler on free loopback ports.

Flags follow controller-runtime's envtest and kubernetes' hack/local-up-cluster.sh, plus the controller
manager and scheduler, so Jobs, garbage collection, service-account tokens and scheduling really happen.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from kubernetes import client, config
from ports import free_port

from . import binaries, certs, kubeconfig, process
from .network import NODE_HOST, NODE_NAME, SERVICE_CIDR, SERVICE_IP

ISSUER = "https://kubernetes.default.svc.cluster.local"
# start order; stop goes in reverse
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class StartupFailed(RuntimeError):
    """A component did not become healthy; the message carries its log tail."""


class KubectlFailed(RuntimeError):
    """kubectl exited non-zero."""


@dataclass
class Endpoints:
    """What a running cluster exposes; saved as cluster.json so `status`/`down` find it again."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    host: str = "127.0.0.1"
    """The apiserver's address: loopback for the control plane alone, the node's bridge address with a node."""

    @property
    def api_url(self) -> str:
        return f"https://{self.host}:{self.apiserver}"

    @classmethod
    def pick(cls, host: str) -> Endpoints:
        return cls(*(free_port() for _ in range(5)), host=host)


def _get(url: str, context: ssl.SSLContext | None, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (OSError, ssl.SSLError) as err:
        return 0, str(err)


class ControlPlane:
    """One local control plane whose files (certs, data, logs, pids, kubeconfigs) live in `state`."""

    def __init__(self, state: Path, host: str = "127.0.0.1"):
        """`host`: where the apiserver listens (and advertises itself as the `kubernetes` Service's endpoint)."""
        self.state = state.resolve()
        self.host = host
        self.procs: dict[str, subprocess.Popen] = {}
        self.endpoints: Endpoints | None = None
        self.pki: certs.ClusterPKI | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def ca(self) -> Path:
        return self.state / "pki" / "server-ca.crt"

    @property
    def api_url(self) -> str:
        return self.load_endpoints().api_url

    def load_endpoints(self) -> Endpoints:
        if self.endpoints is None:
            self.endpoints = Endpoints(**json.loads((self.state / "cluster.json").read_text()))
        return self.endpoints

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

    def wait_established(self, crd: str, timeout: float = 60.0) -> None:
        """Until a CRD serves. Not `kubectl wait --for=condition=Established`: that fails at once while
        the new CRD has no status.conditions yet."""
        deadline = time.monotonic() + timeout
        query = '-o=jsonpath={.status.conditions[?(@.type=="Established")].status}'
        while self.kubectl("get", f"crd/{crd}", query, check=False).stdout.strip() != "True":
            if time.monotonic() > deadline:
                raise KubectlFailed(f"crd/{crd} not Established after {timeout:.0f}s")
            time.sleep(0.2)

    def admin_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        pki = self.state / "pki"
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        return context

    def start(self, timeout: float = 120.0) -> None:
        """Start every component in order, each healthy before the next starts."""
        for component in COMPONENTS:
            binaries.binary(component)
        binaries.binary("kubectl")
        try:
            self._start(timeout)
        except StartupFailed as err:
            # a free port picked here can be taken by another process before a component binds it
            if "address already in use" not in str(err):
                raise
            self._start(timeout)

    def _start(self, timeout: float) -> None:
        self._clear()
        self.endpoints = ep = Endpoints.pick(self.host)
        (self.state / "cluster.json").write_text(json.dumps(asdict(ep)))
        self.pki = certs.generate(self.state / "pki", SERVICE_IP, NODE_HOST, NODE_NAME)
        self._write_kubeconfigs()
        deadline = time.monotonic() + timeout
        try:
            for component in COMPONENTS:
                self.procs[component] = process.start(component, self._argv(component), self.state)
                self._wait_healthy(component, deadline)
        except BaseException:
            self.stop()
            raise

    def _clear(self) -> None:
        """Every start is a fresh cluster: drop an earlier run's data, certificates, pods and logs."""
        self.state.mkdir(parents=True, exist_ok=True)
        for name in ("etcd", "pki", "pods", "logs", "pids", "apiserver-certs", "controller-manager-certs"):
            shutil.rmtree(self.state / name, ignore_errors=True)

    def stop(self) -> None:
        for component in reversed(COMPONENTS):
            process.stop(component, self.state, self.procs.pop(component, None))

    def running(self) -> dict[str, int | None]:
        return {c: process.pid_of(c, self.state) for c in COMPONENTS}

    def restart(self, component: str, timeout: float = 60.0) -> None:
        """Stop one component and start it again on the same data and ports (a chaos test's fault)."""
        process.stop(component, self.state, self.procs.pop(component, None))
        self.procs[component] = process.start(component, self._argv(component), self.state)
        self._wait_healthy(component, time.monotonic() + timeout)

    def logs(self, lines: int = 40) -> str:
        """The tail of every component's log, for a failed test or a human."""
        names = [*COMPONENTS, *sorted(p.stem for p in (self.state / "logs").glob("*.log") if p.stem not in COMPONENTS)]
        return "\n".join(f"===== {n} (last {lines} lines) =====\n{process.log_tail(n, self.state, lines)}" for n in names)

    def _write_kubeconfigs(self) -> None:
        assert self.pki and self.endpoints
        ca = self.pki.server_ca.cert_pem()
        url = self.endpoints.api_url
        for path, pair in (
            (self.kubeconfig, self.pki.admin),
            (self.state / "controller-manager.kubeconfig", self.pki.controller_manager),
            (self.state / "scheduler.kubeconfig", self.pki.scheduler),
        ):
            kubeconfig.write(path, url, ca, kubeconfig.cert_user(pair.cert_pem(), pair.key_pem()))

    def _argv(self, component: str) -> list[str]:
        assert self.pki and self.endpoints
        ep, pki, state = self.endpoints, self.pki, self.state
        exe = str(binaries.binary(component))
        if component == "etcd":
            peer = f"http://127.0.0.1:{ep.etcd_peer}"
            client = f"http://127.0.0.1:{ep.etcd_client}"
            return [
                exe, "--name=local", f"--data-dir={state / 'etcd'}",
                f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=local={peer}", "--unsafe-no-fsync=true", "--log-level=warn",
            ]
        if component == "kube-apiserver":
            return [
                exe,
                f"--etcd-servers=http://127.0.0.1:{ep.etcd_client}",
                # with a node: its bridge address, so the `kubernetes` Service's endpoint is reachable from pods
                f"--bind-address={ep.host}", f"--advertise-address={ep.host}", f"--secure-port={ep.apiserver}",
                f"--cert-dir={state / 'apiserver-certs'}",
                f"--tls-cert-file={pki.apiserver.cert}", f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.client_ca.cert}",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
                f"--requestheader-allowed-names={certs.FRONT_PROXY_CLIENT}",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
                f"--proxy-client-key-file={pki.front_proxy_client.key}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                f"--kubelet-client-certificate={pki.apiserver_kubelet_client.cert}",
                f"--kubelet-client-key={pki.apiserver_kubelet_client.key}",
                f"--kubelet-certificate-authority={pki.server_ca.cert}",
                "--kubelet-preferred-address-types=InternalIP",
                # alone on loopback, the `kubernetes` Service would point at 127.0.0.1, which Endpoints reject
                *(["--endpoint-reconciler-type=none"] if ep.host == "127.0.0.1" else []),
                "--profiling=false",
                "--v=1",
            ]
        kube = state / ("controller-manager.kubeconfig" if component == "kube-controller-manager" else "scheduler.kubeconfig")
        port = ep.controller_manager if component == "kube-controller-manager" else ep.scheduler
        common = [
            exe, f"--kubeconfig={kube}", f"--authentication-kubeconfig={kube}", f"--authorization-kubeconfig={kube}",
            "--bind-address=127.0.0.1", f"--secure-port={port}", "--leader-elect=false", "--v=1",
        ]
        if component == "kube-scheduler":
            return common
        return [
            *common,
            f"--cert-dir={state / 'controller-manager-certs'}",
            "--controllers=*",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.server_ca.cert}",
            f"--cluster-signing-cert-file={pki.client_ca.cert}",
            f"--cluster-signing-key-file={pki.client_ca.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allocate-node-cidrs=false",
        ]

    def _health_url(self, component: str) -> tuple[str, ssl.SSLContext | None]:
        ep = self.load_endpoints()
        if component == "etcd":
            return f"http://127.0.0.1:{ep.etcd_client}/health", None
        if component == "kube-apiserver":
            return f"{ep.api_url}/readyz", self.admin_context()
        # self-signed serving certs of their own, on loopback; /healthz needs no credentials
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        port = ep.controller_manager if component == "kube-controller-manager" else ep.scheduler
        return f"https://127.0.0.1:{port}/healthz", insecure

    def _wait_healthy(self, component: str, deadline: float) -> None:
        url, context = self._health_url(component)
        proc = self.procs.get(component)
        body = ""
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                break
            status, body = _get(url, context)
            if status == 200:
                return
            time.sleep(0.25)
        raise StartupFailed(
            f"{component} did not become healthy at {url} (last answer: {body[:300]!r})\n"
            f"{process.log_tail(component, self.state, 60)}"
        )
