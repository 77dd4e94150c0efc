"""The ops CLI on file:// and on MinIO (s3://), run as ``python -m senseops_common.storage.cli``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers.minio import MinioServer

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": "operator:runtime:trainer_image:."}
    return subprocess.run([sys.executable, "-m", "senseops_common.storage.cli", *args], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=60)


def test_cli_cp_ls_cat_stat_rm_on_file_store(tmp_path: Path) -> None:
    local = tmp_path / "report.json"
    local.write_text('{"cer": 0.05}\n')
    root = f"file://{tmp_path}/store"
    assert _cli("cp", str(local), f"{root}/reports/ft1/report.json").returncode == 0
    listing = _cli("ls", f"{root}/reports/")
    assert listing.returncode == 0 and f"{root}/reports/ft1/report.json" in listing.stdout
    assert _cli("cat", f"{root}/reports/ft1/report.json").stdout == '{"cer": 0.05}\n'
    stat = json.loads(_cli("stat", f"{root}/reports/ft1/report.json").stdout)
    assert stat["sha256"] == hashlib.sha256(local.read_bytes()).hexdigest() and stat["size"] == 14
    assert _cli("cp", f"{root}/reports/ft1/report.json", str(tmp_path / "back.json")).returncode == 0
    assert (tmp_path / "back.json").read_text() == local.read_text()
    assert _cli("rm", f"{root}/reports/ft1/report.json").returncode == 0
    missing = _cli("cat", f"{root}/reports/ft1/report.json")
    assert missing.returncode == 1 and "no such object" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_against_minio_copies_between_backends(minio_server: MinioServer, minio_bucket: str,
                                                   tmp_path: Path) -> None:
    env = minio_server.store_env()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "a.wav").write_bytes(b"RIFF....")
    assert _cli("cp", f"file://{tmp_path}/store/a.wav", f"s3://{minio_bucket}/raw/a.wav", env=env).returncode == 0
    assert _cli("cat", f"s3://{minio_bucket}/raw/a.wav", env=env).stdout == "RIFF...."
    digest = hashlib.sha256(b"RIFF....").hexdigest()
    verified = _cli("verify", f"s3://{minio_bucket}/raw/a.wav", digest, "--size", "8", env=env)
    assert verified.returncode == 0 and verified.stdout.startswith("Verified")
    wrong = _cli("verify", f"s3://{minio_bucket}/raw/a.wav", "0" * 64, env=env)
    assert wrong.returncode == 1 and wrong.stdout.startswith("DigestMismatch")


def test_cli_rejects_bad_uri_and_usage() -> None:
    bad = _cli("cat", "http://example.com/x")
    assert bad.returncode == 1 and "unsupported storage URI" in bad.stderr
    assert _cli("cp", "a", "b").returncode == 2
