"""Process records that survive the process node: a pid plus its start time, so that a later `down`
(from another process, even after the node crashed) signals exactly the processes the node started."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: distinguishes a live process from a reused pid (None when the
    process is gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def kill_recorded(record: Path, sig: int) -> bool:
    """Signal the process group recorded in ``record`` (pid + start time); False when it is gone."""
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return False
    pid = int(data["pid"])
    if proc_start_time(pid) != data.get("start"):
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    return True
