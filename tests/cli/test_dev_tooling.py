"""The tiny-model builder is development tooling (``tests/testmodel``): production code never needs it, and
``senseops testmodel`` finds it in a checkout or says clearly that it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_PACKAGES = ("senseops_common", "senseops_runtime", "senseops_trainer", "senseops_operator", "senseops_cli")
# Only the production folders: neither the checkout root (where ``tests`` lives) nor the working directory.
PRODUCTION_PATH = os.pathsep.join(str(REPO / part) for part in ("operator", "runtime", "trainer_image"))

# Imports every module of the given packages with the ``tests`` package made unimportable, the way an image
# (which has no tests/ folder) would; prints the modules that failed. ``__main__`` modules are entry shims
# that parse sys.argv on import; the modules they call are imported here anyway.
HIDDEN_DEV_PACKAGE_PROBE = """
import importlib, importlib.abc, json, pkgutil, sys

class HideDevPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tests" or name.startswith("tests."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden: development only)", name=name)
        return None

sys.meta_path.insert(0, HideDevPackage())
names = []
for package in sys.argv[1:]:
    names.append(package)
    names += [info.name for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")]
failed = {}
for name in names:
    if name.rsplit(".", 1)[-1] == "__main__":
        continue
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = repr(error)
print(json.dumps({"imported": len(names), "failed": failed}))
"""


def _python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSEOPS_")}
    env["PYTHONPATH"] = PRODUCTION_PATH
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_every_production_module_imports_without_the_dev_package(tmp_path: Path) -> None:
    import json

    done = _python(HIDDEN_DEV_PACKAGE_PROBE, *PRODUCTION_PACKAGES, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["imported"] > 50  # the walk really found the packages' modules


def test_an_import_linter_contract_forbids_the_dev_package() -> None:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    covering = [c for c in contracts if c["type"] == "forbidden" and "tests" in c["forbidden_modules"]]
    assert covering, "no import-linter contract forbids production packages from importing tests"
    assert set(PRODUCTION_PACKAGES) <= set(covering[0]["source_modules"])


def test_the_builder_is_not_in_the_production_package() -> None:
    assert not (REPO / "runtime" / "senseops_common" / "testmodel").exists()
    assert (REPO / "tests" / "testmodel" / "__init__.py").is_file()


def test_senseops_testmodel_finds_the_builder_in_the_checkout(tmp_path: Path) -> None:
    # No checkout on the path (as for the installed `senseops` command): it is found next to senseops_cli.
    done = _python("import sys, senseops_cli; sys.exit(senseops_cli.main(['testmodel', '--help']))", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "fullsize" in done.stdout


def test_senseops_testmodel_without_a_checkout_says_what_to_do(tmp_path: Path) -> None:
    code = (
        "import pathlib, sys, senseops_cli; "
        f"senseops_cli.CHECKOUT = pathlib.Path({str(tmp_path)!r}); "
        "sys.exit(senseops_cli.main(['testmodel', 'build']))"
    )
    done = _python(code, cwd=tmp_path)
    assert done.returncode == 2
    assert "development command" in done.stderr
    assert "make tiny-model" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_trainer_demo_takes_its_base_model_and_says_when_it_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from senseops_trainer.demo import main as demo_main

    with pytest.raises(SystemExit) as exit_info:
        demo_main(["--dir", str(tmp_path / "demo"), "--base-model", str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    assert "make tiny-model" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # refused before writing anything
