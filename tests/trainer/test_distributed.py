"""Distributed launch (trainer_image/senseops_trainer/distributed.py): pure topology and command tables, then
two real gloo ranks fine-tuning the tiny model on this machine's CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from senseops_trainer import distributed as dist
from senseops_trainer.config import TrainParams
from senseops_trainer.context import StageFailed
from senseops_trainer.train import build_train_command, parse_log_line, topology_of

REPO = Path(__file__).resolve().parents[2]

TOPOLOGY_CASES = [
    # name, device, gpus, nodes, procs, endpoint, env, expected (nodes, per node, node rank, coordinator)
    ("one cpu process", "cpu", 0, 1, 0, "", {}, (1, 1, 0, True)),
    ("one pod, four gpus", "cuda", 4, 1, 0, "", {}, (1, 4, 0, True)),
    ("one pod, two cpu ranks", "cpu", 0, 1, 2, "", {}, (1, 2, 0, True)),
    ("two pods, cpu, node 0", "cpu", 0, 2, 0, "j-0.s:29500", {"JOB_COMPLETION_INDEX": "0"}, (2, 1, 0, True)),
    ("two pods, cpu, node 1", "cpu", 0, 2, 0, "j-0.s:29500", {"JOB_COMPLETION_INDEX": "1"}, (2, 1, 1, False)),
    ("three pods of 8 gpus, node 2", "cuda", 8, 3, 0, "j-0.s:29500", {"JOB_COMPLETION_INDEX": "2"},
     (3, 8, 2, False)),
]


@pytest.mark.parametrize(("name", "device", "gpus", "nodes", "procs", "endpoint", "env", "expected"),
                         TOPOLOGY_CASES, ids=[c[0] for c in TOPOLOGY_CASES])
def test_topology(name, device, gpus, nodes, procs, endpoint, env, expected) -> None:
    topo = dist.topology(device, gpus, nodes, procs, endpoint, "job", env)
    assert (topo.nodes, topo.procs_per_node, topo.node_rank, topo.coordinator) == expected


BAD_TOPOLOGY_CASES = [
    ("no endpoint", 2, "", {"JOB_COMPLETION_INDEX": "0"}, "needs train.rdzv_endpoint"),
    ("no index", 2, "j-0.s:29500", {}, "needs JOB_COMPLETION_INDEX in 0..1"),
    ("index out of range", 2, "j-0.s:29500", {"JOB_COMPLETION_INDEX": "2"}, "got '2'"),
    ("zero nodes", 0, "", {}, "at least 1"),
]


@pytest.mark.parametrize(("name", "nodes", "endpoint", "env", "message"), BAD_TOPOLOGY_CASES,
                         ids=[c[0] for c in BAD_TOPOLOGY_CASES])
def test_bad_topology_says_what_to_fix(name, nodes, endpoint, env, message) -> None:
    with pytest.raises(StageFailed, match=message):
        topology_of(TrainParams(nodes=nodes, rdzv_endpoint=endpoint), "job", env)


def test_multi_node_command_is_torchrun_with_c10d_on_node_zero() -> None:
    params = TrainParams(device="cpu", nodes=2, rdzv_endpoint="ftj-train-0.ftj-workers:29500")
    for index, host in (("0", "1"), ("1", "0")):
        topo = topology_of(params, "ftj", {"JOB_COMPLETION_INDEX": index})
        cmd = build_train_command(params, Path("/m"), Path("/t"), Path("/v"), Path("/o"), "py", topo=topo)
        assert cmd[:12] == [
            "py", "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1", f"--node-rank={index}",
            "--rdzv-backend=c10d", "--rdzv-endpoint=ftj-train-0.ftj-workers:29500", "--rdzv-id=ftj",
            f"--rdzv-conf=is_host={host}", "--max-restarts=0", "-m"]
        assert "++backend=gloo" in cmd and "++device=cpu" in cmd


def test_single_process_has_no_launcher_and_no_backend() -> None:
    cmd = build_train_command(TrainParams(), Path("/m"), Path("/t"), Path("/v"), Path("/o"), "py")
    assert cmd[:3] == ["py", "-m", "senseops_trainer.funasr_guarded"]
    assert not any(a.startswith("++backend") for a in cmd)


@pytest.mark.parametrize(("markers", "verdict"), [
    ([], None),
    ([{"rank": 0, "epoch": 1, "step": None, "sha256": "aa"}, {"rank": 1, "epoch": 1, "step": None, "sha256": "aa"}],
     None),
    ([{"rank": 0, "epoch": 1, "step": None, "sha256": "aa"}, {"rank": 1, "epoch": 1, "step": None, "sha256": "bb"}],
     "ranks hold different weights at epoch 1 step None: rank 0 aa, rank 1 bb"),
    ([{"rank": 0, "epoch": 1, "step": 5, "sha256": "aa"}, {"rank": 1, "epoch": 2, "step": None, "sha256": "bb"}],
     None),
])
def test_diverged(markers, verdict) -> None:
    assert dist.diverged(markers) == verdict


def _tiny_lists(tmp: Path) -> tuple[Path, Path]:
    from senseops_common import speech
    from tests.testmodel.corpus import KNOWN_SENTENCES

    rows = []
    for i, sentence in enumerate(KNOWN_SENTENCES):
        audio = sentence.synthesize()
        wav = speech.write_wav(tmp / f"s{i}.wav", audio)
        rows.append({"key": f"s{i}", "source": str(wav), "source_len": max(1, len(audio) // 160),
                     "target": sentence.text, "target_len": len(sentence.text),
                     "text_language": f"<|{sentence.lang}|>", "emo_target": "<|NEUTRAL|>",
                     "event_target": "<|Speech|>", "with_or_wo_itn": "<|woitn|>"})
    train, val = tmp / "train.jsonl", tmp / "val.jsonl"
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    val.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:2]), encoding="utf-8")
    return train, val


@pytest.mark.model
def test_two_gloo_ranks_all_reduce_and_rank_zero_saves(tmp_path: Path) -> None:
    """FunASR's own trainer, two CPU ranks under torchrun: each rank trains on its shard (different losses),
    the gradients are averaged (equal weights on both ranks), and rank 0's checkpoint holds those weights."""
    from senseops_common.speech import espeak_available
    from tests.testmodel import ensure_tiny_model

    if not espeak_available():
        pytest.skip("espeak-ng is not installed (make debian)")
    import torch

    train, val = _tiny_lists(tmp_path)
    params = TrainParams(device="cpu", procs_per_node=2, max_epoch=1, batch_tokens=800, warmup_steps=1,
                         avg_nbest=1, lr=1e-4)
    out = tmp_path / "out"
    topo = topology_of(params, "two-ranks", {})
    cmd = build_train_command(params, ensure_tiny_model(), train, val, out, sys.executable, topo=topo)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        str(REPO / p) for p in ("operator", "runtime", "trainer_image", "."))}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    events = [e for e in map(parse_log_line, (done.stdout + done.stderr).splitlines()) if e is not None]
    first_losses = {e["rank"]: e["loss"] for e in events if e["kind"] == "train" and e["total_step"] == 1}
    assert set(first_losses) == {0, 1} and first_losses[0] != first_losses[1], "each rank trains its own shard"
    weights = [e for e in events if e["kind"] == "weights"]
    assert sorted(w["rank"] for w in weights) == [0, 1]
    assert dist.diverged(weights) is None and weights[0]["sha256"] == weights[1]["sha256"]
    state = torch.load(out / "model.pt.ep1", map_location="cpu", weights_only=False)["state_dict"]
    model = torch.nn.Module()
    model.state_dict = lambda: state  # type: ignore[method-assign]
    assert dist.weights_digest(model) == weights[0]["sha256"], "rank 0 saved the all-reduced weights"
    base = torch.load(ensure_tiny_model() / "model.pt", map_location="cpu", weights_only=False)
    base_model = torch.nn.Module()
    base_model.state_dict = lambda: base.get("state_dict", base)  # type: ignore[method-assign]
    assert dist.weights_digest(base_model) != weights[0]["sha256"], "the weights moved"
