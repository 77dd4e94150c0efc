"""The console commands in pyproject.toml exist, import, and run from the virtualenv as users type them."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import jwt
import pytest

from senseops_cli import SUBCOMMANDS, main

REPO = Path(__file__).resolve().parents[2]
SCRIPTS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
BIN = Path(sys.executable).parent


def _resolve(target: str) -> object:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def test_the_commands_are_declared() -> None:
    assert set(SCRIPTS) == {"senseops", "senseops-runtime", "senseops-trainer", "senseops-operator",
                            "kubectl-senseops"}
    assert SCRIPTS["kubectl-senseops"] == SCRIPTS["senseops"]  # the kubectl plugin is the same command


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_targets_resolve(name: str) -> None:
    assert callable(_resolve(SCRIPTS[name]))


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_targets_resolve(name: str) -> None:
    assert callable(SUBCOMMANDS[name].load())


def _run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run an installed command the way a user does: no PYTHONPATH, outside the checkout."""
    script = BIN / argv[0]
    assert script.exists(), f"{script} missing: run `make venv` (it installs the project editable)"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SENSEOPS_")}
    return subprocess.run(
        [str(script), *argv[1:]], cwd=tmp_path, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["senseops", "--help"], "senseops <command>"),
        (["senseops", "storage", "--help"], "{ls,cp,cat,rm,stat,verify}"),
        (["senseops-runtime", "--help"], "--port"),
        (["senseops-trainer", "--help"], "synth"),
    ],
    ids=["senseops", "senseops-storage", "senseops-runtime", "senseops-trainer"],
)
def test_installed_commands_print_help(argv: list[str], expected: str, tmp_path: Path) -> None:
    done = _run(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_senseops_token_issues_a_verifiable_jwt(tmp_path: Path) -> None:
    secret = "entry-point-test-secret-0123456789abcdef"
    done = _run(["senseops", "token", "--sub", "alice", "--consent"], tmp_path, SENSEOPS_JWT_HS256_SECRET=secret)
    assert done.returncode == 0, done.stderr
    claims = jwt.decode(done.stdout.strip(), secret, algorithms=["HS256"], audience="senseops-runtime")
    assert claims["sub"] == "alice"


def test_unknown_subcommand_exits_2_and_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe-everything"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'transcribe-everything'" in err
    assert "stream" in err and "storage" in err


def test_no_arguments_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().out
