"""``python -m senseops_trainer.planted_cases`` — which planted bad segments the data stages catch, by which
rule, and how many good segments they lose (the table in ``trainer_image/README.md``).

Writes the synthetic espeak-ng corpus with its hard cases into a temporary ``file://`` store, runs the
real collect and filter stages with the default settings, and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from senseops_trainer import synthetic
from senseops_trainer.config import config_from_dict
from senseops_trainer.context import RunContext, read_segments
from senseops_trainer.data_stages import DUPLICATES, FILTER_REPORT, SEGMENTS, collect, filter_stage
from senseops_trainer.filters import AUDIO_STATS_KEY, FilterConfig, segment_lang
from senseops_trainer.progress import ProgressLog

_OUTSIDE = ("other_anchor", "outside_window")


def run_stages(root: Path, seed: int = 7) -> tuple[synthetic.SyntheticCorpus, Path]:
    """Write the corpus (with hard cases) and run collect + filter with default settings."""
    from senseops_common.storage import open_store

    store_uri = (root / "store").as_uri() + "/"
    corpus = synthetic.write_corpus(open_store(store_uri), seed=seed, hard_cases=True)
    cfg = config_from_dict({
        "store_uri": store_uri,
        "dataset": {"anchor_ids": [synthetic.ANCHOR], "since": synthetic.WINDOW[0], "until": synthetic.WINDOW[1],
                    "golden_key": synthetic.GOLDEN_KEY},
    })
    with open(root / "progress.jsonl", "w", encoding="utf-8") as log:
        ctx = RunContext(cfg=cfg, workdir=root / "work", progress=ProgressLog(out=log))
        collect(ctx)
        filter_stage(ctx)
    return corpus, root / "work"


def outcomes(corpus: synthetic.SyntheticCorpus, workdir: Path) -> dict[str, tuple[str, str]]:
    """Segment id → (stage, rule) for every segment the data stages removed."""
    out: dict[str, tuple[str, str]] = {}
    for dup in json.loads((workdir / DUPLICATES).read_text())["duplicates"]:
        out[dup["segment_id"]] = ("collect", f"duplicate:{dup['rule']}")
    for rule, ids in json.loads((workdir / FILTER_REPORT).read_text())["removed_ids"].items():
        for sid in ids:
            out[sid] = ("filter", rule)
    return out


def _measure(workdir: Path) -> dict[str, dict[str, Any]]:
    from senseops_common.text import normalize_text, scoring_units

    cfg = FilterConfig()
    out: dict[str, dict[str, Any]] = {}
    for seg in read_segments(workdir / SEGMENTS):
        text = normalize_text(seg.text)
        stats = seg.extra.get(AUDIO_STATS_KEY, {})
        _, high = cfg.rate_limit(segment_lang(seg), text)
        out[seg.segment_id] = {"rate": len(scoring_units(text)) / max(seg.duration_s, 1e-9), "max_rate": high,
                               "range_db": stats.get("dynamic_range_db"), "seconds": seg.duration_s}
    return out


def table(corpus: synthetic.SyntheticCorpus, workdir: Path) -> str:
    """The Markdown table: planted kinds, then the good segments lost."""
    removed = outcomes(corpus, workdir)
    measured = _measure(workdir)
    lines = ["| planted segment | caught | by rule (stage) | units/s (limit) | audio range dB |",
             "|---|---|---|---|---|"]
    for sid, kind in corpus.planted.items():
        if kind in _OUTSIDE:
            continue
        stage, rule = removed.get(sid, ("", ""))
        m = measured.get(sid, {})
        rate = f"{m['rate']:.1f} ({m['max_rate']:g})" if m else "—"
        rng = f"{m['range_db']:.1f}" if m.get("range_db") is not None else "—"
        lines.append(f"| {kind} | {'yes' if rule else '**no**'} | {rule or '—'} {f'({stage})' if stage else ''} "
                     f"| {rate} | {rng} |")
    good = [sid for sid in corpus.training_ids]
    lost = {sid: removed[sid] for sid in good if sid in removed}
    lines += ["", "| good segments | in selection | lost | lost by rule |", "|---|---|---|---|"]
    lines.append(f"| all good | {len(good)} | {len(lost)} | "
                 f"{', '.join(f'{sid}: {r}' for sid, (_, r) in lost.items()) or '—'} |")
    for sid, kind in corpus.good_kinds.items():
        m = measured.get(sid, {})
        detail = f"range {m['range_db']:.1f} dB, {m['rate']:.1f} units/s" if m.get("range_db") is not None else ""
        verdict = f"lost: {removed[sid][1]}" if sid in removed else "kept"
        lines.append(f"| {kind} | 1 | {1 if sid in removed else 0} | {verdict} ({detail}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the planted-case table."""
    parser = argparse.ArgumentParser(prog="senseops_trainer.planted_cases", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="planted-") as tmp:
        corpus, workdir = run_stages(Path(tmp), args.seed)
        print(table(corpus, workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
