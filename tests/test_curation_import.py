"""Import: every format normalizes to canonical rows; every bad input names its place and changes
nothing in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.datasets import load_rows, resolve_ref
from curation.importer import import_file, preview
from kernel.errors import NotFoundError, StudioError
from kernel.workspace import Workspace
from tests.conftest import IMPORT_PATHS, store_on_path

DATA = Path(__file__).parent / "data"



@pytest.fixture(params=IMPORT_PATHS)
def store(request, workspace):
    """Every test here runs on both import paths (see tests.conftest.store_on_path)."""
    yield from store_on_path(workspace, request.param)

def snapshot(store) -> dict:
    """Row counts of every curation table: equal before and after a failed import."""
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]
            for t in ("datasets", "rows", "versions", "version_rows", "scores")}


def test_alpaca_jsonl_keeps_ids_lines_system_tags(store):
    got = import_file(store, DATA / "alpaca.jsonl", "alp")
    assert got["format"] == "alpaca" and got["n_rows"] == 3 and got["version"] == "v1"
    rows = {r["id"]: r for r in load_rows(store, "alp")}
    assert rows["a1"]["instruction"] == "Translate to French\n\ncat"  # input appended
    assert rows["a1"]["response"] == "chat"
    assert rows["a1"]["tags"] == ["fr", "easy"] and rows["a1"]["category"] == "translate"
    assert rows["a3"]["system"] == "Answer briefly."
    assert rows["a3"]["messages"][0] == {"role": "system", "content": "Answer briefly."}
    lines = {r["id"]: r["source_line"] for r in store.query("SELECT id, source_line FROM rows")}
    assert lines == {"a1": 1, "a2": 2, "a3": 4}  # the blank line 3 is counted
    hashes = store.query("SELECT content_hash FROM rows")
    assert all(len(h["content_hash"]) == 32 for h in hashes)


@pytest.mark.parametrize("layout, expected", [
    # a blank line in a file with no final newline: its bytes alone would look like none
    (b"{A}\n\n{B}", [1, 3]),
    (b"{A}\r\n{B}\r\n", [1, 2]),  # CRLF: longer lines, none blank
    (b"  {A}  \n\t\n{B}\n", [1, 3]),  # whitespace around a record, a whitespace-only line
    (b"{A}\n{B}", [1, 2]),
    (b"\n{A}\n{B}\n\n", [2, 3]),
])
def test_jsonl_source_lines_count_blank_lines_however_the_file_is_laid_out(store, tmp_path,
                                                                          layout, expected):
    a = json.dumps({"instruction": "a", "output": "x"}).encode()
    b = json.dumps({"instruction": "b", "output": "y"}).encode()
    f = tmp_path / "layout.jsonl"
    f.write_bytes(layout.replace(b"{A}", a).replace(b"{B}", b))
    import_file(store, f, "lay")
    got = store.query("SELECT instruction, source_line FROM rows ORDER BY source_line")
    assert [(r["instruction"], r["source_line"]) for r in got] == list(zip("ab", expected, strict=True))


def test_chat_multiturn_stays_a_conversation(store):
    import_file(store, DATA / "chat.jsonl", "chat")
    first = load_rows(store, "chat")[0]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant", "user",
                                                      "assistant"]
    assert (first["system"], first["instruction"], first["response"]) == \
        ("You are terse.", "Hi", "Goodbye.")
    assert store.query("SELECT max(n_turns) AS n FROM rows")[0]["n"] == 4


def test_sharegpt_json_array_maps_roles(store):
    got = import_file(store, DATA / "sharegpt.json", "sg")
    assert got["format"] == "sharegpt"
    rows = {r["id"]: r for r in load_rows(store, "sg")}
    assert rows["s1"]["messages"][0] == {"role": "system", "content": "Be kind."}
    assert rows["s2"]["response"] == "6" and rows["s2"]["instruction"] == "Sum 1 and 2"


def test_csv_question_answer_and_prompt_completion(store):
    assert import_file(store, DATA / "qa.csv", "qa")["format"] == "qa"
    qa = load_rows(store, "qa")
    assert qa[0]["response"] == "Blue, usually." and qa[1]["category"] == "literature"
    assert import_file(store, DATA / "prompt_completion.jsonl", "pc")["format"] == \
        "prompt_completion"
    assert load_rows(store, "pc")[1]["response"] == " blue"


def test_parquet_and_hf_folder(store, tmp_path):
    import datasets

    records = [{"question": f"q{i}", "answer": f"a{i}", "id": f"r{i}"} for i in range(4)]
    ds = datasets.Dataset.from_list(records)
    ds.to_parquet(str(tmp_path / "x.parquet"))
    ds.save_to_disk(str(tmp_path / "hf"))
    import_file(store, tmp_path / "x.parquet", "pq")
    import_file(store, tmp_path / "hf", "hf")
    for name in ("pq", "hf"):
        rows = load_rows(store, name)
        assert [r["id"] for r in rows] == ["r0", "r1", "r2", "r3"]
        assert rows[2]["instruction"] == "q2"


def test_mapping_overrides_detection(store, tmp_path):
    f = tmp_path / "odd.jsonl"
    f.write_text('{"q": "hello", "a": "world", "key": "k1"}\n')
    with pytest.raises(StudioError, match="cannot detect the format"):
        import_file(store, f, "odd")
    got = import_file(store, f, "odd", mapping={"instruction": "q", "response": "a", "id": "key"})
    assert got["format"] == "alpaca"
    assert load_rows(store, "odd")[0]["id"] == "k1"


def test_duplicate_source_ids_are_replaced_by_stable_ids(store, tmp_path):
    f = tmp_path / "dups.jsonl"
    lines = [{"id": "same", "instruction": "x", "output": "y"},
             {"id": "same", "instruction": "x", "output": "y"},
             {"id": "u", "instruction": "p", "output": "q"}]
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    import_file(store, f, "d1")
    import_file(store, f, "d2")
    ids1 = [r["id"] for r in load_rows(store, "d1")]
    assert len(set(ids1)) == 3 and "u" in ids1 and "same" not in ids1
    assert ids1 == [r["id"] for r in load_rows(store, "d2")]  # stable across imports


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


BAD_INPUTS = [
    ("malformed.jsonl",
     b"".join(b'{"instruction": "i", "output": "o"}\n' for _ in range(56)) + b'{"instruction": "i",,}\n',
     r"malformed\.jsonl line 57: malformed JSON"),
    ("utf8.jsonl", b'{"instruction": "i", "output": "o"}\n{"instruction": "\xff\xfe", "output": "o"}\n',
     r"utf8\.jsonl line 2: invalid UTF-8"),
    ("missing.jsonl", b'{"instruction": "i", "output": "o"}\n{"instruction": "i"}\n',
     r"missing\.jsonl line 2: output: missing required field"),
    ("empty.jsonl", b"", r"empty\.jsonl: the file is empty"),
    ("blank.jsonl", b"\n\n", r"blank\.jsonl: the file is empty"),
    ("data.txt", b"hello", r"data\.txt: unsupported file extension '\.txt'"),
    ("badrole.jsonl", b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
                      b'{"messages": [{"role": "robot", "content": "a"}]}\n',
     r"badrole\.jsonl line 2: messages: role must be"),
    ("noreply.jsonl", b'{"messages": [{"role": "user", "content": "a"}, '
                      b'{"role": "assistant", "content": "b"}]}\n'
                      b'{"messages": [{"role": "user", "content": "a"}]}\n',
     r"noreply\.jsonl line 2: messages: no assistant turn"),
    ("array.json", b'[\n{"question": "a", "answer": "b"},\n{"question": "a" "answer": "b"}\n]',
     r"array\.json line 3: malformed JSON"),
    ("notobj.jsonl", b'{"instruction": "i", "output": "o"}\n[1, 2]\n',
     r"notobj\.jsonl line 2: expected a JSON object"),
    # an indented object is one (only text not starting with '{' is parsed for its type)
    ("notobj_str.jsonl", b'  {"instruction": "i", "output": "o"}\n\t{"instruction": "j", '
                         b'"output": "p"}\n"just text"\n7\n',
     r"notobj_str\.jsonl line 3: expected a JSON object"),
]


@pytest.mark.parametrize("fname,data,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_place_and_leaves_store_unchanged(store, tmp_path, fname, data, message):
    import_file(store, DATA / "alpaca.jsonl", "existing")
    before = snapshot(store)
    with pytest.raises(StudioError, match=message):
        import_file(store, _write(tmp_path, fname, data), "new")
    assert snapshot(store) == before
    assert [d["name"] for d in store.query("SELECT name FROM datasets")] == ["existing"]


def test_existing_name_and_missing_file_are_errors(store, tmp_path):
    import_file(store, DATA / "alpaca.jsonl", "taken")
    before = snapshot(store)
    with pytest.raises(StudioError, match="dataset 'taken' already exists"):
        import_file(store, DATA / "chat.jsonl", "taken")
    with pytest.raises(StudioError, match="file not found"):
        import_file(store, tmp_path / "nope.jsonl", "other")
    assert snapshot(store) == before


def test_preview_shows_format_and_rows_without_writing(store):
    before = snapshot(store)
    got = preview(DATA / "sharegpt.json", n=1)
    assert got["format"] == "sharegpt" and got["mapping"]["conversations"] == "conversations"
    assert len(got["rows"]) == 1 and got["rows"][0]["instruction"] == "How are you?"
    assert snapshot(store) == before


def test_resolve_ref_latest_and_missing(store):
    import_file(store, DATA / "alpaca.jsonl", "alp")
    assert resolve_ref(store, "alp") == ("alp", "v1")
    assert resolve_ref(store, "alp@v1") == ("alp", "v1")
    with pytest.raises(NotFoundError, match="no version 'v9'"):
        resolve_ref(store, "alp@v9")
    with pytest.raises(NotFoundError, match="does not exist"):
        load_rows(store, "ghost")


def test_both_paths_store_the_same_rows(tmp_path):
    """One transaction inside the store process and chunks through the file lock store the same
    rows, v1 entries and summary (exact duplicates, repeated ids, a split column included)."""
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "x", "instruction": "a", "output": "1", "split": "train"},
        {"id": "x", "instruction": "b", "output": "2", "split": "heldout"},
        {"instruction": "c", "output": "3", "split": "train", "extra": 5},
        {"instruction": "c", "output": "3", "split": "heldout"},
        {"instruction": "d", "output": 4, "split": "train"}]))
    files = [DATA / "alpaca.jsonl", DATA / "chat.jsonl", DATA / "sharegpt.json",
             DATA / "qa.csv", mixed]
    got = {}
    for path in IMPORT_PATHS:
        ws = Workspace.open(tmp_path / path.replace(" ", "-"))
        for store in store_on_path(ws, path):
            results = [import_file(store, f, f.stem) for f in files]
            assert [r["via"] for r in results] == [path] * len(files)
            got[path] = (
                store.query("SELECT * FROM rows ORDER BY rid"),
                store.query("SELECT * FROM version_rows ORDER BY rid"),
                store.query("SELECT dataset, version, n_rows, params FROM versions ORDER BY 1"),
                [{k: r[k] for k in ("n_rows", "format", "mapping", "changes", "info")}
                 for r in results])
    assert got["chunks"] == got["store process"]
    rows, entries = got["chunks"][0], got["chunks"][1]
    assert len(rows) == len(entries) == 3 + 2 + 2 + 2 + 5
    assert [e["split"] for e in entries[-5:]] == ["train", "heldout", "train", "heldout", "train"]
    # the exact duplicate (line 4 repeats line 3) gets its own id and uid
    assert len({r["id"] for r in rows[-5:]}) == len({r["uid"] for r in rows[-5:]}) == 5
