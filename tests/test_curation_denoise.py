"""Loss-based noisy-label filtering: per-group cuts find the high-loss rows, as a new version."""

from __future__ import annotations

import json
import random

import pytest

from curation.datasets import load_rows, show
from curation.importer import import_file
from curation.noisy_labels import drop_high_loss, flag_high_loss, row_losses
from curation.scoring import score
from kernel.errors import StudioError
from studio.cli import main
from training.synthetic import generate


def _bimodal(group: str, clean: float, noisy: float, n_clean: int, n_noisy: int, rng) -> list:
    rows = [{"id": f"{group}-c{i}", "group": group, "loss": clean * rng.uniform(0.7, 1.3)}
            for i in range(n_clean)]
    rows += [{"id": f"{group}-n{i}", "group": group, "loss": noisy * rng.uniform(0.7, 1.3)}
             for i in range(n_noisy)]
    return rows


def test_per_group_cut_flags_exactly_the_high_mode():
    rng = random.Random(0)
    # Group b's clean rows are harder than group a's wrong ones: one global cut would fail.
    rows = (_bimodal("a", 0.1, 0.8, 80, 20, rng) + _bimodal("b", 1.5, 9.0, 60, 30, rng)
            + _bimodal("tiny", 0.1, 5.0, 5, 5, rng))
    flagged, cuts = flag_high_loss(rows, seed=0, min_group=20)
    assert set(flagged) == {r["id"] for r in rows if "-n" in r["id"] and r["group"] != "tiny"}
    assert set(cuts) == {"a", "b"}  # the 10-row group is too small to fit and is left alone
    assert cuts["a"] < 0.8 * 0.7 and cuts["b"] > 1.5 * 1.3


def test_denoise_version_records_why_and_drops_rows_above_their_cut(store, tmp_path, tiny_model):
    rows = generate(["last_word", "join_dash"], 30, seed=4)
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"id": f"r{i}", "instruction": r["instruction"],
                                        "output": r["response"], "category": r["category"]}) + "\n"
                            for i, r in enumerate(rows)))
    import_file(store, path, "d")
    with pytest.raises(StudioError, match="no score 'oof_loss'.*--scorer oof-loss"):
        drop_high_loss(store, "d")  # the default score is the out-of-fold loss

    scored = score(store, "d", "perplexity", model=str(tiny_model), batch_size=16)
    losses = row_losses(store, scored["ref"], score="resp_loss")
    assert len(losses) == 60 and all(r["group"] in ("last_word", "join_dash") for r in losses)
    got = drop_high_loss(store, scored["ref"], score="resp_loss", seed=0, out="clean")

    expected = {r["id"] for r in losses if r["loss"] > got["cuts"][r["group"]]}
    kept = {r["id"] for r in load_rows(store, "d@clean")}
    assert kept == {r["id"] for r in losses} - expected
    info = show(store, "d@clean")
    assert info["operation"] == "denoise" and info["parent"] == "v2"
    params = info["params"] if isinstance(info["params"], dict) else json.loads(info["params"])
    assert params["cuts"] == got["cuts"] and params["score"] == "resp_loss"


def test_denoise_cli_errors_in_one_line(workspace, tmp_path, capsys):
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps({"instruction": "a", "output": "b"}) + "\n")
    main(["--workspace", str(workspace.root), "import", str(path), "--name", "e"])
    with pytest.raises(SystemExit) as exit_info:
        main(["--workspace", str(workspace.root), "denoise", "e", "--group-by", "category"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: denoise: e@v1 has no score 'oof_loss'")
