"""The TypeScript client (runtime/clients/ts) against the real runtime: node's test runner drives it.

Installs the client's pinned dev dependencies with ``npm ci`` when they are missing (the npm registry is
one of the allowed package sources), compiles with tsc, and runs ``node --test``. The node tests cover
real-time streaming, reconnect with replay through a TCP proxy that cuts the connection, and a refused
token that must not be retried.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.runtime.conftest import make_token
from tests.runtime.helpers import ENGLISH, utterance_pcm
from tests.runtime.server import REPO, RuntimeServer

TS_DIR = REPO / "runtime" / "clients" / "ts"


def _npm(*args: str) -> None:
    subprocess.run(["npm", *args], cwd=TS_DIR, check=True, capture_output=True, timeout=600)


@pytest.fixture(scope="module")
def built_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are required for the TypeScript client tests (Node.js >= 20)")
    if not (TS_DIR / "node_modules" / "typescript").exists():
        _npm("ci", "--no-audit", "--no-fund")
    _npm("run", "build")
    return TS_DIR / "dist" / "test"


def test_typescript_client_against_real_server(
    built_client: Path, runtime_server: RuntimeServer, tmp_path: Path
) -> None:
    pcm_path = tmp_path / "utterance.pcm"
    pcm_path.write_bytes(utterance_pcm(ENGLISH))
    env = {
        **os.environ,
        "RUNTIME_WS_URL": runtime_server.ws,
        "RUNTIME_TOKENS": json.dumps([make_token() for _ in range(3)]),
        "RUNTIME_PCM": str(pcm_path),
        "RUNTIME_EXPECTED": ENGLISH.text,
    }
    result = subprocess.run(
        ["node", "--test", "--test-reporter=spec", str(built_client)],
        cwd=TS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # Every test in the TypeScript files ran and passed (a skipped server test would hide a failure).
    declared = sum(len(re.findall(r"^test\(", f.read_text(), re.M)) for f in (TS_DIR / "test").glob("*.test.ts"))
    summary = result.stdout[-2000:]
    assert re.search(rf"pass {declared}\b", result.stdout) and re.search(r"fail 0\b", result.stdout), summary
