"""The operator process: serve health and metrics, wait for the Lease, then run kopf's handlers,
the scheduler, the status writer and the lease renewal side by side. Losing the Lease stops all
of them and exits non-zero, so Kubernetes restarts the process as a standby."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import kopf
import redis.asyncio as aioredis
from aiohttp import web
from kubernetes_asyncio import client, config
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chunk_worker import __version__, logs
from chunk_worker.contract import Keys
from dataset_operator import metrics
from dataset_operator.handlers import FINALIZER, Context, registry
from dataset_operator.job_watch import JobWatch
from dataset_operator.leader import LeaderElector, LeadershipLost
from dataset_operator.list_counting import ListCounter
from dataset_operator.planner import Planner
from dataset_operator.planning import Planning
from dataset_operator.pod_inspector import PodInspector
from dataset_operator.pod_watch import PodWatch
from dataset_operator.queue import ChunkQueue
from dataset_operator.registry import Registry
from dataset_operator.scheduler import Scheduler
from dataset_operator.settings import OperatorSettings
from dataset_operator.status_writer import StatusWriter

log = logging.getLogger("dataset_operator")
REDIS_CONNECTIONS = 48  # a burst waits for a free connection instead of failing
KOPF_API_CONNECTIONS = 32  # kopf's watches and patches; a busy worker past them waits for one
USER_AGENT = f"pixcrawler-operator/{__version__}"  # the API server names managedFields entries after it


@kopf.on.login(registry=registry)
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's own session opens one API connection per busy worker, without limit; this one shares a
    bounded pool. Its User-Agent is the status writer's too, so the API server keeps one managedFields
    entry for the status they both write, not one each in every DatasetJob."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        info = kopf.login_with_service_account(**kwargs)
    else:
        info = kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=KOPF_API_CONNECTIONS, ssl=info.as_ssl_context()),
        headers={**info.as_http_headers(), "User-Agent": USER_AGENT}, proxy=info.proxy_url, trust_env=info.trust_env)
    return kopf.AiohttpSession(aiohttp_session=session, server=info.server, default_namespace=info.default_namespace,
                               priority=info.priority, expiration=info.expiration)


class Health:
    """/healthz fails when the leader's scheduler has not finished a cycle for too long."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.scheduler: Scheduler | None = None
        self.started = time.monotonic()

    def healthy(self) -> tuple[bool, str]:
        if self.scheduler is None:
            return True, "standby"
        last = self.scheduler.last_cycle or self.started
        age = time.monotonic() - last
        if age > self.settings.health_stale_seconds:
            return False, f"scheduler has not completed a cycle for {age:.0f}s"
        return True, f"leader; last scheduler cycle {age:.1f}s ago"

    async def healthz(self, _: web.Request) -> web.Response:
        ok, message = self.healthy()
        return web.Response(status=200 if ok else 503, text=message + "\n")

    async def readyz(self, _: web.Request) -> web.Response:
        return web.Response(text="ready\n")

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self, port: int) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "0.0.0.0", port).start()
        return runner


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf runs no create or update handler here (planning.py follows the spec), so it needs no
    diff base; its default writes the whole spec into an annotation of every DatasetJob, one more
    write and watch event each."""

    def fetch(self, *, body: kopf.Body) -> None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    configured = kopf.OperatorSettings()
    configured.persistence.finalizer = FINALIZER
    configured.persistence.diffbase_storage = NoDiffBase()
    configured.watching.server_timeout = 300
    configured.watching.client_timeout = 330
    configured.watching.connect_timeout = 30
    configured.networking.request_timeout = 60
    configured.execution.max_workers = 8
    # kopf runs one worker per object, and events of objects waiting for a worker slot wait in memory
    # as whole bodies. A worker keeps its slot idle_timeout after its last event, so the limit caps kopf
    # at limit/idle_timeout objects a second. Connections are bounded apart (the login's session), so
    # the limit costs no API connection (bench/operator_rss.py at 10,000 jobs: 32 workers on kopf's own
    # unbounded session, 68 connections and 354 MiB; 128 on 32 connections, 37 and 329 MiB).
    configured.queueing.worker_limit = 128
    configured.queueing.idle_timeout = 0.05
    configured.posting.level = logging.INFO
    configured.peering.standalone = True
    return configured


async def load_kubernetes(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig or os.environ.get("KUBECONFIG") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        await config.load_kube_config(config_file=kubeconfig)
    else:
        config.load_incluster_config()
    api = client.ApiClient()
    api.user_agent = USER_AGENT
    return api


async def until_redis_answers(action: Callable[[], Awaitable[object]], what: str) -> None:
    delay = 1.0
    while True:
        try:
            await action()
            return
        except aioredis.RedisError as exc:
            log.warning("Redis not reachable %s (%s); retrying in %.0fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15)


async def within_the_term(step: Awaitable[object], lease: asyncio.Task[Any]) -> None:
    """Waits for `step` unless the term ends first: then it is cancelled and the lease's end raised."""
    waiting = asyncio.ensure_future(step)
    await asyncio.wait([waiting, lease], return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        waiting.cancel()
        raise lease.exception() or LeadershipLost("the lease task ended")


async def run(settings: OperatorSettings, kubeconfig: str | None = None) -> int:
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # not a line per handler run
    api = await load_kubernetes(kubeconfig)
    redis_client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        settings.redis_url, password=settings.redis_password or None, max_connections=REDIS_CONNECTIONS,
        timeout=30, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30))
    queue = ChunkQueue(redis_client, Keys(settings.redis_prefix))
    health = Health(settings)
    runner = await health.start(settings.http_port)
    identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
    elector = LeaderElector(api, settings.lease_namespace, settings.lease_name, identity,
                            settings.lease_duration_seconds, settings.lease_renew_deadline_seconds,
                            settings.lease_retry_seconds)
    metrics.LEADER.set(0)
    metrics.QUOTA.set(settings.max_concurrent_chunks)
    log.info("waiting for the lease", extra=logs.fields(lease=f"{settings.lease_namespace}/{settings.lease_name}",
                                                        identity=identity))
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    try:
        # an operator that cannot reach Redis does not compete for the lease: it could not lead
        await until_redis_answers(redis_client.ping, "before competing for the lease")
        epoch = await elector.acquire()
        metrics.LEADER.set(1)
        lease = asyncio.create_task(elector.hold(), name="lease")  # renewing from the first moment of the term
        tasks = [lease]
        await within_the_term(until_redis_answers(lambda: queue.lead(epoch), "to raise the fence"), lease)
        jobs_registry = Registry()
        job_watch = JobWatch(api, settings.namespace or None)
        pod_watch = PodWatch(api, settings.namespace or None)
        inspector = PodInspector(api, pod_watch)
        scheduler = Scheduler(settings, queue, api, jobs_registry, job_watch, inspector)
        planner = Planner(settings, queue, ListCounter(settings, queue, inspector))
        writer = StatusWriter(settings, queue, api, jobs_registry, scheduler.running, planner, inspector)
        health.scheduler = scheduler
        tasks += [asyncio.create_task(job_watch.run(), name="job-watch"),
                  asyncio.create_task(pod_watch.run(), name="pod-watch")]
        # what reads Jobs and pods (the scheduler, the finalize and list-count hand-offs) starts on full caches
        await within_the_term(asyncio.gather(job_watch.synced.wait(), pod_watch.synced.wait()), lease)
        planning = Planning(planner, queue, jobs_registry, api, scheduler.running.indices_of)
        context = Context(settings, queue, jobs_registry, planning, scheduler)
        operator = kopf.operator(
            registry=registry, settings=kopf_settings(settings), memo=kopf.Memo(context=context),
            clusterwide=not settings.namespace, namespaces=[settings.namespace] if settings.namespace else (),
            standalone=True, stop_flag=stop,
        )
        tasks += [asyncio.create_task(operator, name="kopf"), asyncio.create_task(scheduler.run(), name="scheduler"),
                  asyncio.create_task(planning.run(), name="planning"), asyncio.create_task(writer.run(), name="status")]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception():
                raise task.exception()
        return 0
    except LeadershipLost as exc:
        log.error("lost leadership: %s; exiting so a restart comes back as a standby", exc)
        return 1
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        metrics.LEADER.set(0)
        await elector.release()
        await runner.cleanup()
        await redis_client.aclose()
        await redis_client.connection_pool.disconnect()
        await api.close()
