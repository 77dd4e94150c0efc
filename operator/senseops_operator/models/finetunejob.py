"""FineTuneJob: one training run from a base ASRModel to a new one (DESIGN §3, seed §6)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from senseops_operator import constants as c
from senseops_operator.models.common import (
    DEFAULT_EMPTY_OBJECT,
    ApiModel,
    Name,
    ObjectRef,
    Quantity,
    StatusBase,
    cel,
    rules,
    unchanged,
)

# Everything but runPolicy is fixed once the job exists: a changed recipe is a different training run.
IMMUTABLE_SPEC_FIELDS = (
    "baseModel", "dataset", "hyperparameters", "resources", "placement", "output", "image", "evaluationGate",
    "trainerImage", "storeSecret",
)

AnchorId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]

Stage = Literal[
    "Pending", "WaitingForData", "PreparingData", "Training", "Evaluating", "Packaging", "BuildingImage",
    "Succeeded", "Failed",
]


class TimeWindow(ApiModel):
    """Recordings whose timestamp falls in [start, end)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(
            cel("!has(self.start) || !has(self.end) || self.end > self.start",
                "window.end must be after window.start")
        )
    }

    start: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    end: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class FilterThresholds(ApiModel):
    """Pseudo-label quality filters (seed §6)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(
            cel("!has(self.minDurationSeconds) || !has(self.maxDurationSeconds)"
                " || self.minDurationSeconds < self.maxDurationSeconds",
                "filters.minDurationSeconds must be below filters.maxDurationSeconds")
        )
    }

    min_confidence: float = Field(default=0.8, ge=0, le=1, description="Drop segments below this confidence.")
    min_duration_seconds: float = Field(default=1.0, ge=0, le=600)
    max_duration_seconds: float = Field(default=30.0, gt=0, le=600)
    max_chars_per_second: float = Field(default=12.0, gt=0, le=100)
    max_repeated_ngram_ratio: float = Field(default=0.5, ge=0, le=1)
    require_stable_decode: bool = Field(default=False, description="Keep only segments two decodes agree on.")


class HeldOut(ApiModel):
    """Data kept out of training."""

    validation_fraction: float = Field(default=0.1, gt=0, le=0.5)
    golden_set_uri: str | None = Field(
        default=None, max_length=1024, pattern=c.STORE_PREFIX_PATTERN, description="Human-verified set."
    )


class DatasetSelection(ApiModel):
    """Which recordings become training data."""

    source: str = Field(
        max_length=1024, pattern=c.STORE_PREFIX_PATTERN, description="Store prefix holding raw/ and asr/."
    )
    anchor_ids: list[AnchorId] = Field(min_length=1, max_length=c.MAX_ANCHORS, description="Streamers to include.")
    window: TimeWindow | None = None
    min_hours: float = Field(default=3.0, ge=0, le=10_000, description="Wait until this much audio passed filters.")
    filters: FilterThresholds = Field(default_factory=FilterThresholds, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    held_out: HeldOut = Field(default_factory=HeldOut, json_schema_extra=DEFAULT_EMPTY_OBJECT)


class Hyperparameters(ApiModel):
    learning_rate: float = Field(default=c.DEFAULT_LEARNING_RATE, gt=0, le=c.MAX_LEARNING_RATE)
    epochs: int = Field(default=c.DEFAULT_EPOCHS, ge=1, le=c.MAX_EPOCHS)
    batch_size_tokens: int = Field(default=c.DEFAULT_BATCH_TOKENS, ge=1, le=1_000_000)
    warmup_steps: int = Field(default=c.DEFAULT_WARMUP_STEPS, ge=0, le=100_000, description="Learning-rate warm-up.")
    freeze_encoder_layers: int = Field(default=0, ge=0, le=100, description="Freeze the first N encoder blocks.")
    average_checkpoints: int = Field(default=1, ge=1, le=20)
    seed: int = Field(default=0, ge=0)
    checkpoint_every_steps: int = Field(
        default=0, ge=0, le=1_000_000,
        description="Also checkpoint every N steps (0 = once per epoch). A retried pod resumes from the last "
        "checkpoint the trainer mirrored to the store.",
    )
    trainer_settings: dict[str, str] = Field(
        default_factory=dict, max_length=32,
        description="Advanced: extra trainer settings as dotted keys (e.g. train.num_threads: \"2\"), values in "
        "YAML. The trainer validates them; an unknown or invalid one fails the job at once (BadSettings).",
    )


class Resources(ApiModel):
    """Per training pod; ``nodes > 1`` runs that many pods as one torchrun world (an Indexed Job)."""

    gpus: int = Field(default=1, ge=0, le=c.MAX_GPUS, description="nvidia.com/gpu per training pod.")
    nodes: int = Field(default=1, ge=1, le=c.MAX_TRAINING_NODES,
                       description="Training pods. More than 1: an Indexed Job plus a headless Service, torchrun "
                       "with c10d rendezvous at pod 0 (NCCL on GPUs, gloo on CPUs).")
    cpu: Quantity = "4"
    memory: Quantity = "16Gi"


class Toleration(ApiModel):
    key: str | None = Field(default=None, max_length=253)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, max_length=253)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Placement(ApiModel):
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=16)
    priority_class_name: Name | None = None


class RunPolicy(ApiModel):
    backoff_limit: int = Field(default=c.DEFAULT_BACKOFF_LIMIT, ge=0, le=10)
    active_deadline_seconds: int | None = Field(default=None, ge=60)
    ttl_seconds_after_finished: int = Field(default=c.DEFAULT_TTL_AFTER_FINISHED_SECONDS, ge=0)
    suspend: bool = False


class OutputNaming(ApiModel):
    model_name: Name = Field(description="Name of the ASRModel to create.")
    version: str | None = Field(default=None, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    store_uri: str = Field(max_length=1024, pattern=c.STORE_PREFIX_PATTERN, description="Where models/ goes.")


class ImageBuildTarget(ApiModel):
    registry: str = Field(max_length=253, pattern=r"^[a-z0-9.-]+(:[0-9]+)?$")
    repository: str = Field(max_length=255, pattern=r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
    push_secret: Name | None = Field(
        default=None, description="Secret of type kubernetes.io/dockerconfigjson the image build Job pushes with "
        "(mounted into that Job only; the operator never reads it).")
    pull_secret: Name | None = Field(
        default=None, description="imagePullSecret recorded on the produced ASRModel (default: pushSecret).")


class EvaluationGate(ApiModel):
    metric: Literal["cer", "wer"] = "cer"
    min_improvement: float = Field(default=0.0, ge=0, le=1, description="New must beat base by this much.")
    max_value: float | None = Field(default=None, gt=0, le=1, description="And be at most this.")


class FineTuneJobSpec(ApiModel):
    """Desired state. Immutable after creation except runPolicy (suspend/resume, deadlines)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(
            cel(
                unchanged(*IMMUTABLE_SPEC_FIELDS),
                "spec is immutable after creation (only runPolicy may change); create a new FineTuneJob",
            ),
            cel(
                "self.output.modelName != self.baseModel.name",
                "output.modelName must differ from baseModel.name",
                field_path=".output.modelName",
            ),
        )
    }

    base_model: ObjectRef
    dataset: DatasetSelection
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    resources: Resources = Field(default_factory=Resources, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    placement: Placement = Field(default_factory=Placement, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    run_policy: RunPolicy = Field(default_factory=RunPolicy, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    output: OutputNaming
    image: ImageBuildTarget | None = None
    evaluation_gate: EvaluationGate = Field(default_factory=EvaluationGate, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    trainer_image: str = Field(default=c.DEFAULT_TRAINER_IMAGE, max_length=512, pattern=c.IMAGE_REF_PATTERN)
    store_secret: Name | None = Field(
        default=None,
        description="Secret with the object-store settings and credentials (senseops_common.storage keys); the "
        "training pod mounts it as files and reads it as environment. Never copied into a ConfigMap or status.",
    )


class Progress(ApiModel):
    stage: str | None = Field(default=None, max_length=32, description="The trainer stage running now.")
    epoch: int | None = Field(default=None, ge=0)
    step: int | None = Field(default=None, ge=0)
    total_steps: int | None = Field(default=None, ge=0)
    loss: float | None = None
    eta_seconds: int | None = Field(default=None, ge=0)
    skipped_batches: int | None = Field(default=None, ge=0, description="Batches skipped for a non-finite or "
                                        "absurd loss (the trainer's bad-batch guard).")
    updated_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class JobMetrics(ApiModel):
    base_cer: float | None = None
    new_cer: float | None = None
    base_wer: float | None = None
    new_wer: float | None = None
    rtf: float | None = None
    segments_used: int | None = None
    hours_used: float | None = None


class AnchorHours(ApiModel):
    anchor_id: AnchorId
    hours: float = Field(ge=0, description="Recorded hours that pass the job's index-level filters.")
    segments: int = Field(ge=0)


class DataReadiness(ApiModel):
    """How much usable audio the transcript index holds (measured from `asr/` JSON lines, no audio read)."""

    available_hours: float = Field(ge=0)
    needed_hours: float = Field(ge=0)
    anchors: list[AnchorHours] = Field(default_factory=list, max_length=c.MAX_ANCHORS)
    checked_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    summary: str | None = Field(default=None, max_length=64, description="available/needed, e.g. 2.1/3.0h")
    checks: int = Field(default=0, ge=0, description="Consecutive checks that found too little (sets the back-off).")


class PushedImage(ApiModel):
    """The model image the job pushed, with the digest the registry confirmed."""

    tag: str | None = Field(default=None, max_length=512, description="registry/repository:version pushed.")
    digest: str | None = Field(default=None, pattern=r"^sha256:[a-f0-9]{64}$")
    reference: str | None = Field(default=None, max_length=512, description="registry/repository@sha256:….")


class FineTuneJobStatus(StatusBase):
    phase: Stage | None = None
    stage: Stage | None = None
    job_name: str | None = None
    progress: Progress | None = None
    metrics: JobMetrics | None = None
    produced_model: ObjectRef | None = None
    data: DataReadiness | None = None
    report_uri: str | None = Field(default=None, max_length=1024, description="The trainer's evaluation report.")
    attempts: int | None = Field(default=None, ge=0, description="Training pods started so far (retries + 1).")
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    image: PushedImage | None = None
