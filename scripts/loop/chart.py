"""The PNG chart of a loop run: the candidate's traffic weight and share over time, with the error ratio
and p95 final latency underneath, and the events as labelled vertical lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from scripts.loop.timeline import Event, Sample


def series(samples: Sequence[Sample], attribute: str) -> tuple[list[float], list[float]]:
    """(times, values) of one sample attribute, leaving out the moments it was not measured."""
    points = [(s.t, getattr(s, attribute)) for s in sorted(samples, key=lambda s: s.t)
              if getattr(s, attribute) is not None]
    return [t for t, _ in points], [float(v) for _, v in points]


def draw(samples: Sequence[Sample], events: Sequence[Event], path: Path, title: str = "SenseOps loop") -> Path:
    """Write the chart to ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")  # no display here; and never pick up a user's interactive backend
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, height_ratios=(3, 2))
    t, w = series(samples, "candidate_weight")
    top.step(t, w, where="post", label="candidate weight (HTTPRoute, %)", color="tab:blue")
    t, share = series(samples, "candidate_share")
    top.plot(t, [100 * v for v in share], ".", label="candidate share of load requests (%)", color="tab:green")
    top.set_ylim(-5, 105)
    top.set_ylabel("% of traffic")
    top.legend(loc="upper left", fontsize=8)
    t, errors = series(samples, "error_ratio")
    bottom.plot(t, [100 * v for v in errors], label="error ratio (%)", color="tab:red")
    bottom.set_ylabel("errors (%)")
    right = bottom.twinx()
    t, p95 = series(samples, "p95_final_latency_s")
    right.plot(t, p95, label="p95 final latency (s)", color="tab:orange")
    right.set_ylabel("p95 final latency (s)")
    bottom.set_xlabel("seconds since start")
    handles = bottom.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    bottom.legend(handles, [str(h.get_label()) for h in handles], loc="upper left", fontsize=8)
    for event in (e for e in events if not e.what.startswith("analysis")):  # verdicts would crowd the axis
        for axis in (top, bottom):
            axis.axvline(event.t, color="grey", linewidth=0.6, alpha=0.6)
        top.annotate(event.what[:40], (event.t, 102), rotation=90, fontsize=6, va="top", ha="right")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
