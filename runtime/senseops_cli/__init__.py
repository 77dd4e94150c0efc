"""``senseops``: one command in front of the project's tools.

    senseops stream --token $T speech.wav          # stream a file to a runtime, print partials and finals
    senseops token --sub alice --consent           # a development JWT (SENSEOPS_JWT_HS256_SECRET)
    senseops storage ls s3://bucket/raw/a1/        # object-store operations (ls, cp, cat, stat, rm, verify)
    senseops crds --out crds                       # regenerate the CRDs from the operator's models
    senseops testmodel build                       # the tiny trained SenseVoice test model (checkout only)
    senseops rollout get asr-v2 --watch            # a Rollout as a live tree; promote/abort/retry/... by hand

Each sub-command is the same code as its ``python -m`` module, imported only when it runs (so
``senseops --help`` does not load torch). The services have their own commands: ``senseops-runtime``,
``senseops-trainer`` and ``senseops-operator``. ``testmodel`` is a development command: its builder lives
in the checkout's ``tests/testmodel`` (no image or installed package carries it).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# The checkout this module runs from when the project is installed editable (runtime/senseops_cli/…).
CHECKOUT = Path(__file__).resolve().parents[2]


class DevCommandUnavailable(RuntimeError):
    """A development-only sub-command whose code is not here (an image, or an install without the checkout)."""


@dataclass(frozen=True)
class SubCommand:
    """A sub-command: the ``main(argv) -> int`` function it runs, as ``module:function``."""

    target: str
    summary: str
    module_cli: str  # the equivalent ``python -m`` spelling, shown in help
    dev_only: bool = False  # its code lives in the checkout's tests/ (development tooling), not in a package

    def load(self) -> Callable[[list[str]], int | None]:
        """Import the module and return its entry function.

        A development-only command is also looked for in the checkout this module belongs to (an editable
        install), and raises :class:`DevCommandUnavailable` with what to do when it is not there either.
        """
        module_name, _, function = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if not self.dev_only or not _names_part_of(error.name, module_name):
                raise
            module = self._import_from_checkout(module_name)
        entry: Callable[[list[str]], int | None] = getattr(module, function)
        return entry

    def _import_from_checkout(self, module_name: str) -> types.ModuleType:
        package_dir = CHECKOUT.joinpath(*module_name.split(".")[:-1])
        if not (package_dir / "__init__.py").is_file():
            raise DevCommandUnavailable(
                f"this is a development command: {module_name} is not installed here (it lives in a SenseOps "
                f"checkout's {'/'.join(module_name.split('.')[:-1])}/ and no image or package carries it). "
                f"Run it from a checkout: `make tiny-model`, or `{self.module_cli} ...` with the checkout "
                "on PYTHONPATH."
            )
        sys.path.append(str(CHECKOUT))  # appended: the checkout root must not shadow installed packages
        return importlib.import_module(module_name)


def _names_part_of(missing: str | None, module_name: str) -> bool:
    """Whether the module that was not found is ``module_name`` or one of its parent packages."""
    return missing is not None and (module_name == missing or module_name.startswith(missing + "."))


SUBCOMMANDS: dict[str, SubCommand] = {
    "stream": SubCommand(
        "senseops_runtime.client:main",
        "stream an audio file (or stdin PCM) to a runtime and print transcripts",
        "python -m senseops_runtime.client",
    ),
    "token": SubCommand(
        "senseops_runtime.tokens:main", "issue a development JWT for the runtime", "python -m senseops_runtime.tokens"
    ),
    "storage": SubCommand(
        "senseops_common.storage.cli:main",
        "object-store operations: ls, cp, cat, stat, rm, verify",
        "python -m senseops_common.storage.cli",
    ),
    "crds": SubCommand(
        "senseops_operator.crdgen:main",
        "generate (or --check) the CRDs from the operator's models",
        "python -m senseops_operator.crdgen",
    ),
    "rollout": SubCommand(
        "senseops_cli.rollout:main",
        "watch and drive a Rollout: get [--watch], promote [--full], abort, retry, pause, resume, status",
        "python -m senseops_cli.rollout",
    ),
    "get": SubCommand(
        "senseops_cli.rollout:get_main", "get rollout NAME [--watch]: the same as `rollout get`",
        "python -m senseops_cli.rollout get",
    ),
    "testmodel": SubCommand(
        "tests.testmodel.__main__:main",
        "build the tiny trained test model (or a full-size random one); development only",
        "python -m tests.testmodel",
        dev_only=True,
    ),
}


def usage() -> str:
    """The help text: every sub-command with its summary."""
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [f"  {name:<{width}}  {cmd.summary}" for name, cmd in SUBCOMMANDS.items()]
    return (
        "usage: senseops <command> [arguments]   (senseops <command> --help for its arguments)\n\n"
        "commands:\n" + "\n".join(lines) + "\n\n"
        "services: senseops-runtime, senseops-trainer, senseops-operator\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a sub-command; exit code 2 for an unknown one."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0 if args else 2
    name, rest = args[0], args[1:]
    command = SUBCOMMANDS.get(name)
    if command is None:
        print(f"senseops: unknown command {name!r}\n\n{usage()}", end="", file=sys.stderr)
        return 2
    saved, sys.argv = sys.argv, [f"senseops {name}", *rest]  # argparse shows the name the user typed
    try:
        return command.load()(rest) or 0
    except DevCommandUnavailable as error:
        print(f"senseops {name}: {error}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved
