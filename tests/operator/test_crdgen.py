"""The CRDs in crds/ are generated from the pydantic models, structural, and accept the samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from senseops_operator import crdgen
from senseops_operator.kinds import ALL_KINDS
from senseops_operator.models import ASRModelSpec, FineTuneJobSpec, RetrainPolicySpec, RolloutSpec

ROOT = Path(__file__).resolve().parents[2]
SPEC_MODELS = {"ASRModel": ASRModelSpec, "FineTuneJob": FineTuneJobSpec, "Rollout": RolloutSpec,
               "RetrainPolicy": RetrainPolicySpec}


def test_crds_on_disk_match_the_models() -> None:
    stale = [name for name, text in crdgen.expected_files().items() if (ROOT / "crds" / name).read_text() != text]
    assert not stale, f"crds/ is stale for {stale}: run `make crds`"


def _walk(node: dict[str, Any], path: str) -> list[str]:
    problems = []
    for banned in ("$ref", "anyOf", "oneOf", "allOf", "$defs", "title", "const"):
        if banned in node:
            problems.append(f"{path}: has {banned}")
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false")
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        problems.append(f"{path}: no type")
    for name, sub in (node.get("properties") or {}).items():
        problems += _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _walk(node["additionalProperties"], f"{path}{{}}")
    return problems


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(kind: Any) -> None:
    schema = crdgen.crd_for(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema, "") == []


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_crd_names_and_subresources(kind: Any) -> None:
    crd = crdgen.crd_for(kind)
    assert crd["spec"]["group"] == "senseops.dev"
    assert crd["spec"]["names"]["categories"] == ["asr"]
    assert crd["spec"]["names"]["shortNames"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert "Phase" in columns and columns[-1] == "Age"


def test_exclusive_minimum_becomes_openapi_v3_boolean() -> None:
    schema = crdgen.model_schema(FineTuneJobSpec)
    lr = schema["properties"]["hyperparameters"]["properties"]["learningRate"]
    assert lr["minimum"] == 0 and lr["exclusiveMinimum"] is True


def test_unions_are_refused() -> None:
    with pytest.raises(crdgen.SchemaError):
        crdgen.structural({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    assert crdgen.main(["--out", str(tmp_path)]) == 0
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "rollouts.senseops.dev.yaml").write_text("# edited by hand\n")
    assert crdgen.main(["--out", str(tmp_path), "--check"]) == 1


SAMPLES = sorted(p for p in (ROOT / "manifests" / "samples").glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_samples_parse_with_the_models(sample: Path) -> None:
    doc = yaml.safe_load(sample.read_text())
    SPEC_MODELS[doc["kind"]].model_validate(doc["spec"])
