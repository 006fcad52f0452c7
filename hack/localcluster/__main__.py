"""`python -m localcluster up|down|status|logs` (with PYTHONPATH=hack): a local cluster for a human or a script.

`up` leaves the cluster running in the background and prints `export KUBECONFIG=<path>` as its last line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .binaries import BinariesMissing
from .cluster import LocalCluster, default_state_dir
from .controlplane import StartupFailed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "logs"))
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where certs, data, logs, pids and the kubeconfig live (default: $PIXCRAWLER_CACHE/cluster)")
    for key in ("cpu", "memory", "pods"):
        parser.add_argument(f"--node-{key}", help=f"the node's {key} capacity (up only)")
    args = parser.parse_args(argv)
    capacity = {k: v for k in ("cpu", "memory", "pods") if (v := getattr(args, f"node_{k}"))}
    cluster = LocalCluster(args.state_dir or default_state_dir(), capacity)
    running = {name: pid for name, pid in cluster.running().items() if pid}

    if args.command == "status":
        for name, pid in cluster.running().items():
            print(f"{name}: {'running (pid %d)' % pid if pid else 'stopped'}")
        if running:
            print(f"export KUBECONFIG={cluster.kubeconfig}")
        return 0 if running else 3
    if args.command == "logs":
        print(cluster.logs(lines=100))
        return 0
    if args.command == "down":
        cluster.down()
        print(f"stopped {', '.join(running) or 'nothing (nothing was running)'}")
        return 0
    if running:
        print(f"already running ({', '.join(running)}); `make cluster-down` first to restart", file=sys.stderr)
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        return 0
    try:
        cluster.up()
    except (BinariesMissing, StartupFailed) as err:
        print(f"localcluster: {err}", file=sys.stderr)
        return 1
    print(f"cluster up: {cluster.api_url}, node {cluster.node_name} Ready; logs in {cluster.state / 'logs'}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
