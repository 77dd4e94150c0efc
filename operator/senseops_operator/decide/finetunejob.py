"""FineTuneJob decisions: wait for enough good audio, run the training Job, follow its stages, judge the
evaluation gate, publish the produced ASRModel — or fail with a reason a person can act on.

Pure: ``decide(spec, status, observation, now)`` returns the new status, Events, when to look again and the
intents (create the training Job, create the ASRModel) that the handler carries out.

    Pending ──base Ready──▶ WaitingForData ──enough hours──▶ PreparingData ▶ Training ▶ Evaluating ▶ Packaging
                                                                                                   │
                            Failed (GateFailed · BadSettings · TrainingFailed · DeadlineExceeded) ◀─┤
                                                               ┌── spec.image set: BuildingImage ◀─┤
                                          Failed (ImageBuildFailed) ◀──┤                           │
                                                                      └──▶ Succeeded ◀────────────┘ (ASRModel created)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from senseops_operator.decide.common import Decision, Event, condition, condition_events, merge_conditions, timestamp
from senseops_operator.decide.image_build import (
    ImageBuildState,
    ImageStep,
    RegistryDigest,
    image_repository,
    image_step,
    image_tag,
)
from senseops_operator.decide.references import models_resolved
from senseops_operator.decide.training_job import EXIT_BAD_SETTINGS, EXIT_GATE_FAILED, LABEL_FINETUNEJOB

RECHECK_SECONDS = 30.0
RUNNING_RECHECK_SECONDS = 10.0
DATA_BACKOFF_BASE_S = 30.0
DATA_BACKOFF_MAX_S = 600.0
TERMINAL = ("Succeeded", "Failed")
# The trainer's stage names -> the FineTuneJob's coarse stage.
TRAINER_STAGES: dict[str, str] = {
    "fetch": "PreparingData", "collect": "PreparingData", "filter": "PreparingData", "normalize": "PreparingData",
    "split": "PreparingData", "train": "Training", "evaluate": "Evaluating", "export": "Packaging",
    "package": "Packaging",
}


# --- observation ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """What the readiness estimate needs from one transcript-index line."""

    anchor_id: str
    segment_id: str
    duration_s: float
    confidence: float


@dataclass(frozen=True)
class Readiness:
    """Hours per anchor that pass the index-level filters, and the total needed."""

    hours: Mapping[str, float]
    segments: Mapping[str, int]
    needed_hours: float

    @property
    def available_hours(self) -> float:
        return sum(self.hours.values())

    @property
    def ready(self) -> bool:
        return self.available_hours >= self.needed_hours


@dataclass(frozen=True)
class TrainingJobState:
    """The training Job as observed (``exists=False`` before it is created or after its TTL removed it)."""

    exists: bool
    active: int = 0
    succeeded: bool = False
    failed_reason: str | None = None  # the Job's Failed condition reason
    failed_message: str = ""
    suspended: bool = False
    exit_codes: tuple[int, ...] = ()  # of the trainer containers that ended, oldest first
    pods: int = 0


@dataclass(frozen=True)
class EvaluationReport:
    """The trainer's evaluation report (``reports/{job}/report.json``)."""

    uri: str
    gate_passed: bool
    gate_reason: str
    gate_set: str | None = None
    base_cer: float | None = None
    new_cer: float | None = None
    base_wer: float | None = None
    new_wer: float | None = None
    rtf: float | None = None
    skipped_batches: int | None = None


@dataclass(frozen=True)
class PackagedModel:
    """The packaged model directory in the store: its URI and directory digest."""

    uri: str
    sha256: str
    size_bytes: int | None = None


@dataclass(frozen=True)
class FineTuneJobObservation:
    generation: int
    name: str
    model_phases: dict[str, str | None]  # ASRModel name -> phase (None when it does not exist)
    base_model_uri: str | None = None
    readiness: Readiness | None = None
    job: TrainingJobState = field(default_factory=lambda: TrainingJobState(exists=False))
    report: EvaluationReport | None = None
    package: PackagedModel | None = None
    output_model_owner: str | None = None  # the FineTuneJob label of an existing output ASRModel
    image_build: ImageBuildState = field(default_factory=lambda: ImageBuildState(exists=False))
    registry_digest: RegistryDigest | None = None  # the pushed tag's digest, read back from the registry


# --- intents ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateTrainingJob:
    """Create the job-file ConfigMap and the training Job (``training_job.render``) from this base model."""

    base_model_uri: str


@dataclass(frozen=True)
class CreateModel:
    """Create the output ASRModel."""

    name: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class CreateImageBuildJob:
    """Create the image build Job (``image_build.render_build_job``) for this packaged model."""

    artifact_uri: str
    sha256: str


Action = CreateTrainingJob | CreateModel | CreateImageBuildJob


@dataclass(frozen=True)
class FineTuneJobDecision(Decision):
    actions: tuple[Action, ...] = ()


# --- pure helpers ----------------------------------------------------------------------------------------
def readiness(segments: Iterable[Segment], anchors: Iterable[str], filters: Mapping[str, Any],
              needed_hours: float) -> Readiness:
    """Hours of audio per anchor whose index line passes the job's confidence and duration filters.

    Only what the index says is used (no audio is read); the trainer's own filters (text rates, audio
    checks, duplicates) run later and may keep less. A segment id counts once.
    """
    min_conf = float(filters.get("minConfidence", 0.8))
    min_s = float(filters.get("minDurationSeconds", 1.0))
    max_s = float(filters.get("maxDurationSeconds", 30.0))
    hours = {a: 0.0 for a in anchors}
    counts = {a: 0 for a in hours}
    seen: set[tuple[str, str]] = set()
    for seg in segments:
        key = (seg.anchor_id, seg.segment_id)
        if seg.anchor_id not in hours or key in seen:
            continue
        seen.add(key)
        if seg.confidence >= min_conf and min_s <= seg.duration_s <= max_s:
            hours[seg.anchor_id] += seg.duration_s / 3600.0
            counts[seg.anchor_id] += 1
    return Readiness(hours, counts, needed_hours)


def data_recheck_seconds(checks: int) -> float:
    """Back-off while waiting for data: 30 s doubling to 10 min."""
    return float(min(DATA_BACKOFF_MAX_S, DATA_BACKOFF_BASE_S * 2 ** max(0, checks - 1)))


def failure(job: TrainingJobState, report: EvaluationReport | None) -> tuple[str, str]:
    """(reason, message) for a failed training Job, from its condition and the trainer's exit code."""
    last_exit = job.exit_codes[-1] if job.exit_codes else None
    if last_exit == EXIT_GATE_FAILED:
        if report is not None:
            return "GateFailed", f"evaluation gate failed: {report.gate_reason}; {metrics_text(report)}"
        return "GateFailed", "evaluation gate failed (the report could not be read from the store)"
    if last_exit == EXIT_BAD_SETTINGS:
        return "BadSettings", ("the trainer refused its settings (exit 64); see the trainer log "
                               "(`kubectl logs job/...`) and fix the FineTuneJob spec")
    if job.failed_reason == "DeadlineExceeded":
        return "DeadlineExceeded", f"training ran past runPolicy.activeDeadlineSeconds: {job.failed_message}"
    tries = f"{job.pods} attempt{'s' if job.pods != 1 else ''}"
    code = f", last exit code {last_exit}" if last_exit is not None else ""
    return "TrainingFailed", f"training failed after {tries}{code}: {job.failed_reason or 'Failed'}"


def metrics_text(report: EvaluationReport) -> str:
    parts = []
    for name, base, new in (("CER", report.base_cer, report.new_cer), ("WER", report.base_wer, report.new_wer)):
        if base is not None and new is not None:
            parts.append(f"{name} {base:.3f} -> {new:.3f}")
    if report.rtf is not None:
        parts.append(f"RTF {report.rtf:.3f}")
    where = f" on the {report.gate_set} set" if report.gate_set else ""
    return (", ".join(parts) + where) if parts else "no metrics in the report"


def status_metrics(report: EvaluationReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    values = {"baseCer": report.base_cer, "newCer": report.new_cer, "baseWer": report.base_wer,
              "newWer": report.new_wer, "rtf": report.rtf}
    return {k: v for k, v in values.items() if v is not None and math.isfinite(v)}


def output_model(job: str, spec: Mapping[str, Any], package: PackagedModel,
                 report: EvaluationReport | None, image_digest: str | None = None) -> CreateModel:
    """The ASRModel a succeeded job publishes. A label (not an owner reference) links it to the job, so
    deleting the FineTuneJob never deletes the model."""
    output = spec["output"]
    evaluation: dict[str, Any] = {}
    if report is not None:
        evaluation = {k: v for k, v in {"cer": report.new_cer, "wer": report.new_wer, "rtf": report.rtf,
                                        "dataset": report.gate_set, "reportUri": report.uri}.items()
                      if v is not None}
    artifact: dict[str, Any] = {"uri": package.uri, "sha256": package.sha256, "format": "funasr"}
    if package.size_bytes:
        artifact["sizeBytes"] = package.size_bytes
    model_spec: dict[str, Any] = {
        "version": output.get("version") or job,
        "artifact": artifact,
        "lineage": {"baseModel": spec["baseModel"]["name"], "fineTuneJob": job,
                    "dataset": spec["dataset"]["source"]},
    }
    if evaluation:
        model_spec["evaluation"] = evaluation
    if image_digest is not None and spec.get("image"):
        target = spec["image"]
        image: dict[str, Any] = {"reference": f"{image_repository(spec)}@{image_digest}"}
        pull_secret = target.get("pullSecret") or target.get("pushSecret")
        if pull_secret:
            image["pullSecret"] = pull_secret
        model_spec["image"] = image
    return CreateModel(name=output["modelName"], labels={LABEL_FINETUNEJOB: job}, spec=model_spec)


# --- the decision ---------------------------------------------------------------------------------------
def decide(spec: Mapping[str, Any], status: Mapping[str, Any], obs: FineTuneJobObservation,
           now: datetime) -> FineTuneJobDecision:
    old_conditions: list[dict[str, Any]] = list(status.get("conditions") or [])
    stage: str = status.get("stage") or "Pending"
    new: dict[str, Any] = {"observedGeneration": obs.generation}
    conditions = [condition("Accepted", "True", "SpecValid", "spec accepted by the API server and the operator")]
    events: list[Event] = []
    actions: list[Action] = []
    requeue: float | None = None
    output_name = spec["output"]["modelName"]

    if stage in TERMINAL:  # a finished job stays finished (its Job may be gone after its TTL)
        return FineTuneJobDecision(status={"observedGeneration": obs.generation}, events=())

    base = spec["baseModel"]["name"]
    resolved = models_resolved({"baseModel": base}, obs.model_phases)
    conditions.append(resolved)
    message: str
    job = obs.job
    if not job.exists:
        if resolved["status"] != "True" or obs.base_model_uri is None:
            stage, message, requeue = "Pending", f"waiting: {resolved['message']}", RECHECK_SECONDS
        elif obs.readiness is None or not obs.readiness.ready:
            checks = int((status.get("data") or {}).get("checks", 0)) + 1
            ready = obs.readiness
            have = f"{ready.available_hours:.2f}" if ready else "?"
            need = float(spec["dataset"].get("minHours", 3.0))
            message = f"waiting for data: {have} of {need:g} hours of good audio recorded"
            stage, requeue = "WaitingForData", data_recheck_seconds(checks)
            new["data"] = readiness_status(ready, need, now, checks)
            conditions.append(condition("DataReady", "False", "NotEnoughData", message))
        else:
            stage, requeue = "PreparingData", RUNNING_RECHECK_SECONDS
            message = f"training Job started on {obs.readiness.available_hours:.2f} hours of audio"
            new["data"] = readiness_status(obs.readiness, obs.readiness.needed_hours, now, 0)
            new["startTime"] = timestamp(now)
            conditions.append(condition("DataReady", "True", "EnoughData", message))
            actions.append(CreateTrainingJob(obs.base_model_uri))
            events.append(Event("Normal", "TrainingStarted", message))
    elif job.failed_reason is not None:
        reason, message = failure(job, obs.report)
        stage = "Failed"
        new["completionTime"] = timestamp(now)
        conditions.append(condition("Succeeded", "False", reason, message))
        events.append(Event("Warning", reason, message))
    elif job.succeeded:
        image_digest: str | None = (status.get("image") or {}).get("digest")
        step: ImageStep | None = None
        if spec.get("image") and not image_digest and obs.package is not None:
            step = image_step(obs.image_build, obs.registry_digest, image_tag(obs.name, spec))
            if step.outcome == "verified":
                image_digest = step.digest
                new["image"] = {"tag": image_tag(obs.name, spec), "digest": image_digest,
                                "reference": f"{image_repository(spec)}@{image_digest}"}
                conditions.append(condition("ImageBuilt", "True", "ImagePushed", step.message))
        if obs.package is None:
            stage, message, requeue = "Packaging", "training finished; waiting for the packaged model in the store", \
                RECHECK_SECONDS
        elif obs.model_phases.get(output_name) is not None and obs.output_model_owner != obs.name:
            stage = "Failed"
            owner = f"FineTuneJob {obs.output_model_owner!r}" if obs.output_model_owner else "no FineTuneJob"
            message = (f"ASRModel {output_name!r} already exists and belongs to {owner}; nothing was published; "
                       "choose another output.modelName")
            conditions.append(condition("Succeeded", "False", "OutputExists", message))
            events.append(Event("Warning", "OutputExists", message))
            new["completionTime"] = timestamp(now)
        elif step is not None and step.outcome == "failed":
            stage, message = "Failed", step.message
            new["completionTime"] = timestamp(now)
            conditions.append(condition("ImageBuilt", "False", "ImageBuildFailed", message))
            conditions.append(condition("Succeeded", "False", "ImageBuildFailed", message))
        elif step is not None and step.outcome != "verified":
            stage, message, requeue = "BuildingImage", step.message, RUNNING_RECHECK_SECONDS
            if step.outcome == "create":
                actions.append(CreateImageBuildJob(obs.package.uri, obs.package.sha256))
                events.append(Event("Normal", "ImageBuildStarted", message))
        elif obs.model_phases.get(output_name) is None:
            stage, requeue = ("BuildingImage" if spec.get("image") else "Packaging"), RUNNING_RECHECK_SECONDS
            message = f"publishing ASRModel {output_name!r}"
            actions.append(output_model(obs.name, spec, obs.package, obs.report, image_digest))
        else:
            stage = "Succeeded"
            metrics = f": {metrics_text(obs.report)}" if obs.report else ""
            pushed = f"; image {image_repository(spec)}@{image_digest}" if image_digest and spec.get("image") else ""
            message = f"published ASRModel {output_name!r}{metrics}{pushed}"
            new["producedModel"] = {"name": output_name}
            new["completionTime"] = timestamp(now)
            conditions.append(condition("Succeeded", "True", "ModelPublished", message))
            events.append(Event("Normal", "ModelPublished", message))
    else:
        trainer_stage = ((status.get("progress") or {}).get("stage")) or ""
        stage = TRAINER_STAGES.get(trainer_stage, stage if stage not in ("Pending", "WaitingForData")
                                   else "PreparingData")
        requeue = RUNNING_RECHECK_SECONDS
        if job.suspended:
            message = "suspended (runPolicy.suspend); the trainer resumes from its checkpoint when unsuspended"
            conditions.append(condition("Suspended", "True", "RunPolicySuspend", message))
        else:
            message = f"{stage}: trainer stage {trainer_stage or 'starting'}, {job.active} pod(s) running"
            if job.pods > 1:
                message += f", attempt {job.pods}"
            conditions.append(condition("Suspended", "False", "Running", "the training Job is not suspended"))
    if stage != status.get("stage"):
        events.append(Event("Normal", f"Stage{stage}", f"stage {status.get('stage') or 'Pending'} -> {stage}"))
    new.update({
        "phase": stage, "stage": stage, "message": message,
        "conditions": merge_conditions(old_conditions, conditions, now, obs.generation),
    })
    if job.exists:
        new["jobName"] = obs.name
        new["attempts"] = job.pods
    job_metrics = status_metrics(obs.report)
    if job_metrics:
        new["metrics"] = job_metrics
    if obs.report is not None:
        new["reportUri"] = obs.report.uri
    events.extend(e for e in condition_events(old_conditions, conditions, skip=("Accepted", "Suspended"))
                  if e.reason not in {x.reason for x in events})
    return FineTuneJobDecision(status=new, events=tuple(events), requeue_after=requeue, actions=tuple(actions))


def readiness_status(ready: Readiness | None, needed: float, now: datetime, checks: int) -> dict[str, Any]:
    available = ready.available_hours if ready else 0.0
    anchors = [] if ready is None else [
        {"anchorId": a, "hours": round(h, 4), "segments": ready.segments.get(a, 0)} for a, h in ready.hours.items()]
    return {"availableHours": round(available, 4), "neededHours": needed, "anchors": anchors,
            "checkedAt": timestamp(now), "summary": f"{available:.2f}/{needed:g}h", "checks": checks}
