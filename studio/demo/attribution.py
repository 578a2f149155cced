"""Which of the demo's curation steps made its gain: one paired difference per step.

The demo's chain is raw -> exact dedup -> near dedup -> heuristic filter -> noisy-label (loss)
filter -> + replay. The demo trains raw, curated and curated+replay anyway; `attribute` trains
the versions in between with the same trainer (same settings and seed), then hands the chain to
`evals.ablation.attribute_chain`, which evaluates every checkpoint on each suite (cached for
those already evaluated) and gives each step k vs step k-1 its paired difference with a 95% CI
over seeds and examples, Holm-adjusted p across the steps and a verdict. Dedup and filters are
judged on the held-out task suite; replay's effect shows on the general suite (forgetting), so
both suites are reported.
"""

from __future__ import annotations

from collections.abc import Callable

from evals.ablation import attribute_chain
from kernel.store import Store


def demo_chain(raw_ref: str, raw_rows: int, curation_steps: list[dict],
               replay_ref: str, replay_rows: int) -> list[dict]:
    """The chain as attribute_chain wants it: the demo's curation steps ({name, ref, n_kept},
    in order) between the raw import and the replay mix."""
    chain = [{"ref": raw_ref, "operation": "raw import", "n_train": raw_rows}]
    chain += [{"ref": s["ref"], "operation": s["name"], "n_train": s["n_kept"]}
              for s in curation_steps]
    chain.append({"ref": replay_ref, "operation": "+ replay", "n_train": replay_rows})
    return chain


def attribute(store: Store, chain: list[dict], checkpoints: dict[str, list[str]],
              train: Callable[[str, str], str], suites: dict[str, str], backend: str,
              generate: Callable[[dict[str, str]], object] | None = None) -> dict:
    """Train what the chain lacks (`checkpoints`: ref -> [checkpoint per seed], what the demo
    already trained; `train(ref, name) -> checkpoint id`), generate the missing outputs in one
    engine (`generate({label: checkpoint})`, e.g. the demo's evaluate-all), then attribute per
    suite role (cached reads). Returns {role: {"suite", "n_examples", "versions", "steps"}}."""
    for i, step in enumerate(chain):
        if step["ref"] not in checkpoints:
            checkpoints[step["ref"]] = [train(step["ref"], f"demo-step{i}")]
    full = [{**s, "checkpoints": checkpoints[s["ref"]]} for s in chain]
    if generate is not None:
        generate({f"step{i}-seed{k}": c for i, s in enumerate(full)
                  for k, c in enumerate(s["checkpoints"])})
    return {role: attribute_chain(store, suite, full, backend) for role, suite in suites.items()}


def attribution_lines(attribution: dict, metric: str = "exact_match") -> list[str]:
    """Text for the demo's report: one line per step and suite."""
    lines = []
    for role, rep in attribution.items():
        lines.append(f"{role} suite {rep['suite']} (n = {rep['n_examples']}), each step vs the "
                     "one before, 95% CI, Holm-adjusted p:")
        for s in rep["steps"]:
            if s["metric"] != metric:
                continue
            rows = s["train_rows_removed"]
            change = "" if rows is None else f"{-rows:+d} rows, "
            lines.append(f"  {s['operation'][:48]:<48} {change}{s['diff']:+.3f} "
                         f"[{s['low']:+.3f}, {s['high']:+.3f}], p = {s['p_holm']:.3g}: "
                         f"{s['verdict']}")
    return lines
