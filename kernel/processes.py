"""Is a process still there? One answer for store claims, export temp files and jobs.

A pid alone is not an identity: pids are reused. With the start time recorded beside it
(`process_start`), a new process that got the same pid counts as the old one being dead.
"""

from __future__ import annotations

import os


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None
    where /proc is missing. With the pid it identifies a process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """True while `pid` exists, is not a zombie and (given `start`) is the same process."""
    if not pid:
        return False
    if start is not None and process_start(pid) not in (None, start):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
