"""Issue 15 end to end: bad recordings and bad batches never end a training run.

The corpus is the synthetic espeak-ng one plus its hard cases (``synthetic.plan_hard_cases``): a
68-character label on ~7 s of Mandarin speech, noise and hum carrying plausible labels, a wrong but
plausible sentence, replayed duplicates, and good-but-hard segments. The data-stage test checks every
planted kind against the rule that must catch it (the README's planted-case table); the training test
runs the whole pipeline with the default filters and guard, with absurd losses forced into three real
FunASR batches, and must finish with a packaged model and an honest report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from senseops_common.speech import espeak_available
from senseops_common.storage import open_store
from senseops_trainer import synthetic
from senseops_trainer.demo import demo_settings
from senseops_trainer.loss_guard import INJECT_ENV
from senseops_trainer.planted_cases import outcomes, run_stages, table

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (make debian)")
REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 1200

# Which rule must catch each planted kind (None: no default rule can, see the README).
EXPECTED = {
    "noise": "low_confidence",
    "wrong_text": "rate_outlier",
    "repeats": "repeated_ngrams",
    "language_mismatch": "language_mismatch",
    "too_short": "too_short",
    "empty_text": "empty_text",
    "long_label_68_chars": "rate_outlier",
    "noise_plausible_label": "no_speech_audio",
    "hum_plausible_label": "no_speech_audio",
    "wrong_plausible_sentence": None,
    "duplicate_exact": "duplicate:exact",
    "duplicate_recut": "duplicate:fingerprint",
    "duplicate_overlap": "duplicate:overlap",
}


def test_planted_cases_are_caught_by_their_rule_and_no_good_segment_is_lost(tmp_path) -> None:
    corpus, workdir = run_stages(tmp_path)
    removed = outcomes(corpus, workdir)
    planted = {sid: kind for sid, kind in corpus.planted.items() if kind not in ("other_anchor", "outside_window")}
    assert sorted(planted.values()) == sorted(EXPECTED)
    for sid, kind in planted.items():
        assert removed.get(sid, ("", None))[1] == EXPECTED[kind], kind
    assert not set(removed) & set(corpus.training_ids), "a good segment was removed"
    assert set(corpus.good_kinds.values()) >= {"good_noise_5db", "good_quiet_-40db", "good_fast_300wpm"}
    duplicates = json.loads((workdir / "collect" / "duplicates.json").read_text())
    assert duplicates["dropped"] == 3 and duplicates["by_rule"] == {"exact": 1, "overlap": 1, "fingerprint": 1}
    assert "| long_label_68_chars | yes | rate_outlier (filter)" in table(corpus, workdir)


def _cli(args: list[str], env: dict[str, str]) -> tuple[int, str, list[dict]]:
    proc = subprocess.run([sys.executable, "-m", "senseops_trainer", *args], cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, proc.stdout, events


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(str(REPO / p) for p in ("operator", "runtime", "trainer_image"))
    return {**os.environ, "PYTHONPATH": path, **extra}


@pytest.mark.slow
def test_training_with_a_68_char_label_and_absurd_batches_finishes_with_a_model(tmp_path) -> None:
    from tests.testmodel import ensure_tiny_model

    store_uri = (tmp_path / "store").as_uri() + "/"
    corpus = synthetic.write_corpus(open_store(store_uri), hard_cases=True)
    settings = demo_settings(store_uri, str(ensure_tiny_model()), version="robust1")
    config = tmp_path / "job.json"
    config.write_text(json.dumps(settings))
    work = tmp_path / "work"
    # Batch 1 carries +800 (accepted in warm-up, same gradient: FunASR's log would compute exp(800) and
    # overflow without the guard); batches 3 and 6 are non-finite and absurd: skipped and counted.
    code, output, events = _cli(["run", "--config", str(config), "--workdir", str(work)],
                                _env(**{INJECT_ENV: "1=800,3=inf,6=1e6"}))
    assert code == 0, output[-4000:]
    assert not [e for e in events if e["event"] == "failed"]

    long_id = next(sid for sid, kind in corpus.planted.items() if kind == "long_label_68_chars")
    filter_report = json.loads((work / "filter" / "report.json").read_text())
    assert long_id in filter_report["removed_ids"]["rate_outlier"]

    skipped = [e for e in events if e["stage"] == "train" and e["event"] == "batch_skipped"]
    assert [(e["reason"], e["skipped_batches"]) for e in skipped] == [("non_finite", 1), ("above_max_loss", 2)]
    steps = [e for e in events if e["stage"] == "train" and e["event"] == "step"]
    assert steps[-1]["skipped_batches"] == 2
    assert sum(1 for e in steps if e.get("skipped")) == 2 and all(e["loss"] is None for e in steps if e.get("skipped"))
    assert "ppl_avg_slice: inf" in (work / "train" / "funasr.log").read_text()  # exp(800) saturated, no crash

    training = json.loads((work / "train" / "model" / "training.json").read_text())
    assert training["skipped_batches"] == 2
    assert (work / "train" / "model" / "model.pt").stat().st_size > 0
    record = json.loads((work / "package" / "record.json").read_text())
    assert open_store(store_uri).exists(record["uri"].removeprefix(store_uri) + "MANIFEST.sha256")

    report = json.loads((work / "evaluate" / "report.json").read_text())
    assert report["data"]["skipped_training_batches"] == 2
    assert report["gate"]["set_used"] == "golden" and "human-verified" in report["gate"]["set_used_why"]
    split = report["data"]["split"]
    assert split["train_val_shared_sentences"] == 0 and split["split_by"] == "normalised sentence group"
    gap = report["validation_vs_golden"]
    assert {"val_new", "golden_new", "gap", "explanation"} <= set(gap)
    assert any("never occur in training" in line for line in gap["explanation"])
    print(f"\nvalidation {gap['val_new']:.3f} vs golden {gap['golden_new']:.3f} (gap {gap['gap']:+.3f}, "
          f"2 s.e. {gap['noise_2se']:.3f}); gate: {report['gate']['reason']}")
    for line in gap["explanation"]:
        print("  -", line)


@pytest.mark.slow
def test_too_many_skipped_batches_fail_the_run_with_one_clear_line(tmp_path) -> None:
    from tests.testmodel import ensure_tiny_model

    store_uri = (tmp_path / "store").as_uri() + "/"
    synthetic.write_corpus(open_store(store_uri))
    settings = demo_settings(store_uri, str(ensure_tiny_model()), version="never", max_epoch=1)
    config = tmp_path / "job.json"
    config.write_text(json.dumps(settings))
    every_batch = ",".join(f"{i}=inf" for i in range(1, 200))
    code, output, events = _cli(["run", "--config", str(config), "--workdir", str(tmp_path / "w")],
                                _env(**{INJECT_ENV: every_batch}))
    assert code == 2, output[-3000:]
    failed = [e for e in events if e["event"] == "failed"]
    assert len(failed) == 1 and failed[0]["stage"] == "train"
    assert "had a non-finite or absurd loss" in failed[0]["message"]
    assert "train.max_skipped_batch_share" in failed[0]["message"]
