"""Generate CustomResourceDefinitions from the pydantic models (one source of truth).

Pydantic emits JSON Schema 2020-12; Kubernetes wants a *structural* OpenAPI v3 schema: every node typed,
no `$ref`, no `anyOf` unions, `exclusiveMinimum` as a boolean. This module converts one to the other and
wraps it into a CRD. `make crds` writes `crds/*.yaml`; a test fails when they are stale.

Usage: python -m senseops_operator.crdgen --out crds   (or --check to compare only)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from senseops_operator import constants as c
from senseops_operator.kinds import ALL_KINDS, Kind

# JSON Schema keywords Kubernetes' structural schemas accept (after conversion).
_KEEP = {
    "type", "description", "properties", "required", "items", "enum", "format", "pattern", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
    "default", "additionalProperties", "nullable", "x-kubernetes-validations", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
}


class SchemaError(ValueError):
    """The pydantic model uses a construct a structural schema cannot express."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    # Keywords next to $ref (description, json_schema_extra of the field) override the target's.
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "x-kubernetes-validations" in target and "x-kubernetes-validations" in node:
        merged["x-kubernetes-validations"] = target["x-kubernetes-validations"] + node["x-kubernetes-validations"]
    return merged


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON-Schema node (recursively) into a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise SchemaError(f"unions are not structural: {node['anyOf']}")
        outer = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**_resolve(branches[0], defs), **outer}
        if "x-kubernetes-validations" in branches[0] and "x-kubernetes-validations" in outer:
            node["x-kubernetes-validations"] = (
                _resolve(branches[0], defs)["x-kubernetes-validations"] + outer["x-kubernetes-validations"]
            )
        if node.get("default", "absent") is None:
            del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            if value is False:
                continue  # pruning already drops unknown fields; `false` is not allowed in CRDs
            out[key] = structural(value, defs) if isinstance(value, dict) else value
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "properties" in out and "type" not in out:
        out["type"] = "object"
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaError(f"untyped schema node: {node}")
    return out


def model_schema(model: Any) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def crd_for(kind: Kind) -> dict[str, Any]:
    """The full CustomResourceDefinition of one kind."""
    spec_schema = model_schema(kind.spec)
    status_schema = model_schema(kind.status)
    root: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if kind.root_rules:
        root["x-kubernetes-validations"] = [dict(r) for r in kind.root_rules]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "senseops"}},
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [c.CATEGORY],
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": col.name, "type": col.type, "jsonPath": col.json_path}
                        | ({"priority": col.priority} if col.priority else {})
                        for col in kind.columns
                    ],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


HEADER = "# Generated by `make crds` from operator/senseops_operator/models. Do not edit by hand.\n"


def render(kind: Kind) -> str:
    return HEADER + yaml.safe_dump(crd_for(kind), sort_keys=False, width=120, allow_unicode=True)


def kustomization() -> str:
    """crds/kustomization.yaml, so `kubectl apply -k crds` and the manifests can include the CRDs."""
    doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{kind.crd_name}.yaml" for kind in ALL_KINDS],
    }
    return HEADER + yaml.safe_dump(doc, sort_keys=False)


def expected_files() -> dict[str, str]:
    files = {f"{kind.crd_name}.yaml": render(kind) for kind in ALL_KINDS}
    files["kustomization.yaml"] = kustomization()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("crds"))
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ")
    args = parser.parse_args(argv)
    stale = []
    for name, text in expected_files().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            args.out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale CRDs (run `make crds`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
