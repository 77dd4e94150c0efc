"""Trainer benchmarks (not collected by pytest): prints tables.

1. filter + normalize throughput on 10,000 synthetic segments (unique texts, so no cache hides the work);
2. FunASR fine-tuning throughput of the tiny model on CPU (samples/s), from the training log's timestamps.

    .venv/bin/python tests/benchmarks/bench_trainer.py [--segments 10000] [--epochs 3] [--skip-train]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
for sub in ("runtime", "trainer_image", "operator", "."):
    sys.path.insert(0, str(REPO / sub))

from senseops_common.text import normalize_text  # noqa: E402
from senseops_trainer import synthetic  # noqa: E402
from senseops_trainer.filters import FilterConfig, _normalized, apply_filters  # noqa: E402
from senseops_trainer.segments import Segment  # noqa: E402

_FILLER_ZH = "今天我们来看看这款产品的价格非常优惠大家快点下单库存有限送完即止"
_FILLER_EN = ["please", "check", "the", "price", "today", "and", "order", "now", "while", "stock", "lasts", "thanks"]


def synthetic_segments(count: int, seed: int = 1) -> list[Segment]:
    """Unique pseudo-labelled segments shaped like live transcripts (about 10 % bad ones)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if rng.random() < 0.7:
            words = [rng.choice(synthetic.ZH_SUBJECTS), rng.choice(synthetic.ZH_PREDICATES)]
            words += [rng.choice(_FILLER_ZH) for _ in range(rng.randint(2, 14))]
            text, lang = "<|zh|><|NEUTRAL|><|Speech|><|withitn|>" + "".join(words) + rng.choice("，。！？"), "zh"
            seconds = len(text) / rng.uniform(3.0, 6.0)
        else:
            words = [rng.choice(synthetic.EN_SUBJECTS), rng.choice(synthetic.EN_PREDICATES)]
            words += rng.choices(_FILLER_EN, k=rng.randint(1, 8))
            text, lang = " ".join(words).capitalize() + f" #{i}.", "en"
            seconds = len(text.split()) / rng.uniform(1.5, 3.5)
        bad = rng.random()
        if bad < 0.03:
            text = "好的" * 8
        elif bad < 0.06:
            seconds = 0.2
        out.append(Segment(segment_id=f"s{i}", anchor_id="a", session_ts="20260301T100000Z",
                           audio_key=f"raw/a/20260301T100000Z/s{i}.wav", text=f"{text}{i}", start_ms=0,
                           end_ms=int(seconds * 1000), lang=lang, confidence=rng.uniform(0.4, 1.0)))
    return out


def bench_filter_normalize(count: int) -> None:
    segments = synthetic_segments(count)
    _normalized.cache_clear()
    normalize_text("預熱")  # load OpenCC once, outside the timing
    started = time.perf_counter()
    result = apply_filters(segments, FilterConfig())
    filtered = time.perf_counter()
    normalized = [normalize_text(s.text) for s in result.kept]
    done = time.perf_counter()
    print(f"\n### filter + normalize ({count} segments, 1 process)")
    print("| step | seconds | segments/s |\n|---|---|---|")
    print(f"| filter (all rules) | {filtered - started:.3f} | {count / (filtered - started):,.0f} |")
    rate = len(normalized) / (done - filtered)
    print(f"| normalize kept ({len(normalized)}) | {done - filtered:.3f} | {rate:,.0f} |")
    print(f"| filter + normalize | {done - started:.3f} | {count / (done - started):,.0f} |")
    print(f"removed by rule: {result.counts}")


def bench_split(count: int) -> None:
    from senseops_trainer.split import split_segments

    segments = [s.with_text(normalize_text(s.text)) for s in synthetic_segments(count)]
    started = time.perf_counter()
    result = split_segments(segments, 0.1)
    seconds = time.perf_counter() - started
    print(f"\n### split by sentence group ({count} segments, near-duplicate search included)")
    print(f"| seconds | segments/s | groups | near-duplicates grouped |\n|---|---|---|---|\n"
          f"| {seconds:.3f} | {count / seconds:,.0f} | {result.sentence_groups} | {result.near_duplicate_sentences} |")


def bench_training(epochs: int) -> None:
    from senseops_common.storage import open_store
    from senseops_trainer.config import config_from_dict
    from senseops_trainer.context import RunContext
    from senseops_trainer.demo import demo_settings
    from senseops_trainer.pipeline import run_all
    from senseops_trainer.progress import ProgressLog
    from tests.testmodel import ensure_tiny_model

    base = ensure_tiny_model()
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        store_uri = (Path(tmp) / "store").as_uri() + "/"
        synthetic.write_corpus(open_store(store_uri))
        settings = demo_settings(store_uri, str(base), max_epoch=epochs)
        work = Path(tmp) / "work"
        ctx = RunContext(cfg=config_from_dict(settings), workdir=work, progress=ProgressLog(out=io.StringIO()))
        started = time.perf_counter()
        results = run_all(ctx, until="train")
        wall = time.perf_counter() - started
        train_rows = len((work / "split" / "train.jsonl").read_text().splitlines())
        curve = [json.loads(line) for line in (work / "train" / "loss.jsonl").read_text().splitlines()]
    steps = [p for p in curve if p["kind"] == "train"]
    steady_s = steps[-1]["t"] - steps[0]["t"]
    samples = train_rows * epochs
    per_step = train_rows / max(1, steps[0]["steps_per_epoch"])
    print(f"\n### tiny-model fine-tuning on CPU ({train_rows} clips x {epochs} epochs, batch_tokens "
          f"{settings['train']['batch_tokens']}, torch threads {settings['train']['num_threads']})")
    print("| measure | value |\n|---|---|")
    print(f"| optimizer steps | {len(steps)} |")
    print(f"| samples/s (first→last step, steady state) | {(len(steps) - 1) * per_step / steady_s:.1f} |")
    print(f"| samples/s (train stage wall time incl. FunASR start-up) | {samples / results['train']['seconds']:.1f} |")
    print(f"| train stage seconds | {results['train']['seconds']:.1f} |")
    print(f"| collect→train wall seconds | {wall:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    bench_filter_normalize(args.segments)
    bench_split(args.segments)
    if not args.skip_train:
        bench_training(args.epochs)


if __name__ == "__main__":
    main()
