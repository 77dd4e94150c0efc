"""`python -m tests.controlplane up|down|status [--root DIR]`: the local control plane from a shell."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tests.controlplane.cluster import DEFAULT_ROOT, ClusterError, LocalCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="folder for kubeconfig, logs, data and state (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for readiness")
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.root)

    if args.command == "up":
        began = time.monotonic()
        try:
            state = cluster.up(timeout_s=args.timeout)
        except ClusterError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"cluster ready in {time.monotonic() - began:.1f}s "
              f"(API server https://127.0.0.1:{state.ports['apiserver']}, logs in {cluster.layout.logs})",
              file=sys.stderr)
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        return 0
    if args.command == "down":
        stopped = cluster.down()
        print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}", file=sys.stderr)
        return 0
    status = cluster.status()
    print(json.dumps(status, indent=2))
    return 0 if status.get("running") and status.get("readyz") else 3


if __name__ == "__main__":
    sys.exit(main())
