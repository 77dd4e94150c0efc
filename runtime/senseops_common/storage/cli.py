"""Ops CLI over storage URIs, built on the same module the services use.

    python -m senseops_common.storage.cli ls   s3://bucket/raw/a1/
    python -m senseops_common.storage.cli cp   ./model.tar cos://models-1250000000/models/sv/v3/model.tar
    python -m senseops_common.storage.cli cp   s3://bucket/reports/job1/report.json ./report.json
    python -m senseops_common.storage.cli cat  file:///var/lib/senseops/store/asr/a1/20260101T000000Z/part-000000.jsonl
    python -m senseops_common.storage.cli stat s3://bucket/raw/a1/20260101T000000Z/s1.wav
    python -m senseops_common.storage.cli rm   s3://bucket/tmp/x
    python -m senseops_common.storage.cli verify s3://bucket/models/sv/v3/ <sha256> [--size N]

Endpoints and credentials come from the environment (see storage.config). Exit status: 0 ok, 1 storage
error (message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from senseops_common.storage.errors import StorageError
from senseops_common.storage.factory import resolve
from senseops_common.storage.uri import SCHEMES
from senseops_common.storage.verify import verify_object


def _is_uri(value: str) -> bool:
    return value.split("://", 1)[0] in SCHEMES and "://" in value


def _ls(args: argparse.Namespace) -> int:
    store, key = resolve(args.uri)
    for info in store.list(key):
        print(f"{info.size:>12}  {info.uri}")
    return 0


def _cp(args: argparse.Namespace) -> int:
    src, dst = args.src, args.dst
    if _is_uri(src) and _is_uri(dst):
        src_store, src_key = resolve(src)
        dst_store, dst_key = resolve(dst)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            local = f"{tmp}/object"
            src_store.download(src_key, local)
            info = dst_store.put(dst_key, local)
    elif _is_uri(src):
        src_store, src_key = resolve(src)
        info = src_store.download(src_key, dst)
    elif _is_uri(dst):
        dst_store, dst_key = resolve(dst)
        info = dst_store.put(dst_key, src)
    else:
        print("cp: one of SRC and DST must be a storage URI", file=sys.stderr)
        return 2
    print(f"{info.size} bytes sha256 {info.sha256}")
    return 0


def _cat(args: argparse.Namespace) -> int:
    for uri in args.uris:
        store, key = resolve(uri)
        for chunk in store.open_stream(key):
            sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    return 0


def _rm(args: argparse.Namespace) -> int:
    for uri in args.uris:
        store, key = resolve(uri)
        store.delete(key)
    return 0


def _stat(args: argparse.Namespace) -> int:
    for uri in args.uris:
        store, key = resolve(uri)
        info = store.stat(key)
        print(json.dumps({"uri": info.uri, "size": info.size, "sha256": info.sha256}))
    return 0


def _verify(args: argparse.Namespace) -> int:
    result = verify_object(args.uri, args.sha256, args.size, deep=args.deep)
    print(f"{result.reason}: {result.message}")
    return 0 if result.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and --help)."""
    parser = argparse.ArgumentParser(prog="senseops-storage", description="ls/cp/cat/rm/stat over storage URIs")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", help="list objects below a URI prefix")
    ls.add_argument("uri")
    ls.set_defaults(func=_ls)
    cp = sub.add_parser("cp", help="copy between a local path and a URI, or between URIs")
    cp.add_argument("src")
    cp.add_argument("dst")
    cp.set_defaults(func=_cp)
    for name, func, text in (("cat", _cat, "print objects"), ("rm", _rm, "delete objects"),
                             ("stat", _stat, "size and sha256 as JSON lines")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("uris", nargs="+")
        cmd.set_defaults(func=func)
    verify = sub.add_parser("verify", help="check an object or directory artifact against a sha256")
    verify.add_argument("uri")
    verify.add_argument("sha256")
    verify.add_argument("--size", type=int, default=None)
    verify.add_argument("--deep", action="store_true", help="re-hash the bytes instead of trusting metadata")
    verify.set_defaults(func=_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
