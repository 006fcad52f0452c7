"""A stand-in for the kubelet and the container runtime: pods bound to its Node run as local processes.

It registers a Node (capacity, Ready condition, heartbeats through a Lease and status updates), so the real
kube-scheduler binds pods to it; it runs each bound pod's first container (command + args + env, image
ignored) with the repo's Python environment first on PATH; it reports Running, then Succeeded/Failed with
the real exit code in containerStatuses, so the real Job controller finishes Jobs and applies
podFailurePolicy; and when a pod gets a deletionTimestamp it stops the process (SIGTERM, then SIGKILL after
the grace period) and deletes the pod, as the kubelet does. Limits: one container per pod (init and sidecar
containers are ignored), restartPolicy is treated as Never, only emptyDir volumes (as per-pod directories),
no probes, no `kubectl logs`/`exec` (a pod's output is in <work dir>/<namespace>_<pod>/output.log).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

log = logging.getLogger("noderunner")
STRATEGIC = "application/strategic-merge-patch+json"
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
VENV_BIN = Path(sys.executable).parent
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
TERMINAL = ("Succeeded", "Failed")
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def exit_code(returncode: int) -> int:
    """A container's exit code: a process killed by signal N exits 128+N, as under a container runtime."""
    return 128 - returncode if returncode < 0 else returncode


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names are replaced, unknown references are kept as written."""
    return VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), value)


def rebase(value: str, mounts: dict[str, Path]) -> str:
    """Point a path under an emptyDir mountPath (e.g. /scratch/x) at the pod's real directory."""
    for mount_path, real in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
            return str(real) + value[len(mount_path.rstrip("/")):]
    return value


def terminated_status(
    container: str, code: int, started: str, reason: str | None = None, disrupted: bool = False
) -> dict:
    """The status a kubelet writes for a finished single-container pod (what podFailurePolicy reads).
    `disrupted`: the node stopped it (a DisruptionTarget condition, which podFailurePolicy can Ignore)."""
    phase = "Succeeded" if code == 0 else "Failed"
    reason = reason or ("Completed" if code == 0 else "Error")
    conditions = [
        {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now()},
        {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now()},
    ]
    if disrupted:
        conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                           "message": "the node runner is shutting down", "lastTransitionTime": now()})
    return {
        "phase": phase,
        "conditions": conditions,
        "containerStatuses": [
            {
                "name": container, "image": "noderunner", "imageID": "", "ready": False, "started": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now()}},
            }
        ],
    }


def running_status(container: str, started: str, pid: int) -> dict:
    ready = [{"type": t, "status": "True", "lastTransitionTime": started} for t in ("Initialized", "ContainersReady", "Ready")]
    return {
        "phase": "Running",
        "startTime": started,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "conditions": ready,
        "containerStatuses": [
            {
                "name": container, "image": "noderunner", "imageID": "", "containerID": f"noderunner://{pid}",
                "ready": True, "started": True, "restartCount": 0, "state": {"running": {"startedAt": started}},
            }
        ],
    }


@dataclass
class RunningPod:
    namespace: str
    name: str
    uid: str
    container: str
    proc: subprocess.Popen | None = None
    started: str = ""
    grace: int = 30
    stopping: threading.Event = field(default_factory=threading.Event)
    disrupted: bool = False
    thread: threading.Thread | None = None


class NodeRunner:
    def __init__(self, api: client.ApiClient, node: str, work_dir: Path, cpu: str, memory: str, pods: str):
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.node = node
        self.work_dir = work_dir
        self.capacity = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
        self.pods: dict[str, RunningPod] = {}
        self.finished: set[str] = set()  # uids already run: a late event must never start them again
        self.lock = threading.Lock()
        self.done = threading.Event()

    # ---- the Node and its heartbeats
    def register(self) -> None:
        body = {
            "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux",
                                                       "pixcrawler.io/node-runner": "true"}},
            "spec": {},
        }
        try:
            self.core.create_node(body)
        except ApiException as err:
            if err.status != 409:
                raise
        self.heartbeat()

    def heartbeat(self) -> None:
        stamp = now()
        status = {
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.node}],
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "node runner is running",
                 "lastHeartbeatTime": stamp, "lastTransitionTime": stamp},
                *({"type": t, "status": "False", "reason": f"KubeletHas{r}", "lastHeartbeatTime": stamp,
                   "lastTransitionTime": stamp}
                  for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"),
                               ("PIDPressure", "SufficientPID"))),
            ],
            "nodeInfo": {"kubeletVersion": "noderunner", "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "noderunner://0", "kernelVersion": os.uname().release,
                         "osImage": "local processes", "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                         "bootID": ""},
        }
        self.core.patch_node_status(self.node, {"status": status}, _content_type=STRATEGIC)
        self._renew_lease()

    def _renew_lease(self) -> None:
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        try:
            self.coordination.patch_namespaced_lease(self.node, "kube-node-lease", {"spec": spec},
                                                     _content_type="application/merge-patch+json")
        except ApiException as err:
            if err.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", {"metadata": {"name": self.node}, "spec": spec})

    def heartbeat_loop(self) -> None:
        while not self.done.wait(HEARTBEAT_SECONDS):
            try:
                self.heartbeat()
            except Exception:  # noqa: BLE001 - a missed beat is retried; the runner must keep running
                log.exception("heartbeat failed")

    # ---- pods
    def watch_pods(self) -> None:
        """List then watch the pods bound to this node, relisting when the watch expires."""
        selector = f"spec.nodeName={self.node}"
        while not self.done.is_set():
            try:
                listing = self.core.list_pod_for_all_namespaces(field_selector=selector)
                for pod in listing.items:
                    self.on_pod(pod)
                version = listing.metadata.resource_version
                for event in watch.Watch().stream(self.core.list_pod_for_all_namespaces, field_selector=selector,
                                                  resource_version=version, timeout_seconds=300,
                                                  allow_watch_bookmarks=True):
                    if self.done.is_set():
                        return
                    if event["type"] == "DELETED":
                        self.on_deleted(event["object"])
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self.on_pod(event["object"])
            except ApiException as err:
                if err.status != 410:
                    log.warning("pod watch failed: %s", err)
                    self.done.wait(1)
            except Exception:  # noqa: BLE001 - reconnect on any transport error
                log.exception("pod watch broke; relisting")
                self.done.wait(1)

    def on_pod(self, pod: client.V1Pod) -> None:
        uid = pod.metadata.uid
        with self.lock:
            known = self.pods.get(uid)
            fresh = uid not in self.finished and pod.status.phase not in TERMINAL
            if known is None and fresh and pod.metadata.deletion_timestamp is None:
                container = pod.spec.containers[0].name
                known = self.pods[uid] = RunningPod(pod.metadata.namespace, pod.metadata.name, uid, container,
                                                    grace=pod.spec.termination_grace_period_seconds or 0)
                # a Running pod we never started ran under an earlier runner: its process is gone
                target, args = (self._lost, (known,)) if pod.status.phase == "Running" else (self._run, (known, pod))
                known.thread = threading.Thread(target=target, args=args, daemon=True)
                known.thread.start()
                return
        if pod.metadata.deletion_timestamp is not None:
            if known is not None:
                if pod.metadata.deletion_grace_period_seconds is not None:
                    known.grace = pod.metadata.deletion_grace_period_seconds
                self._stop(known)
            else:
                self._delete_now(pod.metadata.namespace, pod.metadata.name, uid)

    def on_deleted(self, pod: client.V1Pod) -> None:
        with self.lock:
            known = self.pods.get(pod.metadata.uid)
        if known is not None:
            known.grace = 0
            self._stop(known)

    def _stop(self, running: RunningPod) -> None:
        if running.stopping.is_set():
            return
        running.stopping.set()
        threading.Thread(target=self._kill, args=(running,), daemon=True).start()

    def _kill(self, running: RunningPod) -> None:
        proc = running.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=max(running.grace, 0))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _lost(self, running: RunningPod) -> None:
        self._report(running, terminated_status(running.container, 137, now(), reason="ContainerLost"))
        self._forget(running)

    def _run(self, running: RunningPod, pod: client.V1Pod) -> None:
        code, reason = 128, "StartError"
        running.started = now()
        try:
            argv, env, cwd, log_path = self.prepare(pod)
            with open(log_path, "ab") as out:
                if running.stopping.is_set():
                    raise OSError("pod deleted before it started")
                running.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)
            if running.stopping.is_set():
                self._kill(running)
            self._report(running, running_status(running.container, running.started, running.proc.pid))
            code, reason = exit_code(running.proc.wait()), None
        except (OSError, ValueError, KeyError, ApiException) as err:
            log.warning("pod %s/%s could not start: %s", running.namespace, running.name, err)
        self._report(running, terminated_status(running.container, code, running.started, reason, running.disrupted))
        self._forget(running)

    def _forget(self, running: RunningPod) -> None:
        if running.stopping.is_set():
            self._delete_now(running.namespace, running.name, running.uid)
        with self.lock:
            self.pods.pop(running.uid, None)
            self.finished.add(running.uid)
        shutil.rmtree(self.work_dir / f"{running.namespace}_{running.name}" / "volumes", ignore_errors=True)

    def _report(self, running: RunningPod, status: dict) -> None:
        body = {"metadata": {"uid": running.uid}, "status": status}
        try:
            self.core.patch_namespaced_pod_status(running.name, running.namespace, body, _content_type=STRATEGIC)
        except ApiException as err:
            if err.status not in (404, 409, 422):
                log.warning("status of %s/%s not written: %s", running.namespace, running.name, err)

    def _delete_now(self, namespace: str, name: str, uid: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0,
                                            body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}})
        except ApiException as err:
            if err.status not in (404, 409):
                log.warning("pod %s/%s not deleted: %s", namespace, name, err)

    # ---- turning a pod spec into a process
    def prepare(self, pod: client.V1Pod) -> tuple[list[str], dict[str, str], str, Path]:
        """argv, environment, working directory and output file of the pod's first container."""
        ns, name = pod.metadata.namespace, pod.metadata.name
        container = pod.spec.containers[0]
        pod_dir = self.work_dir / f"{ns}_{name}"
        mounts = {}
        empty_dirs = {v.name for v in pod.spec.volumes or [] if v.empty_dir is not None}
        for mount in container.volume_mounts or []:
            if mount.name in empty_dirs:
                real = pod_dir / "volumes" / mount.name
                real.mkdir(parents=True, exist_ok=True)
                mounts[mount.mount_path] = real
        pod_dir.mkdir(parents=True, exist_ok=True)
        env = {"PATH": f"{VENV_BIN}:{BASE_PATH}", "HOME": str(pod_dir), "HOSTNAME": name,
               "LANG": os.environ.get("LANG", "C.UTF-8")}
        for source in container.env_from or []:
            data = self._source_data(ns, source.config_map_ref, source.secret_ref)
            env.update({f"{source.prefix or ''}{k}": v for k, v in data.items()})
        for var in container.env or []:
            value = self._value_from(pod, var.value_from) if var.value_from else expand(var.value or "", env)
            if value is not None:
                env[var.name] = rebase(value, mounts)
        argv = [rebase(expand(a, env), mounts) for a in [*(container.command or []), *(container.args or [])]]
        if not container.command:
            raise ValueError("the node runner needs an explicit command (it ignores the image's entrypoint)")
        if not os.path.isabs(argv[0]):
            argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        cwd = rebase(container.working_dir, mounts) if container.working_dir else str(pod_dir)
        return argv, env, cwd, pod_dir / "output.log"

    def _value_from(self, pod: client.V1Pod, source: client.V1EnvVarSource) -> str | None:
        if source.field_ref is not None:
            paths = {"metadata.name": pod.metadata.name, "metadata.namespace": pod.metadata.namespace,
                     "metadata.uid": pod.metadata.uid, "spec.nodeName": self.node,
                     "spec.serviceAccountName": pod.spec.service_account_name, "status.podIP": "127.0.0.1",
                     "status.hostIP": "127.0.0.1"}
            return paths.get(source.field_ref.field_path)
        ref = source.config_map_key_ref or source.secret_key_ref
        if ref is None:
            return None
        data = self._source_data(pod.metadata.namespace, source.config_map_key_ref, source.secret_key_ref)
        if ref.key not in data and not ref.optional:
            raise KeyError(f"{ref.name} has no key {ref.key}")
        return data.get(ref.key)

    def _source_data(self, namespace: str, config_map_ref, secret_ref) -> dict[str, str]:
        ref = config_map_ref or secret_ref
        try:
            if config_map_ref is not None:
                return dict(self.core.read_namespaced_config_map(ref.name, namespace).data or {})
            secret = self.core.read_namespaced_secret(ref.name, namespace)
            return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        except ApiException as err:
            if err.status == 404 and ref.optional:
                return {}
            raise

    # ---- lifecycle
    def run(self) -> None:
        self.register()
        threading.Thread(target=self.heartbeat_loop, daemon=True).start()
        self.watch_pods()

    def shutdown(self) -> None:
        """Stop every pod's process as a node going down (at most 5 s of grace), report them Failed with a
        DisruptionTarget condition, and stop the loops."""
        self.done.set()
        with self.lock:
            running = list(self.pods.values())
        for pod in running:
            pod.grace = min(pod.grace, 5)
            pod.disrupted = True
            threading.Thread(target=self._kill, args=(pod,), daemon=True).start()
        for pod in running:
            if pod.thread is not None:
                pod.thread.join(timeout=15)


def machine_memory() -> str:
    return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**20}Mi"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localcluster.noderunner", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--node-name", default="pixcrawler-node")
    parser.add_argument("--work-dir", required=True, type=Path)
    parser.add_argument("--cpu", default=str(os.cpu_count() or 2))
    parser.add_argument("--memory", default=machine_memory())
    parser.add_argument("--pods", default="110")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = NodeRunner(config.new_client_from_config(args.kubeconfig), args.node_name, args.work_dir,
                        args.cpu, args.memory, args.pods)

    def on_term(signum, frame):
        runner.shutdown()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log.info("node %s: running pods from %s", args.node_name, args.kubeconfig)
    runner.run()


if __name__ == "__main__":
    main()
