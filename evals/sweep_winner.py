"""Pick a sweep's winner by held-out metrics, with paired statistics against the others.

Why not by loss: training and eval loss measure fit to the training distribution, not the
held-out task, and a lower loss often comes with worse answers. The winner is the config with
the best mean on the suite's metric; every other config is compared with it on the same
examples (paired): one seed each -> `evals.stats.paired_compare` (McNemar for pass/fail,
paired bootstrap otherwise); several seeds -> `evals.stats.grouped_compare` (the calibrated
two-level seed x example CI). The K-1 comparisons are Holm-adjusted as one family, and the
report says the winner is "significantly better" only when it beats the runner-up after that
adjustment, else "tied". Caveat (the winner's curse): the order was chosen on the same
examples, so the winner's lead is optimistic; a tie is the honest reading of a close race.
"""

from __future__ import annotations

import numpy as np

from evals.ablation import seed_example_bootstrap
from evals.stats import adjust_pvalues, grouped_compare, mean_ci, paired_compare

ALPHA = 0.05


def config_ci(scores: np.ndarray, binary: bool) -> dict:
    """Mean with a 95% CI of one config's runs x examples scores: Wilson/normal over examples
    for one run, seeds and examples resampled together for several."""
    scores = np.atleast_2d(scores)
    if scores.shape[0] == 1:
        ci = mean_ci(scores[0], binary=binary)
        return {"mean": ci.mean, "low": ci.low, "high": ci.high, "n_runs": 1}
    boot = seed_example_bootstrap(scores)
    return {"mean": boot["diff"], "low": boot["low"], "high": boot["high"],
            "n_runs": int(scores.shape[0])}


def paired_vs(winner: np.ndarray, other: np.ndarray, seeds_w: list, seeds_o: list,
              binary: bool) -> dict:
    """winner - other on the same examples: diff, 95% CI, p and the test used."""
    winner, other = np.atleast_2d(winner), np.atleast_2d(other)
    if min(winner.shape[0], other.shape[0]) >= 2:
        res = grouped_compare(other, winner, seeds_o, seeds_w)
        return {"diff": res.diff, "low": res.ci_low, "high": res.ci_high, "p": res.p_value,
                "test": "two-level bootstrap (seeds x examples)", "warning": res.warning}
    res = paired_compare(other.mean(axis=0), winner.mean(axis=0), binary=binary)
    warning = res.warning
    if max(winner.shape[0], other.shape[0]) > 1:
        warning = "; ".join(w for w in (warning, "one side has a single run: seed variance "
                                        "not counted") if w)
    return {"diff": res.diff, "low": res.ci_low, "high": res.ci_high, "p": res.p_value,
            "test": "McNemar" if res.p_mcnemar is not None else "paired bootstrap",
            "warning": warning}


def pick_winner(configs: list[dict], higher_is_better: bool = True, binary: bool = False,
                adjust: str = "holm") -> dict:
    """Rank configs and compare the best with each other one.

    `configs`: [{"label": str, "scores": runs x examples array, "seeds": [..]}, ...] (the
    same examples, in the same order, for every config). Returns {"ranking": [...] best
    first, each with mean, low, high and (but the winner) diff/low/high/p/p_adjusted of
    winner - config, "tied_with_winner"; "winner", "runner_up", "verdict", "test"}.
    """
    if not configs:
        raise ValueError("no evaluated config to pick a winner from")
    sign = 1.0 if higher_is_better else -1.0
    rows = [{"label": c["label"], **config_ci(c["scores"], binary)} for c in configs]
    order = sorted(range(len(configs)), key=lambda i: -sign * rows[i]["mean"])
    ranking = [rows[i] for i in order]
    best = configs[order[0]]
    others = [configs[i] for i in order[1:]]
    tests = [paired_vs(best["scores"], o["scores"], best["seeds"], o["seeds"], binary)
             for o in others]
    adjusted = adjust_pvalues([t["p"] for t in tests], adjust) if tests else []
    for row, test, p_adj in zip(ranking[1:], tests, adjusted, strict=True):
        better = sign * test["diff"] > 0
        row["vs_winner"] = {**test, "p_adjusted": float(p_adj)}
        row["tied_with_winner"] = not (better and p_adj < ALPHA)
    out = {"winner": ranking[0]["label"], "ranking": ranking, "adjust": adjust,
           "runner_up": ranking[1]["label"] if len(ranking) > 1 else None}
    if len(ranking) == 1:
        out.update(verdict="only one config was evaluated: nothing to compare", test=None)
        return out
    runner = ranking[1]["vs_winner"]
    tied = ranking[1]["tied_with_winner"]
    out["test"] = runner["test"]
    out["significant"] = not tied
    out["verdict"] = (
        f"tied: {ranking[0]['label']} and {ranking[1]['label']} differ by "
        f"{runner['diff']:+.3f} [{runner['low']:+.3f}, {runner['high']:+.3f}], "
        f"p ({adjust}) = {runner['p_adjusted']:.3g}: no significant difference"
        if tied else
        f"{ranking[0]['label']} is significantly better than the runner-up "
        f"{ranking[1]['label']}: {runner['diff']:+.3f} [{runner['low']:+.3f}, "
        f"{runner['high']:+.3f}], p ({adjust}) = {runner['p_adjusted']:.3g}")
    return out
