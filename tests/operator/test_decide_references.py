"""Table tests for model references and the Rollout acceptance decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from senseops_operator.decide import rollout
from senseops_operator.decide.references import models_resolved

NOW = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("name", "phases", "status", "reason"),
    [
        ("all ready", {"a": "Ready", "b": "Ready"}, "True", "Resolved"),
        ("one missing", {"a": "Ready", "b": None}, "False", "ModelNotFound"),
        ("one verifying", {"a": "Ready", "b": "Verifying"}, "False", "ModelNotReady"),
        ("missing wins over unready", {"a": "Failed", "b": None}, "False", "ModelNotFound"),
    ],
)
def test_models_resolved(name: str, phases: dict[str, str | None], status: str, reason: str) -> None:
    cond = models_resolved({"stableModel": "a", "candidateModel": "b"}, phases)
    assert (cond["status"], cond["reason"]) == (status, reason)


@pytest.mark.parametrize(
    ("steps", "plan"),
    [
        ([{"setWeight": 5}, {"pause": {}}, {"setWeight": 50}, {"analysis": {}}, {"setWeight": 100}], [5, 50, 100]),
        ([{"setWeight": 100}], [100]),
    ],
)
def test_weight_plan(steps: list[dict[str, object]], plan: list[int]) -> None:
    assert rollout.weight_plan(steps) == plan


def test_rollout_pending_with_zero_weight() -> None:
    spec = {"stableModel": {"name": "a"}, "candidateModel": {"name": "b"}, "steps": [{"setWeight": 100}]}
    d = rollout.decide(spec, {}, rollout.RolloutObservation(2, {"a": "Ready", "b": "Ready"}), NOW)
    assert d.status["phase"] == "Pending"
    assert d.status["actualWeight"] == 0
    assert d.status["stableModel"] == "a" and d.status["candidateModel"] == "b"
