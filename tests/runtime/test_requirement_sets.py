"""Per-image requirement sets: exact pins that agree with the development union, no development tools in
an image's set, Dockerfiles that install only their set, and a runtime that loads no trainer or test code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMAGE_SETS = ("runtime", "operator", "trainer")
DEV_ONLY = {"pytest", "pytest-timeout", "pytest-asyncio", "moto", "ruff", "mypy", "hypothesis", "schemathesis",
            "import-linter", "openai"}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].lower()
            pins[name] = line
    return pins


def test_every_set_is_exactly_pinned_and_agrees_with_the_union() -> None:
    union = _pins(REPO / "requirements.txt")
    parts = {p.stem: _pins(p) for p in sorted((REPO / "requirements").glob("*.txt"))}
    assert set(parts) == {*IMAGE_SETS, "dev"}
    for part, pins in parts.items():
        for name, line in pins.items():
            assert "==" in line, f"requirements/{part}.txt: {line!r} is not pinned with =="
            assert union.get(name) == line, f"requirements/{part}.txt: {line!r} != requirements.txt {union.get(name)!r}"
    assert set(union) == set().union(*parts.values()), "requirements.txt must be exactly the union of the sets"


@pytest.mark.parametrize("part", IMAGE_SETS)
def test_no_image_set_carries_development_tools(part: str) -> None:
    assert DEV_ONLY & set(_pins(REPO / "requirements" / f"{part}.txt")) == set()


@pytest.mark.parametrize(("dockerfile", "part"), [("runtime/Dockerfile", "runtime"),
                                                 ("runtime/Dockerfile.cuda", "runtime"),
                                                 ("trainer_image/Dockerfile", "trainer"),
                                                 ("operator/Dockerfile", "operator")])
def test_dockerfiles_install_only_their_set(dockerfile: str, part: str) -> None:
    text = (REPO / dockerfile).read_text()
    assert f"COPY requirements/{part}.txt" in text and "COPY requirements.txt" not in text
    if dockerfile in ("trainer_image/Dockerfile", "runtime/Dockerfile.cuda"):
        # The GPU images take torch's pin from PyPI (a CUDA 13 build with its libraries as wheels): the
        # PyTorch index of an older CUDA base has no wheel for it.
        assert "--index-url" not in text


def test_dockerignore_keeps_tests_and_the_tiny_model_builder_out() -> None:
    # The tiny-model builder lives in tests/testmodel, so ignoring tests/ keeps it out too.
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {"tests", ".venv", ".git"} <= set(ignored)
    assert (REPO / "tests" / "testmodel").is_dir()


def test_the_runtime_loads_no_trainer_or_test_code() -> None:
    probe = (
        "import sys, senseops_runtime.app, senseops_runtime.__main__, senseops_common.text; "
        "print(sorted(m for m in ('jiwer', 'matplotlib', 'opencc', 'pytest', 'moto', 'hypothesis', "
        "'tests.testmodel', 'senseops_trainer') if m in sys.modules))"
    )
    env = {"PYTHONPATH": f"{REPO / 'runtime'}:{REPO}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
