"""What happened when, and why: events and metric samples of a loop run, and their readable forms.

The recorder only appends (thread-safe: the streamers and the sampler write from their own threads);
every formatting function is pure, so the printed timeline is table-tested.
"""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Event:
    """One thing that happened: seconds since the run began, the loop phase, what, and why."""

    t: float
    phase: str
    what: str
    why: str = ""


@dataclass(frozen=True)
class Sample:
    """Traffic and health at one moment (None: not measured / no data yet — never shown as a zero)."""

    t: float
    candidate_weight: int | None = None  # the HTTPRoute weight of the candidate backend (%)
    candidate_share: float | None = None  # share of the load generator's recent requests the candidate answered
    error_ratio: float | None = None  # errors / requests of the runtime pods over the last window
    p95_final_latency_s: float | None = None  # end of speech → final, 95th percentile, runtime pods


@dataclass(frozen=True)
class PhaseTime:
    """Wall time of one loop phase."""

    name: str
    seconds: float


@dataclass
class Recorder:
    """Collects events, samples and phase times of one run (append-only, safe across threads)."""

    events: list[Event] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    phases: list[PhaseTime] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def event(self, t: float, phase: str, what: str, why: str = "") -> Event:
        """Record an event and return it."""
        item = Event(round(t, 1), phase, what, why)
        with self._lock:
            self.events.append(item)
        return item

    def sample(self, item: Sample) -> None:
        """Record a sample."""
        with self._lock:
            self.samples.append(item)

    def phase_done(self, name: str, seconds: float) -> None:
        """Record a finished phase's wall time."""
        with self._lock:
            self.phases.append(PhaseTime(name, round(seconds, 1)))

    def dump(self, path: Path, facts: Mapping[str, object] | None = None) -> None:
        """Write everything as JSON (the chart can be redrawn from it), with the run's ``facts`` (outcomes, CER)."""
        with self._lock:
            data = {"events": [asdict(e) for e in self.events], "samples": [asdict(s) for s in self.samples],
                    "phases": [asdict(p) for p in self.phases], "facts": dict(facts or {})}
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def clock(t: float) -> str:
    """Seconds since the start as m:ss (h:mm:ss past an hour)."""
    whole = max(0, int(t))
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def format_timeline(events: Sequence[Event], width: int = 120) -> str:
    """Events in time order: time, phase, what; the reason on indented lines below (long text wraps)."""
    if not events:
        return "(no events)"
    phase_width = max(len(e.phase) for e in events)
    indent = " " * (7 + 2 + phase_width + 2)
    lines = []
    for event in sorted(events, key=lambda e: e.t):
        lines += textwrap.wrap(event.what, width, initial_indent=f"{clock(event.t):>7}  {event.phase:<{phase_width}}  ",
                               subsequent_indent=indent)
        if event.why:
            lines += textwrap.wrap(event.why, width, initial_indent=indent + "  why: ",
                                   subsequent_indent=indent + "       ")
    return "\n".join(lines)


def weight_changes(samples: Sequence[Sample]) -> list[tuple[float, int]]:
    """(time, weight) each time the candidate's weight changed (the first known weight included)."""
    changes: list[tuple[float, int]] = []
    for item in sorted(samples, key=lambda s: s.t):
        if item.candidate_weight is not None and (not changes or changes[-1][1] != item.candidate_weight):
            changes.append((item.t, item.candidate_weight))
    return changes


def format_weights(samples: Sequence[Sample]) -> str:
    """The candidate's weights over time on one line, e.g. ``0:00 0% → 0:41 5% → 1:30 50%``."""
    changes = weight_changes(samples)
    return " → ".join(f"{clock(t)} {w}%" for t, w in changes) if changes else "(no weights sampled)"


def _cell(value: float | int | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def format_samples(samples: Sequence[Sample], every_s: float = 30.0) -> str:
    """A table of samples, at most one row per ``every_s`` seconds (plus every weight change)."""
    if not samples:
        return "(no samples)"
    header = f"{'time':>7}  {'weight':>6}  {'cand. share':>11}  {'errors':>7}  {'p95 final':>9}"
    rows, last_t, last_w = [header], None, None
    for item in sorted(samples, key=lambda s: s.t):
        changed = item.candidate_weight is not None and item.candidate_weight != last_w
        if last_t is not None and item.t - last_t < every_s and not changed:
            continue
        rows.append(f"{clock(item.t):>7}  {_cell(item.candidate_weight, 'd'):>6}  "
                    f"{_cell(item.candidate_share, '.0%'):>11}  {_cell(item.error_ratio, '.1%'):>7}  "
                    f"{_cell(item.p95_final_latency_s, '.2f'):>8}s")
        last_t = item.t
        if item.candidate_weight is not None:
            last_w = item.candidate_weight
    return "\n".join(rows)


def format_phases(phases: Sequence[PhaseTime]) -> str:
    """Wall time per phase and the total."""
    width = max([len(p.name) for p in phases] + [5])
    lines = [f"{p.name:<{width}}  {p.seconds:>7.1f} s" for p in phases]
    lines.append(f"{'total':<{width}}  {sum(p.seconds for p in phases):>7.1f} s")
    return "\n".join(lines)
