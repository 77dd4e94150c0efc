"""Conditions keep their transition time unless their status changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from senseops_operator.decide.common import condition, merge_conditions, timestamp, transitions

T0 = datetime(2026, 11, 24, 8, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_timestamp_is_rfc3339_utc_seconds() -> None:
    assert timestamp(T0.replace(microsecond=123456)) == "2026-11-24T08:00:00Z"


@pytest.mark.parametrize(
    ("name", "old_status", "new_status", "expected_time"),
    [
        ("new condition gets now", None, "True", timestamp(T1)),
        ("same status keeps old time", "True", "True", timestamp(T0)),
        ("status flip gets now", "False", "True", timestamp(T1)),
        ("unknown to false gets now", "Unknown", "False", timestamp(T1)),
    ],
)
def test_merge_conditions_transition_time(name: str, old_status: str | None, new_status: str,
                                          expected_time: str) -> None:
    old = [] if old_status is None else merge_conditions([], [condition("Ready", old_status, "R", "m")], T0, 1)
    merged = merge_conditions(old, [condition("Ready", new_status, "R2", "m2")], T1, 2)
    (ready,) = merged
    assert ready["lastTransitionTime"] == expected_time
    assert ready["reason"] == "R2" and ready["observedGeneration"] == 2


def test_merge_keeps_conditions_of_other_types() -> None:
    old = merge_conditions([], [condition("Other", "True", "X", "")], T0, 1)
    merged = merge_conditions(old, [condition("Ready", "False", "Y", "")], T1, 1)
    assert [c["type"] for c in merged] == ["Other", "Ready"]


def test_transitions_lists_only_changes() -> None:
    old = [condition("A", "True", "", ""), condition("B", "False", "", "")]
    new = [condition("A", "True", "", ""), condition("B", "True", "", ""), condition("C", "Unknown", "", "")]
    assert [c["type"] for c in transitions(old, new)] == ["B", "C"]
