"""`python -m tests.gateway crds|run|down` — the Gateway controller stand-in from the command line.

    crds   install the Gateway API CRDs (standard channel, from the Go module) and the GatewayClass
    run    run the controller stand-in (and its HAProxy) until Ctrl-C / SIGTERM; HAProxy stops with it
           unless --keep-proxy
    down   stop an HAProxy left running in the state directory (after a crash)
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from tests.gateway.haproxy import HAProxy
from tests.gateway.model import CONTROLLER_NAME

DEFAULT_STATE_DIR = Path(".cluster/gateway")
DEFAULT_CLASS = "senseops-standin"


def gateway_class_manifest(name: str = DEFAULT_CLASS) -> str:
    return json.dumps({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                       "metadata": {"name": name}, "spec": {"controllerName": CONTROLLER_NAME}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["crds", "run", "down"])
    parser.add_argument("--kubeconfig", default=".cluster/kubeconfig")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--resync", type=float, default=30.0, help="seconds between full resyncs")
    parser.add_argument("--keep-proxy", action="store_true", help="leave HAProxy running when the controller stops")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    if args.command == "down":
        HAProxy(args.state_dir).stop()
        return 0
    if not Path(args.kubeconfig).exists():
        print(f"no kubeconfig at {args.kubeconfig}: start the control plane with `make cluster-up`", file=sys.stderr)
        return 2
    if args.command == "crds":
        from tests.controlplane.fixtures import kubectl_binary
        from tests.gateway import crds

        kubectl = [kubectl_binary(), f"--kubeconfig={args.kubeconfig}"]
        files = crds.install(kubectl)
        subprocess.run([*kubectl, "apply", "-f", "-"], input=gateway_class_manifest(), text=True, check=True)
        print(f"applied {len(files)} Gateway API {crds.GATEWAY_API_VERSION} CRD files and GatewayClass {DEFAULT_CLASS}")
        return 0

    # Imported here so `down` needs only the standard library (it runs before the venv exists).
    from tests.gateway.controller import GatewayStandin

    standin = GatewayStandin(args.state_dir.resolve(), kubeconfig=args.kubeconfig, resync_s=args.resync)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        standin.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        standin.run()
    finally:
        if not args.keep_proxy:
            standin.proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
