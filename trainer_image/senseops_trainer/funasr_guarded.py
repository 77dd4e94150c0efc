"""``python -m senseops_trainer.funasr_guarded ++…`` — FunASR's ``funasr.bin.train`` with our bad-batch guard.

The installed FunASR package is not edited; this entry point wraps it before handing over to its Hydra
``main``:

* every training forward pass goes through :class:`~senseops_trainer.loss_guard.LossGuard`; a batch whose
  loss is non-finite or absurd is replaced by a zero loss with no gradient (so the optimizer leaves the
  weights alone) and a marker line is printed for the train stage to count;
* when the skipped share passes the limit the process prints a limit marker and exits with code 3;
* FunASR's trainer logs ``math.exp(loss_avg)``, which raises ``OverflowError`` for any average loss above
  ≈ 709; its ``math`` is replaced by a module whose ``exp`` saturates to ``inf``.

Under DDP every rank also prints a digest of its weights at each checkpoint (``distributed.py``), and a
CPU run gets gloo DDP through :func:`~senseops_trainer.distributed.install_cpu_ddp`.

Under DDP the zero loss stays connected to every parameter (zero gradients) so all ranks still reduce
the same tensors; a single process gets a detached zero and no gradients at all.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import types
from typing import Any

from senseops_trainer.distributed import install_cpu_ddp, weights_digest, weights_marker
from senseops_trainer.loss_guard import (
    GUARD_ENV,
    INJECT_ENV,
    LossGuard,
    LossGuardConfig,
    limit_marker,
    parse_injections,
    saturating_exp,
    skip_marker,
)

EXIT_SKIP_LIMIT = 3


class _SaturatingMath(types.ModuleType):
    """``math`` with an ``exp`` that cannot overflow; every other name is the real module's."""

    def __init__(self) -> None:
        super().__init__("math")
        self.exp = saturating_exp

    def __getattr__(self, name: str) -> Any:
        return getattr(math, name)


def _rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def _label_units(batch: dict[str, Any]) -> float:
    """The batch's mean target length (SenseVoice's forward gets ``text_lengths``); 1 when unknown."""
    lengths = batch.get("text_lengths")
    try:
        return max(1.0, float(lengths.float().mean())) if lengths is not None else 1.0
    except (AttributeError, TypeError, ValueError):
        return 1.0


def _zero_loss(model: Any, loss: Any) -> Any:
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        params = [p for p in model.parameters() if p.requires_grad]
        return sum((p.reshape(-1)[:1].sum() * 0.0 for p in params), torch.zeros((), device=loss.device))
    return torch.zeros((), device=loss.device, dtype=loss.dtype, requires_grad=True)


def _guard_forward(model: Any, trainer: Any, guard: LossGuard, injections: dict[int, float]) -> None:
    if getattr(model, "_senseops_guarded", False):
        return
    original = model.forward

    @functools.wraps(original)
    def forward(*args: Any, **kwargs: Any) -> Any:
        import torch

        retval = original(*args, **kwargs)
        if not (model.training and torch.is_grad_enabled()):
            return retval  # validation: losses are only averaged (and the log's exp is saturated)
        loss, stats, weight = retval
        injected = injections.get(guard.batches + 1)
        if injected is not None:
            loss = loss + injected  # a real tensor through the real path; only its value is forced
        verdict = guard.observe(float(loss.detach().float().sum().cpu()), _label_units(kwargs))
        if verdict.skip:
            print(skip_marker(verdict, _rank(), int(getattr(trainer, "batch_total", 0)), guard.batches,
                              guard.skipped), flush=True)
            loss = _zero_loss(model, loss)
            stats = {k: (torch.zeros_like(v) if isinstance(v, torch.Tensor) else v) for k, v in stats.items()}
        reason = guard.limit_reason()
        if reason:
            print(limit_marker(reason), flush=True)
            sys.exit(EXIT_SKIP_LIMIT)
        return loss, stats, weight

    model.forward = forward
    model._senseops_guarded = True


def install(cfg: LossGuardConfig, injections: dict[int, float]) -> LossGuard:
    """Patch FunASR's trainer classes (in this process only); return the guard that counts."""
    guard = LossGuard(cfg)
    safe_math = _SaturatingMath()
    for module_name in ("funasr.train_utils.trainer", "funasr.train_utils.trainer_ds"):
        try:
            module = __import__(module_name, fromlist=["Trainer"])
        except ImportError:  # trainer_ds needs deepspeed; the plain trainer is what we run
            continue
        module.math = safe_math  # type: ignore[attr-defined]
        trainer_cls = getattr(module, "Trainer", None)
        if trainer_cls is None or getattr(trainer_cls, "_senseops_guarded", False):
            continue
        original = trainer_cls.train_epoch

        def train_epoch(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            model = kwargs.get("model")
            if model is not None:
                _guard_forward(model, self, guard, injections)
            return _original(self, *args, **kwargs)

        trainer_cls.train_epoch = train_epoch
        trainer_cls.save_checkpoint = _reporting_weights(trainer_cls.save_checkpoint)
        trainer_cls._senseops_guarded = True
    return guard


def _reporting_weights(original: Any) -> Any:
    """``Trainer.save_checkpoint`` that first prints this rank's weights digest (every rank, under DDP)."""

    @functools.wraps(original)
    def save_checkpoint(self: Any, epoch: Any, *args: Any, **kwargs: Any) -> Any:
        import torch

        model = kwargs.get("model")
        if model is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
            _write_line(weights_marker(torch.distributed.get_rank(), int(epoch), kwargs.get("step"),
                                       weights_digest(model)))
        return original(self, epoch, *args, **kwargs)

    return save_checkpoint


def _write_line(text: str) -> None:
    """Write one line to stdout in one system call. All ranks share torchrun's stdout pipe, and under
    PYTHONUNBUFFERED ``print`` writes the text and its newline separately: two ranks checkpointing at the
    same moment can then run their markers into one unparsable line (the likely reason a CI run saw none)."""
    sys.stdout.flush()  # what was printed before goes out first
    try:
        os.write(sys.stdout.fileno(), (text + "\n").encode())
    except (AttributeError, OSError, ValueError):  # no real file descriptor (captured in a test)
        print(text, flush=True)


def main() -> None:
    """Install the guard, then run FunASR's own training entry point with our argv."""
    install(LossGuardConfig.from_env(os.environ.get(GUARD_ENV)), parse_injections(os.environ.get(INJECT_ENV)))
    from funasr.bin import train as funasr_train

    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        install_cpu_ddp(funasr_train)  # a no-op where CUDA is available
    funasr_train.main_hydra()


if __name__ == "__main__":
    main()
