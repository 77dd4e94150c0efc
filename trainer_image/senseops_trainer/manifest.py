"""The run manifest: which stages finished, on which inputs, producing which outputs (with hashes).

A stage is skipped on rerun only when it finished before, its inputs digest is unchanged and every output
it recorded still exists with the recorded sha256. Anything else reruns it — a stale or half-written
output is never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"


def digest_json(value: Any) -> str:
    """sha256 of a JSON value in canonical form (sorted keys) — the digest of a stage's inputs."""
    blob = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory as the digest of its sorted (relative path, file sha256) list."""
    if path.is_dir():
        entries = [
            [str(p.relative_to(path)), sha256_path(p)] for p in sorted(path.rglob("*")) if p.is_file()
        ]
        return digest_json(entries)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class StageRecord:
    """One finished stage."""

    inputs_digest: str
    outputs: dict[str, str]  # path relative to the workdir -> sha256
    summary: dict[str, Any] = field(default_factory=dict)
    finished_at: float = 0.0


def is_stage_current(record: StageRecord | None, inputs_digest: str, output_hashes: Mapping[str, str | None]) -> bool:
    """Pure decision: may the stage be skipped? ``output_hashes`` maps each recorded output to its
    current sha256 (``None`` when missing)."""
    if record is None or record.inputs_digest != inputs_digest:
        return False
    return all(output_hashes.get(name) == digest for name, digest in record.outputs.items())


class RunManifest:
    """``manifest.json`` in the work directory, rewritten atomically after every stage."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.path = workdir / MANIFEST_NAME
        self.stages: dict[str, StageRecord] = {}
        self.meta: dict[str, Any] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.meta = data.get("meta", {})
            self.stages = {name: StageRecord(**rec) for name, rec in data.get("stages", {}).items()}

    def current_hashes(self, record: StageRecord) -> dict[str, str | None]:
        """The present sha256 of each output ``record`` lists (``None`` when the path is gone)."""
        out: dict[str, str | None] = {}
        for name in record.outputs:
            path = self.workdir / name
            out[name] = sha256_path(path) if path.exists() else None
        return out

    def is_done(self, stage: str, inputs_digest: str) -> bool:
        """True when ``stage`` may be skipped (see :func:`is_stage_current`)."""
        record = self.stages.get(stage)
        if record is None:
            return False
        return is_stage_current(record, inputs_digest, self.current_hashes(record))

    def record(self, stage: str, inputs_digest: str, outputs: list[str], summary: dict[str, Any]) -> StageRecord:
        """Hash ``outputs`` (paths relative to the workdir) and store the stage as finished."""
        hashes = {name: sha256_path(self.workdir / name) for name in outputs}
        rec = StageRecord(inputs_digest=inputs_digest, outputs=hashes, summary=summary, finished_at=time.time())
        self.stages[stage] = rec
        self.save()
        return rec

    def forget(self, stage: str) -> None:
        """Drop a stage's record (it reruns next time)."""
        if self.stages.pop(stage, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the manifest atomically (a crash never leaves half a JSON file)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = {
            "meta": self.meta,
            "stages": {name: rec.__dict__ for name, rec in self.stages.items()},
        }
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)

    def outputs_digest(self, stage: str) -> str:
        """Digest of a finished stage's outputs — the next stage's inputs include it."""
        rec = self.stages.get(stage)
        return digest_json(rec.outputs if rec else None)
