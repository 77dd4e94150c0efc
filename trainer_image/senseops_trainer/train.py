"""The train stage: FunASR fine-tuning (``python -m funasr.bin.train``) as a resumable subprocess.

FunASR writes ``model.pt`` (latest, with optimizer state) plus ``model.pt.ep{E}[.{step}]`` checkpoints
into its output directory and resumes from ``model.pt`` when ``train_conf.resume`` is on. The output
directory lives in the work directory, so a killed run restarted with the same work directory continues
from its last checkpoint while the finished data stages are skipped by the manifest.

Command building and log parsing are pure functions; :func:`train` does the I/O.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import senseops_trainer
from senseops_common.progress import Progress
from senseops_trainer.config import TrainParams
from senseops_trainer.context import RunContext, StageFailed, StageOutcome
from senseops_trainer.data_stages import TRAIN_LIST, VAL_LIST
from senseops_trainer.distributed import Topology, backend_for, diverged, launcher, parse_weights_marker, topology
from senseops_trainer.loss_guard import GUARD_ENV, parse_marker, skip_limit_reason
from senseops_trainer.progress import estimate_eta_s

FUNASR_OUT = "train/funasr"
MODEL_DIR = "train/model"
TRAIN_LOG = "train/funasr.log"
LOSS_CURVE = "train/loss.jsonl"
SKIPPED_LOG = "train/skipped_batches.jsonl"  # every skipped batch, kept across resumed runs
TRAINING_INFO = "training.json"  # written into the produced model directory
# Files of a model directory that the fine-tune does not change (copied from the base).
_STATIC_SUFFIXES = (".yaml", ".json", ".model", ".mvn", ".txt")
# The base's own records describe the base, not the fine-tuned model (its lineage is in training.json).
_NOT_COPIED = {TRAINING_INFO, "senseops_testmodel.json"}

# "train, rank: 0, epoch: 0/2, data_slice: 0/1, step_in_slice: 3/10, step_in_epoch: 3, total step: 3,
#  (loss_avg_rank: 2.345), …"
_TRAIN_LINE = re.compile(
    r"\btrain, rank: (?P<rank>\d+), epoch: (?P<epoch>\d+)/(?P<max_epoch>\d+), .*?"
    r"step_in_slice: (?P<step>\d+)/(?P<steps>-?\d+), step_in_epoch: \d+, total step: (?P<total>\d+), "
    r"\(loss_avg_rank: (?P<loss>[-+0-9.eEnaif]+)\)"
)
_VAL_LINE = re.compile(
    r"\bval, rank: (?P<rank>\d+), epoch: (?P<epoch>\d+)/\d+, .*?total step: (?P<total>\d+), "
    r"\(loss_avg_rank: (?P<loss>[-+0-9.eEnaif]+)\)"
)
_RESUMED = re.compile(r"Checkpoint loaded successfully from")
# FunASR's own entry point, wrapped by our bad-batch guard (see funasr_guarded.py).
TRAIN_MODULE = "senseops_trainer.funasr_guarded"


def freeze_param(front_blocks: int) -> str | None:
    """FunASR ``freeze_param`` for the first ``front_blocks`` encoder blocks (``encoders0`` is block 1)."""
    if front_blocks <= 0:
        return None
    names = ["encoder.encoders0"] + [f"encoder.encoders.{i}" for i in range(front_blocks - 1)]
    return ",".join(names)


def topology_of(params: TrainParams, job_name: str, env: dict[str, str] | None = None) -> Topology:
    """This pod's place in the training world (see ``distributed.py``); bad settings fail the stage."""
    try:
        return topology(params.device, params.gpus, params.nodes, params.procs_per_node, params.rdzv_endpoint,
                        job_name, os.environ if env is None else env)
    except ValueError as exc:
        raise StageFailed("train", str(exc)) from exc


def build_train_command(
    params: TrainParams, base_model: Path, train_list: Path, val_list: Path, output_dir: Path,
    python: str = sys.executable, topo: Topology | None = None,
) -> list[str]:
    """The command line of one fine-tuning run: plain, or under torchrun for several processes or pods."""
    topo = topo or topology_of(params, "finetune", {})
    overrides = [
        f"++model={base_model}",
        f"++train_data_set_list={train_list}",
        f"++valid_data_set_list={val_list}",
        f"++output_dir={output_dir}",
        f"++device={params.device}",
        "++dataset=SenseVoiceCTCDataset",
        "++dataset_conf.index_ds=IndexDSJsonl",
        "++dataset_conf.batch_type=token",  # DESIGN §6: token batching (the example batcher needs a GPU)
        f"++dataset_conf.batch_size={params.batch_tokens}",
        "++dataset_conf.num_workers=0",
        f"++train_conf.max_epoch={params.max_epoch}",
        "++train_conf.log_interval=1",
        "++train_conf.resume=true",
        f"++train_conf.keep_nbest_models={max(params.avg_nbest, 1)}",
        f"++train_conf.avg_nbest_model={max(params.avg_nbest, 1)}",
        "++train_conf.avg_keep_nbest_models_type=loss",  # DESIGN §6: CPU runs have no accuracy metric
        f"++optim_conf.lr={params.lr}",
        f"++scheduler_conf.warmup_steps={params.warmup_steps}",
        f"++seed={params.seed}",
        "++disable_update=true",
    ]
    if params.save_every_steps > 0:
        # FunASR requires validating exactly when it checkpoints.
        overrides += [
            f"++train_conf.save_checkpoint_interval={params.save_every_steps}",
            f"++train_conf.validate_interval={params.save_every_steps}",
        ]
    frozen = freeze_param(params.freeze_front_blocks)
    if frozen:
        overrides.append(f"++freeze_param={frozen}")
    if topo.world_size > 1:
        overrides.append(f"++backend={backend_for(params.device)}")
    overrides += list(params.extra_overrides)
    return [*launcher(topo, python), "-m", TRAIN_MODULE, *overrides]


def parse_log_line(line: str) -> dict[str, Any] | None:
    """A progress event from one FunASR log line, or ``None`` for lines that carry no progress."""
    match = _TRAIN_LINE.search(line)
    if match:
        return {
            "kind": "train",
            "rank": int(match["rank"]),
            "epoch": int(match["epoch"]),
            "max_epoch": int(match["max_epoch"]),
            "step": int(match["step"]),
            "steps_per_epoch": int(match["steps"]),
            "total_step": int(match["total"]),
            "loss": float(match["loss"]),
        }
    match = _VAL_LINE.search(line)
    if match:
        return {"kind": "val", "rank": int(match["rank"]), "epoch": int(match["epoch"]),
                "total_step": int(match["total"]), "loss": float(match["loss"])}
    weights = parse_weights_marker(line)
    if weights is not None:
        return {"kind": "weights", **weights}
    if _RESUMED.search(line):
        return {"kind": "resumed"}
    marker = parse_marker(line)
    if marker is not None:
        return {"kind": marker[0], **marker[1]}
    return None


def pick_checkpoint(funasr_out: Path, avg_nbest: int) -> Path:
    """The weights to ship: the averaged checkpoint, else the best by loss, else the latest."""
    for name in (f"model.pt.avg{avg_nbest}", "model.pt.best", "model.pt"):
        if (funasr_out / name).is_file():
            return funasr_out / name
    raise StageFailed("train", f"FunASR finished without writing a checkpoint into {funasr_out}")


def _state_dict(checkpoint: Path) -> Any:
    import torch

    loaded = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    # DDP checkpoints prefix every key with "module."; the runtime loads plain keys.
    return {k.removeprefix("module."): v for k, v in state.items()}


def assemble_model_dir(base: Path, checkpoint: Path, target: Path, info: dict[str, Any]) -> None:
    """Base model's static files + the fine-tuned weights + a training record, written atomically."""
    import torch

    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for item in base.iterdir():
        if item.is_file() and item.suffix in _STATIC_SUFFIXES and item.name not in _NOT_COPIED:
            shutil.copy2(item, staging / item.name)
    torch.save(_state_dict(checkpoint), staging / "model.pt")
    (staging / TRAINING_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def repair_latest_checkpoint(funasr_out: Path) -> str | None:
    """Make ``model.pt`` (FunASR's resume point) loadable again after a crash during its write.

    FunASR writes ``model.pt.ep…`` first and ``model.pt`` second, non-atomically; a kill between the two
    leaves a truncated ``model.pt`` that would crash the resume. Returns the checkpoint restored, if any.
    """
    import torch

    latest = funasr_out / "model.pt"
    if not latest.exists():
        return None
    try:
        torch.load(latest, map_location="cpu", weights_only=False)
        return None
    except Exception:  # any unreadable file is treated the same way
        pass
    candidates = sorted(funasr_out.glob("model.pt.ep*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for candidate in candidates:
        try:
            torch.load(candidate, map_location="cpu", weights_only=False)
        except Exception:
            continue
        shutil.copyfile(candidate, latest)
        return candidate.name
    latest.unlink()  # nothing usable: start over rather than crash
    return "none"


def _run_funasr(ctx: RunContext, command: list[str], env: dict[str, str],
                topo: Topology | None = None) -> dict[str, Any]:
    """Run FunASR, turning its log into JSON progress lines; return what was seen.

    Under torchrun every local rank logs its own steps; progress follows this pod's first rank.
    """
    params = ctx.cfg.train
    started = time.monotonic()
    topo = topo or Topology()
    reporting_rank = topo.node_rank * topo.procs_per_node
    seen: dict[str, Any] = {"resumed": False, "last": None, "first_step": None, "steps_run": 0,
                            "skipped": [], "limit": None, "weights": []}
    # Batches skipped by earlier (killed) runs of this stage still count; a step re-run after a resume is
    # counted once (by its global step number).
    skipped_log = ctx.path(SKIPPED_LOG)
    earlier = [json.loads(x) for x in skipped_log.read_text(encoding="utf-8").splitlines()] if skipped_log.exists() \
        else []
    skipped_steps: set[int] = {int(e.get("total_step", -1)) for e in earlier}
    seen["skipped"] = list({int(e.get("total_step", -1)): e for e in earlier}.values())
    skipped_this_run: set[int] = set()
    log_path, curve_path = ctx.path(TRAIN_LOG), ctx.path(LOSS_CURVE)
    # On a terminal, a bar (steps, epoch, loss, ETA); elsewhere the "step" JSON events below are the record.
    bar = Progress("train", unit="steps", bar_only=True)
    with open(log_path, "a", encoding="utf-8") as log_file, open(curve_path, "a", encoding="utf-8") as curve, bar:
        log_file.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {' '.join(command)}\n")
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ctx.workdir
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log_file.write(line)
            event = parse_log_line(line)
            if event is None:
                continue
            if event["kind"] == "resumed":
                if not seen["resumed"]:
                    ctx.progress.emit("train", "resumed", message="continuing from the last checkpoint")
                seen["resumed"] = True
                continue
            if event["kind"] == "weights":
                seen["weights"].append(event)
                continue
            if event["kind"] in ("train", "val") and event["rank"] != reporting_rank:
                continue
            if event["kind"] == "skipped":
                step = int(event.get("total_step", -1))
                skipped_this_run.add(step)
                if step not in skipped_steps:
                    seen["skipped"].append(event)
                    skipped_steps.add(step)
                with open(skipped_log, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(event) + "\n")
                ctx.progress.emit("train", "batch_skipped", total_step=event.get("total_step"),
                                  loss=event.get("loss"), reason=event.get("reason"),
                                  skipped_batches=len(seen["skipped"]))
                continue
            if event["kind"] == "limit":
                seen["limit"] = event.get("reason")
                continue
            skipped = event["kind"] == "train" and event["total_step"] in skipped_this_run
            curve.write(json.dumps({**event, "skipped": skipped, "t": round(time.monotonic() - started, 3)}) + "\n")
            curve.flush()
            if event["kind"] != "train":
                ctx.progress.emit("train", "validation", epoch=event["epoch"], loss=event["loss"])
                continue
            seen["steps_run"] += 1
            if seen["first_step"] is None:
                seen["first_step"] = event["total_step"]
            if not skipped:
                seen["last"] = event
            total = event["steps_per_epoch"] * event["max_epoch"]
            done = event["epoch"] * event["steps_per_epoch"] + event["step"]
            first_done = seen["first_step"]
            eta = estimate_eta_s(done - first_done + 1, total - first_done + 1, time.monotonic() - started)
            bar.update(done=done, total=total, epoch=f"{event['epoch'] + 1}/{event['max_epoch']}",
                       loss=None if skipped else round(event["loss"], 4), eta_s=eta)
            ctx.progress.emit(
                "train", "step", epoch=event["epoch"] + 1, max_epoch=event["max_epoch"], step=event["step"],
                steps_per_epoch=event["steps_per_epoch"], total_step=event["total_step"],
                loss=None if skipped else round(event["loss"], 4), eta_s=None if eta is None else round(eta, 1),
                skipped_batches=len(seen["skipped"]), **({"skipped": True} if skipped else {}),
            )
        code = proc.wait()
    if seen["limit"]:
        raise StageFailed("train", seen["limit"])
    if code != 0:
        tail = log_path.read_text(encoding="utf-8").splitlines()[-15:]
        raise StageFailed("train", f"funasr.bin.train exited with {code}; last log lines:\n" + "\n".join(tail))
    divergence = diverged(seen["weights"])
    if divergence:
        raise StageFailed("train", f"gradients were not all-reduced: {divergence}")
    # Global step numbers span resumed runs, like the skipped count.
    batches = max(seen["steps_run"], int((seen["last"] or {}).get("total_step") or 0), max(skipped_steps, default=0))
    final_reason = skip_limit_reason(batches, len(seen["skipped"]), params.loss_guard(), final=True)
    if final_reason:
        raise StageFailed("train", final_reason)
    seen["seconds"] = round(time.monotonic() - started, 2)
    return seen


def train(ctx: RunContext, base_model: Path) -> dict[str, Any]:
    """Fine-tune ``base_model`` on the split's lists; resumable (see the module docstring)."""
    params = ctx.cfg.train
    inputs = {"split": ctx.manifest.outputs_digest("split"), "params": ctx.cfg.to_json()["train"],
              "base_model": str(base_model)}

    def body() -> StageOutcome:
        out = ctx.path(FUNASR_OUT + "/x").parent
        topo = topology_of(params, ctx.cfg.job_name)
        command = build_train_command(params, base_model, ctx.workdir / TRAIN_LIST, ctx.workdir / VAL_LIST, out,
                                      topo=topo)
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env[GUARD_ENV] = params.loss_guard().to_env()
        # The child runs our wrapper module: make this package importable whatever the caller's path.
        package_root = str(Path(senseops_trainer.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        if params.num_threads > 0:
            env["OMP_NUM_THREADS"] = str(params.num_threads)
        if params.device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""  # FunASR probes CUDA; keep a CPU run on the CPU
        restored = repair_latest_checkpoint(out)
        if restored:
            ctx.progress.emit("train", "repaired", message=f"model.pt was unreadable; restored from {restored}")
        seen = _run_funasr(ctx, command, env, topo)
        last = seen["last"] or {}
        ranks: dict[str, Any] = {}
        if topo.world_size > 1:  # pods compare these digests across nodes (every rank prints its own)
            ranks = {"world_size": topo.world_size, "node_rank": topo.node_rank,
                     "checkpoints_digested": len({(w.get("epoch"), w.get("step")) for w in seen["weights"]}),
                     "final_weights_sha256": seen["weights"][-1]["sha256"] if seen["weights"] else None}
        if not topo.coordinator:
            # Rank 0 (node 0) saved the checkpoints; this pod's part ends here.
            return StageOutcome([LOSS_CURVE], {"resumed": seen["resumed"], "steps_this_run": seen["steps_run"],
                                               "final_loss": last.get("loss"), "seconds": seen["seconds"], **ranks})
        checkpoint = pick_checkpoint(out, params.avg_nbest)
        info = {
            "base_model": str(base_model),
            "checkpoint": checkpoint.name,
            "params": ctx.cfg.to_json()["train"],
            "final_loss": last.get("loss"),
            "resumed": seen["resumed"],
            "skipped_batches": len(seen["skipped"]),
            "skipped": seen["skipped"],
        }
        assemble_model_dir(base_model, checkpoint, ctx.workdir / MODEL_DIR, info)
        summary = {
            "checkpoint": checkpoint.name,
            "resumed": seen["resumed"],
            "steps_this_run": seen["steps_run"],
            "total_steps": last.get("total_step"),
            "final_loss": last.get("loss"),
            "skipped_batches": len(seen["skipped"]),
            "skipped_reasons": sorted({str(e.get("reason")) for e in seen["skipped"]}),
            "seconds": seen["seconds"],
            **ranks,
        }
        return StageOutcome([MODEL_DIR, LOSS_CURVE], summary)

    return ctx.run_stage("train", inputs, body)
