"""Operator settings from the environment, prefix PIXCRAWLER_ (the README's table lists them all)."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chunk_worker import AGENT_TOKEN

MIB = 1024 * 1024


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXCRAWLER_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "pc:"
    redis_password: str = Field("", description="Redis password, kept out of the URL.")
    max_concurrent_chunks: int = Field(35, ge=0, description="Cluster-wide quota of running chunks.")
    storage: str = Field("file:///var/lib/pixcrawler/datasets",
                         description="Default output: azure://<container> or file:///<dir>.")
    allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="CIDRs workers may fetch from although not public (passed on to workers).")
    worker_image: str = "pixcrawler/worker:0.1.0"
    worker_command: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["python", "-m", "chunk_worker"], description="Entry point of the worker image.")
    worker_service_account: str = "pixcrawler-worker"
    worker_env_secret: str = Field("", description="Secret whose keys become worker env (e.g. the storage connection string).")
    worker_redis_password_secret: str = Field(
        "", description="<secret>/<key> holding the Redis password for workers (never written into Job specs).")
    search_credentials_secret: str = Field(
        "", description="Secret (in each DatasetJob's namespace) holding search provider keys; chunk Jobs get the "
        "keys listed in search_credential_keys through secretKeyRef, never as literals.")
    search_credential_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Keys that Secret holds: flickr-api-key, smithsonian-api-key, "
        "openverse-client-id, openverse-client-secret. A provider that needs a key not listed fails its "
        "DatasetJob with InvalidSpec.")
    search_key_endpoints: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="API base URLs besides each provider's own that may receive its keys "
        "(passed on to workers); a keyed search whose endpoint is not listed is refused.")
    search_rates: str = Field("", description="Per-provider request rates for workers, provider=requests per "
                              "second,... (passed on; empty: each provider's documented rate).")
    worker_pod_labels: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="Extra labels on worker pods, k=v,k2=v2 (e.g. azure.workload.identity/use=true).")
    worker_cpu_request: str = "250m"
    worker_memory_request: str = "256Mi"
    worker_memory_limit: str = Field("2Gi", description="The worker's decode budget is what this leaves after "
                                     "the process and its threads' download buffers (see README, memory).")
    worker_ephemeral_storage_request: str = "300Mi"
    worker_ephemeral_storage_limit: str = "2Gi"
    worker_fetch_threads: int = Field(32, ge=1)
    worker_user_agent_token: str = Field(
        AGENT_TOKEN, pattern=r"^[A-Za-z_-]+$", max_length=64,
        description="Workers' product token: their User-Agent starts with it; robots.txt groups naming it apply.")
    chunk_deadline_seconds: int = Field(3600, ge=60, description="activeDeadlineSeconds of a chunk's Job.")
    job_ttl_seconds: int = Field(600, ge=0, description="ttlSecondsAfterFinished of a chunk's Job.")
    namespace: str = Field("", description="Namespace to watch; empty = all namespaces.")
    lease_namespace: str = "default"
    lease_name: str = "pixcrawler-operator"
    lease_duration_seconds: float = 15.0
    lease_renew_deadline_seconds: float = 10.0
    lease_retry_seconds: float = 2.0
    identity: str = Field("", description="Leader-election identity (default: host name and pid).")
    scheduler_interval_seconds: float = Field(1.0, gt=0)
    redis_step_down_seconds: float = Field(
        30.0, gt=0, description="A leader whose scheduler has not reached Redis for this long gives up the "
        "Lease, so an operator that can reach Redis leads (one that cannot never competes for it).")
    status_interval_seconds: float = Field(3.0, gt=0, description="At most one status write per job per interval.")
    admit_deadline_seconds: float = Field(120.0, gt=0, description="A claimed chunk without a Job by then is requeued.")
    max_wait_seconds: float = Field(1800.0, gt=0, description="A job with no chunk admitted for this long gets "
                                                                "one chunk promoted above every tier.")
    stuck_pod_grace_seconds: float = Field(
        120.0, gt=0, description="A chunk pod that cannot be created, pulled or started this long is given up: "
        "its Job deleted, the attempt failed (retried by the retry policy).")
    unschedulable_grace_seconds: float = Field(
        600.0, gt=0, description="Likewise for a chunk pod no node can take (time for a cluster autoscaler).")
    retry_base_seconds: float = Field(10.0, ge=0)
    retry_max_seconds: float = Field(600.0, ge=0)
    chunk_disk_bytes: int = Field(300 * MIB, ge=1, description="Disk one running chunk needs (~250 MiB + margin).")
    chunk_memory_bytes: int = Field(2048 * MIB, ge=1, description="Memory one running chunk may take on a node: "
                                    "the worker's memory limit, so admission never overcommits a node.")
    node_disk_reserve_bytes: int = Field(2048 * MIB, ge=0)
    node_memory_reserve_bytes: int = Field(1024 * MIB, ge=0)
    node_report_max_age_seconds: float = Field(60.0, gt=0)
    local_disk_path: str = Field("/", description="File system measured when no node report is fresh.")
    health_stale_seconds: float = Field(60.0, gt=0, description="/healthz fails when the scheduler has not cycled for this long.")
    http_port: int = Field(8080, ge=0, description="/healthz, /readyz and /metrics.")
    redis_delete_attempts: int = Field(5, ge=1, description="Tries to clean Redis on delete before giving up.")

    @field_validator("worker_pod_labels", mode="before")
    @classmethod
    def _labels(cls, value: object) -> object:
        if isinstance(value, str):
            pairs = [part.strip() for part in value.split(",") if part.strip()]
            if any("=" not in pair for pair in pairs):
                raise ValueError("worker_pod_labels: expected k=v,k2=v2")
            return dict(pair.split("=", 1) for pair in pairs)
        return value

    @field_validator("worker_redis_password_secret")
    @classmethod
    def _secret_ref(cls, value: str) -> str:
        if value and value.count("/") != 1:
            raise ValueError("worker_redis_password_secret: expected <secret name>/<key>")
        return value

    @field_validator("search_credential_keys")
    @classmethod
    def _known_keys(cls, value: list[str]) -> list[str]:
        from chunk_worker.provider_catalog import credential_keys

        known = credential_keys()
        unknown = [key for key in value if key not in known]
        if unknown:
            raise ValueError(f"search_credential_keys: unknown key(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        return value

    @field_validator("search_rates")
    @classmethod
    def _rates(cls, value: str) -> str:
        """Checked here as the workers will read it, so a typo stops the operator, not every chunk."""
        from chunk_worker.settings import WorkerSettings

        if value:
            WorkerSettings(search_rates=value)
        return value

    @field_validator("allow_networks", "worker_command", "search_credential_keys", "search_key_endpoints",
                     mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """Comma- or space-separated; a JSON list keeps arguments that hold spaces (a `sh -c` script)."""
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value
