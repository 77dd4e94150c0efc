"""How the train stage launches FunASR: one process, torchrun over the GPUs of one pod, or torchrun across
the pods of an Indexed Job (the operator's ``resources.nodes > 1``).

Only the FunASR step runs under torchrun. Every pod runs the data stages itself (they are deterministic,
so every node writes the same training list and FunASR's sampler shards it by global rank); after
training, the pod of node rank 0 — where rank 0 saved the checkpoints — evaluates, exports and
packages, and the other pods stop with exit 0.

Across pods the rendezvous is torchrun's ``c10d`` backend on ``<job>-0.<service>:29500``: node 0 hosts
the store (``is_host`` is set explicitly, so no pod has to guess from its host name), the others join it.
The process group's backend is NCCL on GPUs and gloo on CPUs. FunASR's ``funasr.bin.train`` assumes CUDA
once a process group exists; :func:`install_cpu_ddp` adapts it for gloo in the FunASR process only.

Everything but :func:`install_cpu_ddp` and :func:`weights_digest` is pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RDZV_PORT = 29500
# Kubernetes sets this in every pod of an Indexed Job (from the job-completion-index annotation).
NODE_RANK_ENV = "JOB_COMPLETION_INDEX"
WEIGHTS_MARKER = "SENSEOPS_WEIGHTS"
TORCHRUN = ("-m", "torch.distributed.run")


@dataclass(frozen=True)
class Topology:
    """Where this pod's processes sit in the training world."""

    nodes: int = 1
    procs_per_node: int = 1
    node_rank: int = 0
    rdzv_endpoint: str = ""
    rdzv_id: str = "finetune"

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node

    @property
    def coordinator(self) -> bool:
        """This pod holds rank 0: it has the checkpoints and runs the stages after training."""
        return self.node_rank == 0


def backend_for(device: str) -> str:
    """The process-group backend: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device == "cuda" else "gloo"


def topology(device: str, gpus: int, nodes: int, procs_per_node: int, rdzv_endpoint: str, job_name: str,
             env: Mapping[str, str]) -> Topology:
    """The topology from the train settings and this pod's environment; ``ValueError`` says what is wrong.

    ``procs_per_node`` 0 means one process per GPU on ``cuda`` and one process on ``cpu``.
    """
    if nodes < 1:
        raise ValueError(f"train.nodes must be at least 1, got {nodes}")
    per_node = procs_per_node or (max(gpus, 1) if device == "cuda" else 1)
    if nodes == 1:
        return Topology(1, per_node, 0, "", job_name)
    if not rdzv_endpoint:
        raise ValueError("train.nodes > 1 needs train.rdzv_endpoint (host:port of node 0's rendezvous)")
    raw = env.get(NODE_RANK_ENV, "")
    if not raw.isdigit() or int(raw) >= nodes:
        raise ValueError(f"train.nodes={nodes} needs {NODE_RANK_ENV} in 0..{nodes - 1} (an Indexed Job sets it); "
                         f"got {raw!r}")
    return Topology(nodes, per_node, int(raw), rdzv_endpoint, job_name)


def launcher(topo: Topology, python: str) -> list[str]:
    """The command prefix before ``-m <module>``: plain Python, or torchrun with this pod's place in the world."""
    if topo.world_size == 1:
        return [python]
    if topo.nodes == 1:
        return [python, *TORCHRUN, "--standalone", "--nnodes=1", f"--nproc-per-node={topo.procs_per_node}"]
    host = "1" if topo.coordinator else "0"
    return [python, *TORCHRUN, f"--nnodes={topo.nodes}", f"--nproc-per-node={topo.procs_per_node}",
            f"--node-rank={topo.node_rank}", "--rdzv-backend=c10d", f"--rdzv-endpoint={topo.rdzv_endpoint}",
            f"--rdzv-id={topo.rdzv_id}", f"--rdzv-conf=is_host={host}", "--max-restarts=0"]


def weights_marker(rank: int, epoch: int, step: int | None, digest: str) -> str:
    """The line every rank prints when FunASR checkpoints: equal digests prove the gradients were all-reduced."""
    return f"{WEIGHTS_MARKER} {json.dumps({'rank': rank, 'epoch': epoch, 'step': step, 'sha256': digest})}"


def parse_weights_marker(line: str) -> dict[str, Any] | None:
    at = line.find(WEIGHTS_MARKER + " ")
    if at < 0:
        return None
    try:  # the first JSON object after the marker; another rank's output may follow on the same line
        fields, _ = json.JSONDecoder().raw_decode(line, at + len(WEIGHTS_MARKER) + 1)
    except json.JSONDecodeError:
        return None
    return fields if isinstance(fields, dict) else None


def diverged(markers: list[dict[str, Any]]) -> str | None:
    """A sentence naming the first checkpoint at which ranks hold different weights, or ``None``."""
    by_point: dict[tuple[Any, Any], dict[int, str]] = {}
    for m in markers:
        by_point.setdefault((m.get("epoch"), m.get("step")), {})[int(m.get("rank", -1))] = str(m.get("sha256"))
    for (epoch, step), digests in by_point.items():
        if len(set(digests.values())) > 1:
            return (f"ranks hold different weights at epoch {epoch} step {step}: "
                    + ", ".join(f"rank {r} {d[:12]}" for r, d in sorted(digests.items())))
    return None


def weights_digest(model: Any) -> str:
    """sha256 over the parameter names and bytes of a (possibly DDP-wrapped) model."""
    inner = getattr(model, "module", model)
    digest = hashlib.sha256()
    for name, tensor in sorted(inner.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def install_cpu_ddp(train_module: Any) -> None:
    """Let ``funasr.bin.train`` run DDP over gloo on CPUs (this process only).

    After ``init_process_group`` it calls ``torch.cuda.set_device(local_rank)``, moves the model with
    ``.cuda(local_rank)`` and wraps it as ``DDP(model, device_ids=[local_rank])``; none of that works
    without CUDA. Here setting the device is a no-op, ``.cuda()`` leaves a module on the CPU, and DDP
    wraps the CPU module without device ids (as PyTorch documents for CPU modules).
    """
    import torch
    from torch.nn.parallel import DistributedDataParallel

    if torch.cuda.is_available():
        return

    def cpu_ddp(module: Any, device_ids: Any = None, **kwargs: Any) -> Any:
        return DistributedDataParallel(module, **kwargs)

    def stay_on_cpu(self: Any, device: Any = None) -> Any:
        return self

    torch.cuda.set_device = lambda device: None
    torch.nn.Module.cuda = stay_on_cpu  # type: ignore[method-assign]
    train_module.DDP = cpu_ddp
