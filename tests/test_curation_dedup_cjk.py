"""Near dedup on Chinese text compares character 3-grams (a run of Han characters is not one
"word"), and language labels tell Japanese from Chinese (issue 9, item 9)."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from curation.datasets import load_rows
from curation.dedup import dedup
from curation.importer import import_file
from curation.near_dedup import TOKEN, shingles
from curation.scoring import score

REAL = Path(os.environ.get("STUDIO_REAL_DATA", Path(__file__).resolve().parents[1].parent
                           / "shared" / "data" / "real"))
HAN = re.compile(r"[\u4e00-\u9fff]")


def _real(name: str) -> list[dict]:
    if not (REAL / name).exists():
        pytest.skip(f"real data not found: {REAL / name}")
    return json.loads((REAL / name).read_text(encoding="utf-8"))


def _one_char_variant(text: str, rng: random.Random) -> str:
    spots = [m.start() for m in HAN.finditer(text)]
    k = rng.choice(spots)
    return text[:k] + ("的" if text[k] != "的" else "是") + text[k + 1:]


def _one_word_variant(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    words[rng.randrange(len(words))] = "zebra"
    return " ".join(words)


def _shingle_set(text: str, n: int = 3) -> set:
    toks = TOKEN.findall(text.lower())
    toks = toks + [""] * (n - len(toks)) if 0 < len(toks) < n else toks
    return {tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)}


def _recall(store, tmp_path, name: str, rows: list[dict], vary, n: int, seed: int) -> float:
    """Share of planted one-unit variants that near dedup flags (each is a later copy), among
    those whose true Jaccard to their original is at/above the threshold (0.8)."""
    rng = random.Random(seed)
    picked = rng.sample(range(len(rows)), n)
    planted = [{**rows[k], "output": vary(rows[k]["output"], rng), "id": f"variant-{k}"}
               for k in picked]
    records = [{**r, "id": f"row-{k}"} for k, r in enumerate(rows)] + planted
    f = tmp_path / f"{name}.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records))
    import_file(store, f, name)
    got = dedup(store, name, "near", threshold=0.8)
    kept = {r["id"] for r in load_rows(store, got["ref"])}
    text = {r["id"]: "\n".join(m["content"] for m in r["messages"])
            for r in load_rows(store, f"{name}@v1")}
    true = [p["id"] for k, p in zip(picked, planted, strict=True)
            if _jaccard(text[p["id"]], text[f"row-{k}"]) >= 0.8]
    assert len(true) >= 0.8 * n  # most variants are real near duplicates
    return sum(pid not in kept for pid in true) / len(true)


def _jaccard(a: str, b: str) -> float:
    x, y = _shingle_set(a), _shingle_set(b)
    return len(x & y) / len(x | y)


def test_near_dedup_finds_one_character_variants_in_chinese(store, tmp_path):
    zh = [r for r in _real("llamafactory_alpaca_zh_demo.json") if HAN.search(r["output"])]
    en = [r for r in _real("llamafactory_alpaca_en_demo.json") if " " in r["output"]]
    zh_recall = _recall(store, tmp_path, "zh", zh, _one_char_variant, 200, seed=0)
    en_recall = _recall(store, tmp_path, "en", en, _one_word_variant, 200, seed=0)
    assert zh_recall >= 0.95 and zh_recall >= en_recall - 0.03, (zh_recall, en_recall)


def test_cjk_tokens_are_characters():
    sh, off = shingles(["今天天气很好", "今天天气很好", "今天天气不好", "hello big world"], 3)
    sets = [set(sh[off[k]:off[k + 1]].tolist()) for k in range(4)]
    assert len(sets[0]) == 4 and sets[0] == sets[1]  # 6 characters: 4 character 3-grams
    assert len(sets[0] & sets[2]) == 2  # one character changed: 2 of 4 shingles survive
    assert len(sets[3]) == 1  # English: word 3-grams as before


def test_language_labels_tell_japanese_from_chinese(store, tmp_path):
    rows = [
        {"id": "ja", "instruction": "日本の首都はどこですか？", "output": "日本の首都は東京です。"},
        {"id": "ja-kana", "instruction": "カタカナで書いてください", "output": "コンピューター"},
        {"id": "zh", "instruction": "中国的首都是哪里？", "output": "中国的首都是北京。"},
        {"id": "zh-quoting-ja", "instruction": "日语里“の”是什么意思？请用中文详细解释这个助词的用法和例子。",
         "output": "这个助词表示所属关系，相当于中文里的“的”，例如我的书、老师的朋友、学校的图书馆。"},
        {"id": "ko", "instruction": "한국의 수도는 어디입니까?", "output": "서울입니다."},
    ]
    rows += [{"id": f"zh-real-{k}", **r} for k, r in
             enumerate(_real("llamafactory_alpaca_zh_demo.json")[:20])]
    f = tmp_path / "lang.jsonl"
    f.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    import_file(store, f, "lang")
    got = score(store, "lang", "heuristic")
    labels = {r["id"]: r["label"] for r in store.query(
        "SELECT r.id, s.label FROM scores s JOIN rows r ON r.rid = s.rid "
        "WHERE s.dataset = 'lang' AND s.version = ? AND s.name = 'lang'",
        [got["ref"].split("@")[1]])}
    assert labels["ja"] == labels["ja-kana"] == "ja"
    assert labels["zh"] == labels["zh-quoting-ja"] == "zh"
    assert labels["ko"] == "ko"
    assert all(labels[f"zh-real-{k}"] == "zh" for k in range(20))
