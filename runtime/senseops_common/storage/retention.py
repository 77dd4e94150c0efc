"""Retention and erasure of recordings (seed §9): a sweeper for old data and ``delete-anchor``.

    python -m senseops_common.storage.retention sweep --store s3://bucket/ --keep raw/=30d --keep asr/=365d
    python -m senseops_common.storage.retention delete-anchor --store s3://bucket/ --anchor a1 [--lists DIR]

**sweep** deletes objects under each ``--keep`` prefix whose *session* started longer ago than that
prefix's period. The age comes from the ``{ts}`` in ``{prefix}{anchor_id}/{ts}/…`` (see ``layout``), not
from object timestamps, which copies and restores reset. Keys that do not follow the layout are left
alone and counted. Runs daily as a CronJob (``manifests/runtime/retention-cronjob.yaml``).

**delete-anchor** erases one streamer everywhere the project writes their data: ``raw/{a}/`` and
``asr/{a}/`` (audio and transcripts), ``golden/{a}.jsonl`` and ``golden/{a}/`` (human-checked sets), lines
naming the anchor in JSONL lists under ``reports/`` and ``datasets/`` in the store, and — with ``--lists``
— in training work directories (JSONL lines and ``audio/{a}/`` copies). It prints every object and
line it removed. Both commands take ``--dry-run``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from senseops_common.layout import check_id, parse_ts
from senseops_common.storage.base import Store
from senseops_common.storage.factory import default_store_uri, open_store

DEFAULT_PERIODS: dict[str, timedelta] = {"raw/": timedelta(days=30), "asr/": timedelta(days=365)}
LIST_PREFIXES = ("reports/", "datasets/")
_PERIOD = re.compile(r"^(\d+)([dh]?)$")


def parse_period(text: str) -> timedelta:
    """``30d``, ``12h`` or a plain number of days."""
    match = _PERIOD.match(text.strip())
    if not match:
        raise ValueError(f"period {text!r} must look like 30d, 12h or 30 (days)")
    amount, unit = int(match.group(1)), match.group(2) or "d"
    return timedelta(hours=amount) if unit == "h" else timedelta(days=amount)


def parse_keep(values: Sequence[str]) -> dict[str, timedelta]:
    """``["raw/=30d", "asr/=365d"]`` -> ``{prefix: period}``."""
    periods = {}
    for value in values:
        prefix, sep, period = value.partition("=")
        if not sep or not prefix.endswith("/"):
            raise ValueError(f"--keep {value!r} must be PREFIX/=PERIOD, e.g. raw/=30d")
        periods[prefix] = parse_period(period)
    return periods


def session_started(key: str, prefix: str) -> datetime | None:
    """The session start encoded in ``{prefix}{anchor}/{ts}/…``, or None for keys of another shape."""
    parts = key[len(prefix) :].split("/")
    if len(parts) < 3:
        return None
    try:
        return parse_ts(parts[1])
    except ValueError:
        return None


def is_expired(key: str, now: datetime, periods: Mapping[str, timedelta]) -> bool | None:
    """True to delete, False to keep, None when the key's age is unknown (not in the layout)."""
    prefix = max((p for p in periods if key.startswith(p)), key=len, default=None)
    if prefix is None:
        return False
    started = session_started(key, prefix)
    if started is None:
        return None
    return now - started > periods[prefix]


def mentions_anchor(row: Any, anchor_id: str) -> bool:
    """Does one JSONL row belong to ``anchor_id``: its ``anchor_id`` field, or a key or path with
    ``/{anchor_id}/`` in it (training lists name local copies ``…/audio/{anchor}/{ts}/{segment}.wav``)?"""
    if not isinstance(row, dict):
        return False
    if row.get("anchor_id") == anchor_id:
        return True
    needle = f"/{anchor_id}/"
    return any(isinstance(v, str) and (needle in v or v.startswith(f"{anchor_id}/")) for v in row.values())


def filter_jsonl(data: bytes, anchor_id: str) -> tuple[bytes, int]:
    """JSONL bytes without the anchor's lines, and how many were removed (unparsable lines are kept)."""
    kept, removed = [], 0
    for line in data.decode("utf-8", errors="replace").splitlines(keepends=True):
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError:
            row = None
        if row is not None and mentions_anchor(row, anchor_id):
            removed += 1
        else:
            kept.append(line)
    return "".join(kept).encode(), removed


@dataclass
class Report:
    """What a command removed (or would remove with ``--dry-run``)."""

    deleted: list[str] = field(default_factory=list)
    rewritten: dict[str, int] = field(default_factory=dict)  # list -> lines removed
    kept: int = 0
    unknown_age: int = 0

    def lines(self, verb: str) -> Iterator[str]:
        for item in self.deleted:
            yield f"{verb} {item}"
        for item, count in sorted(self.rewritten.items()):
            yield f"removed {count} line(s) from {item}"


def sweep(store: Store, periods: Mapping[str, timedelta], now: datetime, dry_run: bool = False) -> Report:
    """Delete what is older than its prefix's period; see the module docstring."""
    report = Report()
    for prefix in sorted(periods):
        for info in store.list(prefix):
            verdict = is_expired(info.key, now, periods)
            if verdict is None:
                report.unknown_age += 1
            elif verdict:
                if not dry_run:
                    store.delete(info.key)
                report.deleted.append(store.uri_for(info.key))
            else:
                report.kept += 1
    return report


def delete_anchor(store: Store, anchor_id: str, lists: Sequence[Path] = (), dry_run: bool = False) -> Report:
    """Erase one streamer's recordings, transcripts and derived lists; see the module docstring."""
    check_id(anchor_id, "anchor_id")
    report = Report()
    for prefix in (f"raw/{anchor_id}/", f"asr/{anchor_id}/", f"golden/{anchor_id}/", f"golden/{anchor_id}.jsonl"):
        for info in store.list(prefix):
            if info.key == prefix or prefix.endswith("/"):
                if not dry_run:
                    store.delete(info.key)
                report.deleted.append(store.uri_for(info.key))
    for prefix in LIST_PREFIXES:
        for info in store.list(prefix):
            if not info.key.endswith(".jsonl"):
                continue
            data, removed = filter_jsonl(store.get_bytes(info.key), anchor_id)
            if removed:
                if not dry_run:
                    store.put(info.key, data)
                report.rewritten[store.uri_for(info.key)] = removed
    for root in lists:
        for path in sorted(root.rglob("*")):
            if path.is_dir() and path.name == anchor_id and path.parent.name == "audio":
                if not dry_run:
                    shutil.rmtree(path)
                report.deleted.append(str(path))
            elif path.is_file() and path.suffix == ".jsonl":
                data, removed = filter_jsonl(path.read_bytes(), anchor_id)
                if removed:
                    if not dry_run:
                        path.write_bytes(data)
                    report.rewritten[str(path)] = removed
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; prints one line per removal and a summary."""
    parser = argparse.ArgumentParser(
        prog="python -m senseops_common.storage.retention",
        description="Retention sweeper and per-streamer erasure of recordings (seed §9).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sweep", "delete-anchor"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--store", default="", help="store root URI (default: SENSEOPS_STORE_URI)")
        cmd.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    sub.choices["sweep"].add_argument("--keep", action="append", default=[], metavar="PREFIX/=PERIOD",
                                      help="retention per prefix (default raw/=30d asr/=365d)")
    erase = sub.choices["delete-anchor"]
    erase.add_argument("--anchor", required=True)
    erase.add_argument("--lists", action="append", default=[], type=Path, metavar="DIR",
                       help="training work directory to clean as well (repeatable)")
    args = parser.parse_args(argv)
    try:
        store = open_store(args.store or default_store_uri())
        verb = "would delete" if args.dry_run else "deleted"
        if args.command == "sweep":
            periods = parse_keep(args.keep) if args.keep else DEFAULT_PERIODS
            report = sweep(store, periods, datetime.now(UTC), args.dry_run)
        else:
            report = delete_anchor(store, args.anchor, args.lists, args.dry_run)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in report.lines(verb):
        print(line)
    print(f"{verb} {len(report.deleted)} object(s), rewrote {len(report.rewritten)} list(s); kept {report.kept}, "
          f"unknown age {report.unknown_age}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
