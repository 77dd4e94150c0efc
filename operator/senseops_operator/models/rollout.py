"""Rollout: move live traffic from a stable to a candidate ASRModel in steps (DESIGN §3).

Rules the API server enforces here: weights are 0–100, strictly increasing and end at 100; stable and
candidate differ; each step does exactly one thing; exactly one traffic router.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from senseops_operator import constants as c
from senseops_operator.models.common import ApiModel, Name, ObjectRef, StatusBase, cel, rules

RolloutPhase = Literal["Pending", "Progressing", "Paused", "Healthy", "Degraded", "Aborted"]


class Target(ApiModel):
    """The inference service whose traffic moves."""

    deployment: Name = Field(description="Stable inference Deployment.")
    service: Name = Field(description="Service in front of the stable pods.")
    port: int = Field(default=8000, ge=1, le=65535)


class Pause(ApiModel):
    duration_seconds: int | None = Field(
        default=None, ge=0, le=7 * 86_400, description="Omit to pause until promoted by hand."
    )


class StepAnalysis(ApiModel):
    metrics: list[Name] = Field(
        default_factory=list, max_length=c.MAX_ANALYSIS_METRICS, description="Subset of analysis metrics; all if empty."
    )


class Step(ApiModel):
    """Exactly one of setWeight, pause, analysis."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(
            cel(
                "[has(self.setWeight), has(self.pause), has(self.analysis)].filter(x, x).size() == 1",
                "each step must set exactly one of setWeight, pause or analysis",
            )
        )
    }

    set_weight: int | None = Field(default=None, ge=0, le=100, description="Percent of traffic to the candidate.")
    pause: Pause | None = None
    analysis: StepAnalysis | None = None


class NginxRouting(ApiModel):
    stable_ingress: Name = Field(description="The Ingress serving the stable Service; a canary copy is owned by us.")


class GatewayRouting(ApiModel):
    http_route: Name = Field(description="HTTPRoute whose backendRefs weights are set.")


class TrafficRouting(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(
            cel("has(self.nginx) != has(self.gatewayAPI)", "set exactly one of trafficRouting.nginx or gatewayAPI")
        )
    }

    nginx: NginxRouting | None = None
    gateway_api: GatewayRouting | None = Field(default=None, alias="gatewayAPI")


MetricTemplate = Literal[
    "error-ratio", "error-ratio-vs-stable", "p95-final-latency", "p95-final-latency-vs-stable", "rtf-p95",
    "rtf-p95-vs-stable",
]


class PrometheusProvider(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(cel("has(self.query) != has(self.template)", "set exactly one of query or template"))
    }

    address: str = Field(max_length=512, pattern=c.HTTP_URL_PATTERN, description="Prometheus base URL.")
    query: str | None = Field(
        default=None, min_length=1, max_length=4096,
        description="PromQL; {{candidate}}/{{stable}}/{{namespace}}/{{window}} are substituted.",
    )
    template: MetricTemplate | None = Field(
        default=None, description="A built-in query over the runtime's own metrics instead of writing PromQL.",
    )
    window: str = Field(default="1m", pattern=r"^[0-9]+[smh]$", description="Rate window substituted for {{window}}.")


class MetricProvider(ApiModel):
    prometheus: PrometheusProvider


class AnalysisMetric(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(
            cel("has(self.successMin) || has(self.successMax)", "set successMin and/or successMax"),
            cel(
                "!has(self.successMin) || !has(self.successMax) || self.successMin <= self.successMax",
                "successMin must not exceed successMax",
            ),
        )
    }

    name: Name
    provider: MetricProvider
    success_min: float | None = Field(default=None, description="Measurement passes when >= this.")
    success_max: float | None = Field(default=None, description="Measurement passes when <= this.")
    interval_seconds: int = Field(
        default=c.DEFAULT_ANALYSIS_INTERVAL_SECONDS, ge=c.MIN_ANALYSIS_INTERVAL_SECONDS, le=3600
    )
    initial_delay_seconds: int = Field(
        default=0, ge=0, le=3600,
        description="Seconds after each step starts before this metric is measured: right after a weight rises "
        "the candidate has served too few requests for a rate or quantile (0: measure at once).",
    )
    failure_limit: int = Field(default=0, ge=0, le=100, description="Failures tolerated before abort.")
    inconclusive_limit: int = Field(default=0, ge=0, le=100, description="No-data results before pausing.")
    consecutive_error_limit: int = Field(default=4, ge=0, le=100, description="Provider errors before pausing.")


class Analysis(ApiModel):
    metrics: list[AnalysisMetric] = Field(default_factory=list, max_length=c.MAX_ANALYSIS_METRICS)


class GoldenSet(ApiModel):
    """Clips (WAV, 16 kHz mono) and their reference texts under one store prefix, read with the operator's
    own store credentials. The manifest is JSON Lines: `{"key": "clip1.wav", "text": "...", "language": "zh"}`,
    each key relative to the prefix."""

    uri: str = Field(max_length=1024, pattern=c.STORE_PREFIX_PATTERN, description="Store prefix of the golden set.")
    manifest: str = Field(
        default=c.DEFAULT_GOLDEN_MANIFEST, min_length=1, max_length=256, pattern=r"^[^/].*$",
        description="Manifest key relative to uri (JSON Lines: key, text, language).",
    )


class QualityGate(ApiModel):
    """Before any traffic, and then on a schedule, the golden set goes through candidate and stable; the
    candidate's error rate must not exceed stable's by more than maxDegradation."""

    golden_set: GoldenSet
    metric: Literal["cer", "wer"] = Field(
        default="cer", description="cer: every character is a unit; wer: words (each CJK character is a word).",
    )
    max_degradation: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Passes when candidate <= stable + this (absolute, 0.02 = 2 points).",
    )
    interval_seconds: int = Field(
        default=c.DEFAULT_QUALITY_GATE_INTERVAL_SECONDS, ge=c.MIN_ANALYSIS_INTERVAL_SECONDS, le=86_400,
        description="How often the probe repeats while the rollout runs.",
    )
    max_clips: int = Field(default=c.DEFAULT_GOLDEN_CLIPS, ge=1, le=c.MAX_GOLDEN_CLIPS)
    max_clip_bytes: int = Field(default=c.DEFAULT_GOLDEN_CLIP_BYTES, ge=1024, le=c.MAX_GOLDEN_CLIP_BYTES)
    request_timeout_seconds: int = Field(default=c.DEFAULT_PROBE_TIMEOUT_SECONDS, ge=1, le=600)
    failure_limit: int = Field(default=0, ge=0, le=100, description="Failed probes tolerated before abort.")
    inconclusive_limit: int = Field(
        default=3, ge=0, le=100, description="Probes that could not measure (errors) before pausing.",
    )


# The step rules every Rollout spec obeys, also a RetrainPolicy's release template.
STEP_RULES = (
    cel(
        "self.steps.exists(s, has(s.setWeight))"
        " && self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight)"
        "[size(self.steps.filter(s, has(s.setWeight))) - 1] == 100",
        "steps must contain setWeight steps and the last setWeight must be 100",
        field_path=".steps",
    ),
    cel(
        "self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()"
        " && self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).all(w,"
        " self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).exists_one(v, v == w))",
        "setWeight values must be strictly increasing",
        field_path=".steps",
    ),
    cel(
        "!self.steps.exists(s, has(s.analysis))"
        " || (has(self.analysis) && has(self.analysis.metrics) && size(self.analysis.metrics) > 0)",
        "analysis steps need spec.analysis.metrics",
        field_path=".analysis",
    ),
)


class RolloutTemplateSpec(ApiModel):
    """A Rollout spec without its two models: what a RetrainPolicy's release template holds."""

    model_config = ApiModel.model_config | {"json_schema_extra": rules(*STEP_RULES)}

    target: Target
    steps: list[Step] = Field(min_length=1, max_length=c.MAX_ROLLOUT_STEPS)
    traffic_routing: TrafficRouting
    analysis: Analysis | None = None
    quality_gate: QualityGate | None = Field(
        default=None, description="Golden-set CER/WER check before any traffic and on a schedule after.",
    )
    progress_deadline_seconds: int = Field(
        default=c.DEFAULT_PROGRESS_DEADLINE_SECONDS, ge=c.MIN_PROGRESS_DEADLINE_SECONDS, le=86_400
    )
    abort_scale_down_delay_seconds: int = Field(default=c.DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS, ge=0, le=86_400)
    scale_down_delay_seconds: int = Field(
        default=c.DEFAULT_SCALE_DOWN_DELAY_SECONDS, ge=0, le=86_400,
        description="After promotion, how long the candidate keeps its pods before it is scaled down.",
    )


class RolloutSpec(RolloutTemplateSpec):
    model_config = ApiModel.model_config | {
        "json_schema_extra": rules(
            cel("self.stableModel.name != self.candidateModel.name", "candidateModel must differ from stableModel",
                field_path=".candidateModel.name"),
            *STEP_RULES,
        )
    }

    stable_model: ObjectRef
    candidate_model: ObjectRef


MeasurementPhase = Literal["Successful", "Failed", "Inconclusive", "Error"]
PauseReason = Literal["PausedByStep", "Inconclusive", "ProviderErrors", "CandidateNotReady", "Manual"]


class Measurement(ApiModel):
    """One analysis result, with everything needed to answer "why did it roll back?"."""

    metric: str
    phase: MeasurementPhase
    value: float | None = None
    threshold: str | None = Field(default=None, max_length=128, description="What passes, e.g. '<= 0.05'.")
    resolved_query: str | None = Field(default=None, max_length=4096)
    message: str | None = Field(default=None, max_length=1024)
    at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class MetricTally(ApiModel):
    """Running counts for one metric since the rollout (re)started; limits are checked against these."""

    metric: str
    successful: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    inconclusive: int = Field(default=0, ge=0)
    error: int = Field(default=0, ge=0)
    consecutive_errors: int = Field(default=0, ge=0)
    last_measured_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class PauseCondition(ApiModel):
    reason: PauseReason
    message: str | None = Field(default=None, max_length=1024)
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class RolloutStatus(StatusBase):
    phase: RolloutPhase | None = None
    current_step_index: int | None = Field(default=None, ge=0)
    desired_weight: int | None = Field(default=None, ge=0, le=100)
    actual_weight: int | None = Field(default=None, ge=0, le=100)
    stable_model: str | None = None
    candidate_model: str | None = None
    previous_stable_model: str | None = None
    step_started_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    measurements: list[Measurement] = Field(default_factory=list, max_length=c.MAX_MEASUREMENTS)
    tallies: list[MetricTally] = Field(default_factory=list, max_length=c.MAX_ANALYSIS_METRICS + 1)  # + quality gate
    pause_conditions: list[PauseCondition] = Field(default_factory=list, max_length=8)
    # Manual verbs: the CLI sets these in status (never spec, so GitOps sees no drift); the operator
    # clears each once acted on. `abort` stays set while the rollout is aborted (cleared by retry).
    abort: bool = Field(default=False, description="Set (in status) to abort; the operator rolls back.")
    promote: bool = Field(default=False, description="Set (in status) to skip the current step or pause.")
    promote_full: bool = Field(default=False, description="Set (in status) to skip all remaining steps.")
    retry: bool = Field(default=False, description="Set (in status) after an abort to start again from step 1.")
    pause: bool = Field(default=False, description="Set (in status) to hold the rollout where it is.")
    resume: bool = Field(default=False, description="Set (in status) to clear a manual or inconclusive pause.")
    abort_reason: str | None = Field(default=None, max_length=2048, description="Why it was aborted.")
    aborted_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    scale_down_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the candidate gets scaled down."
    )
    degraded: bool = Field(default=False, description="The progress deadline passed without progress.")
    outcome: Literal["Promoted", "RolledBack"] | None = None
    started_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    finished_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
