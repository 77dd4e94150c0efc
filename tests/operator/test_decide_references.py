"""Table tests for resolving the ASRModels an object refers to."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

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
