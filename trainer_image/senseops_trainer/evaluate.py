"""The evaluate stage: CER/WER of the base and the fine-tuned model on validation and golden sets, RTF,
a JSON report, a PNG chart, and the release gate.

Both models are loaded through the runtime's engine (the same code that serves traffic), so the numbers
describe what production would do. Scoring uses :func:`senseops_common.text.error_rate`, i.e. the same
normalisation the training targets went through.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from senseops_common.progress import Progress
from senseops_common.text import error_rate
from senseops_trainer.config import GateConfig
from senseops_trainer.context import GateFailed, RunContext, StageFailed, StageOutcome
from senseops_trainer.data_stages import DUPLICATES, FILTER_REPORT, GOLDEN_LIST, SPLIT_SUMMARY, VAL_LIST
from senseops_trainer.train import LOSS_CURVE, TRAINING_INFO

REPORT = "evaluate/report.json"
CHART = "evaluate/chart.png"
EXAMPLES_IN_REPORT = 10


def _load_engine(model_dir: Path, device: str) -> Any:
    from senseops_runtime.engine import load_engine

    return load_engine(model_dir, "torch", device)


def _read_audio(path: str) -> np.ndarray:
    samples, rate = soundfile.read(path, dtype="float32", always_2d=False)
    if rate != 16_000:
        raise StageFailed("evaluate", f"{path} is {rate} Hz; recordings must be 16 kHz")
    return np.asarray(samples if samples.ndim == 1 else samples.mean(axis=1), dtype=np.float32)


def file_decoder(model_dir: Path, device: str) -> Callable[[Path], str]:
    """``decode(path) -> text`` with one model (the filter's stability check uses the base model)."""
    from senseops_runtime.engine.base import DecodeOptions

    engine = _load_engine(model_dir, device)
    return lambda path: str(engine.transcribe(_read_audio(str(path)), DecodeOptions(itn=False)).text)


def decode_set(engine: Any, rows: list[dict[str, Any]], task: str = "evaluate") -> tuple[list[str], float, float]:
    """Hypotheses for every row, total decode seconds, total audio seconds (progress reported as ``task``)."""
    from senseops_runtime.engine.base import DecodeOptions

    hyps: list[str] = []
    decode_s = audio_s = 0.0
    options = DecodeOptions(language="auto", itn=False)
    with Progress(task, total=len(rows), unit="utterances") as progress:
        for row in rows:
            audio = _read_audio(row["source"])
            started = time.perf_counter()
            hyps.append(engine.transcribe(audio, options).text)
            decode_s += time.perf_counter() - started
            audio_s += len(audio) / 16_000
            progress.update(1)
    return hyps, decode_s, audio_s


def gate_set_used(report: dict[str, Any], gate: GateConfig) -> tuple[str, str]:
    """Pure: the set the gate judges, and a sentence saying why that one."""
    sets = report["sets"]
    if sets.get(gate.gate_set, {}).get("utterances"):
        why = {"golden": "gate.gate_set is golden and the human-verified golden set has utterances",
               "val": "gate.gate_set is val"}[gate.gate_set]
        return gate.gate_set, why
    return "val", (f"gate.gate_set is {gate.gate_set} but that set is empty (no dataset.golden_key, or no golden "
                   "segments): the gate fell back to validation, whose labels are unverified pseudo-labels")


def gate_verdict(report: dict[str, Any], gate: GateConfig) -> tuple[bool, str]:
    """Pure: does the new model pass the release gate? Returns (passed, a sentence saying why)."""
    sets = report["sets"]
    name, _ = gate_set_used(report, gate)
    chosen = sets.get(name)
    if not chosen or not chosen.get("utterances"):
        return False, "no evaluation utterances: the gate cannot pass without data"
    base, new = chosen["base"]["rate"], chosen["new"]["rate"]
    improvement = base - new
    if improvement < gate.min_cer_improvement or (gate.min_cer_improvement == 0.0 and new >= base):
        return False, (
            f"new error rate {new:.4f} on the {name} set is not better than the base {base:.4f} by "
            f"{gate.min_cer_improvement:.4f} (improvement {improvement:+.4f}); the model is not released"
        )
    rtf = report.get("rtf", {}).get("new")
    if gate.max_rtf is not None and rtf is not None and rtf > gate.max_rtf:
        return False, f"new model's real-time factor {rtf:.3f} exceeds gate.max_rtf {gate.max_rtf}"
    return True, f"{name} error rate {base:.4f} → {new:.4f} (improvement {improvement:+.4f})"


def _standard_error(rate: float, units: int) -> float:
    # A binomial approximation per reference unit: rough (errors cluster by utterance), but it tells a
    # reader whether a gap is within the noise of a small set.
    return math.sqrt(max(rate * (1 - rate), 0.0) / units) if units > 0 else math.inf


def explain_val_golden_gap(report: dict[str, Any], split_summary: dict[str, Any]) -> dict[str, Any]:
    """Pure: the validation and golden error rates of the new model side by side, and why they differ."""
    val, golden = report["sets"].get("val", {}), report["sets"].get("golden", {})
    if not val.get("utterances") or not golden.get("utterances"):
        return {"explanation": ["only one of validation and golden has utterances: nothing to compare"]}
    v, g = val["new"]["rate"], golden["new"]["rate"]
    v_units, g_units = val["new"]["reference_units"], golden["new"]["reference_units"]
    noise = 2 * math.hypot(_standard_error(v, v_units), _standard_error(g, g_units))
    lines = [
        f"validation holds {val['utterances']} segments of {split_summary.get('val_sentence_groups', '?')} sentence "
        f"group(s) that never occur in training (split by normalised text; "
        f"{split_summary.get('near_duplicate_sentences_grouped', 0)} near-duplicate sentence(s) grouped, "
        f"{split_summary.get('train_val_shared_sentences', 0)} shared with training), so it measures unseen "
        "sentences, not the same sentences at another speed or pitch",
        "validation labels are the live model's pseudo-labels (unverified); golden labels are human-verified, "
        "so a wrong pseudo-label counts against the validation rate (or hides an error the model learned)",
        f"both sets are small ({v_units} and {g_units} reference units): differences below about {noise:.3f} "
        "(two standard errors) are sampling noise",
    ]
    gap = round(g - v, 6)
    if abs(gap) > noise:
        lines.append(
            f"the gap ({gap:+.3f}) is larger than that noise: the sets differ in content — golden sentences "
            "come from the human-verified list (new word combinations), validation from this job's own recordings"
        )
    else:
        lines.append(f"the gap ({gap:+.3f}) is within sampling noise")
    return {"val_new": v, "golden_new": g, "gap": gap, "noise_2se": round(noise, 6), "explanation": lines}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _rate_json(refs: list[str], hyps: list[str]) -> dict[str, Any]:
    er = error_rate(refs, hyps)
    return {"rate": round(er.rate, 6), "errors": er.errors, "reference_units": er.reference_units,
            "substitutions": er.substitutions, "deletions": er.deletions, "insertions": er.insertions}


def _by_language(rows: list[dict[str, Any]], base: list[str], new: list[str]) -> dict[str, Any]:
    """Error rates per language tag: CER for ``zh`` rows, WER for ``en`` rows (FineTuneJob metrics)."""
    out: dict[str, Any] = {}
    for lang in sorted({r["text_language"].strip("<|>") for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["text_language"].strip("<|>") == lang]
        refs = [rows[i]["target"] for i in idx]
        out[lang] = {"utterances": len(idx), "base": round(error_rate(refs, [base[i] for i in idx]).rate, 6),
                     "new": round(error_rate(refs, [new[i] for i in idx]).rate, 6)}
    return out


def draw_chart(report: dict[str, Any], curve_path: Path, out: Path) -> None:
    """Loss curve (train per step, validation per epoch) and error rates base vs new per set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = curve_path.read_text().splitlines() if curve_path.exists() else []
    points = [json.loads(line) for line in lines if line.strip()]
    train_pts = [(p["total_step"], p["loss"]) for p in points if p.get("kind") == "train" and not p.get("skipped")]
    fig, (ax_loss, ax_cer) = plt.subplots(1, 2, figsize=(11, 4))
    val_pts = [(p["total_step"], p["loss"]) for p in points if p.get("kind") == "val" and "total_step" in p]
    if train_pts:
        ax_loss.plot([s for s, _ in train_pts], [v for _, v in train_pts], label="train loss")
    if val_pts:
        ax_loss.plot([s for s, _ in val_pts], [v for _, v in val_pts], "o-", label="validation loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("training loss")
    ax_loss.legend(loc="upper right")
    names = [n for n, s in report["sets"].items() if s.get("utterances")]
    xs = np.arange(len(names))
    ax_cer.bar(xs - 0.2, [report["sets"][n]["base"]["rate"] for n in names], 0.4, label="base")
    ax_cer.bar(xs + 0.2, [report["sets"][n]["new"]["rate"] for n in names], 0.4, label="fine-tuned")
    ax_cer.set_xticks(xs, names)
    ax_cer.set_ylabel("CER / WER")
    ax_cer.set_title("error rate: base vs fine-tuned")
    ax_cer.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)


def evaluate(ctx: RunContext, base_model: Path, new_model: Path) -> dict[str, Any]:
    """Score base and fine-tuned models; write report + chart; fail the stage when the gate fails."""
    inputs = {"train": ctx.manifest.outputs_digest("train"), "split": ctx.manifest.outputs_digest("split"),
              "base": str(base_model), "gate": ctx.cfg.to_json()["gate"]}

    def body() -> StageOutcome:
        sets = {"val": _read_rows(ctx.workdir / VAL_LIST), "golden": _read_rows(ctx.workdir / GOLDEN_LIST)}
        report: dict[str, Any] = {"sets": {}, "rtf": {}, "examples": []}
        timing = {"base": [0.0, 0.0], "new": [0.0, 0.0]}
        hyps_by: dict[tuple[str, str], list[str]] = {}
        for label, model_dir in (("base", base_model), ("new", new_model)):
            engine = _load_engine(model_dir, ctx.cfg.train.device)
            for set_name, rows in sets.items():
                hyps, decode_s, audio_s = decode_set(engine, rows, task=f"evaluate {label} on {set_name}")
                hyps_by[(label, set_name)] = hyps
                timing[label][0] += decode_s
                timing[label][1] += audio_s
            del engine
        for set_name, rows in sets.items():
            refs = [r["target"] for r in rows]
            entry: dict[str, Any] = {"utterances": len(rows)}
            if rows:
                entry["base"] = _rate_json(refs, hyps_by[("base", set_name)])
                entry["new"] = _rate_json(refs, hyps_by[("new", set_name)])
                entry["improvement"] = round(entry["base"]["rate"] - entry["new"]["rate"], 6)
                entry["by_language"] = _by_language(rows, hyps_by[("base", set_name)], hyps_by[("new", set_name)])
            report["sets"][set_name] = entry
        for set_name in ("golden", "val"):
            for i, row in enumerate(sets[set_name][:EXAMPLES_IN_REPORT]):
                report["examples"].append({
                    "set": set_name, "key": row["key"], "reference": row["target"],
                    "base": hyps_by[("base", set_name)][i], "new": hyps_by[("new", set_name)][i],
                })
        report["rtf"] = {k: round(d / a, 4) if a else None for k, (d, a) in timing.items()}
        passed, reason = gate_verdict(report, ctx.cfg.gate)
        used, why = gate_set_used(report, ctx.cfg.gate)
        report["gate"] = {"passed": passed, "reason": reason, "set_used": used, "set_used_why": why,
                          **ctx.cfg.to_json()["gate"]}
        split_summary = _read_json(ctx.workdir / SPLIT_SUMMARY)
        report["validation_vs_golden"] = explain_val_golden_gap(report, split_summary)
        training = _read_json(new_model / TRAINING_INFO)
        report["data"] = {
            "split": split_summary,
            "filter": {k: v for k, v in _read_json(ctx.workdir / FILTER_REPORT).items() if k != "removed_ids"},
            "duplicates_dropped": _read_json(ctx.workdir / DUPLICATES).get("by_rule", {}),
            "skipped_training_batches": training.get("skipped_batches", 0),
        }
        ctx.path(REPORT).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        draw_chart(report, ctx.workdir / LOSS_CURVE, ctx.path(CHART))
        if not passed:
            # The package stage will not run: publish the report now, so the operator and a person can
            # see the numbers that failed the gate.
            from senseops_trainer.package import upload_reports

            upload_reports(ctx, {"report.json": ctx.path(REPORT), "chart.png": ctx.path(CHART)})
            raise GateFailed("evaluate", f"gate failed: {reason}")
        summary = {
            f"{n}_{m}": s[m]["rate"] for n, s in report["sets"].items() if s.get("utterances") for m in ("base", "new")
        }
        return StageOutcome([REPORT, CHART], {**summary, "rtf_new": report["rtf"]["new"], "gate": reason,
                                              "gate_set": used})

    return ctx.run_stage("evaluate", inputs, body)


def report_files(ctx: RunContext) -> dict[str, Path]:
    """Report files the package stage uploads to ``reports/{job}/``."""
    files = {"report.json": ctx.workdir / REPORT, "chart.png": ctx.workdir / CHART}
    for name in ("filter/report.json", "split/summary.json", "train/loss.jsonl"):
        if (ctx.workdir / name).exists():
            files[name.replace("/", "-")] = ctx.workdir / name
    return files
