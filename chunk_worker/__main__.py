"""`python -m chunk_worker`: run one chunk standalone (from a file) or in-cluster (from Redis)."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import redis

from chunk_worker import logs, specs
from chunk_worker.arenas import arrow_on_glibc_heap, limit_malloc_arenas
from chunk_worker.contract import ChunkField, ChunkSpec, ExitCode, Keys, ListCountRequest, chunk_json_schema
from chunk_worker.errors import ChunkError, ProgressUnavailable, SpecError
from chunk_worker.settings import WorkerSettings

log = logging.getLogger("chunk_worker")


class Terminated(ChunkError):
    exit_code = ExitCode.TERMINATED


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"stopped by signal {signum}")


def load_spec_redis(client: redis.Redis, keys: Keys, chunk_id: str) -> ChunkSpec:
    try:
        text = client.hget(keys.chunk(chunk_id), ChunkField.SPEC)
    except redis.RedisError as exc:
        raise ProgressUnavailable(f"cannot load chunk {chunk_id} from Redis: {exc}") from exc
    if text is None:
        raise SpecError(f"chunk {chunk_id} not found in Redis (key {keys.chunk(chunk_id)})")
    return specs.parse(ChunkSpec, text.decode() if isinstance(text, bytes) else text, f"chunk {chunk_id}", "chunk spec")


def parse_network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a CIDR: {value!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chunk_worker",
        description="Download, validate, de-duplicate and store one chunk of a DatasetJob.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run one chunk",
        description="Run one chunk from a JSON spec file (standalone) or from Redis (in-cluster). "
        "Exit codes: 0 done, 1 retryable, 2 unusable spec, 143 stopped by SIGTERM.",
    )
    where = run.add_mutually_exclusive_group(required=True)
    where.add_argument("--spec", type=Path, metavar="FILE", help="chunk spec JSON (see `schema`)")
    where.add_argument("--chunk-id", metavar="ID", help="load chunk ID from Redis")
    run.add_argument("--redis-url", help="Redis for --chunk-id (default: PIXCRAWLER_REDIS_URL)")
    run.add_argument("--output", metavar="URL", help="file:///dir or azure://container/prefix; overrides the spec")
    run.add_argument("--allow-network", action="append", type=parse_network, default=[], metavar="CIDR",
                     help="let the fetcher reach this non-public network (repeatable; tests and demos only)")
    run.add_argument("--threads", type=int, metavar="N", help="concurrent downloads (default: PIXCRAWLER_FETCH_THREADS)")
    run.add_argument("--progress", choices=["auto", "bar", "none"], default="auto",
                     help="progress bar: auto = only on a terminal")
    run.add_argument("--log-format", choices=["auto", "json", "text"], default="auto",
                     help="auto = JSON lines unless stderr is a terminal")
    finalize = commands.add_parser(
        "finalize",
        help="write the index, split metadata, dataset card, attribution and HTML report of an output",
        description="Stream every chunk manifest of an output into index.parquet, index.jsonl, the split "
        "metadata its format needs, ATTRIBUTION.md, report.html (a self-contained page to open in a browser) "
        "and README.md (a Hugging Face dataset card). "
        "Exit codes: 0 done, 1 retryable (storage), 2 unusable spec or damaged manifest, 143 SIGTERM.",
    )
    finalize.add_argument("--output", metavar="URL", help="file:///dir or azure://container/prefix; overrides the spec")
    given = finalize.add_mutually_exclusive_group()
    given.add_argument("--spec", type=Path, metavar="FILE", help="finalize spec JSON (every field optional)")
    given.add_argument("--spec-json", metavar="JSON", help="finalize spec as a JSON string")
    finalize.add_argument("--log-format", choices=["auto", "json", "text"], default="auto",
                          help="auto = JSON lines unless stderr is a terminal")
    commands.add_parser("schema", help="print the chunk spec JSON Schema",
                        description="Print the JSON Schema of the chunk spec.")
    agent = commands.add_parser("node-agent", help="report this node's free disk and memory to Redis",
                                description="Report free disk and available memory (psutil) to Redis "
                                "every interval, with a TTL, for the scheduler's node capacity.")
    agent.add_argument("--redis-url", help="default: PIXCRAWLER_REDIS_URL")
    agent.add_argument("--node-name", default=os.environ.get("NODE_NAME") or socket.gethostname(),
                       help="default: $NODE_NAME or the host name")
    agent.add_argument("--disk-path", default="/", help="file system whose free space chunks use (default /)")
    agent.add_argument("--interval", type=float, default=10.0, help="seconds between reports (default 10)")
    agent.add_argument("--once", action="store_true", help="report once and exit")
    count = commands.add_parser(
        "count-lists", help="count URL lists for the operator's plan and write them as pages",
        description="Stream each URL list once (the chunks' fetcher and parser), write its items as pages "
        "under the request's output when it names one (what the chunks read instead of the list), then the "
        "counts, or why one cannot be read, to the job's hash in Redis. Exit codes: 0 answered (an "
        "unusable list or output is an answer), 1 Redis unreachable.")
    count.add_argument("--job-uid", required=True, help="the DatasetJob's uid (its hash in Redis)")
    count.add_argument("--spec-json", required=True, metavar="JSON", help="the lists, a ListCountRequest")
    count.add_argument("--log-format", choices=["auto", "json", "text"], default="auto",
                       help="auto = JSON lines unless stderr is a terminal")
    return parser


def command_node_agent(args: argparse.Namespace) -> int:
    from chunk_worker import node_agent

    settings = WorkerSettings()
    client = redis.Redis.from_url(args.redis_url or settings.redis_url, password=settings.redis_password or None,
                                  socket_timeout=10, socket_connect_timeout=5)
    return node_agent.run(client, Keys(settings.redis_prefix), args.node_name, args.disk_path, args.interval,
                          once=args.once)


def command_count_lists(args: argparse.Namespace) -> int:
    from chunk_worker import list_count

    settings = WorkerSettings()
    request = specs.parse(ListCountRequest, args.spec_json, "--spec-json", "list count request")
    result = list_count.count_lists(request, settings)
    client = redis.Redis.from_url(settings.redis_url, password=settings.redis_password or None,
                                  socket_timeout=10, socket_connect_timeout=5)
    try:
        list_count.publish(client, Keys(settings.redis_prefix), args.job_uid, result)
    except redis.RedisError as exc:
        raise ProgressUnavailable(f"cannot write the list counts to Redis: {exc}") from exc
    finally:
        client.close()
    print(result.model_dump_json(by_alias=True))
    return ExitCode.DONE


def command_run(args: argparse.Namespace) -> int:
    from chunk_worker.dedup import make_deduper
    from chunk_worker.fetch import Fetcher
    from chunk_worker.memory import budget_for
    from chunk_worker.netpolicy import NetworkPolicy
    from chunk_worker.pacing import RedisPacer
    from chunk_worker.progress import RedisProgress, Tally, TerminalProgress
    from chunk_worker.runner import Pipeline, pixel_slots, run_chunk
    from chunk_worker.sources import resolve_items
    from chunk_worker.storage import open_storage

    settings = WorkerSettings()
    keys = Keys(settings.redis_prefix)
    client = None
    if args.chunk_id:
        client = redis.Redis.from_url(args.redis_url or settings.redis_url, password=settings.redis_password or None,
                                      socket_timeout=10,
                                      socket_connect_timeout=5, health_check_interval=30)
        spec = load_spec_redis(client, keys, args.chunk_id)
    else:
        spec = specs.read(ChunkSpec, args.spec, "chunk spec")
    output = args.output or spec.output
    if not output:
        raise SpecError("no output: give --output or set `output` in the spec")
    budget, plan = budget_for(args.threads or settings.fetch_threads, spec.validation.max_bytes,
                              settings.memory_budget_bytes)
    threads = plan.threads  # fewer than asked when the pod's limit cannot hold their download buffers
    tally = Tally()
    progress = []
    if client is not None:
        progress.append(RedisProgress(client, keys.chunk(args.chunk_id), tally,
                                      settings.progress_interval_seconds, os.environ.get("HOSTNAME", "")))
    if args.progress == "bar" or (args.progress == "auto" and sys.stderr.isatty()):
        progress.append(TerminalProgress(tally, f"{spec.job}#{spec.chunk}"))
    policy = NetworkPolicy(list(settings.allow_networks) + list(args.allow_network))
    fetcher = Fetcher(policy, settings, max_bytes=spec.validation.max_bytes, respect=spec.respect)
    storage = open_storage(output, pool_size=threads)
    deduper = make_deduper(spec.validation.dedup, redis=client, keys=keys, scope=spec.scope)
    pipeline = Pipeline(spec, fetcher, deduper, storage, budget=budget,
                        pixel_work=threading.BoundedSemaphore(pixel_slots(settings.pixel_slots)))
    try:
        pacer = RedisPacer(client, keys.pace) if client is not None else None
        items = resolve_items(spec, fetcher, pacer, storage)
        summary = run_chunk(spec, items, pipeline, progress, tally, threads, settings.tmp_dir)
    except ChunkError as exc:
        for sink in progress:
            _finish_quietly(sink, "terminated" if isinstance(exc, Terminated) else "error", str(exc))
        raise
    finally:
        fetcher.close()
        storage.close()
    for sink in progress:
        sink.finished("done", summary.manifest)
    print(json.dumps({"job": spec.job, "chunk": spec.chunk, "output": output, "manifest": summary.manifest,
                      "seconds": round(summary.seconds, 3), "imagesPerSecond": round(summary.images_per_second, 1),
                      "counts": summary.counts}))
    return ExitCode.DONE


def _finish_quietly(sink: object, outcome: str, message: str) -> None:
    try:
        sink.finished(outcome, None, message)
    except Exception as exc:  # the original failure is the one to report
        log.warning("could not record the chunk's end: %s", exc)


def command_finalize(args: argparse.Namespace) -> int:
    from chunk_worker.finalize import check_output, finalize, load_spec
    from chunk_worker.storage import open_storage

    spec = load_spec(args.spec, args.spec_json)
    output = check_output(spec, args.output)
    storage = open_storage(output)
    try:
        summary = finalize(storage, spec, output, WorkerSettings().tmp_dir)
    finally:
        storage.close()
    print(json.dumps({"job": spec.job, "output": output, **summary.to_json()}))
    return ExitCode.DONE


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "schema":
        print(chunk_json_schema())
        return ExitCode.DONE
    if args.command == "node-agent":
        logs.configure()
        return command_node_agent(args)
    limit_malloc_arenas()  # before any thread: the item threads' allocations share two arenas
    arrow_on_glibc_heap()  # before pyarrow is imported (a commit or finalize imports it)
    logs.configure(json_lines={"auto": None, "json": True, "text": False}[args.log_format])
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        commands = {"finalize": command_finalize, "count-lists": command_count_lists, "run": command_run}
        return commands[args.command](args)
    except ChunkError as exc:
        log.error("%s", exc, extra=logs.fields(exit_code=int(exc.exit_code), error=type(exc).__name__))
        return int(exc.exit_code)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # in-flight downloads are abandoned, not awaited: the temp dir is already gone
