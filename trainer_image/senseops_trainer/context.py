"""What every stage gets: the config, the work directory with its manifest, the progress log, the stores."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from senseops_common.storage import StoreBase as Store
from senseops_common.storage import open_store
from senseops_trainer.config import TrainerConfig
from senseops_trainer.manifest import RunManifest, digest_json
from senseops_trainer.progress import ProgressLog
from senseops_trainer.segments import Segment

# Bump when a stage's behaviour changes so old manifests stop matching.
STAGE_CODE_VERSION = "3"


class StageFailed(RuntimeError):
    """A stage (or a gate) failed; the message says why and what to change. Exit code 2 from the CLI."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


class GateFailed(StageFailed):
    """The evaluation gate said no: the run worked, the model is not good enough. Exit code 3, so a Job's
    pod-failure policy can end the run at once instead of retrying it."""


@dataclass
class StageOutcome:
    """What a stage body returns: output paths (relative to the workdir) and a JSON summary."""

    outputs: list[str]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    """Shared state of one run."""

    cfg: TrainerConfig
    workdir: Path
    progress: ProgressLog
    manifest: RunManifest = field(init=False)
    _stores: dict[str, Store] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.manifest = RunManifest(self.workdir)

    def store(self, uri: str | None = None) -> Store:
        """The recordings store (or another one by URI), opened once."""
        uri = uri or self.cfg.store_uri
        if not uri:
            raise StageFailed("config", "store_uri is empty; set it to the bucket holding raw/ and asr/")
        if uri not in self._stores:
            self._stores[uri] = open_store(uri)
        return self._stores[uri]

    def path(self, relative: str) -> Path:
        """A path inside the work directory (parents created)."""
        target = self.workdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def run_stage(self, name: str, inputs: dict[str, Any], body: Callable[[], StageOutcome]) -> dict[str, Any]:
        """Run ``body`` unless the manifest says the stage is current for these inputs; return its summary."""
        digest = digest_json({"code": STAGE_CODE_VERSION, "stage": name, "inputs": inputs})
        if self.manifest.is_done(name, digest):
            summary = self.manifest.stages[name].summary
            self.progress.emit(name, "skipped", message="finished earlier with the same inputs")
            return summary
        self.progress.emit(name, "start")
        # A failure is reported once, by the caller that catches StageFailed (the CLI prints one
        # "failed" line with the reason), not here as well.
        outcome = body()
        self.manifest.record(name, digest, outcome.outputs, outcome.summary)
        self.progress.emit(name, "done", **outcome.summary)
        return outcome.summary


def write_segments(path: Path, segments: Iterable[Segment]) -> None:
    """Segments as JSON lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for seg in segments:
            handle.write(json.dumps(seg.to_json(), ensure_ascii=False) + "\n")


def read_segments(path: Path) -> list[Segment]:
    """Segments written by :func:`write_segments`."""
    with open(path, encoding="utf-8") as handle:
        return [Segment.from_json(json.loads(line)) for line in handle if line.strip()]
