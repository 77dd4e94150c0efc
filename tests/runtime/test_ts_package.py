"""The TypeScript client as an npm package: what `npm pack` ships, and a consumer that imports it by name.

A fresh project installs the packed tarball (offline: the package has no runtime dependencies), compiles
against its published types with the client's pinned tsc and runs; a wrong call must not compile. The
PCM helpers' unit tests run with node's test runner.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.runtime.server import REPO

TS_DIR = REPO / "runtime" / "clients" / "ts"
TSC = TS_DIR / "node_modules" / ".bin" / "tsc"


def _run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


@pytest.fixture(scope="module")
def built() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are required for the TypeScript client tests (Node.js >= 20)")
    if not TSC.exists():
        _run(["npm", "ci", "--no-audit", "--no-fund"], TS_DIR)
    _run(["npm", "run", "build"], TS_DIR)
    return TS_DIR / "dist"


def test_pcm_helpers(built: Path) -> None:
    done = _run(["node", "--test", str(built / "package-test")], TS_DIR)
    assert "# pass 5" in done.stdout and "# fail 0" in done.stdout, done.stdout[-2000:]


def test_pack_ships_the_library_and_its_types_only(built: Path) -> None:
    report = json.loads(_run(["npm", "pack", "--dry-run", "--json", "--ignore-scripts"], TS_DIR).stdout)
    files = {f["path"] for f in report[0]["files"]}
    for needed in (
        "package.json",
        "README.md",
        "dist/src/index.js",
        "dist/src/index.d.ts",
        "dist/src/asrClient.d.ts",
        "dist/src/pcm.d.ts",
    ):
        assert needed in files, needed
    assert not [f for f in files if f.startswith(("dist/test", "dist/package-test", "dist/examples", "src/"))], files


CONSUMER = """
import { ASRClient, PcmFramer, PcmResampler, floatToPcm16, type FinalMessage } from "@senseops/asr-client";

const framer = new PcmFramer(100);
const pcm = floatToPcm16(new PcmResampler(48_000).process(new Float32Array(48_000)));
const frames = framer.push(pcm);
const seen: FinalMessage[] = [];
const client = new ASRClient({ url: "ws://127.0.0.1:9/ws/stream", getToken: () => "t", onFinal: (m) => seen.push(m) });
console.log(JSON.stringify({ frames: frames.length, state: client.currentState, seen: seen.length }));
"""


def _consumer(tmp_path: Path, built: Path, source: str) -> Path:
    tarball = _run(["npm", "pack", "--ignore-scripts", "--pack-destination", str(tmp_path)], TS_DIR).stdout.split()[-1]
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"name": "consumer", "private": True, "type": "module"}))
    _run(["npm", "install", "--offline", "--no-audit", "--no-fund", str(tmp_path / tarball)], app)
    (app / "main.ts").write_text(source)
    return app


def _tsc(app: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        [
            str(TSC),
            "--strict",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2022",
            "--lib",
            "es2022,dom",
            "--skipLibCheck",
            "false",
            "main.ts",
        ],
        app,
        check=False,
    )


def test_a_consumer_imports_the_package_by_name_with_types(built: Path, tmp_path: Path) -> None:
    app = _consumer(tmp_path, built, CONSUMER)
    compiled = _tsc(app)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    out = json.loads(_run(["node", "main.js"], app).stdout)
    assert out == {"frames": 10, "state": "idle", "seen": 0}


def test_a_wrong_call_does_not_compile(built: Path, tmp_path: Path) -> None:
    app = _consumer(tmp_path, built, CONSUMER.replace('getToken: () => "t"', "getToken: 42"))
    compiled = _tsc(app)
    assert compiled.returncode != 0, compiled.stdout
    assert "error TS2322: Type 'number' is not assignable to type '() => string | Promise<string>'" in compiled.stdout
