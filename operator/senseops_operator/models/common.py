"""Building blocks shared by the three custom resources.

Every model serialises with camelCase names (Kubernetes convention). Cross-field rules are attached as
CEL expressions (`x-kubernetes-validations`) so the API server itself refuses bad objects; the CRD
generator (`senseops_operator.crdgen`) copies them into the schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from senseops_operator import constants as c


class ApiModel(BaseModel):
    """Base for all spec/status models: camelCase on the wire, unknown fields ignored when reading."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_wire(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, unset optionals left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(rule: str, message: str, *, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One `x-kubernetes-validations` entry."""
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def rules(*entries: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` carrying CEL rules."""
    return {"x-kubernetes-validations": list(entries)}


IMMUTABLE = rules(cel("self == oldSelf", "is immutable after creation; create a new object instead"))

# `default: {}` on an optional sub-object makes the API server fill in its fields' defaults even when the
# user omits it (the Kubernetes idiom), so stored objects always carry the effective settings.
DEFAULT_EMPTY_OBJECT: dict[str, Any] = {"default": {}}


def unchanged(*fields: str) -> str:
    """CEL (transition rule) that is true when none of `fields` was added, removed or changed."""
    return " && ".join(
        f"has(self.{f}) == has(oldSelf.{f}) && (!has(self.{f}) || self.{f} == oldSelf.{f})" for f in fields
    )

Name = Annotated[str, Field(min_length=1, max_length=c.MAX_NAME_LENGTH, pattern=c.DNS_LABEL_PATTERN)]
Quantity = Annotated[str, Field(max_length=32, pattern=c.QUANTITY_PATTERN)]
ConditionStatus = Literal["True", "False", "Unknown"]


class ObjectRef(ApiModel):
    """A reference to another SenseOps object in the same namespace."""

    name: Name = Field(description="Name of the referenced object (same namespace).")


class Condition(ApiModel):
    """A Kubernetes-style condition (type/status/reason/message/lastTransitionTime)."""

    type: str = Field(max_length=64, description="Condition type, e.g. Ready or ArtifactVerified.")
    status: ConditionStatus
    reason: str = Field(default="", max_length=128, description="CamelCase machine-readable reason.")
    message: str = Field(default="", max_length=2048, description="Human-readable explanation.")
    last_transition_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When status last changed."
    )
    observed_generation: int | None = Field(default=None, ge=0)


class StatusBase(ApiModel):
    """Fields every SenseOps status carries (DESIGN §3)."""

    observed_generation: int | None = Field(default=None, ge=0, description="metadata.generation last acted on.")
    phase: str | None = Field(default=None, description="Coarse lifecycle phase.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=c.MAX_CONDITIONS,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    message: str | None = Field(default=None, max_length=4096, description="Human summary of the state.")
