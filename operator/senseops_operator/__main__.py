"""Run the operator: `python -m senseops_operator` (the Deployment's command)."""

from __future__ import annotations

import kopf

import senseops_operator.handlers  # noqa: F401  (registers the handlers)
from senseops_operator.config import OperatorConfig


def main() -> None:
    cfg = OperatorConfig.from_env()
    kopf.configure(verbose=False)
    kopf.run(
        standalone=True,  # one replica with strategy Recreate; no peering objects needed
        clusterwide=not cfg.namespaces,
        namespaces=cfg.namespaces,
        liveness_endpoint=f"http://{cfg.bind_host}:{cfg.liveness_port}/healthz",
    )


if __name__ == "__main__":
    main()
