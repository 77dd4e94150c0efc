"""Resumable state that survives the pod: the work directory mirrored to the object store.

A training Job's work directory is an ``emptyDir``: when the node kills the pod (a preempted spot GPU, an
OOM, a killed process), the retried pod would start from nothing. With ``state_uri`` set, the trainer
mirrors its work directory to that store prefix — after every finished stage and, while FunASR trains,
every ``interval_s`` (its checkpoints) — and a new pod restores the mirror before it starts. The run
manifest then skips the finished stages, and FunASR resumes from its last ``model.pt``.

Ordering keeps the mirror consistent: the manifest (which says what finished) is uploaded after the files
it lists, so a pod killed halfway through a push never restores a manifest that claims a missing output.
Files still being written (modified within ``settle_s``) wait for the next push; a checkpoint truncated
anyway is repaired on resume (``train.repair_latest_checkpoint``). The base model is not mirrored: it is
downloaded and verified again from its own URI.

Decisions (which files to push, which to restore) are pure functions below; ``WorkdirMirror`` does the I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from senseops_common.storage import StoreBase, open_store
from senseops_trainer.manifest import MANIFEST_NAME, sha256_path

log = logging.getLogger("senseops.trainer.state")

# Not mirrored: re-downloaded (and verified) from its own URI, or scratch.
EXCLUDED_TOP_LEVEL = ("base_model",)
EXCLUDED_SUFFIXES = (".partial", ".tmp")
DEFAULT_INTERVAL_S = 30.0
DEFAULT_SETTLE_S = 2.0


@dataclass(frozen=True)
class LocalFile:
    """A file of the work directory as the mirror sees it."""

    relative: str
    size: int
    mtime: float


def mirrored(relative: str) -> bool:
    """Does this work-directory path belong in the mirror?"""
    parts = relative.split("/")
    return parts[0] not in EXCLUDED_TOP_LEVEL and not any(p.endswith(EXCLUDED_SUFFIXES) for p in parts)


def push_plan(local: Iterable[LocalFile], pushed: Mapping[str, tuple[int, float]], now: float,
              settle_s: float) -> list[str]:
    """Which files to upload now: changed since the last push, settled, the manifest last."""
    changed = [
        f.relative for f in local
        if mirrored(f.relative) and pushed.get(f.relative) != (f.size, f.mtime) and now - f.mtime >= settle_s
    ]
    changed.sort(key=lambda rel: (rel == MANIFEST_NAME, rel))
    return changed


def restore_plan(remote: Mapping[str, tuple[int, str | None]], local: Mapping[str, tuple[int, str]]) -> list[str]:
    """Which mirrored files to download: missing locally or different; the manifest last."""
    wanted = [rel for rel, (size, sha) in remote.items()
              if mirrored(rel) and (rel not in local or local[rel] != (size, sha or local[rel][1]))]
    wanted.sort(key=lambda rel: (rel == MANIFEST_NAME, rel))
    return wanted


class WorkdirMirror:
    """Mirror ``workdir`` to ``state_uri`` (a store prefix) and back."""

    def __init__(self, state_uri: str, workdir: Path, store: StoreBase | None = None,
                 settle_s: float = DEFAULT_SETTLE_S) -> None:
        self.uri = state_uri if state_uri.endswith("/") else state_uri + "/"
        self.workdir = workdir
        self.store = store or open_store(self.uri)
        self.settle_s = settle_s
        self._pushed: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _local(self) -> list[LocalFile]:
        files = []
        for path in self.workdir.rglob("*"):
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                files.append(LocalFile(path.relative_to(self.workdir).as_posix(), stat.st_size, stat.st_mtime))
        return files

    def restore(self) -> list[str]:
        """Download what the mirror holds and the work directory lacks; return the paths restored."""
        remote = {info.key: (info.size, info.sha256) for info in self.store.list("")}
        local: dict[str, tuple[int, str]] = {}
        for rel, (size, _) in remote.items():
            path = self.workdir / rel
            if path.is_file() and path.stat().st_size == size:
                local[rel] = (size, sha256_path(path))
        restored = restore_plan(remote, local)
        for rel in restored:
            target = self.workdir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            self.store.download(rel, target)  # verifies the sha256 the object was stored with
        # What was restored is already in the mirror: don't push it back.
        self._pushed = {f.relative: (f.size, f.mtime) for f in self._local() if f.relative in remote}
        return restored

    def push(self, settle_s: float | None = None) -> list[str]:
        """Upload what changed since the last push; return the paths uploaded."""
        with self._lock:
            plan = push_plan(self._local(), self._pushed, time.time(),
                             self.settle_s if settle_s is None else settle_s)
            done = []
            for rel in plan:
                path = self.workdir / rel
                try:
                    stat = path.stat()
                    self.store.put(rel, path)
                except FileNotFoundError:  # replaced meanwhile (an atomic rename): the next push takes it
                    continue
                self._pushed[rel] = (stat.st_size, stat.st_mtime)
                done.append(rel)
            return done

    def clear(self) -> int:
        """Delete the mirror (the run reached an end no retry can change); return the objects removed."""
        keys = [info.key for info in self.store.list("")]
        for key in keys:
            self.store.delete(key)
        return len(keys)

    # --- background pushes while a long stage runs ------------------------------------------------------
    def start(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.push()
                except Exception as exc:  # a store outage delays the mirror, never the training
                    log.warning("state mirror push failed (will retry): %s", exc)

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="state-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
