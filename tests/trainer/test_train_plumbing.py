"""Pure parts of the train/evaluate stages and progress reporting."""

from __future__ import annotations

import io
import json
import math
import os
import sys
from pathlib import Path

import pytest

from senseops_trainer.config import GateConfig, TrainParams
from senseops_trainer.evaluate import explain_val_golden_gap, gate_set_used, gate_verdict
from senseops_trainer.progress import (
    FineTuneJobStatusSink,
    ProgressLog,
    estimate_eta_s,
    status_progress,
    status_sink_from_env,
)
from senseops_trainer.train import build_train_command, freeze_param, parse_log_line

TRAIN_LINE = (
    "[2026-03-01 10:00:00,000][root][INFO] - train, rank: 0, epoch: 1/3, data_slice: 0/1, "
    "step_in_slice: 4/10, step_in_epoch: 4, total step: 14, (loss_avg_rank: 12.345), "
    "(loss_avg_slice: 13.000), (ppl_avg_slice: 4.4e+05), (acc_avg_slice: 0.000), (lr: 2.000e-05), "
    "[('loss', 12.345)], {'data_load': '0.001'}, GPU, memory: usage: 0.000 GB"
)
VAL_LINE = (
    "[2026-03-01 10:00:01,000][root][INFO] - val, rank: 0, epoch: 2/3, data_slice: 0/1, step_in_slice: 1/1, "
    "step_in_epoch: 1, total step: 1, (loss_avg_rank: 9.500), (loss_avg_slice: 9.500)"
)

LOG_CASES = [
    ("train step", TRAIN_LINE, {"kind": "train", "rank": 0, "epoch": 1, "max_epoch": 3, "step": 4,
                                "steps_per_epoch": 10, "total_step": 14, "loss": 12.345}),
    ("train step of rank 3", TRAIN_LINE.replace("rank: 0", "rank: 3"),
     {"kind": "train", "rank": 3, "epoch": 1, "max_epoch": 3, "step": 4, "steps_per_epoch": 10, "total_step": 14,
      "loss": 12.345}),
    ("weights digest", 'SENSEOPS_WEIGHTS {"rank": 1, "epoch": 2, "step": null, "sha256": "ab"}',
     {"kind": "weights", "rank": 1, "epoch": 2, "step": None, "sha256": "ab"}),
    ("weights digest after another rank's partial line", 'step_in_epoch: 3, SENSEOPS_WEIGHTS {"rank": 0, "epoch": 1, '
     '"step": 7, "sha256": "cd"}', {"kind": "weights", "rank": 0, "epoch": 1, "step": 7, "sha256": "cd"}),
    ("weights digest followed by another rank's output", 'SENSEOPS_WEIGHTS {"rank": 1, "epoch": 1, "step": 7, '
     '"sha256": "cd"}[2026-03-01 10:00:01,000][root][INFO] - val', {"kind": "weights", "rank": 1, "epoch": 1,
                                                                    "step": 7, "sha256": "cd"}),
    ("garbled weights digest is no event", 'SENSEOPS_WEIGHTS {"rank": 1, "epo', None),
    ("validation", VAL_LINE, {"kind": "val", "rank": 0, "epoch": 2, "total_step": 1, "loss": 9.5}),
    ("resume notice", "Checkpoint loaded successfully from '/w/train/funasr/model.pt'", {"kind": "resumed"}),
    ("other noise", "Build model, frontend, tokenizer", None),
]


@pytest.mark.parametrize(("name", "line", "expected"), LOG_CASES, ids=[c[0] for c in LOG_CASES])
def test_parse_log_line(name, line, expected) -> None:
    assert parse_log_line(line) == expected


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [(0, None), (1, "encoder.encoders0"), (3, "encoder.encoders0,encoder.encoders.0,encoder.encoders.1")],
)
def test_freeze_param(blocks, expected) -> None:
    assert freeze_param(blocks) == expected


def test_cpu_command_has_the_design_flags() -> None:
    cmd = build_train_command(TrainParams(), Path("/m"), Path("/t.jsonl"), Path("/v.jsonl"), Path("/o"), "py")
    # FunASR's own entry point, wrapped by the bad-batch guard (funasr_guarded.py).
    assert cmd[:3] == ["py", "-m", "senseops_trainer.funasr_guarded"]
    for flag in ("++device=cpu", "++dataset_conf.batch_type=token", "++train_conf.avg_keep_nbest_models_type=loss",
                 "++train_conf.resume=true", "++model=/m", "++optim_conf.lr=2e-05", "++output_dir=/o"):
        assert flag in cmd
    assert not any(a.startswith("++freeze_param") for a in cmd)


def test_multi_gpu_uses_torchrun_and_freezing_is_passed() -> None:
    params = TrainParams(device="cuda", gpus=4, freeze_front_blocks=1, save_every_steps=50)
    cmd = build_train_command(params, Path("/m"), Path("/t"), Path("/v"), Path("/o"), "py")
    assert cmd[:7] == ["py", "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc-per-node=4",
                       "-m"]
    assert cmd[7] == "senseops_trainer.funasr_guarded"
    assert "++backend=nccl" in cmd
    assert "++freeze_param=encoder.encoders0" in cmd
    assert "++train_conf.save_checkpoint_interval=50" in cmd and "++train_conf.validate_interval=50" in cmd


def report(base: float, new: float, rtf: float = 0.1, golden: int = 5) -> dict:
    return {"sets": {"golden": {"utterances": golden, "base": {"rate": base}, "new": {"rate": new}},
                     "val": {"utterances": 3, "base": {"rate": 0.9}, "new": {"rate": 0.1}}},
            "rtf": {"new": rtf}}


GATE_CASES = [
    ("better passes", report(0.9, 0.5), GateConfig(), True),
    ("equal fails with zero margin", report(0.5, 0.5), GateConfig(), False),
    ("worse fails", report(0.5, 0.6), GateConfig(), False),
    ("margin not met", report(0.5, 0.45), GateConfig(min_cer_improvement=0.1), False),
    ("margin met", report(0.5, 0.35), GateConfig(min_cer_improvement=0.1), True),
    ("rtf too slow", report(0.9, 0.5, rtf=2.0), GateConfig(max_rtf=1.0), False),
    ("falls back to val without golden", report(0.5, 0.6, golden=0), GateConfig(), True),
]


@pytest.mark.parametrize(("name", "rep", "gate", "passed"), GATE_CASES, ids=[c[0] for c in GATE_CASES])
def test_gate_verdict(name, rep, gate, passed) -> None:
    ok, reason = gate_verdict(rep, gate)
    assert ok is passed
    assert reason


def test_gate_message_says_what_failed() -> None:
    ok, reason = gate_verdict(report(0.5, 0.6), GateConfig())
    assert not ok and "not better than the base" in reason and "0.6000" in reason


SET_USED_CASES = [
    ("golden when it has utterances", report(0.9, 0.5), GateConfig(), "golden", "human-verified"),
    ("val when asked for", report(0.9, 0.5), GateConfig(gate_set="val"), "val", "gate.gate_set is val"),
    ("val as a fallback, said so", report(0.9, 0.5, golden=0), GateConfig(), "val", "fell back to validation"),
]


@pytest.mark.parametrize(("name", "rep", "gate", "used", "why"), SET_USED_CASES, ids=[c[0] for c in SET_USED_CASES])
def test_gate_set_used(name, rep, gate, used, why) -> None:
    assert gate_set_used(rep, gate)[0] == used
    assert why in gate_set_used(rep, gate)[1]


def _rates(val: float, golden: float, units: int) -> dict:
    return {"sets": {"val": {"utterances": 4, "new": {"rate": val, "reference_units": units}},
                     "golden": {"utterances": 5, "new": {"rate": golden, "reference_units": units}}}}


GAP_CASES = [
    ("issue 15's gap (0.08 vs 0.77) is not noise", _rates(0.08, 0.77, 40), "larger than that noise"),
    ("a small gap on small sets is noise", _rates(0.30, 0.36, 30), "within sampling noise"),
]


@pytest.mark.parametrize(("name", "rep", "verdict"), GAP_CASES, ids=[c[0] for c in GAP_CASES])
def test_validation_golden_gap_is_explained(name, rep, verdict) -> None:
    summary = {"val_sentence_groups": 2, "near_duplicate_sentences_grouped": 1, "train_val_shared_sentences": 0}
    out = explain_val_golden_gap(rep, summary)
    assert out["gap"] == pytest.approx(rep["sets"]["golden"]["new"]["rate"] - rep["sets"]["val"]["new"]["rate"])
    assert any(verdict in line for line in out["explanation"])
    assert any("pseudo-labels" in line for line in out["explanation"])
    assert any("2 sentence group(s) that never occur in training" in line for line in out["explanation"])


def test_gap_needs_both_sets() -> None:
    rep = _rates(0.1, 0.2, 10)
    rep["sets"]["golden"]["utterances"] = 0
    assert "nothing to compare" in explain_val_golden_gap(rep, {})["explanation"][0]


@pytest.mark.parametrize(
    ("done", "total", "elapsed", "eta"), [(0, 10, 5.0, None), (5, 10, 10.0, 10.0), (10, 10, 7.0, 0.0), (3, 0, 1, None)]
)
def test_estimate_eta(done, total, elapsed, eta) -> None:
    assert estimate_eta_s(done, total, elapsed) == eta


class RecordingCustomObjectsApi:
    """Stand-in for kubernetes.client.CustomObjectsApi (records the calls; the real patch is tested on
    the cluster by the operator's tests)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def patch_namespaced_custom_object_status(self, *args) -> None:
        self.calls.append(args)


def test_progress_lines_are_json_and_status_is_rate_limited() -> None:
    out, api = io.StringIO(), RecordingCustomObjectsApi()
    now = [100.0]
    sink = FineTuneJobStatusSink("job1", "ns1", api, clock=lambda: now[0])
    progress = ProgressLog(out=out, sink=sink)
    step = {"max_epoch": 2, "steps_per_epoch": 10}
    progress.emit("train", "start")  # no training progress: not patched
    progress.emit("train", "step", epoch=1, step=1, total_step=1, loss=3.2, eta_s=40.4, **step)
    progress.emit("train", "step", epoch=1, step=2, total_step=2, loss=3.1, eta_s=35.0, **step)  # within 10 s
    now[0] += 11
    progress.emit("train", "step", epoch=2, step=1, total_step=11, loss=3.0, eta_s=30.0, **step)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    events = [(line["stage"], line["event"]) for line in lines]
    assert events == [("train", "start")] + [("train", "step")] * 3
    assert lines[3]["loss"] == 3.0 and lines[3]["eta_s"] == 30.0
    assert len(api.calls) == 2
    group, version, namespace, plural, name, body = api.calls[-1]
    assert (group, version, namespace, plural, name) == ("senseops.dev", "v1alpha1", "ns1", "finetunejobs", "job1")
    patched = body["status"]["progress"]
    assert {k: patched[k] for k in ("epoch", "step", "totalSteps", "loss", "etaSeconds")} == {
        "epoch": 2, "step": 11, "totalSteps": 20, "loss": 3.0, "etaSeconds": 30}
    assert patched["updatedAt"].endswith("Z")


def test_status_progress_uses_the_crd_field_names() -> None:
    fields = {"epoch": 1, "step": 3, "total_step": 3, "loss": 1.5, "eta_s": 9.6, "max_epoch": 2, "steps_per_epoch": 5}
    assert status_progress(fields, 0.0) == {"stage": "train", "epoch": 1, "step": 3, "totalSteps": 10, "loss": 1.5,
                                             "etaSeconds": 10, "updatedAt": "1970-01-01T00:00:00Z"}
    assert status_progress({"message": "x"}, 0.0) == {}


def test_stage_starts_reach_the_status_sink_at_once() -> None:
    """The operator follows PreparingData -> Training -> Evaluating -> Packaging from these."""
    import io

    from senseops_trainer.progress import ProgressLog

    published: list[tuple[dict[str, object], bool]] = []

    class Sink:
        def publish(self, progress: dict[str, object], force: bool = False) -> None:
            published.append((progress, force))

    log = ProgressLog(out=io.StringIO(), sink=Sink())
    log.emit("collect", "start")
    log.emit("collect", "done", segments=3)
    log.emit("evaluate", "start")
    assert published == [({"stage": "collect"}, True), ({"stage": "evaluate"}, True)]


def test_no_status_sink_outside_a_cluster() -> None:
    no_cluster = status_sink_from_env({"FINETUNEJOB_NAME": "j", "FINETUNEJOB_NAMESPACE": "n"})
    assert type(no_cluster).__name__ == "NullStatusSink"
    assert type(status_sink_from_env({})).__name__ == "NullStatusSink"


def _fake_funasr(tmp_path: Path, lines: list[str], code: int = 0) -> list[str]:
    """A stand-in process that prints FunASR-format log lines (the real parser and subprocess plumbing)."""
    script = tmp_path / f"fake_{len(list(tmp_path.glob('fake_*')))}.py"
    script.write_text(f"import sys\nfor line in {lines!r}:\n    print(line, flush=True)\nsys.exit({code})\n")
    return [sys.executable, str(script)]


def _train_line(step: int, total: int, loss: float) -> str:
    return (f"train, rank: 0, epoch: 0/1, data_slice: 0/1, step_in_slice: {step}/10, step_in_epoch: {step}, "
            f"total step: {total}, (loss_avg_rank: {loss}), (loss_avg_slice: 1.0)")


def _skip_line(total: int) -> str:
    from senseops_trainer.loss_guard import LossVerdict, skip_marker

    return skip_marker(LossVerdict("non_finite", math.inf), 0, total, total, 1)


def test_skipped_batches_are_counted_once_across_a_resume(tmp_path) -> None:
    from senseops_trainer.config import TrainerConfig
    from senseops_trainer.context import RunContext, StageFailed
    from senseops_trainer.train import _run_funasr

    out = io.StringIO()
    ctx = RunContext(cfg=TrainerConfig(train=TrainParams(max_skipped_batch_share=0.5)), workdir=tmp_path / "w",
                     progress=ProgressLog(out=out))
    first = [_train_line(1, 1, 5.0), _train_line(2, 2, 4.0), _skip_line(3), _train_line(3, 3, 0.0)]
    with pytest.raises(StageFailed, match="exited with 1"):
        _run_funasr(ctx, _fake_funasr(tmp_path, first, code=1), dict(os.environ))
    # The resumed run continues at step 3 (skipped again: counted once) and skips step 6: 2 batches in all,
    # including the one only the killed run saw.
    second = [_skip_line(3), _train_line(3, 3, 0.0), _train_line(4, 4, 3.0), _skip_line(6), _train_line(6, 6, 0.0),
              _train_line(7, 7, 2.0)]
    seen = _run_funasr(ctx, _fake_funasr(tmp_path, second), dict(os.environ))
    assert sorted(e["total_step"] for e in seen["skipped"]) == [3, 6]
    third = [_train_line(8, 8, 2.0), _skip_line(9), _train_line(9, 9, 0.0), _train_line(10, 10, 2.0)]
    seen = _run_funasr(ctx, _fake_funasr(tmp_path, third), dict(os.environ))
    assert sorted(e["total_step"] for e in seen["skipped"]) == [3, 6, 9]  # earlier runs' skips still count
    steps = [json.loads(line) for line in out.getvalue().splitlines() if '"event": "step"' in line]
    assert steps[-1]["skipped_batches"] == 3
    assert [s["total_step"] for s in steps if s.get("skipped")] == [3, 3, 6, 9]


def test_skip_share_above_the_limit_fails_at_the_end_of_a_short_run(tmp_path) -> None:
    from senseops_trainer.config import TrainerConfig
    from senseops_trainer.context import RunContext, StageFailed
    from senseops_trainer.train import _run_funasr

    ctx = RunContext(cfg=TrainerConfig(), workdir=tmp_path / "w", progress=ProgressLog(out=io.StringIO()))
    lines = [_train_line(1, 1, 5.0), _skip_line(2), _train_line(2, 2, 0.0), _train_line(3, 3, 4.0)]
    with pytest.raises(StageFailed, match=r"1 of 3 training batches \(33.3%\)"):
        _run_funasr(ctx, _fake_funasr(tmp_path, lines), dict(os.environ))
