"""User-facing errors: one readable line that names the file, line and field at fault.

The CLI prints `str(error)` and exits non-zero; the UI shows it in an error box. Anything that
is not a StudioError is a bug and keeps its traceback.
"""

from __future__ import annotations


class StudioError(Exception):
    """An error caused by the user's input or the workspace state, not by a bug."""


class NotFoundError(StudioError):
    """A named dataset, version, run, checkpoint or suite does not exist."""


class WorkspaceBusyError(StudioError):
    """Another process held the workspace database for longer than the lock timeout."""


class StoreWriteError(StudioError):
    """A write to the workspace failed for lack of room or rights (disk full, read-only);
    the store is left as it was before the write."""
