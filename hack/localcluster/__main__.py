"""`python -m localcluster up|down|status|logs` (with PYTHONPATH=hack): a local cluster for a human or a script.

`up` leaves the cluster running in the background and prints `export PIXCRAWLER_NODE_HOST=<address>` (where
pods reach services on this machine) and, as its last line, `export KUBECONFIG=<path>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .binaries import BinariesMissing
from .cluster import LocalCluster, default_state_dir, recorded_owner
from .controlplane import StartupFailed
from .network import NetworkBusy
from .node import NodeFailed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "logs"))
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where certs, data, logs, pids and the kubeconfig live (default: $PIXCRAWLER_CACHE/cluster; "
                             "for down, status and logs, the running node's)")
    args = parser.parse_args(argv)
    # down, status and logs find the node this machine runs (a test session's, say) when no dir is given
    found = recorded_owner() if args.command != "up" else None
    cluster = LocalCluster(args.state_dir or found or default_state_dir())
    running = {name: pid for name, pid in cluster.running().items() if pid}

    if args.command == "status":
        for name, pid in cluster.running().items():
            print(f"{name}: {'running (pid %d)' % pid if pid else 'stopped'}")
        if running:
            print(f"export PIXCRAWLER_NODE_HOST={cluster.node_host}")
            print(f"export KUBECONFIG={cluster.kubeconfig}")
        return 0 if running else 3
    if args.command == "logs":
        print(cluster.logs(lines=100))
        return 0
    if args.command == "down":
        problems = cluster.down()
        print(f"stopped {', '.join(running) or 'nothing (nothing was running)'}")
        for problem in problems:
            print(f"localcluster: not undone: {problem}", file=sys.stderr)
        return 1 if problems else 0
    if running:
        print(f"already running ({', '.join(running)}); `make cluster-down` first to restart", file=sys.stderr)
        print(f"export PIXCRAWLER_NODE_HOST={cluster.node_host}")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        return 0
    try:
        cluster.up()
    except (BinariesMissing, StartupFailed, NodeFailed, NetworkBusy) as err:
        print(f"localcluster: {err}", file=sys.stderr)
        return 1
    print(f"cluster up: {cluster.api_url}, node {cluster.node_name} Ready ({cluster.node_host}); "
          f"logs in {cluster.state / 'logs'}")
    print(f"export PIXCRAWLER_NODE_HOST={cluster.node_host}")
    print(f"export KUBECONFIG={cluster.kubeconfig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
