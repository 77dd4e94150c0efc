"""Build and push the model image of a packaged model with crane (no Docker engine).

    python -m senseops_trainer build-image --model-uri s3://b/models/m/v1/ --sha256 <manifest sha256> \\
        --image registry.example.com/asr/m:v1 --name m --version v1 [--base <runtime base image>] \\
        [--label org.opencontainers.image.version=v1 ...]

1. Download ``models/{name}/{version}/`` from the store and check every file against its ``MANIFEST.sha256``,
   and the manifest's own sha256 against ``--sha256`` (the digest the FineTuneJob published).
2. Write one reproducible tar layer (sorted, owner 0:0, time 0) with the files under ``models/{name}/{version}/``.
3. ``crane append`` it onto ``--base`` (or an empty OCI base), ``crane mutate`` the OCI labels in, push to
   ``--image`` with the credentials of ``$DOCKER_CONFIG/config.json`` (the FineTuneJob's push Secret).
4. Report the pushed digest as JSON on stdout and in the termination message (``/dev/termination-log``), the
   way a Kubernetes pod reports a result to its controller. A failure reports ``{"error": ...}`` there.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from senseops_common.storage import MANIFEST_NAME, StorageError
from senseops_trainer.context import StageFailed
from senseops_trainer.package import fetch_model_dir
from senseops_trainer.progress import ProgressLog

STAGE = "build-image"
EXIT_FAILED = 2  # the CLI's exit codes (senseops_trainer.cli)
EXIT_USAGE = 64
IMAGE_MODELS_ROOT = "models"
TERMINATION_LOG = "/dev/termination-log"
CRANE_TIMEOUT_S = 1800.0
_DIGEST_REF = re.compile(r"^(?P<repo>\S+)@(?P<digest>sha256:[a-f0-9]{64})$")
_LOCAL_ONLY = {".complete"}  # fetch_model_dir's marker: not part of the model


@dataclass(frozen=True)
class BuiltImage:
    """What was pushed: the tag asked for and the manifest digest the registry stored."""

    image: str
    digest: str

    @property
    def reference(self) -> str:
        """``registry/repository@sha256:…`` (the tag dropped: a digest names one image for good)."""
        return f"{repository_of(self.image)}@{self.digest}"

    def as_json(self) -> str:
        return json.dumps({"image": self.image, "digest": self.digest, "reference": self.reference})


def repository_of(image: str) -> str:
    """``host:5000/a/b:tag`` -> ``host:5000/a/b`` (a port's colon is not a tag's)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: name.rfind(":")]
    return name


def label_flag(key: str, value: str) -> str:
    """One ``crane mutate -l`` value: crane reads it as a CSV record, so commas and quotes are CSV-quoted."""
    if not key or "=" in key:
        raise ValueError(f"an OCI label key must be non-empty and contain no '=' (got {key!r})")
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([f"{key}={value}"])
    return out.getvalue()


def parse_labels(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; a pair without ``=`` is refused with the pair in the message."""
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--label expects key=value, got {pair!r}")
        labels[key] = value
    return labels


def manifest_sha256(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / MANIFEST_NAME).read_bytes()).hexdigest()


def write_layer(model_dir: Path, prefix: str, layer: Path) -> int:
    """A reproducible tar of ``model_dir``'s files under ``prefix``; returns the number of files.

    Folders 0755, files 0644 (0755 when executable), owner 0:0, time 0, sorted names; symlinks and special
    files are refused: an image volume must carry real files.
    """
    count = 0
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        parts = prefix.strip("/").split("/")
        for depth in range(1, len(parts) + 1):  # the parent folders, so the tar unpacks anywhere
            info = tarfile.TarInfo("/".join(parts[:depth]))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path in sorted(model_dir.rglob("*")):
            rel = path.relative_to(model_dir).as_posix()
            if rel in _LOCAL_ONLY:
                continue
            info = tar.gettarinfo(str(path), f"{prefix.strip('/')}/{rel}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if info.isdir():
                info.mode = 0o755
                tar.addfile(info)
            elif info.isfile():
                info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
                count += 1
            else:
                raise StageFailed(STAGE, f"{path} is not a regular file or folder; the model must hold real files")
    return count


def _crane(crane: str, *args: str) -> str:
    try:
        result = subprocess.run([crane, *args], capture_output=True, text=True, timeout=CRANE_TIMEOUT_S,
                                check=False)
    except FileNotFoundError:
        raise StageFailed(STAGE, f"crane not found at {crane!r}; set SENSEOPS_CRANE or put crane on PATH") from None
    if result.returncode != 0:
        err = result.stderr.strip().splitlines()
        raise StageFailed(STAGE, f"`crane {args[0]}` failed: {' '.join(err[-3:])[:1500]}")
    return result.stdout.strip()


def build_image(model_uri: str, sha256: str, image: str, name: str, version: str, labels: Mapping[str, str],
                workdir: Path, base: str | None = None, crane: str | None = None,
                progress: ProgressLog | None = None) -> BuiltImage:
    """Steps 1-3 of the module docstring; returns the pushed image and its digest. Each step is one JSON
    line on ``progress`` (files and bytes fetched, layer bytes, bytes pushed, digest)."""
    def emit(event: str, **fields: object) -> None:
        if progress is not None:
            progress.emit(STAGE, event, **fields)

    crane = crane or os.environ.get("SENSEOPS_CRANE") or shutil.which("crane") or "crane"
    workdir.mkdir(parents=True, exist_ok=True)
    model_dir = fetch_model_dir(model_uri, workdir / "model")
    if not (model_dir / MANIFEST_NAME).exists():
        raise StageFailed(STAGE, f"{model_uri} has no {MANIFEST_NAME}; package the model first")
    fetched = [p for p in model_dir.rglob("*") if p.is_file() and p.name not in _LOCAL_ONLY]
    emit("fetched", uri=model_uri, files=len(fetched), bytes=sum(p.stat().st_size for p in fetched))
    found = manifest_sha256(model_dir)
    if found != sha256:
        raise StageFailed(STAGE, f"{model_uri}{MANIFEST_NAME} hashes to {found}, not the published {sha256}; "
                                 "the package changed after the FineTuneJob recorded it")
    layer = workdir / "layer.tar"
    files = write_layer(model_dir, f"{IMAGE_MODELS_ROOT}/{name}/{version}", layer)
    layer_bytes = layer.stat().st_size
    emit("layer", files=files, bytes=layer_bytes, path=f"/{IMAGE_MODELS_ROOT}/{name}/{version}/")
    base_args = ["-b", base] if base else ["--oci-empty-base"]
    emit("pushing", image=image, base=base, bytes_total=layer_bytes)
    _crane(crane, "append", *base_args, "-f", str(layer), "-t", image)
    emit("pushed", image=image, bytes_pushed=layer_bytes, bytes_total=layer_bytes)
    flags = [arg for key, value in sorted(labels.items()) for arg in ("-l", label_flag(key, value))]
    pushed = _crane(crane, "mutate", image, *flags, "-t", image).splitlines()[-1].strip()
    match = _DIGEST_REF.match(pushed)
    if match is None:
        raise StageFailed(STAGE, f"crane printed no digest reference for {image}: {pushed!r}")
    emit("labelled", image=image, digest=match.group("digest"), labels=len(labels))
    return BuiltImage(image=image, digest=match.group("digest"))


def report(message: str, path: str = TERMINATION_LOG) -> None:
    """Write the termination message (best effort: outside a pod the path may not be writable)."""
    with contextlib.suppress(OSError):
        Path(path).write_text(message[:4096], encoding="utf-8")


# --- the ``build-image`` sub-command -------------------------------------------------------------------
def add_build_image_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``build-image`` on the trainer CLI's sub-command parser."""
    image = sub.add_parser("build-image", help="build and push the model image of a packaged model (crane)")
    image.add_argument("--model-uri", required=True, help="the packaged model directory models/{name}/{version}/")
    image.add_argument("--sha256", required=True, help="sha256 of its MANIFEST.sha256 (the published digest)")
    image.add_argument("--image", required=True, help="registry/repository:tag to push")
    image.add_argument("--name", required=True, help="model name (files go under /models/{name}/{version}/)")
    image.add_argument("--version", required=True, help="model version")
    image.add_argument("--base", help="base image (default: an empty OCI image)")
    image.add_argument("--label", dest="labels", action="append", default=[], metavar="KEY=VALUE")
    image.add_argument("--workdir", type=Path, default=Path("/work/image"))
    image.add_argument("--termination-log", default=TERMINATION_LOG)


def run_build_image(args: argparse.Namespace, progress: ProgressLog) -> int:
    """Run ``build-image``: exit 0 and the digest as the termination message, or 2 (64 for bad labels) and
    ``{"error": ...}`` there."""
    try:
        labels = parse_labels(args.labels)
    except ValueError as exc:
        report(json.dumps({"error": str(exc)}), args.termination_log)
        progress.emit(STAGE, "failed", message=str(exc))
        return EXIT_USAGE
    try:
        built = build_image(args.model_uri, args.sha256, args.image, args.name, args.version, labels,
                            args.workdir, base=args.base, progress=progress)
    except (StageFailed, StorageError) as exc:
        report(json.dumps({"error": str(exc)}), args.termination_log)
        progress.emit(STAGE, "failed", force_status=True, message=str(exc))
        return EXIT_FAILED
    report(built.as_json(), args.termination_log)
    print(built.as_json(), flush=True)
    return 0
