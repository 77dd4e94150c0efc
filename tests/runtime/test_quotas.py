"""Table tests of quota decisions and the ledger."""

from __future__ import annotations

import pytest

from senseops_runtime.quotas import (
    Admitted,
    QuotaLedger,
    QuotaPolicy,
    QuotaRefusal,
    admit_stream,
    audio_allowance,
    days_to_forget,
)

POLICY = QuotaPolicy(max_streams_per_subject=2, audio_seconds_per_day=60.0)


@pytest.mark.parametrize(
    ("open_streams", "used", "expected"),
    [
        (0, 0.0, Admitted(60.0)),
        (1, 30.0, Admitted(30.0)),
        (2, 0.0, QuotaRefusal),
        (5, 0.0, QuotaRefusal),
        (0, 60.0, QuotaRefusal),
        (0, 75.0, QuotaRefusal),
        (1, 59.5, Admitted(0.5)),
    ],
)
def test_admit_stream(open_streams: int, used: float, expected: object) -> None:
    verdict = admit_stream(POLICY, open_streams, used)
    if expected is QuotaRefusal:
        assert isinstance(verdict, QuotaRefusal)
    else:
        assert verdict == expected


def test_refusal_reasons_say_what_to_do() -> None:
    assert "concurrent stream limit" in admit_stream(POLICY, 2, 0).reason  # type: ignore[union-attr]
    assert "budget" in admit_stream(POLICY, 0, 60).reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("used", "chunk", "allowed"), [(0, 1, True), (59, 1, True), (59.5, 1, False), (60, 0.1, False)]
)
def test_audio_allowance(used: float, chunk: float, allowed: bool) -> None:
    assert audio_allowance(POLICY, used, chunk) is allowed


def test_ledger_counts_streams_budget_and_metering() -> None:
    ledger = QuotaLedger(POLICY)
    assert isinstance(ledger.open_stream("a", "d1"), Admitted)
    assert isinstance(ledger.open_stream("a", "d1"), Admitted)
    assert isinstance(ledger.open_stream("a", "d1"), QuotaRefusal)
    assert isinstance(ledger.open_stream("b", "d1"), Admitted)  # other subjects unaffected
    ledger.close_stream("a")
    assert isinstance(ledger.open_stream("a", "d1"), Admitted)
    assert ledger.charge("a", "x", 40, "d1")
    assert ledger.charge("a", "y", 20, "d1")
    assert not ledger.charge("a", "x", 0.1, "d1")  # budget used up, nothing charged
    assert not ledger.has_budget("a", "d1")
    assert ledger.has_budget("a", "d2")  # a new day resets the budget
    assert ledger.metering() == [
        {"day": "d1", "subject": "a", "anchor_id": "x", "audio_seconds": 40.0},
        {"day": "d1", "subject": "a", "anchor_id": "y", "audio_seconds": 20.0},
    ]


def test_refund_gives_back_audio_that_was_not_transcribed() -> None:
    ledger = QuotaLedger(POLICY)
    assert ledger.charge("a", "x", 50, "2026-03-01")
    ledger.refund("a", "x", 50, "2026-03-01")  # e.g. the decode queue was full (503)
    assert ledger.metering() == []
    assert ledger.charge("a", "x", 60, "2026-03-01")  # the whole budget is still there


@pytest.mark.parametrize(
    ("days", "today", "forgotten"),
    [
        ({"2026-03-01"}, "2026-03-01", set()),
        ({"2026-02-28", "2026-03-01"}, "2026-03-01", set()),
        ({"2026-02-27", "2026-02-28", "2026-03-01"}, "2026-03-01", {"2026-02-27"}),
        ({"2026-02-01", "2026-02-20"}, "2026-03-01", {"2026-02-01"}),
        (set(), "2026-03-01", set()),
    ],
)
def test_days_to_forget(days: set[str], today: str, forgotten: set[str]) -> None:
    assert days_to_forget(days, today) == forgotten


def test_ledger_forgets_old_windows_and_idle_subjects() -> None:
    ledger = QuotaLedger(POLICY)
    for n in range(100):
        assert ledger.charge(f"s{n}", "x", 1, "2026-03-01")
    assert isinstance(ledger.open_stream("streaming", "2026-03-01"), Admitted)
    assert ledger.charge("s0", "x", 1, "2026-03-02")
    assert ledger.tracked_subjects == 2  # s0 (used today) and the subject with an open stream
    assert isinstance(ledger.open_stream("s1", "2026-03-03"), Admitted)
    days = {entry["day"] for entry in ledger.metering()}
    assert days == {"2026-03-02"}  # 03-01 is older than yesterday: forgotten
