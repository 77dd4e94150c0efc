"""RetrainPolicy decisions: count each anchor's new good audio since the watermark, create a FineTuneJob from
the template when ``minNewHours`` is crossed, keep the job history within its limits, and audit each trigger.

Pure: ``decide(spec, status, observation, now)`` returns the new status, Events, when to look again and the
intents (create a FineTuneJob, delete old finished ones, write the audit record) the handler carries out.

The watermark is the last trigger's cut-off (its time, to the second): audio recorded before it went to that
FineTuneJob (its dataset window ends there), audio recorded after it is new. The first trigger counts from
``spec.since`` (or all recorded audio). A failed FineTuneJob does not reset the count: retrying on the same
data would fail the same way, so the next trigger waits for ``minNewHours`` more (and trains on all of it).

Retries and operator restarts never create two FineTuneJobs for one trigger: the name ``<policy>-<n>`` comes
from the trigger counter in status, and a job of this policy with a higher number than status knows (the
status write was lost) is adopted as the last trigger instead of creating another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from senseops_operator import constants as c
from senseops_operator.decide.common import Decision, Event, condition, merge_conditions, timestamp
from senseops_operator.decide.finetunejob import TERMINAL, Readiness, Segment, readiness
from senseops_operator.models.retrainpolicy import RetrainPolicySpec, RetrainPolicyStatus

LABEL_POLICY = f"{c.GROUP}/retrainpolicy"
LABEL_TRIGGER = f"{c.GROUP}/retrain-trigger"
ANNOTATION_TRIGGER_TIME = f"{c.GROUP}/retrain-trigger-time"
ANNOTATION_CUTOFF = f"{c.GROUP}/retrain-cutoff"
ANNOTATION_HOURS = f"{c.GROUP}/retrain-new-hours"
AUDIT_PREFIX = "audit/retrain"
ACTOR = "senseops-operator"
# After a create that raced with another writer, look again soon (the next run adopts the job).
RETRY_SECONDS = 5.0

BlockReason = Literal["Suspended", "ConcurrencyForbid", "NameTaken"]


# --- observation ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObservedJob:
    """A FineTuneJob labelled with this policy's name."""

    name: str
    owned: bool  # an owner reference to this policy's uid (a recreated policy does not own its predecessor's)
    number: int | None = None  # the trigger label
    stage: str | None = None
    produced_model: str | None = None
    trigger_time: str | None = None
    cutoff: str | None = None
    new_hours: Mapping[str, float] = field(default_factory=dict)
    base_model: str | None = None  # spec.baseModel.name: what it fine-tunes


@dataclass(frozen=True)
class ObservedRollout:
    """A Rollout labelled with this policy's name (a release of one of its models)."""

    name: str
    owned: bool
    number: int | None = None  # the trigger label of the FineTuneJob whose model it releases
    phase: str | None = None
    stable_model: str | None = None  # status.stableModel: what serves now (the candidate once promoted)
    spec_stable: str | None = None
    candidate: str | None = None


@dataclass(frozen=True)
class RetrainObservation:
    generation: int
    name: str
    namespace: str
    uid: str
    segments: tuple[Segment, ...]  # transcript-index lines of the anchors recorded since the watermark
    jobs: tuple[ObservedJob, ...] = ()
    foreign_names: frozenset[str] = frozenset()  # FineTuneJob names in use by objects this policy does not own
    rollouts: tuple[ObservedRollout, ...] = ()


# --- intents ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CreateFineTuneJob:
    """Create this FineTuneJob with an owner reference to the policy (AlreadyExists: look again)."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteFineTuneJob:
    """Delete a finished FineTuneJob beyond the history limits (its ASRModel is not owned by it and stays)."""

    name: str


@dataclass(frozen=True)
class WriteAudit:
    """Write the audit record of a trigger to the store (``key`` under ``spec.source``; idempotent)."""

    key: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class CreateRollout:
    """Release a produced model: create this Rollout with an owner reference to the policy."""

    name: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]


Action = CreateFineTuneJob | DeleteFineTuneJob | WriteAudit | CreateRollout


@dataclass(frozen=True)
class RetrainDecision(Decision):
    actions: tuple[Action, ...] = ()


# --- pure helpers ----------------------------------------------------------------------------------------
def job_name(policy: str, number: int) -> str:
    return f"{policy}-{number}"


def output_model_name(spec: RetrainPolicySpec, number: int) -> str:
    return f"{spec.template.spec.output.model_name}-{number}"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def audit_key(namespace: str, policy: str, trigger_time: str, fine_tune_job: str) -> str:
    """``audit/retrain/<namespace>/<policy>/<YYYYMMDDTHHMMSSZ>-<finetunejob>.json`` (sorts by time)."""
    return f"{AUDIT_PREFIX}/{namespace}/{policy}/{_parse(trigger_time).strftime('%Y%m%dT%H%M%SZ')}-{fine_tune_job}.json"


def newest_unrecorded(status: RetrainPolicyStatus, jobs: Sequence[ObservedJob]) -> ObservedJob | None:
    """An owned job from a trigger whose status write was lost (number above the status counter)."""
    known = status.last_trigger.number if status.last_trigger else 0
    lost = [j for j in jobs if j.owned and j.number is not None and j.number > known and j.cutoff and j.trigger_time]
    return max(lost, key=lambda j: j.number or 0) if lost else None


def next_number(status: RetrainPolicyStatus, jobs: Sequence[ObservedJob]) -> int:
    """The next trigger's number: one above both the status counter and every owned job's label."""
    known = status.last_trigger.number if status.last_trigger else 0
    return max([known] + [j.number or 0 for j in jobs if j.owned]) + 1


def watermark(spec: RetrainPolicySpec, status: RetrainPolicyStatus, jobs: Sequence[ObservedJob]) -> str | None:
    """Count audio recorded from this time on: the last trigger's cut-off, else ``spec.since`` (None: all)."""
    lost = newest_unrecorded(status, jobs)
    if lost is not None and lost.cutoff:
        return lost.cutoff
    if status.last_trigger is not None:
        return status.last_trigger.cutoff
    return spec.since


def threshold_hours(spec: RetrainPolicySpec, ready: Readiness) -> tuple[float, str]:
    """(hours compared with minNewHours, what they are): the best anchor's, or the anchors' total."""
    if spec.threshold_scope == "Total" or not ready.hours:
        return ready.available_hours, "in total"
    anchor = max(ready.hours, key=lambda a: (ready.hours[a], a))
    return ready.hours[anchor], f"on anchor {anchor}"


def fine_tune_job_spec(spec: RetrainPolicySpec, policy: str, number: int, cutoff: str,
                       base_model: str) -> dict[str, Any]:
    """The FineTuneJob spec of trigger ``number``: the template plus the policy's data, per-trigger names and
    the model it starts from (:func:`trigger_base_model`)."""
    t = spec.template.spec
    window: dict[str, Any] = {"end": cutoff}
    if t.dataset.window_start:
        window["start"] = t.dataset.window_start
    out: dict[str, Any] = {
        "baseModel": {"name": base_model},
        "dataset": {
            "source": spec.source,
            "anchorIds": list(spec.anchors),
            "window": window,
            "minHours": t.dataset.min_hours if t.dataset.min_hours is not None else spec.min_new_hours,
            "filters": spec.filters.to_wire(),
            "heldOut": t.dataset.held_out.to_wire(),
        },
        "hyperparameters": t.hyperparameters.to_wire(),
        "resources": t.resources.to_wire(),
        "placement": t.placement.to_wire(),
        "runPolicy": t.run_policy.to_wire(),
        "output": {"modelName": output_model_name(spec, number), "version": job_name(policy, number),
                   "storeUri": t.output.store_uri},
        "evaluationGate": t.evaluation_gate.to_wire(),
        "trainerImage": t.trainer_image,
    }
    if t.image is not None:
        out["image"] = t.image.to_wire()
    if t.store_secret:
        out["storeSecret"] = t.store_secret
    return out


def audit_record(spec: RetrainPolicySpec, obs: RetrainObservation, number: int, trigger_time: str, cutoff: str,
                 since: str | None, hours: Mapping[str, float], segments: Mapping[str, int],
                 base_model: str) -> dict[str, Any]:
    """Who triggered what, when, on how much new audio per anchor (seed §6: status written for audit)."""
    name = job_name(obs.name, number)
    return {
        "kind": "RetrainTrigger",
        "actor": ACTOR,
        "policy": {"namespace": obs.namespace, "name": obs.name, "uid": obs.uid, "generation": obs.generation},
        "time": trigger_time,
        "trigger": number,
        "fineTuneJob": name,
        "baseModel": base_model,
        "outputModel": {"name": output_model_name(spec, number), "version": name},
        "newAudio": {"since": since, "cutoff": cutoff, "minNewHours": spec.min_new_hours,
                     "thresholdScope": spec.threshold_scope,
                     "hoursPerAnchor": {a: round(h, 4) for a, h in hours.items()},
                     "segmentsPerAnchor": dict(segments)},
        "source": spec.source,
    }


def history_to_delete(spec: RetrainPolicySpec, jobs: Sequence[ObservedJob]) -> list[str]:
    """Finished owned jobs beyond the history limits, oldest first (newest kept, by trigger number)."""
    doomed: list[str] = []
    for stage, limit in (("Succeeded", spec.successful_jobs_history_limit),
                         ("Failed", spec.failed_jobs_history_limit)):
        done = sorted((j for j in jobs if j.owned and j.stage == stage), key=lambda j: (j.number or 0, j.name),
                      reverse=True)
        doomed.extend(j.name for j in reversed(done[limit:]))
    return doomed


def _anchor_list(hours: Mapping[str, float], segments: Mapping[str, int]) -> list[dict[str, Any]]:
    return [{"anchorId": a, "hours": round(h, 4), "segments": int(segments.get(a, 0))} for a, h in hours.items()]


def _new_data(since: str | None, hours: Mapping[str, float], segments: Mapping[str, int], measured: float,
              needed: float, now: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {"anchors": _anchor_list(hours, segments), "hours": round(measured, 4),
                            "neededHours": needed, "summary": f"{measured:.2f}/{needed:g}h",
                            "checkedAt": timestamp(now)}
    if since:
        data["since"] = since
    return data


def _not_blocked() -> dict[str, Any]:
    return condition("TriggerBlocked", "False", "NotBlocked", "nothing holds the next trigger back")


def _blocked(spec: RetrainPolicySpec, active: Sequence[ObservedJob], next_name: str,
             foreign: frozenset[str]) -> tuple[BlockReason, str] | None:
    if spec.suspend:
        return "Suspended", "the policy is suspended (spec.suspend)"
    if spec.concurrency_policy == "Forbid" and active:
        job = active[0]
        return "ConcurrencyForbid", (f"concurrencyPolicy is Forbid and FineTuneJob {job.name!r} is still "
                                     f"{job.stage or 'Pending'}")
    if next_name in foreign:
        return "NameTaken", (f"FineTuneJob {next_name!r} exists and does not belong to this policy; delete it "
                             "or rename the policy")
    return None


FINISHED_ROLLOUT = ("Healthy", "Aborted")  # promoted, or rolled back; Degraded waits for a person


def serving_model(spec: RetrainPolicySpec, status: RetrainPolicyStatus, rollouts: Sequence[ObservedRollout]) -> str:
    """What serves now: what the newest finished release left stable, else the release template's starting
    model, else the template's base model."""
    finished = [r for r in rollouts if r.owned and r.phase in FINISHED_ROLLOUT and r.stable_model]
    if finished:
        return str(max(finished, key=lambda r: (r.number or 0, r.name)).stable_model)
    if status.serving_model:
        return status.serving_model
    release = spec.release
    if release is not None and release.stable_model is not None:
        return release.stable_model.name
    return spec.template.spec.base_model.name


def trigger_base_model(spec: RetrainPolicySpec, status: RetrainPolicyStatus,
                       rollouts: Sequence[ObservedRollout]) -> str:
    """The model a trigger's FineTuneJob fine-tunes: the template's base model, or with ``baseModelFrom:
    Serving`` the model serving when the trigger fires (an unfinished release does not count: its candidate
    may still be rolled back), so each release continues from the last promoted model."""
    if spec.base_model_from == "Serving":
        return serving_model(spec, status, rollouts)
    return spec.template.spec.base_model.name


def release_plan(spec: RetrainPolicySpec, status: RetrainPolicyStatus, policy: str, jobs: Sequence[ObservedJob],
                 rollouts: Sequence[ObservedRollout]) -> CreateRollout | None:
    """The Rollout to create now, if any: the newest succeeded job's model not released yet, one release at a
    time (an unfinished or Degraded release holds the next), never a model onto itself. An older unreleased
    model is skipped when a newer one succeeded: the newer one was trained on more data."""
    if spec.release is None:
        return None
    owned = [r for r in rollouts if r.owned]
    if any(r.phase not in FINISHED_ROLLOUT for r in owned):
        return None
    newest_released = max((r.number or 0 for r in owned), default=0)
    released = {r.name for r in owned}
    ready = [j for j in jobs if j.owned and j.stage == "Succeeded" and j.produced_model and j.name not in released
             and (j.number or 0) > newest_released]
    if not ready:
        return None
    job = max(ready, key=lambda j: (j.number or 0, j.name))
    stable = serving_model(spec, status, rollouts)
    if stable == job.produced_model:
        return None
    labels = {**spec.release.metadata.labels, LABEL_POLICY: policy, LABEL_TRIGGER: str(job.number or 0)}
    rollout_spec = {**spec.release.spec.to_wire(), "stableModel": {"name": stable},
                    "candidateModel": {"name": job.produced_model}}
    return CreateRollout(job.name, labels, rollout_spec)


def _release_status(spec: RetrainPolicySpec, status: RetrainPolicyStatus, created: CreateRollout | None,
                    rollouts: Sequence[ObservedRollout]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.release is None and not rollouts:
        return out
    out["servingModel"] = serving_model(spec, status, rollouts)
    owned = sorted((r for r in rollouts if r.owned), key=lambda r: (r.number or 0, r.name))
    if created is not None:
        out["lastRelease"] = {"rollout": created.name, "stableModel": created.spec["stableModel"]["name"],
                              "candidateModel": created.spec["candidateModel"]["name"], "phase": "Pending"}
    elif owned:
        newest = owned[-1]
        release = {"rollout": newest.name, "stableModel": newest.spec_stable or "",
                   "candidateModel": newest.candidate or ""}
        out["lastRelease"] = {**release, **({"phase": newest.phase} if newest.phase else {})}
    return out


# --- the decision ---------------------------------------------------------------------------------------
def decide(spec: RetrainPolicySpec, status: RetrainPolicyStatus, obs: RetrainObservation,
           now: datetime) -> RetrainDecision:
    old_conditions = [cond.to_wire() for cond in status.conditions]
    events: list[Event] = []
    actions: list[Action] = []
    last = status.last_trigger.to_wire() if status.last_trigger else None
    owned = [j for j in obs.jobs if j.owned]

    lost = newest_unrecorded(status, obs.jobs)
    if lost is not None and lost.number is not None and lost.trigger_time and lost.cutoff:
        # The job exists but the status write after creating it was lost: adopt it, re-write its audit record.
        key = audit_key(obs.namespace, obs.name, lost.trigger_time, lost.name)
        segs = {a: 0 for a in lost.new_hours}
        record = audit_record(spec, obs, lost.number, lost.trigger_time, lost.cutoff,
                              last["cutoff"] if last else spec.since, lost.new_hours, segs,
                              lost.base_model or trigger_base_model(spec, status, obs.rollouts))
        actions.append(WriteAudit(key, record))
        last = {"number": lost.number, "time": lost.trigger_time, "cutoff": lost.cutoff, "fineTuneJob": lost.name,
                "anchors": _anchor_list(lost.new_hours, segs), "auditKey": key}
        events.append(Event("Normal", "TriggerRecovered", f"adopted FineTuneJob {lost.name!r} created earlier"))

    since = watermark(spec, status, obs.jobs)
    ready = readiness(obs.segments, spec.anchors, spec.filters.to_wire(), spec.min_new_hours)
    measured, where = threshold_hours(spec, ready)
    crossed = round(measured, 6) >= spec.min_new_hours  # sums of many segment durations carry float noise
    active = sorted((j for j in owned if j.stage not in TERMINAL), key=lambda j: (j.number or 0, j.name))
    number = next_number(status, obs.jobs)
    next_name = job_name(obs.name, number)
    blocked = _blocked(spec, active, next_name, obs.foreign_names)
    conditions: list[dict[str, Any]] = []
    new_data = _new_data(since, ready.hours, ready.segments, measured, spec.min_new_hours, now)
    progress = f"{measured:.2f} of {spec.min_new_hours:g} new hours of good audio {where}"

    if crossed and blocked is None:
        cutoff = timestamp(now)
        hours = dict(ready.hours)
        base = trigger_base_model(spec, status, obs.rollouts)
        record = audit_record(spec, obs, number, cutoff, cutoff, since, hours, ready.segments, base)
        key = audit_key(obs.namespace, obs.name, cutoff, next_name)
        labels = {**spec.template.metadata.labels, LABEL_POLICY: obs.name, LABEL_TRIGGER: str(number)}
        annotations = {ANNOTATION_TRIGGER_TIME: cutoff, ANNOTATION_CUTOFF: cutoff,
                       ANNOTATION_HOURS: json.dumps({a: round(h, 4) for a, h in hours.items()}, sort_keys=True)}
        actions.append(CreateFineTuneJob(next_name, labels, annotations,
                                         fine_tune_job_spec(spec, obs.name, number, cutoff, base)))
        actions.append(WriteAudit(key, record))
        last = {"number": number, "time": cutoff, "cutoff": cutoff, "fineTuneJob": next_name,
                "anchors": _anchor_list(hours, ready.segments), "auditKey": key}
        active.append(ObservedJob(next_name, owned=True, number=number, stage="Pending"))
        message = f"created FineTuneJob {next_name!r} (fine-tunes {base}): {progress}"
        events.append(Event("Normal", "Triggered", message))
        conditions.append(condition("ThresholdReached", "True", "Triggered", message))
        conditions.append(_not_blocked())
        # Audio from the cut-off on is new for the next trigger: none yet.
        new_data = _new_data(cutoff, {a: 0.0 for a in ready.hours}, {}, 0.0, spec.min_new_hours, now)
    elif crossed and blocked is not None:
        reason, why = blocked
        message = f"{progress}, but {why}"
        conditions.append(condition("ThresholdReached", "True", "EnoughNewData", progress))
        conditions.append(condition("TriggerBlocked", "True", reason, why))
        if not any(cd.get("type") == "TriggerBlocked" and cd.get("status") == "True" and cd.get("reason") == reason
                   for cd in old_conditions):
            events.append(Event("Warning" if reason == "NameTaken" else "Normal", "TriggerBlocked", message))
    else:
        from_when = f"since {since}" if since else "recorded so far"
        message = f"waiting for new audio: {progress} {from_when}"
        conditions.append(condition("ThresholdReached", "False", "NotEnoughNewData", message))
        suspended = blocked is not None and blocked[0] == "Suspended"
        conditions.append(condition("TriggerBlocked", "True", "Suspended", blocked[1]) if blocked and suspended
                          else _not_blocked())
        if spec.suspend:
            message += " (suspended)"

    for doomed in history_to_delete(spec, owned):
        actions.append(DeleteFineTuneJob(doomed))
        events.append(Event("Normal", "HistoryLimit", f"deleted finished FineTuneJob {doomed!r} (history limit); "
                                                      "its ASRModel is kept"))

    release = release_plan(spec, status, obs.name, obs.jobs, obs.rollouts)
    if release is not None:
        actions.append(release)
        events.append(Event("Normal", "Released", f"created Rollout {release.name!r}: "
                                                  f"{release.spec['stableModel']['name']} -> "
                                                  f"{release.spec['candidateModel']['name']}"))

    produced = sorted((j for j in owned if j.stage == "Succeeded" and j.produced_model),
                      key=lambda j: j.number or 0)
    phase = "Suspended" if spec.suspend else ("Running" if active else "Watching")
    new: dict[str, Any] = {
        "observedGeneration": obs.generation,
        "phase": phase,
        "message": message,
        "newData": new_data,
        "active": [{"name": j.name} for j in active[: c.MAX_RETRAIN_ACTIVE_LISTED]],
        "activeCount": len(active),
        "conditions": merge_conditions(old_conditions, conditions, now, obs.generation),
    }
    new.update(_release_status(spec, status, release, obs.rollouts))
    if last is not None:
        new["lastTrigger"] = last
    if produced:
        new["lastProducedModel"] = {"name": produced[-1].produced_model}
    elif status.last_produced_model is not None:
        new["lastProducedModel"] = status.last_produced_model.to_wire()
    return RetrainDecision(status=new, events=tuple(events), requeue_after=float(spec.check_interval_seconds),
                           actions=tuple(actions))


def due(spec: RetrainPolicySpec, status: RetrainPolicyStatus, generation: int, now: datetime) -> bool:
    """Whether a periodic check should run now: the spec changed, or checkIntervalSeconds passed."""
    if status.observed_generation != generation or status.new_data is None or not status.new_data.checked_at:
        return True
    return (now - _parse(status.new_data.checked_at)).total_seconds() >= spec.check_interval_seconds
