"""Curate: a finished step shows its result within a second (issue 11). A step that ends within
`SYNC_S` of the click is shown by the click's own run: the new version selected and the result
drawn, with no poll in between; a longer one is polled every `POLL_S`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parents[1] / "studio" / "views" / "curate.py"
ROWS = [{"instruction": f"Say word {i}", "output": f"word {i} " * (i % 4 + 1)} for i in range(12)]
ROWS += [dict(ROWS[3]), dict(ROWS[5])]   # two exact duplicates


def test_a_short_step_shows_its_result_in_the_clicks_own_run(ui_env, tmp_path):
    from curation.importer import import_file
    from studio.ui import background

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    import_file(ui_env, path, "dups")
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="curate_version").value == "v1"
    t0 = time.monotonic()
    next(b for b in at.button if b.label == "Run dedup").click().run()   # one click, no poll
    took = time.monotonic() - t0
    assert not at.exception
    task = background.tasks("Dedup", str(ui_env.workspace.root))[0]
    assert task.state == "completed", task.error
    assert at.selectbox(key="curate_version").value == "v2"       # the version it made
    assert any("saved" in s and "dups@v2" in s for s in (str(e.value) for e in at.success))
    print(f"dedup result drawn {took:.2f}s after the click (step {task.finished - task.started:.2f}s)")

