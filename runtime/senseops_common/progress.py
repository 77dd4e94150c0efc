"""Progress of long work: a bar on a terminal, plain JSON lines otherwise.

    with Progress("download", total=size, unit="B") as bar:
        for chunk in chunks:
            bar.update(len(chunk))

On a terminal (the stream is a TTY and ``TERM`` is not ``dumb``) one line is redrawn in place, at most
every :data:`BAR_MIN_INTERVAL_S`; otherwise (logs, pipes, Kubernetes) one JSON object per line, at most
every :data:`JSON_MIN_INTERVAL_S`, plus the first and the last update, so ``kubectl logs`` shows progress
without flooding. ``SENSEOPS_PROGRESS=bar|json|off`` overrides the choice. Output goes to stderr by
default: stdout stays for what a command prints as its result.

The decisions (which mode, whether to emit now, what a line or a bar says) are pure functions; the
:class:`Progress` object only keeps the counters and writes. No dependency beyond the standard library,
so every image can use it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, TextIO

Mode = Literal["bar", "json", "off"]
MODES: tuple[Mode, ...] = ("bar", "json", "off")
PROGRESS_ENV = "SENSEOPS_PROGRESS"
BAR_MIN_INTERVAL_S = 0.2
JSON_MIN_INTERVAL_S = 5.0
BAR_WIDTH = 24
# A rate measured over less time than this is noise (the first chunk arrives "at 200 GiB/s"): not shown.
MIN_RATE_ELAPSED_S = 0.5
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def choose_mode(is_tty: bool, override: str | None = None, term: str | None = None, bar_only: bool = False) -> Mode:
    """The output mode: ``override`` (``SENSEOPS_PROGRESS``) when set, else a bar on a terminal, else JSON.

    ``bar_only`` is for callers that already log their own JSON events for this work: they want the bar
    on a terminal and nothing more elsewhere.
    """
    if override:
        value = override.strip().lower()
        if value not in MODES:
            raise ValueError(f"{PROGRESS_ENV}={override!r} is not a progress mode: use bar, json or off")
        return value
    if is_tty and term != "dumb":
        return "bar"
    return "off" if bar_only else "json"


def should_emit(last_emit_s: float | None, now_s: float, min_interval_s: float, force: bool = False) -> bool:
    """Rate limit: the first update, a forced one (the last) and any at least ``min_interval_s`` later."""
    return force or last_emit_s is None or now_s - last_emit_s >= min_interval_s


@dataclass(frozen=True)
class Snapshot:
    """What is known about one piece of work at one moment."""

    task: str
    done: float
    total: float | None
    unit: str = ""
    elapsed_s: float = 0.0
    fields: Mapping[str, object] = field(default_factory=dict)
    finished: bool = False
    start_done: float = 0.0  # where this run started (a resumed job does not count earlier work as speed)

    @property
    def fraction(self) -> float | None:
        """Share done in [0, 1]; ``None`` without a known total."""
        if not self.total or self.total <= 0:
            return None
        return min(1.0, max(0.0, self.done / self.total))

    @property
    def rate(self) -> float | None:
        """Units per second so far; ``None`` before there is a meaningful one."""
        progressed = self.done - self.start_done
        if self.elapsed_s < MIN_RATE_ELAPSED_S or progressed <= 0:
            return None
        return progressed / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the average rate so far (a caller's own ``eta_s`` field wins)."""
        given = self.fields.get("eta_s")
        if isinstance(given, int | float):
            return float(given)
        rate = self.rate
        if rate is None or self.total is None or self.finished:
            return None
        return max(0.0, (self.total - self.done) / rate)


def json_line(snapshot: Snapshot, wall_time_s: float) -> dict[str, object]:
    """The JSON object for one update; ``None`` values are left out.

    ``stage`` names the work and ``event`` is ``"progress"``: the same keys as the trainer's event lines, so
    one reader handles a log that interleaves both.
    """
    line: dict[str, object] = {"ts": round(wall_time_s, 3), "stage": snapshot.task, "event": "progress",
                               "done": _number(snapshot.done)}
    if snapshot.total is not None:
        line["total"] = _number(snapshot.total)
    if snapshot.unit:
        line["unit"] = snapshot.unit
    fraction = snapshot.fraction
    if fraction is not None:
        line["percent"] = round(100.0 * fraction, 1)
    rate = snapshot.rate
    if rate is not None:
        line["rate"] = round(rate, 3)
    eta = snapshot.eta_s
    if eta is not None:
        line["eta_s"] = round(eta, 1)
    line["elapsed_s"] = round(snapshot.elapsed_s, 1)
    line.update({k: v for k, v in snapshot.fields.items() if v is not None and k != "eta_s"})
    if snapshot.finished:
        line["finished"] = True
    return line


def render_bar(snapshot: Snapshot, width: int = BAR_WIDTH) -> str:
    """One terminal line, e.g. ``train [#########.......]  56%  28/50 steps  1.9 steps/s  ETA 0:12  loss=0.41``."""
    parts = [snapshot.task]
    fraction = snapshot.fraction
    if fraction is not None:
        filled = round(fraction * width)
        parts.append("[" + "#" * filled + "." * (width - filled) + "]")
        parts.append(f"{100.0 * fraction:3.0f}%")
        parts.append(f"{format_amount(snapshot.done, snapshot.unit)}/{format_amount(snapshot.total, snapshot.unit)}")
    else:
        parts.append(format_amount(snapshot.done, snapshot.unit))
    rate = snapshot.rate
    if rate is not None:
        parts.append(f"{format_amount(rate, snapshot.unit)}/s")
    eta = snapshot.eta_s
    if snapshot.finished:
        parts.append(f"in {format_duration(snapshot.elapsed_s)}")
    elif eta is not None:
        parts.append(f"ETA {format_duration(eta)}")
    parts += [f"{k}={_short(v)}" for k, v in snapshot.fields.items() if v is not None and k != "eta_s"]
    return "  ".join(parts)


def format_amount(value: float | None, unit: str) -> str:
    """``1.5 MiB`` for bytes (unit ``B``), ``12 steps`` for other units, a bare number without a unit."""
    if value is None:
        return "?"
    if unit == "B":
        scaled, index = float(value), 0
        while abs(scaled) >= 1024 and index < len(_BYTE_UNITS) - 1:
            scaled, index = scaled / 1024, index + 1
        return f"{scaled:.0f} B" if index == 0 else f"{scaled:.1f} {_BYTE_UNITS[index]}"
    number = _short(_number(value))
    return f"{number} {unit}" if unit else number


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:03``, ``1:02:03``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Progress:
    """Reports one piece of long work (see the module docstring); use as a context manager or call ``close``."""

    def __init__(
        self,
        task: str,
        total: float | None = None,
        unit: str = "",
        *,
        stream: TextIO | None = None,
        mode: Mode | None = None,
        bar_only: bool = False,
        min_interval_s: float | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.task, self.total, self.unit = task, total, unit
        self.stream = stream if stream is not None else sys.stderr
        environ = os.environ if env is None else env
        if mode is None:
            mode = choose_mode(_isatty(self.stream), environ.get(PROGRESS_ENV), environ.get("TERM"), bar_only)
        self.mode: Mode = mode
        default_interval = BAR_MIN_INTERVAL_S if mode == "bar" else JSON_MIN_INTERVAL_S
        self.min_interval_s = default_interval if min_interval_s is None else min_interval_s
        self.clock, self.wall_clock = clock, wall_clock
        self.done = 0.0
        self.fields: dict[str, object] = {}
        self._started = clock()
        self._start_done: float | None = None
        self._last_emit: float | None = None
        self._closed = False
        self._bar_width = 0  # characters of the bar drawn last (to blank a shorter redraw)
        # A line longer than the terminal wraps and "\r" can no longer redraw it: cut it to fit.
        self._columns = _terminal_columns(self.stream, environ) - 1 if mode == "bar" else 0

    def update(self, advance: float = 0, *, done: float | None = None, total: float | None = None,
               **fields: object) -> None:
        """Add ``advance`` (or set ``done``), optionally change ``total``, and set extra fields (loss, epoch …)."""
        if done is not None and self._start_done is None:
            self._start_done = float(done)  # the first absolute position: earlier work is not this run's
        self.done = float(done) if done is not None else self.done + advance
        if total is not None:
            self.total = total
        self.fields.update(fields)
        self._emit(force=False)

    def close(self, **fields: object) -> None:
        """The last update (always written); a bar ends its line. Further calls do nothing."""
        if self._closed:
            return
        self.fields.update(fields)
        self._emit(force=True, finished=True)
        self._closed = True

    def snapshot(self, finished: bool = False) -> Snapshot:
        """The current state."""
        return Snapshot(self.task, self.done, self.total, self.unit, self.clock() - self._started,
                        dict(self.fields), finished, self._start_done or 0.0)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(**({"failed": exc_type.__name__} if exc_type is not None else {}))

    def _emit(self, force: bool, finished: bool = False) -> None:
        if self.mode == "off" or self._closed:
            return
        now = self.clock()
        if not should_emit(self._last_emit, now, self.min_interval_s, force):
            return
        self._last_emit = now
        snap = self.snapshot(finished)
        try:
            if self.mode == "json":
                line = json_line(snap, self.wall_clock())
                self.stream.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            else:
                text = render_bar(snap)[: max(20, self._columns)]
                pad = " " * max(0, self._bar_width - len(text))
                self._bar_width = len(text)
                self.stream.write("\r" + text + pad + ("\n" if finished else ""))
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must never stop the work it reports on
            self.mode = "off"


def _terminal_columns(stream: TextIO, env: Mapping[str, str]) -> int:
    """``COLUMNS`` when set, else the width of the stream's own terminal, else 80."""
    if env.get("COLUMNS", "").isdigit() and int(env["COLUMNS"]) > 0:
        return int(env["COLUMNS"])
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return columns if columns > 0 else 80


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
