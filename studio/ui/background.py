"""In-process background work (dedup, scoring) with a plain progress record a fragment polls.

Why a thread and not a job: dedup and scoring are library calls that finish in seconds to
minutes and write their result in one transaction. The thread never calls `st.*`; it only
updates its `Task` record. Tasks live in a module-level registry, so a reload or a second tab
of the same server sees them. A library error is kept as text for the page to show.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kernel.errors import StudioError


@dataclass
class Task:
    id: str
    label: str
    scope: str = ""  # the workspace it works on: pages only show their workspace's tasks
    done: int = 0
    total: int = 0
    state: str = "running"  # running | completed | failed
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None

    def progress(self, done: int, total: int) -> None:
        """The `progress(done, total)` hook curation's long operations call."""
        self.done, self.total = int(done), int(total)


_TASKS: dict[str, Task] = {}
_LOCK = threading.Lock()


def start(label: str, scope: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
    """Run fn(*args, progress=task.progress, **kwargs) in a daemon thread."""
    task = Task(id=uuid.uuid4().hex[:8], label=label, scope=scope)

    def body() -> None:
        try:
            task.result = fn(*args, progress=task.progress, **kwargs)
            task.state = "completed"
        except StudioError as exc:
            task.error, task.state = str(exc), "failed"
        except Exception as exc:  # a library bug: keep a short trace for the page
            task.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            task.state = "failed"
        finally:
            task.finished = time.time()

    with _LOCK:
        _TASKS[task.id] = task
    threading.Thread(target=body, name=f"studio-task-{task.id}", daemon=True).start()
    return task


def tasks(prefix: str = "", scope: str | None = None) -> list[Task]:
    """Tasks of `scope` (all when None) whose label starts with prefix, newest first."""
    with _LOCK:
        found = [t for t in _TASKS.values() if t.label.startswith(prefix)
                 and (scope is None or t.scope == scope)]
    return sorted(found, key=lambda t: t.started, reverse=True)


def any_running(prefix: str = "", scope: str | None = None) -> bool:
    return any(t.state == "running" for t in tasks(prefix, scope))


def wait(task: Task, timeout_s: float = 30.0) -> Task:
    """Block until the task ends or `timeout_s` passes; returns the task. Pages wait only a
    moment (Curate gives a step 1 s to show its result in the click's run), then poll."""
    deadline = time.time() + timeout_s
    while task.state == "running" and time.time() < deadline:
        time.sleep(0.02)
    return task
