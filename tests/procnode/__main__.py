"""``python -m tests.procnode run|up|down|status`` — the process node (a kubelet stand-in)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from tests.procnode import spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.procnode", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "up", "down", "status"):
        p = sub.add_parser(name)
        p.add_argument("--state-dir", type=Path, default=Path(".cluster/procnode"))
        p.add_argument("--kubeconfig", type=Path, default=Path(".cluster/kubeconfig"))
        p.add_argument("--name", default="proc-node-0")
        p.add_argument("--bin-dir", type=Path, default=Path(".bin"))
        p.add_argument("--backoff-base", type=float, default=spec.BACKOFF_BASE_S)
    args = parser.parse_args(argv)
    if args.command == "run":
        from tests.procnode.node import ProcessNode

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s")
        node = ProcessNode(args.kubeconfig, args.name, args.state_dir, args.bin_dir.resolve(), args.backoff_base)
        signal.signal(signal.SIGTERM, lambda *_: node.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: node.stopping.set())
        node.run()
        return 0
    from tests.procnode.launcher import ProcessNodeHandle

    handle = ProcessNodeHandle(args.state_dir, args.kubeconfig, args.name)
    if args.command == "up":
        handle.up(args.bin_dir.resolve())
        print(f"process node {args.name} ready; state and logs in {args.state_dir}")
    elif args.command == "down":
        handle.down()
    else:
        print(json.dumps({"running": handle.running(), "record": handle.record(), "state_dir": str(args.state_dir)}))
        return 0 if handle.running() else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
