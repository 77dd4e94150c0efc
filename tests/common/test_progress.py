"""The shared progress reporter: mode choice, rate limit, JSON lines off a terminal, a bar on a pseudo-terminal."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from senseops_common.progress import (
    JSON_MIN_INTERVAL_S,
    Progress,
    Snapshot,
    choose_mode,
    format_amount,
    format_duration,
    json_line,
    render_bar,
    should_emit,
)

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("is_tty", "override", "term", "bar_only", "expected"),
    [
        (True, None, "xterm-256color", False, "bar"),
        (False, None, "xterm-256color", False, "json"),
        (True, None, "dumb", False, "json"),
        (False, None, None, True, "off"),
        (True, None, "xterm", True, "bar"),
        (True, "json", "xterm", False, "json"),
        (False, "BAR", None, False, "bar"),
        (True, " off ", "xterm", False, "off"),
        (False, "", None, False, "json"),  # an empty variable is no override
    ],
    ids=["tty", "pipe", "dumb-terminal", "bar-only-off-a-tty", "bar-only-on-a-tty", "override-json",
         "override-case", "override-off", "empty-override"],
)
def test_choose_mode(is_tty: bool, override: str | None, term: str | None, bar_only: bool, expected: str) -> None:
    assert choose_mode(is_tty, override, term, bar_only) == expected


def test_an_unknown_mode_says_which_values_work() -> None:
    with pytest.raises(ValueError, match=r"SENSEOPS_PROGRESS='fancy'.*bar, json or off"):
        choose_mode(True, "fancy")


@pytest.mark.parametrize(
    ("last", "now", "interval", "force", "expected"),
    [
        (None, 0.0, 5.0, False, True),  # the first update
        (10.0, 12.0, 5.0, False, False),
        (10.0, 15.0, 5.0, False, True),  # exactly the interval later
        (10.0, 10.1, 5.0, True, True),  # the last update is always written
    ],
    ids=["first", "too-soon", "interval-passed", "forced"],
)
def test_should_emit(last: float | None, now: float, interval: float, force: bool, expected: bool) -> None:
    assert should_emit(last, now, interval, force) is expected


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (512, "B", "512 B"),
        (1536, "B", "1.5 KiB"),
        (3 * 1024**3, "B", "3.0 GiB"),
        (12, "steps", "12 steps"),
        (2.5, "", "2.5"),
        (None, "B", "?"),
    ],
)
def test_format_amount(value: float | None, unit: str, expected: str) -> None:
    assert format_amount(value, unit) == expected


@pytest.mark.parametrize(("seconds", "expected"), [(7.4, "0:07"), (723, "12:03"), (3723, "1:02:03"), (-3, "0:00")])
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_render_bar_with_a_total() -> None:
    snap = Snapshot("train", done=25, total=100, unit="steps", elapsed_s=10.0, fields={"loss": 0.41234, "epoch": 2})
    line = render_bar(snap, width=20)
    assert line.startswith("train  [#####...............]   25%  25 steps/100 steps")
    assert "2.5 steps/s" in line
    assert "ETA 0:30" in line  # 75 steps left at 2.5 steps/s
    assert line.endswith("loss=0.4123  epoch=2")


def test_render_bar_without_a_total_and_finished() -> None:
    line = render_bar(Snapshot("download", done=3 * 1024**2, total=None, unit="B", elapsed_s=2.0, finished=True))
    assert line == "download  3.0 MiB  1.5 MiB/s  in 0:02"


def test_no_rate_or_eta_from_a_blink_of_time() -> None:
    snap = Snapshot("download", done=10 * 1024**2, total=50 * 1024**2, unit="B", elapsed_s=0.01)
    assert snap.rate is None and snap.eta_s is None
    assert "rate" not in json_line(snap, 0.0) and "ETA" not in render_bar(snap)


def test_a_resumed_run_measures_its_rate_from_where_it_started() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress("train", total=100, unit="steps", stream=out, env={}, clock=clock, min_interval_s=0.0)
    progress.update(done=60)  # resumed at step 60
    clock.now += 10.0
    progress.update(done=70)
    last = json.loads(out.getvalue().splitlines()[-1])
    assert last["rate"] == 1.0 and last["eta_s"] == 30.0  # 10 steps in 10 s, not 70


def test_a_callers_own_eta_wins() -> None:
    snap = Snapshot("train", done=1, total=10, elapsed_s=1.0, fields={"eta_s": 99.0})
    assert json_line(snap, 0.0)["eta_s"] == 99.0
    assert "ETA 1:39" in render_bar(snap)


def test_json_lines_off_a_terminal_are_rate_limited() -> None:
    out, clock = io.StringIO(), FakeClock()
    progress = Progress("fetch", total=130, unit="B", stream=out, env={}, clock=clock, wall_clock=lambda: 1.7e9)
    assert progress.mode == "json"
    for _ in range(13):  # one update per second for 13 s
        progress.update(10, files=1)
        clock.now += 1.0
    progress.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    # the first update, then one per JSON_MIN_INTERVAL_S (at 5 s and 10 s), then the last
    assert JSON_MIN_INTERVAL_S == 5.0
    assert [line["done"] for line in lines] == [10, 60, 110, 130]
    assert all(line["stage"] == "fetch" and line["event"] == "progress" for line in lines)
    assert all(line["total"] == 130 and line["unit"] == "B" for line in lines)
    assert lines[1]["percent"] == pytest.approx(46.2) and lines[1]["files"] == 1
    assert lines[1]["rate"] == pytest.approx(12.0) and lines[1]["eta_s"] == pytest.approx(5.8)
    assert lines[-1]["finished"] is True and "finished" not in lines[0]
    assert lines[0]["ts"] == 1.7e9


def test_close_is_written_once_and_records_a_failure() -> None:
    out = io.StringIO()
    with pytest.raises(RuntimeError), Progress("package", total=2, stream=out, env={}) as progress:
        progress.update(1)
        raise RuntimeError("upload broke")
    progress.close()  # a second close writes nothing
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[-1]["failed"] == "RuntimeError" and lines[-1]["done"] == 1


def test_off_writes_nothing_and_a_broken_stream_does_not_stop_the_work() -> None:
    out = io.StringIO()
    quiet = Progress("x", total=3, stream=out, env={"SENSEOPS_PROGRESS": "off"})
    quiet.update(3)
    quiet.close()
    assert out.getvalue() == ""
    closed = io.StringIO()
    closed.close()
    broken = Progress("x", total=3, stream=closed, env={})
    broken.update(1)  # must not raise
    broken.close()
    assert broken.mode == "off"


CHILD = """
import sys
from senseops_common.progress import Progress
clock = iter(float(i) for i in range(1000))
with Progress("train", total=4, unit="steps", clock=lambda: next(clock), min_interval_s=0.0, bar_only={bar_only}) as p:
    for step in range(4):
        p.update(1, loss=1.0 / (step + 1))
print("result on stdout")
"""


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SENSEOPS_PROGRESS", "TERM")}
    env["PYTHONPATH"] = str(REPO / "runtime")
    return env


def test_a_child_process_on_a_pipe_writes_json_lines_to_stderr() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD.format(bar_only=False)], env=_child_env(),
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout == "result on stdout\n"
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [line["done"] for line in lines] == [1, 2, 3, 4, 4]
    assert lines[-1]["finished"] is True and lines[-1]["loss"] == 0.25


def test_bar_only_is_silent_on_a_pipe() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD.format(bar_only=True)], env=_child_env(),
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr == ""


def test_a_pseudo_terminal_gets_a_bar_redrawn_in_place() -> None:
    controller, terminal = pty.openpty()
    env = {**_child_env(), "TERM": "xterm", "COLUMNS": "200"}
    try:
        child = subprocess.Popen([sys.executable, "-c", CHILD.format(bar_only=True)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=terminal, stdin=subprocess.DEVNULL)
    finally:
        os.close(terminal)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
        assert child.wait(timeout=60) == 0
    text = output.decode().replace("\r\n", "\n")  # the terminal turns the final "\n" into "\r\n"
    assert "{" not in text  # no JSON on a terminal
    draws = text.split("\r")[1:]
    assert len(draws) == 5  # four updates and the final one, each redrawn from the line's start
    assert draws[0].startswith("train  [######") and "25%" in draws[0] and "loss=1" in draws[0]
    assert "100%" in draws[-1] and "4 steps/4 steps" in draws[-1] and "loss=0.25" in draws[-1]
    assert draws[-1].endswith("\n") and not any(d.endswith("\n") for d in draws[:-1])  # the bar ends its line


def test_a_bar_is_cut_to_the_terminal_width() -> None:
    out = io.StringIO()
    progress = Progress("a-task-with-a-long-name", total=10, unit="steps", stream=out, mode="bar",
                        env={"COLUMNS": "41"}, min_interval_s=0.0)
    progress.update(5, loss=0.123456, epoch="1/3")
    progress.close()
    draws = out.getvalue().rstrip("\n").split("\r")[1:]
    assert len(draws) == 2 and all(len(d.rstrip()) <= 40 for d in draws)
    assert draws[0].startswith("a-task-with-a-long-name  [")
