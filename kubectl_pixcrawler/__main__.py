"""kubectl pixcrawler create | watch | report | download: the plugin's command line and its API calls.
kubectl runs any `kubectl-pixcrawler` on PATH as `kubectl pixcrawler`; like kubectl, it honours `--namespace`,
`--context`, `--kubeconfig` and KUBECONFIG."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chunk_worker.contract import REPORT_NAME
from kubectl_pixcrawler.dataset_files import NotDownloadable, finished_output, loading_hint, wanted_files
from kubectl_pixcrawler.download import DownloadSummary, index_rows, save
from kubectl_pixcrawler.manifest import GROUP, PLURAL, VERSION, datasetjob
from kubectl_pixcrawler.watching import chunk_counts, exit_code, progress_line

if TYPE_CHECKING:
    from chunk_worker.storage import Storage

EXIT_NOT_FOUND, EXIT_TIMEOUT = 3, 4  # argparse exits 2 on bad usage


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="kubectl pixcrawler",
                                   description="Submit and watch pixcrawler DatasetJobs, fetch their report and data.")
    root.add_argument("-n", "--namespace", help="namespace (default: the context's, else default)")
    root.add_argument("--context", help="kubeconfig context to use")
    root.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG, then ~/.kube/config)")
    commands = root.add_subparsers(dest="command", required=True)

    create = commands.add_parser("create", help="create a DatasetJob from a keyword search")
    create.add_argument("name")
    create.add_argument("--label", required=True, help="the label every image of this search gets")
    create.add_argument("--query", required=True, action="append",
                        help="the search query; repeated, the queries' results are merged (each image once)")
    create.add_argument("--limit", type=int, default=1000, help="images to ask the provider for (default 1000)")
    create.add_argument("--provider", default="openverse")
    create.add_argument("--endpoint", help="the provider's API base URL (a mirror or a test server)")
    create.add_argument("--tier", choices=["new-user", "enterprise", "free"], default="free")
    create.add_argument("--format", dest="output_format", choices=["files", "webdataset", "parquet"])
    create.add_argument("--chunk-size", type=int)
    create.add_argument("--license", dest="licenses", action="append", help="allowed licence id (repeatable)")
    create.add_argument("--dry-run", choices=["none", "client", "server"], default="none")
    create.add_argument("-o", "--output", choices=["yaml", "json", "name"], help="print the object")

    watch = commands.add_parser("watch", help="show a DatasetJob's progress until it succeeds (exit 0) or fails (1)")
    watch.add_argument("name")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between reads (default 1)")
    watch.add_argument("--timeout", type=float, help="give up after this many seconds (exit 4)")

    report = commands.add_parser("report", help="save a finished DatasetJob's report.html and print its path")
    report.add_argument("name")
    report.add_argument("-f", "--file", dest="path", type=Path, help="where to save it (default ./<name>-report.html)")
    report.add_argument("--open", action="store_true", help="open it in the default browser")

    download = commands.add_parser("download", help="save a finished dataset to DIR, every image checked "
                                                    "against the index's sha256; a re-run resumes")
    download.add_argument("name")
    download.add_argument("directory", type=Path)
    download.add_argument("--split", help="only this split (files and parquet layouts)")
    return root


def api(args: argparse.Namespace) -> tuple[Any, str]:
    """The custom-objects API and the namespace to use, resolved the way kubectl resolves them."""
    from kubernetes import client, config

    contexts, active = config.list_kube_config_contexts(config_file=args.kubeconfig)
    chosen = next((c for c in contexts if c["name"] == args.context), None) if args.context else active
    if args.context and chosen is None:
        raise SystemExit(f"error: context {args.context!r} not found in the kubeconfig")
    namespace = args.namespace or ((chosen or {}).get("context") or {}).get("namespace") or "default"
    api_client = config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    return client.CustomObjectsApi(api_client), namespace


def render(body: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(body, indent=2)
    if output == "name":
        return f"datasetjob.{GROUP}/{body['metadata']['name']}"
    import yaml

    return yaml.safe_dump(body, sort_keys=False).rstrip()


def create(args: argparse.Namespace) -> int:
    body = datasetjob(args.name, label=args.label, query=args.query[0], queries=args.query[1:], limit=args.limit, provider=args.provider,
                      tier=args.tier, output_format=args.output_format, chunk_size=args.chunk_size,
                      licenses=args.licenses, endpoint=args.endpoint)
    if args.dry_run == "client":
        print(render(body, args.output or "yaml"))
        return 0
    from kubernetes.client import ApiException

    custom, namespace = api(args)
    try:
        created = custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, **({"dry_run": "All"} if args.dry_run == "server" else {}))
    except ApiException as exc:
        message = json.loads(exc.body).get("message", exc.reason) if exc.body else exc.reason
        print(f"error: {message}", file=sys.stderr)
        return 1
    if args.output:
        print(render(created, args.output))
    else:
        suffix = " (server dry run)" if args.dry_run == "server" else ""
        print(f"datasetjob.{GROUP}/{args.name} created{suffix}")
    return 0


def watch(args: argparse.Namespace) -> int:
    from kubernetes.client import ApiException

    custom, namespace = api(args)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    bar = None
    last = ""
    try:
        while True:
            try:
                body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, args.name)
            except ApiException as exc:
                if exc.status == 404:
                    print(f"error: datasetjob {namespace}/{args.name} not found", file=sys.stderr)
                    return EXIT_NOT_FOUND
                raise
            line = progress_line(body)
            if sys.stderr.isatty():
                bar = bar or _bar()
                finished, total = chunk_counts(body)
                bar.total = total
                bar.n = finished
                bar.set_description_str(line, refresh=True)
            elif line != last:
                print(line, flush=True)
            last = line
            code = exit_code(body)
            if code is not None:
                if bar is not None:
                    bar.close()
                    bar = None
                    print(line)
                return code
            if deadline is not None and time.monotonic() >= deadline:
                print(f"error: {args.name} still {line.split(' |')[0]} after {args.timeout:.0f}s", file=sys.stderr)
                return EXIT_TIMEOUT
            time.sleep(args.interval)
    finally:
        if bar is not None:
            bar.close()


def job_storage(args: argparse.Namespace) -> tuple[Storage, str, str]:
    """The finished job's output opened the way the worker opens it (AZURE_STORAGE_CONNECTION_STRING,
    else AZURE_STORAGE_ACCOUNT_URL with an Azure identity; file:// directly), its location and layout."""
    from kubernetes.client import ApiException

    custom, namespace = api(args)
    try:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, args.name)
    except ApiException as exc:
        if exc.status == 404:
            raise Refused(f"datasetjob {namespace}/{args.name} not found", EXIT_NOT_FOUND) from None
        raise
    try:
        location, layout = finished_output(body)
    except NotDownloadable as exc:
        raise Refused(str(exc)) from None
    from chunk_worker.errors import ChunkError
    from chunk_worker.storage import open_storage

    try:
        return open_storage(location), location, layout
    except ChunkError as exc:
        raise Refused(f"cannot open {location}: {exc}") from None


class Refused(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def report(args: argparse.Namespace) -> int:
    storage, location, _ = job_storage(args)
    path = args.path or Path(f"{args.name}-report.html")
    with closing(storage):
        reader = storage.open(REPORT_NAME)
        if reader is None:
            raise Refused(f"{location} has no {REPORT_NAME} (datasets finalized before the report existed have none)")
        with reader, path.open("wb") as out:
            shutil.copyfileobj(reader, out)
    print(path.resolve())
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0


def download(args: argparse.Namespace) -> int:
    storage, location, layout = job_storage(args)
    with closing(storage):
        try:
            files = wanted_files(index_rows(storage), layout, args.split)
        except (NotDownloadable, FileNotFoundError) as exc:
            raise Refused(str(exc)) from None
        summary = DownloadSummary()
        args.directory.mkdir(parents=True, exist_ok=True)
        bar = _bar(unit="file", total=len(files)) if sys.stderr.isatty() else None
        try:
            for wanted in files:
                save(storage, wanted, args.directory, summary)
                if bar is not None:
                    bar.set_description_str(f"{summary.bytes_fetched / 2**20:.1f} MiB", refresh=False)
                    bar.update()
        except KeyboardInterrupt:
            print(f"interrupted: run the same command again to resume ({summary.fetched} files saved)", file=sys.stderr)
            return 130
        finally:
            if bar is not None:
                bar.close()
    for problem in summary.missing:
        print(f"error: {problem} is named by the index but missing from {location}", file=sys.stderr)
    for problem in summary.mismatched:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{args.directory}: {summary.fetched} files fetched ({summary.bytes_fetched} bytes), "
          f"{summary.already_there} already there, {summary.images_verified} images verified")
    if not summary.ok:
        return 1
    print(f"load it with {loading_hint(str(args.directory), layout, args.split)}")
    return 0


def _bar(unit: str = "chunk", total: int | None = None) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, dynamic_ncols=True, bar_format="{desc} {bar} {n_fmt}/{total_fmt}")


COMMANDS = {"create": create, "watch": watch, "report": report, "download": download}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Refused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())
