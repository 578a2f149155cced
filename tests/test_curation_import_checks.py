"""Import refuses or reports what it would otherwise change silently (issue 9, items 4, 7, 8):
malformed CSV names its line, wrapped/BOM/mixed JSON get specific messages, and every change
made on the way in (coercion, replaced ids, dropped fields, assistant-first conversations) is
counted in the summary and refused by --strict. Real files from ../shared/data/real where they
fit, small files written here for the rest; a real DuckDB store; the real CLI in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest

from curation.datasets import load_rows
from curation.export import export
from curation.importer import import_file
from kernel.errors import StudioError
from tests.conftest import IMPORT_PATHS, store_on_path
from tests.helpers.cli import studio_process as studio

REPO = Path(__file__).resolve().parents[1]
# CI clones the repo with shared/ beside it; a checkout elsewhere can point STUDIO_REAL_DATA at it
REAL = Path(os.environ.get("STUDIO_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
STUDIO = Path(sys.executable).parent / "studio"



@pytest.fixture(params=IMPORT_PATHS)
def store(request, workspace):
    """Every test here runs on both import paths (see tests.conftest.store_on_path)."""
    yield from store_on_path(workspace, request.param)

def real(name: str) -> Path:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (shared/ beside the repo)")
    return path


def snapshot(store) -> dict:
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]
            for t in ("datasets", "rows", "versions", "version_rows")}


def alpaca_csv(tmp_path: Path, n: int = 40) -> tuple[Path, list[dict]]:
    """The first `n` real alpaca demo rows written as a well-formed CSV."""
    rows = json.loads(real("llamafactory_alpaca_en_demo.json").read_text())[:n]
    path = tmp_path / "alpaca.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["instruction", "input", "output"])
        w.writeheader()
        w.writerows(rows)
    return path, rows


# --- 4. malformed CSV ------------------------------------------------------------------------

def test_broken_csv_quote_is_an_error_naming_the_line(store, tmp_path):
    good, rows = alpaca_csv(tmp_path)
    import_file(store, good, "good")
    assert [r["response"] for r in load_rows(store, "good")] == [r["output"] for r in rows]
    # the same real rows with one record whose quote is not doubled, after record 5
    text = good.read_text()
    head_end = 0
    for _ in range(6):  # header + 5 records (fields may span lines)
        head_end = _record_end(text, head_end)
    line = text[:head_end].count("\n") + 1
    bad = tmp_path / "broken.csv"
    bad.write_text(text[:head_end] + '"Say "hi" to everyone",,"hello"\n' + text[head_end:])
    before = snapshot(store)
    with pytest.raises(StudioError, match=rf"broken\.csv line {line}: malformed CSV: .*"
                                          r"must be doubled.*--lenient reads it anyway"):
        import_file(store, bad, "broken")
    assert snapshot(store) == before
    # asked for, the lenient mode reads it (the stray quotes are then the user's to check)
    assert import_file(store, bad, "broken", lenient=True)["n_rows"] >= len(rows)


def _record_end(text: str, pos: int) -> int:
    """Offset just after the CSV record starting at `pos` (newlines inside quotes skipped)."""
    quoted = False
    for i in range(pos, len(text)):
        if text[i] == '"':
            quoted = not quoted
        elif text[i] == "\n" and not quoted:
            return i + 1
    return len(text)


def test_csv_row_with_extra_fields_is_an_error(store, tmp_path):
    bad = tmp_path / "wide.csv"
    bad.write_text('question,answer\n"a","b"\n"c","d","e"\n')
    with pytest.raises(StudioError, match=r"wide\.csv line 3: malformed CSV: 3 fields where "
                                          r"the header has 2"):
        import_file(store, bad, "wide")


def test_cli_lenient_flag_and_help(tmp_path):
    bad = tmp_path / "broken.csv"
    bad.write_text('question,answer\n"ok","fine"\n"Broken "quote,"x"\n')
    ws = tmp_path / "ws"
    got = studio(ws, "import", str(bad), "--name", "b")
    assert got.returncode == 1 and "line 3: malformed CSV" in got.stderr + got.stdout
    assert "Traceback" not in got.stderr
    assert studio(ws, "import", str(bad), "--name", "b", "--lenient", "--json").returncode == 0
    helptext = studio(ws, "import", "--help").stdout
    for option in ("--lenient", "--strict", "--field"):
        assert option in helptext


# --- 7. clear, specific messages -------------------------------------------------------------

def test_top_level_data_key_names_the_file_and_offers_field(store, tmp_path):
    rows = json.loads(real("llamafactory_alpaca_en_demo.json").read_text())
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"version": "1.0", "data": rows}))
    before = snapshot(store)
    with pytest.raises(StudioError, match=r"wrapped\.json: the records are in a list under the "
                                          r"top-level key 'data' \(999 items\).*use --field data"):
        import_file(store, wrapped, "w")
    assert snapshot(store) == before
    got = import_file(store, wrapped, "w", field="data")
    assert got["n_rows"] == 999 and got["format"] == "alpaca"
    assert load_rows(store, "w")[3]["response"] == rows[3]["output"]
    with pytest.raises(StudioError, match=r"record 1: --field items: no list under the key"):
        import_file(store, wrapped, "w2", field="items")


def test_json_array_with_bom_imports(store, tmp_path):
    raw = real("llamafactory_alpaca_en_demo.json").read_bytes()
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + raw)
    got = import_file(store, bom, "bom")
    assert got["n_rows"] == 999 and got["format"] == "alpaca"
    first = json.loads(raw)[0]
    assert load_rows(store, "bom")[0]["response"] == first["output"]


def test_mixed_formats_say_which_rows_look_like_which(store, tmp_path):
    alpaca = json.loads(real("llamafactory_alpaca_en_demo.json").read_text())[:5]
    glaive = json.loads(real("llamafactory_glaive_toolcall_en_demo.json").read_text())[:3]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in alpaca + glaive))
    with pytest.raises(StudioError, match=r"mixed\.jsonl: the lines are in different formats: "
                                          r"alpaca \(5 rows: lines 1, 2, 3, \.\.\.\); "
                                          r"sharegpt \(3 rows: lines 6, 7, 8\)"):
        import_file(store, mixed, "mixed")


def test_messages_suggest_only_options_that_exist(store, tmp_path):
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"q": "hello", "a": "world"}\n')
    with pytest.raises(StudioError) as err:
        import_file(store, odd, "odd")
    assert "--map" in str(err.value) and "--mapping" not in str(err.value)
    assert str(err.value).startswith(f"{odd}: cannot detect the format")
    # a JSONL whose lines hold lists of objects is not taken for a {"data": [...]} wrapper
    with pytest.raises(StudioError, match=r"selfinstruct_user_oriented\.jsonl: cannot detect"):
        import_file(store, real("selfinstruct_user_oriented.jsonl"), "si")
    helptext = studio(tmp_path / "ws", "import", "--help").stdout
    assert "--map" in helptext and "--mapping" not in helptext


# --- 8. say what was changed -----------------------------------------------------------------

def test_changes_counted_on_real_file(store):
    # self-instruct rows keep their examples in `instances` (a list) and carry extra keys
    got = import_file(store, real("selfinstruct_user_oriented.jsonl"), "si",
                      mapping={"instruction": "instruction", "response": "instances"})
    ch = got["changes"]
    assert ch["coerced_to_text"] == {"rows": 252, "first_line": 1, "field": "instances"}
    assert ch["dropped_fields"]["motivation_app"] == {"rows": 252, "first_line": 1}
    assert "ids_replaced" not in ch and "starts_with_assistant" not in ch
    row = load_rows(store, "si")[0]
    assert json.loads(row["response"])[0]["input"].startswith("If you have any questions")
    with pytest.raises(StudioError, match=r"--strict refuses the import: 252 rows had non-text "
                                          r"values stored as text \(first: line 1, field "
                                          r"instances\).*fields dropped: motivation_app"):
        import_file(store, real("selfinstruct_user_oriented.jsonl"), "si2", strict=True,
                    mapping={"instruction": "instruction", "response": "instances"})


def test_each_change_is_counted_and_refused_by_strict(store, tmp_path):
    f = tmp_path / "changes.jsonl"
    records = [
        {"id": "a", "messages": [{"role": "user", "content": "hi"},
                                 {"role": "assistant", "content": 42}]},
        {"id": "a", "messages": [{"role": "user", "content": "x"},
                                 {"role": "assistant", "content": "y"}], "note": "extra"},
        {"id": "c", "messages": [{"role": "system", "content": "s"},
                                 {"role": "assistant", "content": "Hello! How can I help?"},
                                 {"role": "user", "content": "thanks"},
                                 {"role": "assistant", "content": "bye"}]},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in records))
    before = snapshot(store)
    with pytest.raises(StudioError, match="--strict refuses"):
        import_file(store, f, "c", strict=True)
    assert snapshot(store) == before
    got = import_file(store, f, "c")
    assert got["changes"] == {
        "coerced_to_text": {"rows": 1, "first_line": 1, "field": "messages: content"},
        "ids_replaced": {"rows": 2, "first_line": 1},
        "dropped_fields": {"note": {"rows": 1, "first_line": 2}},
        "starts_with_assistant": {"rows": 1, "first_line": 3},
    }
    assert load_rows(store, "c")[0]["response"] == "42"
    # a clean file has nothing to report and passes --strict
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps(records[1] | {"id": "z"}) .replace(', "note": "extra"', "") + "\n")
    assert import_file(store, clean, "clean", strict=True)["changes"] == {}


def test_cli_prints_changes_and_json_counts(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text('{"id": "x", "instruction": "a", "output": 1.5, "extra": true}\n'
                 '{"id": "x", "instruction": "b", "output": "c"}\n')
    ws = tmp_path / "ws"
    got = studio(ws, "import", str(f), "--name", "c")
    assert got.returncode == 0, got.stderr
    assert "1 rows had non-text values stored as text (first: line 1, field output)" in got.stdout
    assert "2 source ids replaced because they repeat" in got.stdout
    assert "fields dropped: extra (1 rows, first line 1)" in got.stdout
    js = json.loads(studio(ws, "import", str(f), "--name", "c2", "--json").stdout)
    assert js["changes"]["ids_replaced"]["rows"] == 2
    refused = studio(ws, "import", str(f), "--name", "c3", "--strict")
    assert refused.returncode == 1 and "--strict refuses the import" in refused.stderr


def test_exported_split_comes_back_on_reimport(store, tmp_path):
    from curation.split import split

    import_file(store, real("llamafactory_identity.json"), "ident")
    split(store, "ident", 0.2, seed=0)
    before = {r["id"]: r["split"] for r in load_rows(store, "ident")}
    assert set(before.values()) == {"train", "heldout"}
    out = tmp_path / "ident.jsonl"
    export(store, "ident", out)
    got = import_file(store, out, "again")
    assert got["info"]["split_from_source"] and got["info"]["heldout"] == \
        sum(s == "heldout" for s in before.values())
    assert {r["id"]: r["split"] for r in load_rows(store, "again")} == before
    assert "dropped_fields" not in got["changes"]
