"""The custom resource kinds: names, models and how `kubectl get` shows them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from senseops_operator import constants as c
from senseops_operator.models import (
    ASRModelSpec,
    ASRModelStatus,
    FineTuneJobSpec,
    FineTuneJobStatus,
    RetrainPolicySpec,
    RetrainPolicyStatus,
    RolloutSpec,
    RolloutStatus,
)


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[PrinterColumn, ...]
    description: str
    # CEL rules on the whole object (they may read metadata.name).
    root_rules: tuple[dict[str, str], ...] = field(default_factory=tuple)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{c.GROUP}"


def _condition(type_: str) -> str:
    return f'.status.conditions[?(@.type=="{type_}")].status'


ASR_MODEL = Kind(
    kind="ASRModel",
    plural="asrmodels",
    singular="asrmodel",
    short_names=("asrm",),
    spec=ASRModelSpec,
    status=ASRModelStatus,
    columns=(
        PrinterColumn("Version", ".spec.version"),
        PrinterColumn("Format", ".spec.artifact.format"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Verified", _condition("ArtifactVerified")),
        PrinterColumn("Artifact", ".spec.artifact.uri", priority=1),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    description="One immutable SenseVoice model version: where its artifact is and what it hashes to.",
    root_rules=(
        {
            "rule": "!has(self.spec.lineage) || !has(self.spec.lineage.baseModel)"
            " || self.spec.lineage.baseModel != self.metadata.name",
            "message": "spec.lineage.baseModel must name another ASRModel, not this one",
            "fieldPath": ".spec.lineage.baseModel",
        },
    ),
)

FINE_TUNE_JOB = Kind(
    kind="FineTuneJob",
    plural="finetunejobs",
    singular="finetunejob",
    short_names=("ftj",),
    spec=FineTuneJobSpec,
    status=FineTuneJobStatus,
    columns=(
        PrinterColumn("Base", ".spec.baseModel.name"),
        PrinterColumn("Output", ".spec.output.modelName"),
        PrinterColumn("GPUs", ".spec.resources.gpus", type="integer"),
        PrinterColumn("Nodes", ".spec.resources.nodes", type="integer", priority=1),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Stage", ".status.stage"),
        PrinterColumn("Data", ".status.data.summary"),
        PrinterColumn("Step", ".status.progress.step", type="integer"),
        PrinterColumn("Epoch", ".status.progress.epoch", type="integer", priority=1),
        PrinterColumn("Loss", ".status.progress.loss", type="number", priority=1),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    description="One fine-tuning run: data selection, training, evaluation gate, packaging.",
    root_rules=(
        {
            "rule": "!has(self.spec.resources) || !has(self.spec.resources.nodes) || self.spec.resources.nodes == 1"
            f" || self.metadata.name.size() <= {c.MAX_MULTINODE_JOB_NAME_LENGTH}",
            "message": f"resources.nodes > 1 needs a FineTuneJob name of at most {c.MAX_MULTINODE_JOB_NAME_LENGTH}"
            " characters: its pods are <name>-train-<index> and their host names must fit 63 characters",
            "fieldPath": ".spec.resources.nodes",
        },
    ),
)

ROLLOUT = Kind(
    kind="Rollout",
    plural="rollouts",
    singular="rollout",
    short_names=("asrro",),
    spec=RolloutSpec,
    status=RolloutStatus,
    columns=(
        PrinterColumn("Stable", ".status.stableModel"),  # what serves now: the candidate once promoted
        PrinterColumn("Candidate", ".spec.candidateModel.name"),
        PrinterColumn("Weight", ".status.actualWeight", type="integer"),
        PrinterColumn("Step", ".status.currentStepIndex", type="integer"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    description="Moves inference traffic from a stable to a candidate ASRModel in weighted steps.",
)

RETRAIN_POLICY = Kind(
    kind="RetrainPolicy",
    plural="retrainpolicies",
    singular="retrainpolicy",
    short_names=("rtp",),
    spec=RetrainPolicySpec,
    status=RetrainPolicyStatus,
    columns=(
        PrinterColumn("New", ".status.newData.summary"),
        PrinterColumn("Suspend", ".spec.suspend", type="boolean"),
        PrinterColumn("Active", ".status.activeCount", type="integer"),
        PrinterColumn("Last Job", ".status.lastTrigger.fineTuneJob"),
        PrinterColumn("Last Trigger", ".status.lastTrigger.time", type="date"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Anchors", ".spec.anchors", priority=1),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    description="Creates a FineTuneJob from a template whenever the anchors gain minNewHours of new good audio "
    "(CronJob -> Job, applied to training).",
    root_rules=(
        {
            "rule": f"size(self.metadata.name) <= {c.MAX_RETRAIN_POLICY_NAME}",
            "message": f"metadata.name must be at most {c.MAX_RETRAIN_POLICY_NAME} characters: the policy's "
            "FineTuneJobs are named <policy>-<n> and their Jobs and ServiceAccounts add a suffix to that",
        },
    ),
)

ALL_KINDS: tuple[Kind, ...] = (ASR_MODEL, FINE_TUNE_JOB, ROLLOUT, RETRAIN_POLICY)
