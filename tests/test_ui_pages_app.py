"""Fast checks of the Playground, Experiments and Lineage pages (Streamlit AppTest, real DuckDB
workspaces, no browser, no model): what an empty workspace says, the Lineage deep link, and
the lineage graph's escaping of user text. The browser journey is tests/test_ui_browser_pages.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.importer import import_file
from curation.split import split
from studio.ui.lineage_graph import graph
from tests.helpers.apptest import page
from training import synthetic
from training.data import write_jsonl

PAGES = Path(__file__).resolve().parents[1] / "studio" / "views"


@pytest.mark.parametrize(("name", "says"), [
    ("experiments", "No training runs yet"),
    ("playground", "No checkpoints yet"),
    ("lineage", "No datasets yet"),
])
def test_empty_workspace_says_what_to_do(ui_env, name, says):
    at = page(name).run()
    assert not at.exception
    assert any(says in str(i.value) for i in at.info), [str(i.value) for i in at.info]


def test_lineage_deep_link_opens_the_version_chain(ui_env, tmp_path):
    path = tmp_path / "support.jsonl"
    write_jsonl(path, synthetic.generate(["repeat_twice"], 20, seed=1))
    import_file(ui_env, path, "support")
    split(ui_env, "support", held_out=0.25, seed=0)
    import_file(ui_env, path, "other")
    at = page("lineage")
    at.query_params["dataset"] = "support"
    at.query_params["version"] = "v1"
    at.run()
    assert not at.exception
    assert at.selectbox(key="lineage_dataset").value == "support"
    assert at.selectbox(key="lineage_version_support").value == "v1"
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "support@v1" in dot and "support@v2" not in dot   # the chain up to v1 only
    at.selectbox(key="lineage_version_support").select("every version (tree)").run()
    dot = at.get("graphviz_chart")[0].proto.spec
    assert '"v:v1" -> "v:v2"' in dot and "split" in dot
    assert "version" not in at.query_params and at.query_params["dataset"] == "support"


def _statements(dot: str) -> list[str]:
    """Split DOT into statements at ';' outside quoted strings (honouring backslash escapes);
    fails on an unterminated string."""
    out, cur, quoted, escaped = [], "", False, False
    for ch in dot:
        cur += ch
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            out.append(cur.strip())
            cur = ""
    assert not quoted, "unterminated string in DOT"
    return out


def test_graph_escapes_user_text():
    evil = 'x"]; "pwn" [label="owned'
    steps = [{"version": "v1", "parent": None, "ref": f"{evil}@v1", "operation": "import",
              "n_rows": 3, "rows_removed": None,
              "runs": [{"run_id": "r1", "name": 'run "a" \\ b', "state": "completed",
                        "checkpoints": []}]}]
    dot = graph(steps, highlight=f"{evil}@v1")
    statements = _statements(dot)
    assert len([s for s in statements if s.startswith('"v:') and "->" not in s]) == 1
    assert len([s for s in statements if s.startswith('"r:') and "->" not in s]) == 1
    assert not any(s.startswith('"pwn"') for s in statements), statements
    assert 'x\\"]; \\"pwn\\"' in dot and 'run \\"a\\" \\\\ b' in dot
