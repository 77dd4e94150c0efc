"""The loop's timeline, weights and chart: pure formatting, table-tested; the chart is a real PNG."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.loop.chart import draw, series
from scripts.loop.timeline import (
    Event,
    PhaseTime,
    Recorder,
    Sample,
    clock,
    format_phases,
    format_samples,
    format_timeline,
    format_weights,
    weight_changes,
)


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0:00"), (5.9, "0:05"), (61, "1:01"), (3599, "59:59"), (3600, "1:00:00"), (3725, "1:02:05"), (-3, "0:00"),
])
def test_clock(seconds: float, shown: str) -> None:
    assert clock(seconds) == shown


def test_timeline_sorts_by_time_and_puts_the_reason_under_the_event() -> None:
    events = [Event(90.0, "rollout", "weight 50%", "analysis passed: p95 0.41 s <= 0.8"),
              Event(3.0, "stack", "runtime ready"),
              Event(75.5, "rollout", "weight 5%")]
    assert format_timeline(events).splitlines() == [
        "   0:03  stack    runtime ready",
        "   1:15  rollout  weight 5%",
        "   1:30  rollout  weight 50%",
        "                    why: analysis passed: p95 0.41 s <= 0.8",
    ]


def test_timeline_of_nothing_says_so() -> None:
    assert format_timeline([]) == "(no events)"


@pytest.mark.parametrize(("weights", "changes"), [
    ([None, 0, 0, 5, 5, 50, None, 100, 0], [(1, 0), (3, 5), (5, 50), (7, 100), (8, 0)]),
    ([None, None], []),
    ([5], [(0, 5)]),
])
def test_weight_changes_skip_repeats_and_unknowns(weights: list[int | None], changes: list[tuple[int, int]]) -> None:
    samples = [Sample(float(i), candidate_weight=w) for i, w in enumerate(weights)]
    assert weight_changes(samples) == [(float(t), w) for t, w in changes]


def test_weights_line() -> None:
    samples = [Sample(0, candidate_weight=0), Sample(41, candidate_weight=5), Sample(90, candidate_weight=50),
               Sample(95, candidate_weight=50)]
    assert format_weights(samples) == "0:00 0% → 0:41 5% → 1:30 50%"
    assert format_weights([Sample(1)]) == "(no weights sampled)"
    assert format_samples([]) == "(no samples)"


def test_sample_table_thins_rows_but_keeps_every_weight_change_and_shows_no_data_as_a_dash() -> None:
    samples = [Sample(0, 0, None, 0.0, 0.2), Sample(10, 0, 0.0, 0.0, 0.25), Sample(12, 5, 0.04, 0.01, 0.3),
               Sample(50, 5, 0.06, None, None)]
    rows = format_samples(samples, every_s=30).splitlines()
    assert len(rows) == 4  # header, t=0, the change at t=12, t=50 (t=10 thinned out)
    assert rows[1].split() == ["0:00", "0", "—", "0.0%", "0.20s"]
    assert rows[2].split() == ["0:12", "5", "4%", "1.0%", "0.30s"]
    assert rows[3].split() == ["0:50", "5", "6%", "—", "—s"]


def test_phase_times_and_total() -> None:
    text = format_phases([PhaseTime("stack", 12.0), PhaseTime("streaming", 80.5)])
    assert text.splitlines() == ["stack         12.0 s", "streaming     80.5 s", "total         92.5 s"]


def test_recorder_dump_round_trips(tmp_path: Path) -> None:
    import json

    recorder = Recorder()
    recorder.event(1.26, "stack", "up")
    recorder.sample(Sample(2.0, 5, 0.1, 0.0, 0.3))
    recorder.phase_done("stack", 1.26)
    recorder.dump(tmp_path / "run.json")
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["events"] == [{"t": 1.3, "phase": "stack", "what": "up", "why": ""}]
    assert data["samples"][0]["candidate_weight"] == 5 and data["phases"] == [{"name": "stack", "seconds": 1.3}]


def test_series_leaves_out_unmeasured_moments() -> None:
    samples = [Sample(2, p95_final_latency_s=0.5), Sample(1), Sample(0, p95_final_latency_s=0.25)]
    assert series(samples, "p95_final_latency_s") == ([0, 2], [0.25, 0.5])


def test_chart_is_a_png(tmp_path: Path) -> None:
    samples = [Sample(float(t), 5 if t > 10 else 0, 0.05 if t > 10 else 0.0, 0.0, 0.3) for t in range(0, 40, 2)]
    path = draw(samples, [Event(10, "rollout", "weight 5%")], tmp_path / "chart.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_long_events_wrap_under_their_column() -> None:
    text = format_timeline([Event(1, "record", "word " * 30, "because " * 20)], width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines) and len(lines) > 4
    assert lines[1].startswith(" " * 17) and not lines[1].startswith(" " * 18)
    assert "why: because" in text and text.count("because") == 20
