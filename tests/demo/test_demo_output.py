"""`make demo`'s phase printer: a live timer line on a terminal, JSON lines otherwise, logs named on failure."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("senseops_demo_script", REPO / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_when_not_a_terminal() -> None:
    demo = _demo()
    out = io.StringIO()
    phases = demo.Phases(total=2, out=out)
    with phases.phase("first"):
        phases.note("a result")
    with pytest.raises(RuntimeError), phases.phase("second", REPO / ".demo" / "logs" / "x.log"):
        raise RuntimeError("boom")
    lines = out.getvalue().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert [(e["phase"], e["title"], e["status"]) for e in events] == [
        (1, "first", "started"),
        (1, "first", "done"),
        (2, "second", "started"),
        (2, "second", "failed"),
    ]
    assert all(e["of"] == 2 for e in events) and isinstance(events[1]["seconds"], float)
    assert events[2]["log"].endswith(".demo/logs/x.log")
    assert "      a result" in lines


def test_terminal_shows_a_timer_then_a_check_mark_and_the_notes() -> None:
    demo = _demo()
    out = FakeTerminal()
    phases = demo.Phases(total=3, out=out, tick_s=0.01)
    with phases.phase("building", REPO / ".demo" / "logs" / "model-build.log"):
        phases.note("model ready")
        deadline = time.monotonic() + 10
        while "\r\033[K[1/3] building … " not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)  # wait for the timer thread to redraw the line at least once
    text = out.getvalue()
    assert text.startswith("[1/3] building …")
    assert "\r\033[K[1/3] building … " in text  # the live timer rewrote the line
    final = text.rsplit("\r\033[K", 1)[-1]
    assert final.startswith("[1/3] building ✓ ") and "(log: .demo/logs/model-build.log)" in final
    assert final.endswith("\n      model ready\n")


def test_terminal_failure_names_the_log() -> None:
    demo = _demo()
    out = FakeTerminal()
    phases = demo.Phases(total=1, out=out, tick_s=10)
    with pytest.raises(SystemExit), phases.phase("control plane", REPO / ".demo" / "logs" / "controlplane.log"):
        raise SystemExit("failed")
    assert "[1/1] control plane ✗ failed after" in out.getvalue()
    assert "(log: .demo/logs/controlplane.log)" in out.getvalue()
