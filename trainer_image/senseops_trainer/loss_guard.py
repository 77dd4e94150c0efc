"""Bad-batch guard for fine-tuning: pure decisions about one training batch's loss.

Recordings are pseudo-labels from live traffic, so some batches will carry garbage (a label that cannot
fit its audio, an impossible CTC alignment that gives ``inf``). One such batch must not end a nightly run
or poison the weights. :class:`LossGuard` decides, batch by batch, whether a loss is usable; the FunASR
process (:mod:`senseops_trainer.funasr_guarded`) skips the batches it rejects and prints a marker line
that the train stage counts. :func:`skip_limit_reason` fails a run whose skipped share says the data
itself is bad. Nothing here imports torch or FunASR.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

SKIP_MARKER = "SENSEOPS_SKIPPED_BATCH"
LIMIT_MARKER = "SENSEOPS_SKIP_LIMIT"
GUARD_ENV = "SENSEOPS_LOSS_GUARD"  # JSON of LossGuardConfig, set by the train stage for the child
INJECT_ENV = "SENSEOPS_TRAIN_INJECT_LOSS"  # fault injection for tests: "3=inf,5=1e6" (guarded batch → loss)

# Defaults (TrainParams maps onto these). A SenseVoice batch loss is a per-utterance sum over label
# tokens (CTC + the 4 rich-tag tokens): about 10 per token for an untrained model (ln 25055 ≈ 10.1),
# far less once trained. 1e4 is beyond any label SenseVoice's 30 s segments can carry.
DEFAULT_MAX_LOSS = 1e4
DEFAULT_SPIKE_FACTOR = 10.0  # loss per label unit 10× the median of recent accepted batches: an outlier
DEFAULT_WARMUP_BATCHES = 10  # the spike rule needs a median first
DEFAULT_WINDOW = 50
DEFAULT_MAX_SKIPPED_SHARE = 0.05  # more than 5 % of batches unusable: the data is bad, stop
DEFAULT_MIN_BATCHES_FOR_LIMIT = 50  # mid-run, a share needs enough batches to mean something (2 of 20 is noise)


@dataclass(frozen=True)
class LossGuardConfig:
    """When a batch loss is unusable, and how many unusable batches a run may have."""

    max_loss: float = DEFAULT_MAX_LOSS
    spike_factor: float = DEFAULT_SPIKE_FACTOR
    warmup_batches: int = DEFAULT_WARMUP_BATCHES
    window: int = DEFAULT_WINDOW
    max_skipped_share: float = DEFAULT_MAX_SKIPPED_SHARE
    min_batches_for_limit: int = DEFAULT_MIN_BATCHES_FOR_LIMIT

    def to_env(self) -> str:
        """JSON for :data:`GUARD_ENV`."""
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls, value: str | None) -> LossGuardConfig:
        """Parse :meth:`to_env` output; defaults when unset."""
        if not value:
            return cls()
        data = json.loads(value)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LossVerdict:
    """Keep the batch (``reason is None``) or skip it, with the rule that rejected it."""

    reason: str | None
    loss: float
    median: float | None = None  # of recent accepted losses per label unit (spike verdicts only)

    @property
    def skip(self) -> bool:
        """True when the batch must not update the model."""
        return self.reason is not None


def judge_loss(loss: float, recent: list[float], cfg: LossGuardConfig, label_units: float = 1.0) -> LossVerdict:
    """Pure: is ``loss`` usable, given the recently accepted losses per label unit?

    The batch loss is a per-utterance *sum* over label tokens, so a batch of long utterances legitimately
    has a far larger loss than one of short ones; the spike rule therefore compares the loss per label
    unit (``loss / label_units``, the batch's mean target length) with the median of recent ones. The
    absolute ceiling applies to the batch loss itself."""
    if not math.isfinite(loss):
        return LossVerdict("non_finite", loss)
    if loss > cfg.max_loss:
        return LossVerdict("above_max_loss", loss)
    per_unit = loss / max(label_units, 1.0)
    if len(recent) >= cfg.warmup_batches and recent:
        median = statistics.median(recent)
        if median > 0 and per_unit > cfg.spike_factor * median:
            return LossVerdict("spike", loss, median)
    return LossVerdict(None, loss)


class LossGuard:
    """Stateful wrapper around :func:`judge_loss`: remembers accepted losses and counts skips."""

    def __init__(self, cfg: LossGuardConfig) -> None:
        self.cfg = cfg
        self.recent: deque[float] = deque(maxlen=max(1, cfg.window))
        self.batches = 0
        self.skipped = 0

    def observe(self, loss: float, label_units: float = 1.0) -> LossVerdict:
        """Judge one training batch's loss (``label_units``: its mean target length) and update the counts."""
        self.batches += 1
        verdict = judge_loss(loss, list(self.recent), self.cfg, label_units)
        if verdict.skip:
            self.skipped += 1
        else:
            self.recent.append(loss / max(label_units, 1.0))
        return verdict

    def limit_reason(self, final: bool = False) -> str | None:
        """Why the run must stop now (``None`` while the skipped share is acceptable)."""
        return skip_limit_reason(self.batches, self.skipped, self.cfg, final)


def skip_limit_reason(batches: int, skipped: int, cfg: LossGuardConfig, final: bool = False) -> str | None:
    """Pure: a sentence saying why a run with ``skipped`` of ``batches`` unusable must fail, else ``None``.

    During training the share is judged only after ``min_batches_for_limit`` batches; at the end of a
    run (``final``) any share above the limit fails, however short the run was.
    """
    if batches <= 0 or skipped <= 0:
        return None
    if not final and batches < cfg.min_batches_for_limit:
        return None
    share = skipped / batches
    if share <= cfg.max_skipped_share:
        return None
    return (
        f"{skipped} of {batches} training batches ({share:.1%}) had a non-finite or absurd loss, above "
        f"train.max_skipped_batch_share={cfg.max_skipped_share:.1%}: the training data is likely bad — look at "
        "filter/report.json and the skipped batches in train/funasr.log, tighten the filters or lower train.lr"
    )


def saturating_exp(value: float) -> float:
    """``math.exp`` that returns ``inf`` instead of raising on overflow (FunASR logs ``exp(loss_avg)``)."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def parse_injections(spec: str | None) -> dict[int, float]:
    """``"3=inf,5=1e6"`` → ``{3: inf, 5: 1e6}`` (guarded batch number, 1-based → loss to report)."""
    out: dict[int, float] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        batch, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"{INJECT_ENV} entries look like BATCH=LOSS, not {part!r}")
        out[int(batch)] = float(value)
    return out


def skip_marker(verdict: LossVerdict, rank: int, total_step: int, batches: int, skipped: int) -> str:
    """The line the FunASR process prints for a skipped batch (parsed by :func:`parse_marker`)."""
    body = {"rank": rank, "total_step": total_step, "loss": repr(verdict.loss), "reason": verdict.reason,
            "median": verdict.median, "batches": batches, "skipped": skipped}
    return f"{SKIP_MARKER} {json.dumps(body)}"


def limit_marker(reason: str) -> str:
    """The line the FunASR process prints before it stops on the skipped-share limit."""
    return f"{LIMIT_MARKER} {json.dumps({'reason': reason})}"


def parse_marker(line: str) -> tuple[str, dict[str, Any]] | None:
    """``("skipped", fields)`` / ``("limit", fields)`` for a marker line, ``None`` for any other line."""
    for marker, kind in ((SKIP_MARKER, "skipped"), (LIMIT_MARKER, "limit")):
        at = line.find(marker + " ")
        if at >= 0:
            try:
                fields = json.loads(line[at + len(marker) + 1 :])
            except json.JSONDecodeError:
                return None
            if isinstance(fields, dict):
                return kind, fields
    return None
