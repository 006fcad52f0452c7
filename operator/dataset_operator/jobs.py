"""The Kubernetes Job that runs one chunk, built as a plain dict (pure; the scheduler creates it)."""

from __future__ import annotations

import hashlib
from typing import Any

from chunk_worker.contract import ExitCode
from dataset_operator.settings import OperatorSettings

GROUP = "pixcrawler.io"
VERSION = "v1alpha1"
PLURAL = "datasetjobs"
MANAGED_BY = "pixcrawler-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_JOB = f"{GROUP}/job"
LABEL_JOB_UID = f"{GROUP}/job-uid"
LABEL_CHUNK = f"{GROUP}/chunk"
LABEL_TIER = f"{GROUP}/tier"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_ROLE = f"{GROUP}/role"
ROLE_FINALIZE = "finalize"
ROLE_COUNT_LISTS = "count-lists"
ANNOTATION_CHUNK_ID = f"{GROUP}/chunk-id"
CONTAINER = "worker"
SCRATCH = "/scratch"
MAX_NAME = 63


def job_name(dataset: str, uid: str, index: int, attempt: int) -> str:
    """Deterministic, so creating it twice is harmless (409). A piece of the DatasetJob's uid keeps a
    recreated DatasetJob of the same name from colliding with its predecessor's Jobs; long names keep
    a hash of the full name."""
    return _bounded_name(dataset, f"-{uid[:5]}-{index:05d}-a{attempt}")


def finalize_job_name(dataset: str, uid: str, attempt: int) -> str:
    return _bounded_name(dataset, f"-{uid[:5]}-final-a{attempt}")


def count_lists_job_name(dataset: str, uid: str, attempt: int) -> str:
    return _bounded_name(dataset, f"-{uid[:5]}-lists-a{attempt}")


def _bounded_name(dataset: str, suffix: str) -> str:
    name = f"{dataset}{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(dataset.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest) - 1
    return f"{dataset[:keep].rstrip('-.')}-{digest}{suffix}"


def chunk_of(job: dict[str, Any]) -> tuple[str | None, int]:
    """The chunk id and attempt a listed Job runs (None for Jobs that run no chunk)."""
    meta = job.get("metadata") or {}
    member = (meta.get("annotations") or {}).get(ANNOTATION_CHUNK_ID)
    attempt = int((meta.get("labels") or {}).get(LABEL_ATTEMPT, "0"))
    return member, attempt


def job_labels(dataset: str, uid: str, tier: str, attempt: int) -> dict[str, str]:
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_JOB: dataset[:63].rstrip("-._"),  # a label value must end alphanumeric
        LABEL_JOB_UID: uid,
        LABEL_TIER: tier,
        LABEL_ATTEMPT: str(attempt),
    }


def chunk_labels(dataset: str, uid: str, tier: str, index: int, attempt: int) -> dict[str, str]:
    return {**job_labels(dataset, uid, tier, attempt), LABEL_CHUNK: str(index)}


def worker_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    env = [
        {"name": "PIXCRAWLER_REDIS_URL", "value": settings.redis_url},
        {"name": "PIXCRAWLER_REDIS_PREFIX", "value": settings.redis_prefix},
        {"name": "PIXCRAWLER_ALLOW_NETWORKS", "value": ",".join(settings.allow_networks)},
        {"name": "PIXCRAWLER_FETCH_THREADS", "value": str(settings.worker_fetch_threads)},
        {"name": "PIXCRAWLER_USER_AGENT_TOKEN", "value": settings.worker_user_agent_token},
        {"name": "PIXCRAWLER_TMP_DIR", "value": SCRATCH},
        {"name": "HOSTNAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    env.extend(search_env(settings))
    if settings.worker_redis_password_secret:
        name, key = settings.worker_redis_password_secret.split("/")
        env.append({"name": "PIXCRAWLER_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}})
    return env


def search_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    """Search provider keys by secretKeyRef (the Job spec never holds one), the endpoints that may
    receive them and the rate overrides."""
    from chunk_worker.provider_catalog import credential_keys

    known = credential_keys()
    env: list[dict[str, Any]] = []
    if settings.search_credentials_secret:
        env.extend({"name": known[key].env, "valueFrom": {"secretKeyRef": {
            "name": settings.search_credentials_secret, "key": key}}} for key in settings.search_credential_keys)
    if settings.search_key_endpoints:
        env.append({"name": "PIXCRAWLER_SEARCH_KEY_ENDPOINTS", "value": ",".join(settings.search_key_endpoints)})
    if settings.search_rates:
        env.append({"name": "PIXCRAWLER_SEARCH_RATES", "value": settings.search_rates})
    return env


def build_job(
    *,
    dataset: str,
    namespace: str,
    uid: str,
    tier: str,
    chunk_id: str,
    index: int,
    attempt: int,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The Job of one chunk: `run --chunk-id`, the spec read from Redis."""
    return _worker_job(
        name=job_name(dataset, uid, index, attempt), dataset=dataset, namespace=namespace, uid=uid,
        labels=chunk_labels(dataset, uid, tier, index, attempt), annotations={ANNOTATION_CHUNK_ID: chunk_id},
        args=["run", "--chunk-id", chunk_id, "--progress", "none", "--log-format", "json"],
        env=worker_env(settings), settings=settings)


def build_finalize_job(*, dataset: str, namespace: str, uid: str, tier: str, attempt: int, spec_json: str,
                       settings: OperatorSettings) -> dict[str, Any]:
    """The one Job that turns a job's manifests into the index, the split metadata and the card, run
    from the worker image once every chunk has settled. It needs storage, not Redis."""
    env = [entry for entry in worker_env(settings)
           if not entry["name"].startswith(("PIXCRAWLER_REDIS", "PIXCRAWLER_SEARCH"))]
    return _role_job(ROLE_FINALIZE, finalize_job_name(dataset, uid, attempt), ["finalize", "--spec-json", spec_json],
                     env, dataset=dataset, namespace=namespace, uid=uid, tier=tier, attempt=attempt, settings=settings)


def build_count_lists_job(*, dataset: str, namespace: str, uid: str, tier: str, attempt: int, spec_json: str,
                          settings: OperatorSettings) -> dict[str, Any]:
    """The Job that counts a job's URL lists before it is planned (the operator never fetches a
    user-given URL itself): the worker image's fetcher under the workers' network policy, writing the
    lists as pages to the job's output (the storage credentials come with the worker env Secret, as for
    every worker Job) and answering in Redis."""
    return _role_job(ROLE_COUNT_LISTS, count_lists_job_name(dataset, uid, attempt),
                     ["count-lists", "--job-uid", uid, "--spec-json", spec_json], worker_env(settings),
                     dataset=dataset, namespace=namespace, uid=uid, tier=tier, attempt=attempt, settings=settings)


def _role_job(role: str, name: str, args: list[str], env: list[dict[str, Any]], *, dataset: str, namespace: str,
              uid: str, tier: str, attempt: int, settings: OperatorSettings) -> dict[str, Any]:
    """A job's single Job of one role (it runs no chunk, so no chunk label or annotation)."""
    return _worker_job(name=name, dataset=dataset, namespace=namespace, uid=uid,
                       labels={**job_labels(dataset, uid, tier, attempt), LABEL_ROLE: role}, annotations={},
                       args=[*args, "--log-format", "json"], env=env, settings=settings)


def _worker_job(
    *,
    name: str,
    dataset: str,
    namespace: str,
    uid: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    args: list[str],
    env: list[dict[str, Any]],
    settings: OperatorSettings,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.worker_image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(settings.worker_command),
        "terminationMessagePolicy": "FallbackToLogsOnError",  # a failed worker's last lines reach the status
        "args": args,
        "env": env,
        "resources": {
            "requests": {
                "cpu": settings.worker_cpu_request,
                "memory": settings.worker_memory_request,
                "ephemeral-storage": settings.worker_ephemeral_storage_request,
            },
            "limits": {
                "memory": settings.worker_memory_limit,
                "ephemeral-storage": settings.worker_ephemeral_storage_limit,
            },
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
    }
    if settings.worker_env_secret:
        container["envFrom"] = [{"secretRef": {"name": settings.worker_env_secret}}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DatasetJob",
                "name": dataset,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": settings.chunk_deadline_seconds,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            "podFailurePolicy": {
                "rules": [
                    {"action": "FailJob",
                     "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                     "values": [int(ExitCode.PERMANENT)]}},
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {
                "metadata": {"labels": {**settings.worker_pod_labels, **labels}, "annotations": annotations},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.worker_service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "scratch",
                                 "emptyDir": {"sizeLimit": settings.worker_ephemeral_storage_limit}}],
                },
            },
        },
    }
