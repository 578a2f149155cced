"""Datasets and Curate pages (issue 11): versions selected after a step, deep links, import
names, export downloads, split and suite, row detail. Real pages in AppTest over a real
DuckDB workspace; the clicks a browser is needed for are in test_ui_browser_curate.py."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kernel.store import Store
from tests.helpers.apptest import page

REPO = Path(__file__).resolve().parents[1]
PAGES = REPO / "studio" / "views"
ROWS = [{"instruction": f"Say word {i}", "output": f"word {i} " * (i % 4 + 1),
         "category": "odd" if i % 2 else "even"} for i in range(20)]
ROWS += [dict(ROWS[3]), dict(ROWS[3])]  # one cluster of three exact duplicates
TABS = [":material/content_copy: Dedup", ":material/tune: Scores & filters",
        ":material/call_split: Split & suite", ":material/account_tree: Versions",
        ":material/policy: Decontamination"]


@pytest.fixture
def words(ui_env, tmp_path) -> Store:
    from curation.importer import import_file

    path = tmp_path / "words.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    import_file(ui_env, path, "words")
    return ui_env


def texts(at: AppTest, kind: str) -> list[str]:
    return [str(e.value) for e in getattr(at, kind)]


def test_deep_link_opens_the_dataset_and_version_and_the_url_follows_the_pickers(words):
    from curation.dedup import dedup
    from curation.scoring import score

    dedup(words, "words", method="exact")  # v2
    score(words, "words@v2")  # v3
    at = page("curate")
    at.query_params["dataset"] = "words"
    at.query_params["version"] = "v2"
    at.run()
    assert not at.exception
    assert at.selectbox(key="curate_version").value == "v2"  # not the newest (v3)
    at.selectbox(key="curate_version").set_value("v1").run()
    assert at.query_params["version"] == "v1" and at.query_params["dataset"] == "words"
    at = page("datasets")
    at.query_params["dataset"] = "words"
    at.query_params["version"] = "v2"
    at.run()
    assert at.selectbox(key="browse_version").value == "v2"
    assert any("22 rows match" in c for c in texts(at, "caption"))
    bad = page("curate")
    bad.query_params["dataset"] = "words"
    bad.query_params["version"] = "v9"  # gone or mistyped: the newest, no error
    bad.run()
    assert not bad.exception and bad.selectbox(key="curate_version").value == "v3"


def curate_tab(tab: str) -> AppTest:
    """The Curate page with one of its (lazily run) tabs open."""
    at = page("curate")
    at.session_state["curate_tab"] = next(t for t in TABS if t.endswith(tab))
    return at.run()


def test_split_selects_the_new_version_and_a_suite_is_made_from_its_held_out_rows(words):
    from evals.suites import load_suite

    at = curate_tab("Split & suite")
    assert at.selectbox(key="curate_version").value == "v1"
    at.slider(key="split_share").set_value(0.25).run()
    next(b for b in at.button if b.label == "Save split as new version").click().run()
    assert not at.exception
    assert at.selectbox(key="curate_version").value == "v2"  # the version the step made
    assert any("Saved ` words@v2 `" in s and "held out" in s for s in texts(at, "success"))
    name_box = next(t for t in at.text_input if t.label == "Suite name")
    assert name_box.value == "words-heldout"
    at.multiselect(key="suite_metrics").set_value(["exact_match", "rouge_l"])
    next(b for b in at.button if b.label == "Create suite").click().run()
    assert not at.exception
    suite = load_suite(words, "words-heldout")
    assert suite.source == "words@v2" and suite.metrics == ["exact_match", "rouge_l"]
    assert 3 <= len(suite.rows) <= 7  # a quarter of 22 rows
    assert any("Created suite ` words-heldout `" in s for s in texts(at, "success"))
    at.run()  # the name is now taken: the next free one is offered
    assert next(t for t in at.text_input if t.label == "Suite name").value == "words-heldout-2"


def test_suite_from_a_version_without_held_out_rows_says_what_to_do(words):
    at = curate_tab("Split & suite")
    next(b for b in at.button if b.label == "Create suite").click().run()
    assert not at.exception
    assert any("held-out split is empty" in e for e in texts(at, "error"))


def test_importing_under_a_taken_name_offers_a_free_one_and_never_says_cli_words(words,
                                                                               tmp_path):
    from curation.datasets import list_datasets

    path = tmp_path / "words.jsonl"  # its default name, "words", is taken
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:5]))
    at = page("datasets").run()
    at.radio(key="import_source").set_value("Path or Hugging Face name").run()
    next(t for t in at.text_input if t.label == "Path or dataset name").input(str(path)).run()
    name_box = next(t for t in at.text_input if t.label == "Dataset name")
    assert name_box.value == "words-2"
    assert any("is taken" in c for c in texts(at, "caption"))
    name_box.input("words")
    next(b for b in at.button if b.label == "Import").click().run()
    errors = texts(at, "error")
    assert errors and "already exists" in errors[0] and "words-2" in errors[0]
    assert "--" not in " ".join(errors)
    assert [d["name"] for d in list_datasets(words)] == ["words"]  # nothing written
    next(t for t in at.text_input if t.label == "Dataset name").input("words-2")
    next(b for b in at.button if b.label == "Import").click().run()
    assert any("Imported 5 rows" in s for s in texts(at, "success"))


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf"])
def test_export_download_bytes_import_back_to_the_same_rows(words, tmp_path, fmt):
    """What the Download button serves: the kept rows, in a file that imports again."""
    from curation.datasets import load_rows
    from curation.dedup import dedup
    from curation.importer import import_file
    from studio.ui.data import download_name, export_download

    made = dedup(words, "words", method="exact")["ref"]
    data = export_download(words, made, fmt)
    name = download_name(made, fmt)
    assert name == {"jsonl": "words-v2.jsonl", "parquet": "words-v2.parquet",
                    "hf": "words-v2.zip"}[fmt]
    target = tmp_path / name
    target.write_bytes(data)
    if fmt == "hf":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            assert any(n.endswith(".arrow") for n in z.namelist()), z.namelist()
            z.extractall(tmp_path / "hf")
        target = tmp_path / "hf"
    import_file(words, target, "back")
    back = sorted(r["id"] for r in load_rows(words, "back"))
    assert back == sorted(r["id"] for r in load_rows(words, made))
    assert len(back) == 20  # the two flagged duplicates are left out


def test_row_detail_shows_scores_duplicate_flag_and_cluster(words):
    """The detail the Datasets page draws for a ticked row (the tick itself: browser test)."""
    from curation.browse import browse
    from curation.dedup import dedup
    from curation.scoring import score

    dedup(words, "words", method="exact")
    ref = score(words, "words@v2")["ref"]
    rows, _ = browse(words, ref, "is_dup=true")
    script = (
        "import json, sys\n"
        "from studio.ui.session import store\n"
        f"row = json.loads({json.dumps(json.dumps(rows[0], default=str))})\n"
        "sys.argv = ['x']\n"
    )
    at = AppTest.from_string(script + _detail_source(ref), default_timeout=30).run()
    assert not at.exception
    shown = "\n".join(texts(at, "text"))
    assert "duplicate: yes" in shown and f"cluster: {rows[0]['dup_cluster']} (3 rows)" in shown
    assert re.search(r"keeper: \S+", shown)
    frame = at.dataframe[0].value
    assert "resp_chars" in set(frame["score"]) and len(frame) >= 5


def _detail_source(ref: str) -> str:
    """The Datasets page's row_detail function, run on its own (the page runs top to bottom)."""
    src = (PAGES / "datasets.py").read_text()
    body = src[src.index("def row_detail"):src.index("def edit_row")]
    return ("import pandas as pd\nimport streamlit as st\n"
            "from curation.dedup import cluster_members\n"
            "from studio.ui.session import call\nfrom studio.ui.widgets import chat_bubbles\n"
            + body + f"\nrow_detail({ref!r}, row)\n")


def test_browse_table_shows_the_columns_that_matter_first(words):
    from curation.browse import browse
    from curation.scoring import score
    from studio.ui.browse import table

    ref = score(words, "words")["ref"]
    rows, _ = browse(words, ref, page_size=5)
    cols = list(table(rows).columns)
    assert cols[:4] == ["id", "instruction", "response", "category"]
    assert cols[4].startswith("score: ") and cols.index("is_dup") > cols.index(cols[4])
    assert table([]).columns[0] == "id"  # an empty page still has its header


def test_no_command_line_words_in_the_web_ui():
    """The pages speak of buttons and fields, never of `--flags`."""
    flag = re.compile(r"""["'][^"'\n]*\s--[a-z][a-z-]+""")
    for path in [*PAGES.glob("*.py"), *(REPO / "studio" / "ui").glob("*.py")]:
        hits = [m.group(0) for m in flag.finditer(path.read_text())]
        assert not hits, f"{path.name}: {hits}"


def test_only_the_open_curate_tab_runs(words):
    """Lazy tabs keep a rerun short: the hidden tabs' reads (counts, sliders) are skipped."""
    at = curate_tab("Dedup")
    assert not at.exception
    assert "Rows kept" not in [m.label for m in at.metric]
    at = curate_tab("Scores & filters")
    assert not at.exception
    assert "Rows kept" in [m.label for m in at.metric]
