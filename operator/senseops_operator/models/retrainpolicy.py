"""RetrainPolicy: the seed's retraining trigger (seed §6: "when a streamer gains ≥ 3 h of good audio, train")
in the CronJob → Job pattern, applied to training: RetrainPolicy → FineTuneJob (DESIGN §3).

The policy owns the data selection (store, anchors, filters) and counts each anchor's new good audio since
its last trigger; the template holds the rest of a FineTuneJob spec. Each trigger creates one FineTuneJob
named ``<policy>-<n>`` whose output ASRModel is ``<template.spec.output.modelName>-<n>``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from senseops_operator import constants as c
from senseops_operator.models.common import (
    DEFAULT_EMPTY_OBJECT,
    ApiModel,
    Name,
    ObjectRef,
    StatusBase,
    cel,
    rules,
)
from senseops_operator.models.finetunejob import (
    AnchorId,
    EvaluationGate,
    FilterThresholds,
    HeldOut,
    Hyperparameters,
    ImageBuildTarget,
    Placement,
    Resources,
    RunPolicy,
)
from senseops_operator.models.rollout import RolloutTemplateSpec

ConcurrencyPolicy = Literal["Forbid", "Allow"]
ThresholdScope = Literal["PerAnchor", "Total"]
BaseModelFrom = Literal["Template", "Serving"]
RetrainPhase = Literal["Watching", "Running", "Suspended"]

# An output model is named `<prefix>-<n>`; the prefix leaves room for the trigger number.
ModelNamePrefix = Field(
    min_length=1, max_length=c.MAX_NAME_LENGTH - c.RETRAIN_SUFFIX_ROOM, pattern=c.DNS_LABEL_PATTERN,
    description="Prefix of the output ASRModel's name: each trigger publishes `<modelName>-<n>`.",
)


class TemplateDataset(ApiModel):
    """What a triggered FineTuneJob takes besides the policy's store, anchors and filters."""

    window_start: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"},
        description="Train on recordings from this time on (omitted: all). The window's end is each trigger's "
        "cut-off, set by the policy.",
    )
    min_hours: float | None = Field(
        default=None, ge=0, le=10_000,
        description="The FineTuneJob's dataset.minHours (omitted: the policy's minNewHours).",
    )
    held_out: HeldOut = Field(default_factory=HeldOut, json_schema_extra=DEFAULT_EMPTY_OBJECT)


class TemplateOutput(ApiModel):
    model_name: str = ModelNamePrefix
    store_uri: str = Field(max_length=1024, pattern=c.STORE_PREFIX_PATTERN, description="Where models/ goes.")


class FineTuneJobTemplateSpec(ApiModel):
    """A FineTuneJob spec without the parts each trigger fills in (dataset source/anchors/window, output
    names)."""

    base_model: ObjectRef
    dataset: TemplateDataset = Field(default_factory=TemplateDataset, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    resources: Resources = Field(default_factory=Resources, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    placement: Placement = Field(default_factory=Placement, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    run_policy: RunPolicy = Field(default_factory=RunPolicy, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    output: TemplateOutput
    image: ImageBuildTarget | None = None
    evaluation_gate: EvaluationGate = Field(default_factory=EvaluationGate, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    trainer_image: str = Field(default=c.DEFAULT_TRAINER_IMAGE, max_length=512, pattern=c.IMAGE_REF_PATTERN)
    store_secret: Name | None = Field(default=None, description="As FineTuneJob spec.storeSecret.")


class TemplateMetadata(ApiModel):
    labels: dict[str, str] = Field(default_factory=dict, description="Labels copied onto each FineTuneJob.")


class FineTuneJobTemplate(ApiModel):
    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    spec: FineTuneJobTemplateSpec


class ReleaseTemplate(ApiModel):
    """Release each produced model: when a triggered FineTuneJob succeeds, a Rollout named like it moves traffic
    from the model serving now to the new one (the closed loop, seed §6)."""

    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    spec: RolloutTemplateSpec
    stable_model: ObjectRef | None = Field(
        default=None,
        description="The model serving before this policy's first release (omitted: template.spec.baseModel). "
        "Later releases start from what the last finished Rollout left serving.",
    )


class RetrainPolicySpec(ApiModel):
    """Desired state. Unlike a FineTuneJob's, it may change at any time (as a CronJob's)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(
            cel(
                "!self.template.spec.baseModel.name.matches('^' + self.template.spec.output.modelName + '-[0-9]+$')",
                "template.spec.baseModel.name has the form of a model this policy produces "
                "(<template.spec.output.modelName>-<n>); choose another output.modelName prefix",
                field_path=".template.spec.output.modelName",
            ),
            cel(
                "self.baseModelFrom != 'Serving' || has(self.release)",
                "baseModelFrom Serving fine-tunes the model this policy's releases left serving: set spec.release "
                "(or use baseModelFrom Template)",
                field_path=".baseModelFrom",
            ),
        )
    }

    source: str = Field(
        max_length=1024, pattern=c.STORE_PREFIX_PATTERN, description="Store prefix holding raw/ and asr/."
    )
    anchors: list[AnchorId] = Field(
        min_length=1, max_length=c.MAX_ANCHORS, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Streamers to watch and train on.",
    )
    filters: FilterThresholds = Field(default_factory=FilterThresholds, json_schema_extra=DEFAULT_EMPTY_OBJECT)
    min_new_hours: float = Field(
        default=c.DEFAULT_RETRAIN_MIN_NEW_HOURS, gt=0, le=10_000,
        description="Trigger when this many new hours of good audio arrived since the last trigger.",
    )
    threshold_scope: ThresholdScope = Field(
        default="PerAnchor",
        description="PerAnchor: any one anchor reaching minNewHours triggers (seed §6); Total: the anchors' sum.",
    )
    since: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"},
        description="Baseline for the first trigger: count audio recorded from this time (omitted: all of it).",
    )
    template: FineTuneJobTemplate
    concurrency_policy: ConcurrencyPolicy = Field(
        default="Forbid", description="Forbid: no new FineTuneJob while one of this policy's is unfinished."
    )
    suspend: bool = Field(default=False, description="Measure and show, but create nothing.")
    successful_jobs_history_limit: int = Field(
        default=c.DEFAULT_RETRAIN_SUCCESSFUL_HISTORY, ge=0, le=c.MAX_RETRAIN_HISTORY,
        description="Succeeded FineTuneJobs kept; older ones are deleted (their ASRModels are kept).",
    )
    failed_jobs_history_limit: int = Field(
        default=c.DEFAULT_RETRAIN_FAILED_HISTORY, ge=0, le=c.MAX_RETRAIN_HISTORY,
        description="Failed FineTuneJobs kept; older ones are deleted.",
    )
    check_interval_seconds: int = Field(
        default=c.DEFAULT_RETRAIN_CHECK_SECONDS, ge=c.MIN_RETRAIN_CHECK_SECONDS, le=86_400,
        description="How often the transcript index is read.",
    )
    release: ReleaseTemplate | None = Field(
        default=None, description="Roll each produced model out with this Rollout template (omitted: publish only).",
    )
    base_model_from: BaseModelFrom = Field(
        default="Template",
        description="What each triggered FineTuneJob fine-tunes. Template: template.spec.baseModel every time (each "
        "model is trained afresh from the same start). Serving: the model serving when the trigger fires (what the "
        "newest finished release left stable; before the first release, release.stableModel or the template's "
        "base), so each release continues from the last promoted one. Needs spec.release.",
    )


class AnchorNewHours(ApiModel):
    anchor_id: AnchorId
    hours: float = Field(ge=0, description="New hours of good audio since the watermark.")
    segments: int = Field(ge=0)


class NewData(ApiModel):
    """New good audio since the watermark (measured from the `asr/` index, no audio read)."""

    since: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                              description="The watermark: the last trigger's cut-off (or spec.since).")
    anchors: list[AnchorNewHours] = Field(default_factory=list, max_length=c.MAX_ANCHORS)
    hours: float = Field(default=0, ge=0, description="What the threshold compares: max per anchor, or total.")
    needed_hours: float = Field(default=0, ge=0)
    summary: str | None = Field(default=None, max_length=64, description="new/needed, e.g. 2.10/3h")
    checked_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class LastTrigger(ApiModel):
    number: int = Field(ge=1, description="Trigger counter; the FineTuneJob is `<policy>-<number>`.")
    time: str = Field(json_schema_extra={"format": "date-time"})
    cutoff: str = Field(json_schema_extra={"format": "date-time"},
                        description="Audio recorded before this went to this FineTuneJob; later audio is new.")
    fine_tune_job: Name
    anchors: list[AnchorNewHours] = Field(default_factory=list, max_length=c.MAX_ANCHORS)
    audit_key: str | None = Field(default=None, max_length=1024, description="The audit record in the store.")


class LastRelease(ApiModel):
    rollout: Name
    stable_model: Name
    candidate_model: Name
    phase: str | None = Field(default=None, max_length=32, description="The Rollout's phase when last seen.")


class RetrainPolicyStatus(StatusBase):
    phase: RetrainPhase | None = None
    new_data: NewData | None = None
    last_trigger: LastTrigger | None = None
    active: list[ObjectRef] = Field(default_factory=list, max_length=c.MAX_RETRAIN_ACTIVE_LISTED,
                                    description="This policy's unfinished FineTuneJobs.")
    active_count: int = Field(default=0, ge=0)
    last_produced_model: ObjectRef | None = Field(default=None, description="The newest model its jobs published.")
    serving_model: Name | None = Field(
        default=None, description="What the last finished release left serving (the base of the next release).",
    )
    last_release: LastRelease | None = None
