"""ASRModel: one immutable, verifiable model version (DESIGN §3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from senseops_operator import constants as c
from senseops_operator.models.common import IMMUTABLE, ApiModel, Name, ObjectRef, StatusBase

ModelFormat = Literal["funasr", "onnx", "onnx-int8"]
ASRModelPhase = Literal["Pending", "Verifying", "Ready", "Failed"]


class Artifact(ApiModel):
    """Where the model files are and what they must hash to."""

    uri: str = Field(
        max_length=1024,
        pattern=c.ARTIFACT_URI_PATTERN,
        description="cos://<bucket-appid>/<key>, s3://<bucket>/<key>, file:///<path> or oci://<registry>/<repo>.",
    )
    sha256: str = Field(pattern=c.SHA256_PATTERN, description="Lower-case hex sha256 of the artifact.")
    size_bytes: int | None = Field(default=None, ge=1, description="Expected size in bytes, when known.")
    format: ModelFormat = Field(default="funasr", description="funasr (torch model dir) or onnx / onnx-int8.")


class ModelImage(ApiModel):
    """A container image that carries this model (built by a FineTuneJob or by hand)."""

    reference: str = Field(max_length=512, pattern=c.IMAGE_REF_PATTERN, description="registry/repo:tag[@digest].")
    pull_secret: Name | None = Field(default=None, description="imagePullSecret name in this namespace.")


class Lineage(ApiModel):
    """Where this version came from."""

    base_model: Name | None = Field(default=None, description="ASRModel this one was fine-tuned from.")
    fine_tune_job: Name | None = Field(default=None, description="FineTuneJob that produced it.")
    dataset: str | None = Field(default=None, max_length=1024, description="Dataset or store prefix used.")


class Evaluation(ApiModel):
    """Offline evaluation results recorded with the model."""

    cer: float | None = Field(default=None, ge=0, le=10, description="Character error rate (0..1 typically).")
    wer: float | None = Field(default=None, ge=0, le=10, description="Word error rate.")
    rtf: float | None = Field(default=None, ge=0, description="Real-time factor measured offline.")
    dataset: str | None = Field(default=None, max_length=1024)
    report_uri: str | None = Field(default=None, max_length=1024, pattern=c.ARTIFACT_URI_PATTERN)


class ASRModelSpec(ApiModel):
    """Desired state: an immutable model version."""

    family: str = Field(
        default="sensevoice-small", max_length=63, pattern=c.DNS_LABEL_PATTERN, description="Model family."
    )
    version: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Version label, unique per family (e.g. 2026.11.24-1).",
        json_schema_extra=IMMUTABLE,
    )
    artifact: Artifact = Field(json_schema_extra=IMMUTABLE)
    languages: list[Literal["auto", "zh", "en", "yue", "ja", "ko"]] = Field(default_factory=list, max_length=6)
    image: ModelImage | None = None
    lineage: Lineage | None = None
    evaluation: Evaluation | None = None


class ArtifactStatus(ApiModel):
    """What verification found."""

    verified: bool = False
    size_bytes: int | None = Field(default=None, ge=0)
    sha256: str | None = None
    checked_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class ImageStatus(ApiModel):
    reference: str | None = None
    digest: str | None = None


class ASRModelStatus(StatusBase):
    phase: ASRModelPhase | None = None
    artifact: ArtifactStatus | None = None
    image: ImageStatus | None = None
    load_state: Literal["NotLoaded", "Loading", "Loaded", "Failed"] | None = None
    used_by: list[ObjectRef] = Field(default_factory=list, max_length=64, description="Rollouts using it.")
    next_check_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                                      description="When the operator verifies again (sooner on a spec change).")
    failed_checks: int | None = Field(default=None, ge=0, description="Consecutive permanent failures (back-off).")
