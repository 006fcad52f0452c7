"""`python -m dataset_operator`: run the operator in or out of a cluster (settings: PIXCRAWLER_* env)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from chunk_worker import logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_operator",
        description="The DatasetJob operator. Settings come from PIXCRAWLER_* environment variables "
        "(see the README); out of a cluster it uses --kubeconfig, $KUBECONFIG or ~/.kube/config.",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    parser.add_argument("--log-format", choices=["auto", "json", "text"], default="auto")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logs.configure(args.log_level, {"auto": None, "json": True, "text": False}[args.log_format])
    from dataset_operator.app import run
    from dataset_operator.settings import OperatorSettings

    try:
        settings = OperatorSettings()
    except ValidationError as exc:
        print(f"invalid PIXCRAWLER_* setting: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(run(settings, args.kubeconfig))


if __name__ == "__main__":
    sys.exit(main())
