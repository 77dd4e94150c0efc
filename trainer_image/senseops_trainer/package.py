"""Model directories in and out of object storage: fetch a base model, package a fine-tuned one.

A packaged model is the directory artifact ``models/{name}/{version}/`` (weights, config, tokenizer,
CMVN, configuration.json, ONNX files) plus ``MANIFEST.sha256`` — the storage module's directory-digest
convention, so the operator's ``verify_object`` and the runtime's loader compute the same digest.
Versions are immutable: packaging over an existing version with different content is refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from senseops_common.layout import model_prefix, report_key
from senseops_common.progress import Progress
from senseops_common.storage import MANIFEST_NAME, local_directory_manifest, open_store, verify_object
from senseops_trainer.context import RunContext, StageFailed, StageOutcome

PACKAGE_DIR = "package/model"
PACKAGE_RECORD = "package/record.json"


def is_store_uri(value: str) -> bool:
    """True for ``s3://``, ``cos://`` and ``file://`` URIs (a bare path is a local directory)."""
    return "://" in value


def fetch_model_dir(uri: str, target: Path) -> Path:
    """Download the directory artifact at ``uri`` into ``target`` and check it against its manifest."""
    if (target / ".complete").exists():
        return target
    store = open_store(uri if uri.endswith("/") else uri + "/")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    objects = list(store.list(""))
    with Progress("fetch base model", total=sum(info.size for info in objects), unit="B") as progress:
        for info in objects:
            base = progress.done
            store.download(info.key, staging / info.key,
                           progress=lambda received, base=base: progress.update(done=base + received))
            progress.update(done=base + info.size)
    count = len(objects)
    if count == 0:
        raise StageFailed("fetch", f"no model files under {uri}; check the base model URI")
    manifest = staging / MANIFEST_NAME
    if manifest.exists():
        text, _, _ = local_directory_manifest(staging)
        if text != manifest.read_text(encoding="utf-8"):
            raise StageFailed("fetch", f"the files under {uri} do not match its {MANIFEST_NAME}")
    (staging / ".complete").write_text("")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def upload_model_dir(local: Path, models_uri: str, name: str, version: str) -> dict[str, Any]:
    """Upload ``local`` to ``models/{name}/{version}/`` with its manifest; verify; return uri/digest/size."""
    text, digest, size = local_directory_manifest(local)
    store = open_store(models_uri)
    prefix = model_prefix(name, version)
    uri = store.uri_for(prefix)
    existing = verify_object(uri, digest)
    if existing.ok:
        return {"uri": uri, "sha256": digest, "size": size, "uploaded": False}
    if existing.reason != "NotFound":
        raise StageFailed(
            "package", f"{uri} already holds different content ({existing.reason}: {existing.message}); "
            "model versions are immutable — choose a new output.version",
        )
    files = sorted(p for p in local.rglob("*") if p.is_file())
    # Progress per file (each put is one transfer); the model's weights file dominates the bytes.
    with Progress(f"upload {name}/{version}", total=sum(f.stat().st_size for f in files), unit="B") as progress:
        for number, file in enumerate(files, start=1):
            store.put(prefix + file.relative_to(local).as_posix(), file)
            progress.update(file.stat().st_size, files=f"{number}/{len(files)}")
    store.put(prefix + MANIFEST_NAME, text.encode())
    check = verify_object(uri, digest)
    if not check.ok:
        raise StageFailed("package", f"uploaded {uri} but it does not verify: {check.message}")
    return {"uri": uri, "sha256": digest, "size": size, "uploaded": True}


def upload_reports(ctx: RunContext, files: dict[str, Path]) -> dict[str, str]:
    """Upload report files to ``reports/{job}/``; return name → URI."""
    store = ctx.store(ctx.cfg.models_uri)
    out = {}
    for name, path in files.items():
        key = report_key(ctx.cfg.job_name, name)
        store.put(key, path)
        out[name] = store.uri_for(key)
    return out


def package(ctx: RunContext, model_dir: Path, reports: dict[str, Path]) -> dict[str, Any]:
    """Upload the fine-tuned (and exported) model directory and the reports."""
    out = ctx.cfg.output
    inputs = {"model": ctx.manifest.outputs_digest("export") + ctx.manifest.outputs_digest("train"),
              "evaluate": ctx.manifest.outputs_digest("evaluate"), "to": [ctx.cfg.models_uri, out.name, out.version]}

    def body() -> StageOutcome:
        result = upload_model_dir(model_dir, ctx.cfg.models_uri, out.name, out.version)
        result["reports"] = upload_reports(ctx, reports)
        record = ctx.path(PACKAGE_RECORD)
        import json

        record.write_text(json.dumps(result, indent=2), encoding="utf-8")
        return StageOutcome([PACKAGE_RECORD], result)

    return ctx.run_stage("package", inputs, body)
