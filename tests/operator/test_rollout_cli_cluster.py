"""`senseops rollout` on the real control plane with the real operator process (kwok pods, the Gateway API
stand-in): abort then retry, pause and resume, promote through an indefinite pause, `status` exit codes —
all through the CLI, and the Rollout's spec and metadata.generation never change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from senseops_cli import rollout as cli
from tests.gateway.conftest import gateway_crds, gateway_dataplane  # noqa: F401 - fixtures
from tests.operator.operator_process import OperatorProcess
from tests.operator.test_rollout_cluster import kubectl_apply, rollout_manifest, setup, watch  # noqa: F401

pytestmark = [pytest.mark.cluster]


def senseops(cluster: Any, ns: str, *args: str) -> tuple[int, str]:
    """Run `senseops rollout ...` in-process against the cluster's kubeconfig; (exit code, stdout+stderr)."""
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = cli.main([*args, "ro", "-n", ns, "--kubeconfig", str(cluster.kubeconfig), "--interval", "0.5"]
                        if args[0] in ("status", "get") else [*args, "ro", "-n", ns, "--kubeconfig",
                                                               str(cluster.kubeconfig)])
    return code, out.getvalue()


def paused_by_step(s: dict[str, Any]) -> bool:
    return s.get("actualWeight") == 5 and any(p.get("reason") == "PausedByStep" for p in s.get("pauseConditions") or [])


def test_abort_retry_pause_resume_and_promote_through_an_indefinite_pause_with_the_cli(
        setup: tuple[Any, str, OperatorProcess]) -> None:  # noqa: F811
    cluster, ns, operator = setup
    manifest = rollout_manifest(ns)
    manifest["spec"]["steps"] = [{"setWeight": 5}, {"pause": {}}, {"setWeight": 100}]
    manifest["spec"]["abortScaleDownDelaySeconds"] = 2
    kubectl_apply(cluster, ns, manifest)
    status, _ = watch(cluster, ns, paused_by_step)
    assert paused_by_step(status), f"{json.dumps(status, indent=1)}\n{operator.log_tail()}"
    before = cluster.get_json("rollout", "ro", "-n", ns)
    generation, spec = before["metadata"]["generation"], before["spec"]

    # as a user runs it (`kubectl senseops` runs the same entry point): a process with only a kubeconfig
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig),
           "PYTHONPATH": os.pathsep.join(str(repo / p) for p in ("operator", "runtime", "trainer_image", "."))}
    done = subprocess.run([sys.executable, "-m", "senseops_cli", "rollout", "get", "ro", "-n", ns], env=env,
                          capture_output=True, text=True, timeout=120)
    code, text = done.returncode, done.stdout + done.stderr
    assert code == 0 and "[>] 2. pause until promoted   <- current" in text and "actual 5%" in text, text
    assert "ro-canary 1/1 pods ready" in text, text
    code, text = senseops(cluster, ns, "status", "--timeout", "3s")
    assert code == cli.EXIT_TIMEOUT, text
    code, text = senseops(cluster, ns, "retry")
    assert code == 1 and "not aborted" in text, text

    # abort: weight back to 0, status exits 1, the tree says why
    code, text = senseops(cluster, ns, "abort")
    assert code == 0, text
    status, _ = watch(cluster, ns, lambda s: s.get("phase") == "Aborted" and s.get("actualWeight") == 0, 60)
    assert status.get("phase") == "Aborted", f"{status}\n{operator.log_tail()}"
    code, text = senseops(cluster, ns, "status", "--timeout", "30s")
    assert code == cli.EXIT_FAILED and "aborted by hand" in text, text
    code, text = senseops(cluster, ns, "get")
    assert "aborted    aborted by hand" in text and "[!] 2. pause until promoted" in text, text
    code, text = senseops(cluster, ns, "promote")
    assert code == 1 and "retry an aborted rollout first" in text, text

    # retry: from step 1 again, back to the indefinite pause
    code, text = senseops(cluster, ns, "retry")
    assert code == 0, text
    status, _ = watch(cluster, ns, lambda s: not s.get("abort") and paused_by_step(s), 120)
    assert paused_by_step(status) and not status.get("abort"), f"{status}\n{operator.log_tail()}"

    # pause by hand, then resume: the Manual pause comes and goes, the step pause stays
    assert senseops(cluster, ns, "pause")[0] == 0
    status, _ = watch(cluster, ns, lambda s: any(p.get("reason") == "Manual" for p in s.get("pauseConditions") or []),
                      60)
    assert {p["reason"] for p in status["pauseConditions"]} == {"PausedByStep", "Manual"}, status
    assert senseops(cluster, ns, "resume")[0] == 0
    status, _ = watch(cluster, ns, lambda s: all(p.get("reason") != "Manual" for p in s.get("pauseConditions") or []),
                      60)
    assert [p["reason"] for p in status["pauseConditions"]] == ["PausedByStep"], status

    # promote through the indefinite pause; status waits for the outcome and exits 0
    assert senseops(cluster, ns, "promote")[0] == 0
    code, text = senseops(cluster, ns, "status", "--timeout", "3m")
    assert code == cli.EXIT_PROMOTED, f"{text}\n{operator.log_tail()}"
    after = cluster.get_json("rollout", "ro", "-n", ns)
    assert after["status"]["outcome"] == "Promoted" and after["status"]["stableModel"] == "v2"
    assert after["metadata"]["generation"] == generation and after["spec"] == spec  # never spec: no Git drift
    for flag in cli.STATUS_FLAG.values():  # every verb flag was acted on and cleared (abort by retry)
        assert not after["status"].get(flag), (flag, after["status"])

