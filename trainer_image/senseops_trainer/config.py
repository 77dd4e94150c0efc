"""Trainer configuration: one dataclass tree, named defaults, loaded from YAML/JSON and CLI overrides.

The FineTuneJob spec maps onto these fields (the operator renders a config file into the Job). Defaults
follow seed §6: learning rate 1e-5–3e-5, 1–3 epochs, freeze the encoder's front only when asked.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from senseops_trainer.filters import FilterConfig
from senseops_trainer.loss_guard import (
    DEFAULT_MAX_LOSS,
    DEFAULT_MAX_SKIPPED_SHARE,
    DEFAULT_SPIKE_FACTOR,
    LossGuardConfig,
)

DEFAULT_LR = 2e-5
LR_RANGE = (1e-5, 3e-5)  # the seed's range for fine-tuning the real SenseVoice-Small
DEFAULT_EPOCHS = 2
MAX_EPOCHS_RECOMMENDED = 3
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_BATCH_TOKENS = 6000  # FunASR token batching: fbank frames per batch
DEFAULT_MIN_CER_IMPROVEMENT = 0.0  # absolute: new CER must be at least this much below the base


@dataclass(frozen=True)
class DatasetSelection:
    """Which recordings to train on (seed §6: anchor ids, a time window, a minimum amount)."""

    anchor_ids: tuple[str, ...] = ()
    since: str | None = None  # ISO-8601; sessions starting at or after
    until: str | None = None  # ISO-8601; sessions starting before
    min_hours: float = 0.0  # after filtering; fewer hours fail the run (not enough data to be worth it)
    golden_key: str | None = None  # JSON lines of human-verified segments, held out of training
    val_fraction: float = DEFAULT_VAL_FRACTION


@dataclass(frozen=True)
class TrainParams:
    """FunASR fine-tuning hyperparameters."""

    lr: float = DEFAULT_LR
    max_epoch: int = DEFAULT_EPOCHS
    batch_tokens: int = DEFAULT_BATCH_TOKENS
    warmup_steps: int = 100
    freeze_front_blocks: int = 0  # 0 = train everything; n = freeze the first n encoder blocks
    avg_nbest: int = 2  # checkpoints averaged (best by validation loss)
    save_every_steps: int = 0  # 0 = once per epoch; >0 also checkpoints mid-epoch (for resume)
    device: str = "cpu"  # cpu | cuda
    gpus: int = 0  # >1 launches torchrun with one process per GPU
    nodes: int = 1  # >1: pods of an Indexed Job train together (distributed.py); node rank from the pod's env
    procs_per_node: int = 0  # processes per pod; 0 = one per GPU on cuda, one on cpu
    rdzv_endpoint: str = ""  # host:port of node 0's c10d rendezvous when nodes > 1
    seed: int = 0
    num_threads: int = 0  # torch CPU threads in the training process (0 = torch's default)
    extra_overrides: tuple[str, ...] = ()  # raw "++key=value" lines passed to funasr.bin.train
    # Bad-batch guard (loss_guard.py): batches above these are skipped and counted; a run whose skipped
    # share exceeds max_skipped_batch_share fails.
    max_batch_loss: float = DEFAULT_MAX_LOSS
    loss_spike_factor: float = DEFAULT_SPIKE_FACTOR
    max_skipped_batch_share: float = DEFAULT_MAX_SKIPPED_SHARE

    def loss_guard(self) -> LossGuardConfig:
        """The guard settings the FunASR process gets."""
        return LossGuardConfig(max_loss=self.max_batch_loss, spike_factor=self.loss_spike_factor,
                               max_skipped_share=self.max_skipped_batch_share)


@dataclass(frozen=True)
class GateConfig:
    """When is a fine-tuned model good enough to package and release?"""

    min_cer_improvement: float = DEFAULT_MIN_CER_IMPROVEMENT
    gate_set: str = "golden"  # "golden" when present, else falls back to "val"
    max_rtf: float | None = None  # fail when the new model decodes slower than this real-time factor


@dataclass(frozen=True)
class OutputConfig:
    """Where the result goes: ``models/{name}/{version}/`` and ``reports/{job}/`` in ``models_uri``."""

    name: str = "sensevoice-small"
    version: str = "v1"
    models_uri: str | None = None  # defaults to the recordings store
    export_onnx: bool = True


@dataclass(frozen=True)
class TrainerConfig:
    """Everything one run needs."""

    store_uri: str = ""
    # A store prefix the work directory is mirrored to, so a retried pod resumes (state_sync.py); "" = off.
    state_uri: str = ""
    state_interval_s: float = 30.0  # how often the mirror is pushed while training (checkpoints)
    state_settle_s: float = 2.0  # a file unchanged this long is pushed (one being written waits for the next push)
    base_model: str = ""  # local model directory, or a store URI of a packaged model directory
    job_name: str = "finetune"
    dataset: DatasetSelection = field(default_factory=DatasetSelection)
    filters: FilterConfig = field(default_factory=FilterConfig)
    train: TrainParams = field(default_factory=TrainParams)
    gate: GateConfig = field(default_factory=GateConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (tuples become lists)."""
        plain: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        return plain

    @property
    def models_uri(self) -> str:
        """The store packaged models and reports go to."""
        return self.output.models_uri or self.store_uri


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(where + k for k in unknown)}; known: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(cls(), key) if key in names else None
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[key] = _build(type(default), value, f"{where}{key}.")
        elif isinstance(default, tuple) and isinstance(value, list):
            kwargs[key] = tuple(value)
        elif isinstance(default, bool) or value is None:
            kwargs[key] = value
        elif isinstance(default, int | float) and isinstance(value, str | int | float):
            # YAML 1.1 reads "1e-5" (no dot) as a string; numbers are numbers whatever their spelling.
            try:
                kwargs[key] = type(default)(value)
            except ValueError:
                raise ValueError(f"{where}{key} must be a number, not {value!r}") from None
        else:
            kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> TrainerConfig:
    """Build a config from nested dicts; unknown keys are an error naming the key."""
    cfg: TrainerConfig = _build(TrainerConfig, data, "")
    validate(cfg)
    return cfg


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainerConfig:
    """Read YAML/JSON (``path`` may be None) and apply dotted overrides (``{"train.lr": 1e-4}``)."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} must hold a mapping of settings")
        data = loaded
    for dotted, value in (overrides or {}).items():
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return config_from_dict(data)


def validate(cfg: TrainerConfig) -> None:
    """Reject settings that can never work, with a sentence saying what to change."""
    if not 0.0 <= cfg.dataset.val_fraction < 1.0:
        raise ValueError("dataset.val_fraction must be in [0, 1)")
    if cfg.state_interval_s <= 0 or cfg.state_settle_s < 0:
        raise ValueError("state_interval_s must be positive and state_settle_s at least 0")
    if cfg.train.lr <= 0:
        raise ValueError("train.lr must be positive")
    if cfg.train.max_epoch < 1:
        raise ValueError("train.max_epoch must be at least 1")
    if cfg.train.device not in ("cpu", "cuda"):
        raise ValueError(f"train.device must be cpu or cuda, not {cfg.train.device!r}")
    if cfg.train.gpus > 1 and cfg.train.device != "cuda":
        raise ValueError("train.gpus > 1 needs train.device: cuda")
    if not 0.0 <= cfg.train.max_skipped_batch_share < 1.0:
        raise ValueError("train.max_skipped_batch_share must be in [0, 1) (0.05 = fail above 5 % skipped batches)")
    if cfg.train.loss_spike_factor <= 1.0 or cfg.train.max_batch_loss <= 0:
        raise ValueError("train.loss_spike_factor must be above 1 and train.max_batch_loss positive")
    if cfg.gate.gate_set not in ("golden", "val"):
        raise ValueError("gate.gate_set must be golden or val")
