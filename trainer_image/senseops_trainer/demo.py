"""``python -m senseops_trainer.demo --base-model DIR`` — a short fine-tune on synthetic recordings.

The base model is a directory: ``make train-demo`` passes the tiny test model that ``python -m
tests.testmodel build`` prints (the builder is development tooling, not part of this package). Writes the
synthetic espeak-ng corpus into a store (``file://`` under ``--dir`` unless ``--store`` is given), runs
every stage and prints the evaluation summary. ``make train-demo`` calls it; the end-to-end
test uses :func:`demo_settings` so the demo and the test train the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from senseops_trainer import synthetic

# The tiny model is random-init apart from six memorised sentences: it needs a far larger learning rate
# than the seed's 1e-5–3e-5 for a real pre-trained SenseVoice-Small, and more epochs over little data.
TINY_LR = 2e-3
TINY_EPOCHS = 12
TINY_BATCH_TOKENS = 1200  # ~4 clips of 2-3 s per step: several steps per epoch on the 35 training clips


def demo_settings(store_uri: str, base_model: str, version: str = "demo1", **train: Any) -> dict[str, Any]:
    """Settings for fine-tuning the tiny model on the synthetic corpus (override ``train`` fields)."""
    return {
        "store_uri": store_uri,
        "base_model": base_model,
        "job_name": "demo-finetune",
        "dataset": {
            "anchor_ids": [synthetic.ANCHOR],
            "since": synthetic.WINDOW[0],
            "until": synthetic.WINDOW[1],
            "golden_key": synthetic.GOLDEN_KEY,
            "val_fraction": 0.1,
        },
        "train": {"lr": TINY_LR, "max_epoch": TINY_EPOCHS, "batch_tokens": TINY_BATCH_TOKENS, "warmup_steps": 20,
                  "avg_nbest": 1, "num_threads": 2, **train},
        "gate": {"min_cer_improvement": 0.05},
        "output": {"name": "sensevoice-tiny-demo", "version": version},
    }


def summary_table(report: dict[str, Any]) -> str:
    """Human summary of an evaluation report."""
    lines = [f"{'set':<8} {'utts':>5} {'base':>8} {'new':>8} {'gain':>8}"]
    for name, entry in report["sets"].items():
        if entry.get("utterances"):
            lines.append(f"{name:<8} {entry['utterances']:>5} {entry['base']['rate']:>8.3f} "
                         f"{entry['new']['rate']:>8.3f} {entry['improvement']:>+8.3f}")
    lines.append(f"RTF base {report['rtf']['base']}  new {report['rtf']['new']}")
    lines.append(f"gate: {'PASSED' if report['gate']['passed'] else 'FAILED'} — {report['gate']['reason']}")
    if report["gate"].get("set_used"):
        lines.append(f"gate set: {report['gate']['set_used']} ({report['gate'].get('set_used_why', '')})")
    data = report.get("data", {})
    if data:
        lines.append(f"skipped training batches: {data.get('skipped_training_batches', 0)}; duplicates dropped: "
                     f"{data.get('duplicates_dropped', {})}")
    for line in report.get("validation_vs_golden", {}).get("explanation", []):
        lines.append(f"  validation vs golden: {line}")
    for ex in report["examples"]:
        if ex["set"] == "golden":
            lines.append(f"  golden {ex['key']}: ref={ex['reference']!r} base={ex['base']!r} new={ex['new']!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; exit code as the trainer CLI's."""
    from senseops_common.storage import open_store
    from senseops_trainer.cli import main as cli_main
    from senseops_trainer.evaluate import REPORT

    parser = argparse.ArgumentParser(prog="senseops_trainer.demo")
    parser.add_argument("--dir", type=Path, default=Path(".demo/trainer"))
    parser.add_argument("--store", help="recordings store URI (default: file:// under --dir)")
    parser.add_argument("--base-model", type=Path, required=True,
                        help="the base model directory (the tiny test model: python -m tests.testmodel build)")
    args = parser.parse_args(argv)
    base = args.base_model.resolve()
    if not base.is_dir():
        parser.error(f"--base-model {base} is not a directory; build the tiny test model with "
                     "`make tiny-model` (it prints the directory) or pass a FunASR model directory")
    root = args.dir.resolve()
    store_uri = args.store or (root / "store").as_uri() + "/"
    store = open_store(store_uri)
    if not store.exists(synthetic.GOLDEN_KEY):
        print(synthetic.corpus_summary(synthetic.write_corpus(store)), flush=True)
    # Model versions are immutable in the store, so every demo run packages a new version in its own
    # work dir (the stages inside one run are still resumable: rerun the printed command to resume).
    version = "demo-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    workdir = root / "runs" / version
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "job.json"
    config.write_text(json.dumps(demo_settings(store_uri, str(base), version=version), indent=2))
    print(f"trainer run: python -m senseops_trainer run --config {config} --workdir {workdir}", flush=True)
    code = cli_main(["run", "--config", str(config), "--workdir", str(workdir)])
    report = workdir / REPORT
    if report.exists():
        print("\n=== evaluation summary ===\n" + summary_table(json.loads(report.read_text())), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
