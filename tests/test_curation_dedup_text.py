"""Dedup compares whole conversations, and exact dedup normalizes only case, whitespace and
Unicode form (issue 9, items 1 and 3)."""

from __future__ import annotations

import json
import random

import pyarrow as pa

from curation.datasets import load_rows
from curation.dedup import EXACT_NORMALIZATION, dedup, exact_normalize
from curation.importer import import_file

GREETING = "Hi! I need some help with a question, if you have a minute."
GOODBYE = "You're welcome! Let me know if there is anything else I can help with."
TOPICS = ["sourdough starters", "bicycle gear ratios", "tax brackets in Norway", "orbital decay",
          "composting in winter", "the rules of cricket", "sorting algorithms", "tide tables",
          "bee colony collapse", "watercolour glazing", "SQL window functions", "moss gardens"]


def _write(tmp_path, name, records) -> str:
    f = tmp_path / f"{name}.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    return str(f)


def _conversation(topic: str, rng: random.Random, system: str | None = None) -> dict:
    """ShareGPT record: same opening and closing as every other, a different middle."""
    words = [f"{topic.split()[0]}{k}" for k in range(30)]
    middle_q = f"Tell me about {topic}: " + " ".join(rng.sample(words, 20))
    middle_a = f"About {topic}, " + " ".join(rng.sample(words, 25))
    turns = [{"from": "human", "value": GREETING}, {"from": "gpt", "value": "Of course, go ahead."},
             {"from": "human", "value": middle_q}, {"from": "gpt", "value": middle_a},
             {"from": "human", "value": "Thanks, that's all."}, {"from": "gpt", "value": GOODBYE}]
    if system:
        turns.insert(0, {"from": "system", "value": system})
    return {"conversations": turns}


def test_conversations_sharing_first_and_last_turns_are_not_duplicates(store, tmp_path):
    rng = random.Random(0)
    records = [_conversation(t, rng) for t in TOPICS]
    # a true duplicate of conversation 3 (case and spacing differ) and a copy of conversation 5
    # that differs only in its system prompt
    dup = json.loads(json.dumps(records[3]))
    dup["conversations"][3]["value"] = "  " + dup["conversations"][3]["value"].upper() + "\n"
    other_system = _conversation(TOPICS[5], random.Random(99), system="Answer as a pirate.")
    records[5] = _conversation(TOPICS[5], random.Random(99))
    records += [dup, other_system]
    for k, r in enumerate(records):
        r["id"] = {12: "dup", 13: "pirate"}.get(k, f"c{k}")
    import_file(store, _write(tmp_path, "chats", records), "chats")
    got = dedup(store, "chats", "exact", out="exact")
    assert (got["n_clusters"], got["n_flagged"]) == (1, 1)
    kept = {r["id"] for r in load_rows(store, got["ref"])}
    assert len(kept) == len(records) - 1 and "dup" not in kept
    # near and semantic dedup see the different middles too: only the true duplicate and the
    # copy with another system prompt (a near duplicate: 4 words differ) are flagged
    for method in ("near", "semantic"):
        got = dedup(store, "chats@v1", method, out=method)
        everyone = {r["id"] for r in load_rows(store, got["ref"], include_dups=True)}
        flagged = everyone - {r["id"] for r in load_rows(store, got["ref"])}
        assert flagged == {"dup", "pirate"}, method


def test_alpaca_rows_differing_only_in_system_prompt_are_distinct(store, tmp_path):
    import_file(store, _write(tmp_path, "sys", [
        {"instruction": "Greet me", "output": "Hello", "system": "Be formal."},
        {"instruction": "Greet me", "output": "Hello", "system": "Be casual."},
        {"instruction": "greet  ME", "output": "hello", "system": "be formal."}]), "sys")
    got = dedup(store, "sys", "exact")
    assert (got["n_clusters"], got["n_flagged"]) == (1, 1)


MEANINGFUL = [("x = a + b", "x = a - b"), ("5 degrees", "-5 degrees"), ("C++", "C#"),
              ("a < b", "a > b"), ("Is it done?", "Is it done!"), ("3.14", "314")]
SAME = [("Hello   World", "hello world"), ("ＡＢＣ　１２３", "abc 123"), ("x\u00a0=\u00a0ﬁ", "X = fi"),
        (" Tabs\tand\nnewlines ", "tabs and newlines")]


def test_exact_normalization_keeps_operators_signs_and_symbols():
    for a, b in MEANINGFUL:
        na, nb = exact_normalize(pa.array([a, b])).to_pylist()
        assert na != nb, (a, b)
    for a, b in SAME:
        na, nb = exact_normalize(pa.array([a, b])).to_pylist()
        assert na == nb, (a, b)
    assert "symbols are kept" in EXACT_NORMALIZATION


def test_exact_dedup_in_store_keeps_meaningful_differences(store, tmp_path):
    records = [{"instruction": a, "output": "ok"} for pair in MEANINGFUL + SAME for a in pair]
    import_file(store, _write(tmp_path, "ops", records), "ops")
    got = dedup(store, "ops", "exact")
    assert (got["n_clusters"], got["n_flagged"]) == (len(SAME), len(SAME))
    kept = {r["instruction"] for r in load_rows(store, got["ref"])}
    assert all(a in kept and b in kept for a, b in MEANINGFUL)


def test_dedup_help_says_what_exact_normalizes():
    from click.testing import CliRunner

    import studio.cli.curation_cmds  # noqa: F401  (registers the curation commands)
    from studio.cli import cli

    out = CliRunner().invoke(cli, ["dedup", "--help"], terminal_width=200).output
    assert "NFKC" in out and "case" in out and "whitespace" in out
    assert "operators, signs and symbols count" in out
    assert "[exact|near|semantic]" in out


def test_conversation_text_keeps_tool_fields_and_both_paths_agree():
    import duckdb

    from curation.dedup import _turns_sql

    plain = [{"role": "user", "content": "Weather in Oslo?"},
             {"role": "assistant", "content": "Sunny."}]
    with_tool = [plain[0], {"role": "assistant", "content": "",
                            "tool_calls": [{"name": "weather", "arguments": '{"city": "Oslo"}'}]},
                 plain[1]]
    other_tool = json.loads(json.dumps(with_tool))
    other_tool[1]["tool_calls"][0]["arguments"] = '{"city": "Bergen"}'
    con = duckdb.connect()

    def text(messages, roles=True, force_slow=False):
        sql = _turns_sql(roles)
        if force_slow:
            sql = sql.replace("CASE WHEN", "CASE WHEN FALSE AND")
        return con.execute(f"SELECT {sql} FROM (SELECT CAST(? AS JSON) AS messages) r",
                           [json.dumps(messages)]).fetchone()[0]

    assert text(plain) == "user: Weather in Oslo?\nassistant: Sunny."
    assert text(plain) == text(plain, force_slow=True)
    assert text(plain, roles=False) == text(plain, roles=False, force_slow=True)
    assert "weather" in text(with_tool) and text(with_tool) != text(other_tool)
