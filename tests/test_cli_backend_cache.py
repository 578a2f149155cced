"""The generation cache is keyed by backend identity: what one backend (or dtype) made is never
served as another's, generations record their maker, and `studio eval` / `studio compare` say
whose outputs they show. (The vLLM-then-HF version is in test_cli_json.py, marked vllm.)"""

from __future__ import annotations

import json

import pytest

from evals.backends import BACKENDS, CacheOnly, backend_identity, get_backend
from evals.generate import generate_cached
from evals.suites import load_suite, suite_from_file
from evals.types import SamplingConfig
from kernel.errors import StudioError
from kernel.store import Store
from studio.cli import main
from training.checkpoints import resolve as resolve_model

WORDS = ["apple", "river", "stone", "cloud", "tiger"]


def test_identity_per_backend_and_settings():
    assert BACKENDS == ("hf", "vllm", "openai")
    hf32, hf16 = backend_identity("hf"), backend_identity("hf", {"dtype": "bfloat16"})
    assert hf32 == {"backend": "hf", "dtype": "float32", "quantization": None}
    assert hf16["dtype"] == "bfloat16" and hf16 != hf32
    # batch size does not change greedy outputs, so it is not part of the identity
    assert backend_identity("hf", {"batch_size": 2}) == hf32
    vl = backend_identity("vllm")
    assert vl != hf32 and vl["backend"] == "vllm" and vl["dtype"] == "float32"
    assert backend_identity("vllm", {"quantization": "fp8"})["quantization"] == "fp8"
    assert backend_identity("openai", {"base_url": "http://h:1"})["base_url"] == "http://h:1/v1"
    # an open backend states the identity its name + options promise
    assert get_backend("hf", dtype="bfloat16").identity() == hf16


@pytest.fixture
def suite_env(tiny_model, store: Store, tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"reverse {w}", "response": w[::-1]}) + "\n"
                            for w in WORDS))
    suite_from_file(store, "s", path, metrics=["exact_match"], sampling={"max_new_tokens": 6})
    return store, f"base:{tiny_model}"


def _eval(capsys, store: Store, *args: str) -> dict:
    capsys.readouterr()
    main(["-w", str(store.workspace.root), "eval", "--suite", "s", *args, "--json"])
    return json.loads(capsys.readouterr().out)


def test_other_dtype_generates_again_same_settings_reuse(suite_env, capsys):
    store, base = suite_env
    n = len(WORDS)
    first = _eval(capsys, store, "--checkpoint", base)
    assert (first["n_generated"], first["n_cached"]) == (n, 0)
    assert first["backend_config"] == {"backend": "hf", "dtype": "float32", "quantization": None}
    bf16 = _eval(capsys, store, "--checkpoint", base, "--dtype", "bfloat16")
    assert (bf16["n_generated"], bf16["n_cached"]) == (n, 0)     # no reuse across dtypes
    assert bf16["backend_config"]["dtype"] == "bfloat16"
    again = _eval(capsys, store, "--checkpoint", base, "--batch-size", "2")
    assert (again["n_generated"], again["n_cached"]) == (0, n)   # same identity: reused
    stored = store.query("SELECT backend, backend_config, count(*) AS n FROM generations "
                         "GROUP BY 1, 2 ORDER BY 2")
    assert [(r["backend"], json.loads(r["backend_config"])["dtype"], r["n"]) for r in stored] \
        == [("hf", "bfloat16", n), ("hf", "float32", n)]
    runs = store.query("SELECT backend, backend_config FROM eval_runs ORDER BY created_at")
    assert [json.loads(r["backend_config"])["dtype"] for r in runs] == \
        ["float32", "bfloat16", "float32"]


def test_cache_only_reader_and_compare_name_the_backend(suite_env, capsys):
    store, base = suite_env
    _eval(capsys, store, "--checkpoint", base, "--dtype", "bfloat16")
    ref = resolve_model(store, base)
    suite = load_suite(store, "s")
    # A reader that names no backend gets the one whose outputs are all there ...
    got = generate_cached(store, [ref], suite.rows, suite.sampling, CacheOnly("evaluate first"))
    assert got.n_generated == 0 and got.identity["dtype"] == "bfloat16"
    # ... and one that names another backend is refused, saying which.
    hf32 = backend_identity("hf")
    with pytest.raises(StudioError, match=r"not in the cache for hf \(dtype float32\)"):
        generate_cached(store, [ref], suite.rows, suite.sampling,
                        CacheOnly("evaluate first", hf32))
    capsys.readouterr()
    main(["-w", str(store.workspace.root), "compare", "--suite", "s", "--baseline", base,
          "--candidate", base, "--dtype", "bfloat16"])
    text = capsys.readouterr().out
    assert "outputs of hf (dtype bfloat16)" in text.splitlines()[0]
    main(["-w", str(store.workspace.root), "compare", "--suite", "s", "--baseline", base,
          "--candidate", base, "--dtype", "bfloat16", "--json"])
    assert json.loads(capsys.readouterr().out)["backend"]["dtype"] == "bfloat16"


def test_key_covers_sampling_and_backend():
    from evals.prompts import cache_key

    a = cache_key("m", None, "p", SamplingConfig(max_new_tokens=4), 0, "{}")
    assert a != cache_key("m", None, "p", SamplingConfig(max_new_tokens=5), 0, "{}")
    assert a != cache_key("m", None, "p", SamplingConfig(max_new_tokens=4), 0, '{"b": 1}')
