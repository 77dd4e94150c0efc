"""The trainer on a terminal: training steps drawn as a bar, not as JSON lines; the status sink unchanged."""

from __future__ import annotations

import io
import json
import os
import pty
import sys
from pathlib import Path

import pytest

from senseops_trainer.progress import ProgressLog, writes_line
from tests.trainer.test_train_plumbing import _fake_funasr, _train_line


@pytest.mark.parametrize(
    ("event", "on_terminal", "expected"),
    [("step", False, True), ("step", True, False), ("start", True, True), ("done", True, True),
     ("validation", True, True), ("failed", False, True)],
)
def test_writes_line(event: str, on_terminal: bool, expected: bool) -> None:
    assert writes_line(event, on_terminal) is expected


class RecordingSink:
    def __init__(self) -> None:
        self.published: list[dict[str, object]] = []

    def publish(self, progress: dict[str, object], force: bool = False) -> None:
        self.published.append(progress)


def _read_all(fd: int) -> str:
    os.set_blocking(fd, False)
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out.decode().replace("\r\n", "\n")


def test_training_on_a_terminal_draws_a_bar_and_keeps_the_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from senseops_trainer.config import TrainerConfig
    from senseops_trainer.context import RunContext
    from senseops_trainer.train import _run_funasr

    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "200")  # a pty from openpty() has no size; the bar is cut to the width
    monkeypatch.delenv("SENSEOPS_PROGRESS", raising=False)
    controller, terminal = pty.openpty()
    screen = os.fdopen(terminal, "w", encoding="utf-8")
    try:
        monkeypatch.setattr(sys, "stderr", screen)  # the bar goes to stderr, which is this terminal too
        sink = RecordingSink()
        ctx = RunContext(cfg=TrainerConfig(), workdir=tmp_path / "w", progress=ProgressLog(out=screen, sink=sink))
        assert ctx.progress.on_terminal
        ctx.progress.emit("train", "start")
        lines = [_train_line(1, 1, 5.0), _train_line(2, 2, 4.0), _train_line(3, 3, 3.5)]
        _run_funasr(ctx, _fake_funasr(tmp_path, lines), dict(os.environ))
        ctx.progress.emit("train", "done")
        screen.flush()
        text = _read_all(controller)
    finally:
        screen.close()
        os.close(controller)
    assert '"event": "step"' not in text  # the bar replaces the per-step lines
    draws = [part for part in text.split("\r") if part.startswith("train  [")]
    assert draws, text
    assert "loss=3.5" in draws[-1] and "epoch=1/1" in draws[-1] and "3 steps/10 steps" in draws[-1]
    events = [json.loads(line[line.index("{"):]) for line in text.splitlines() if '"stage"' in line]
    assert [e["event"] for e in events] == ["start", "done"]
    # the FineTuneJob status got every step's progress as before (the sink rate-limits, not the display)
    assert [p["step"] for p in sink.published if "step" in p] == [1, 2, 3]


def test_off_a_terminal_every_step_is_a_json_line(tmp_path: Path) -> None:
    from senseops_trainer.config import TrainerConfig
    from senseops_trainer.context import RunContext
    from senseops_trainer.train import _run_funasr

    out = io.StringIO()
    ctx = RunContext(cfg=TrainerConfig(), workdir=tmp_path / "w", progress=ProgressLog(out=out))
    assert not ctx.progress.on_terminal
    _run_funasr(ctx, _fake_funasr(tmp_path, [_train_line(1, 1, 5.0), _train_line(2, 2, 4.0)]), dict(os.environ))
    steps = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(s["event"], s["total_step"]) for s in steps] == [("step", 1), ("step", 2)]
