"""The whole loop end to end, exactly as `make demo-loop` runs it (12 min at low load, about half an hour on
a busy two-core machine; marker ``loop_full``, run by `make test-loop`, left out of `make test`): on the local
stack, streamers record, the RetrainPolicy creates the FineTuneJob, the model image goes to the stack's
registry, the policy's Rollout promotes the new model while the streamers stream, and a planted bad candidate
is rolled back.

It asserts the issue's Must-show lines from the run's facts (.demo-loop/run.json)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.loop.run import PLANTED_ROLLOUT, ROOT, STATE, python_env

FULL_RUN_S = 3600
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.model, pytest.mark.loop_full,
              pytest.mark.timeout(FULL_RUN_S + 300)]


def test_the_whole_loop_promotes_the_tuned_model_and_rolls_the_planted_one_back() -> None:
    run_json = STATE / "run.json"
    run_json.unlink(missing_ok=True)
    try:
        done = subprocess.run([sys.executable, "-m", "scripts.loop", "run"], cwd=ROOT, env=python_env(),
                              timeout=FULL_RUN_S, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finally:  # a test leaves nothing running (the demo keeps its stack up for the user to look at)
        subprocess.run([sys.executable, "-m", "scripts.loop", "down"], cwd=ROOT, env=python_env(), timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=False)
    output = done.stdout
    (STATE / "test-loop.log").write_text(output)
    assert done.returncode == 0, output[-6000:]
    assert_must_show(json.loads(run_json.read_text())["facts"], output, STATE / "loop.png")


def assert_must_show(facts: dict[str, Any], output: str, chart: Path) -> None:
    """The issue's Must-show lines, from a run's facts and its printed output."""
    # Round 1: promoted, and the new model is better than the base on held-out domain speech.
    assert facts["release"] == "Promoted", facts
    cer = facts["cer"]
    assert cer["new"] < cer["base"], cer
    assert facts["image"] and "@sha256:" in facts["image"]  # built into the stack's registry
    # Round 2: the planted candidate never got more than its first step's weight, and was rolled back.
    assert facts["planted"] == "RolledBack" and facts["rollback_reason"], facts
    assert facts["highest_weight"].get(PLANTED_ROLLOUT, 0) <= 5, facts
    assert facts["planted_route_weight_max"] is None or facts["planted_route_weight_max"] <= 5, facts
    assert facts["errors_after_rollback"] == 0, facts
    # What the reader sees: the printed lines and the chart.
    assert f"held-out CER: base {cer['base']}  new {cer['new']}" in output
    assert "rollback reason:" in output and "outcome Promoted" in output and "outcome RolledBack" in output
    assert chart.stat().st_size > 10_000
