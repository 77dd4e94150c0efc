"""Pydantic models of the SenseOps custom resources: the one source of the CRD schemas."""

from senseops_operator.models.asrmodel import ASRModelSpec, ASRModelStatus
from senseops_operator.models.common import Condition, ObjectRef
from senseops_operator.models.finetunejob import FineTuneJobSpec, FineTuneJobStatus
from senseops_operator.models.retrainpolicy import RetrainPolicySpec, RetrainPolicyStatus
from senseops_operator.models.rollout import RolloutSpec, RolloutStatus

__all__ = [
    "ASRModelSpec",
    "ASRModelStatus",
    "Condition",
    "FineTuneJobSpec",
    "FineTuneJobStatus",
    "ObjectRef",
    "RetrainPolicySpec",
    "RetrainPolicyStatus",
    "RolloutSpec",
    "RolloutStatus",
]
