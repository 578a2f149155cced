"""Which of the demo's curation steps made its gain: one paired difference per step.

The demo's chain is raw -> exact dedup -> near dedup -> heuristic filter -> noisy-label (loss)
filter -> + replay. The demo trains raw, curated and curated+replay anyway; `attribute` trains
the versions in between with the same trainer (same settings and seed), then hands the chain to
`evals.ablation.attribute_chain`, which evaluates every checkpoint on each suite (cached for
those already evaluated) and gives each step k vs step k-1 its paired difference with a 95% CI
over seeds and examples, Holm-adjusted p across the steps and a verdict. Dedup and filters are
judged on the held-out task suite; replay's effect shows on the general suite (forgetting), so
both suites are reported.

Over several seeds (`studio demo --seeds 0,1,2`) one seed's verdict rests on one run per
version and is noisy, so `pool_attribution` makes one attribution per suite over seeds x
examples (`evals.ablation.pool_chains`: every seed's chain has the same steps and is scored on
the same examples, the first seed's suites), Holm across the steps, the verdict from that.
"""

from __future__ import annotations

from collections.abc import Callable

from evals.ablation import attribute_chain, pool_chains
from kernel.errors import StudioError
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
        lines += [_step_line(s, 48) for s in rep["steps"] if s["metric"] == metric]
    return lines


def _step_line(step: dict, width: int, tail: str = "") -> str:
    """One step of an attribution: rows it removed, its difference, CI, Holm p, verdict."""
    rows = step["train_rows_removed"]
    change = "" if rows is None else f"{-rows:+d} rows, "
    return (f"  {step['operation'][:width]:<{width}} {change}{step['diff']:+.3f} "
            f"[{step['low']:+.3f}, {step['high']:+.3f}], p = {step['p_holm']:.3g}: "
            f"{step['verdict']}{tail}")


def pool_attribution(per_seed: list[dict]) -> dict:
    """The seeds' attributions ({role: attribute_chain result}, one per seed) pooled per
    suite role: {role: pool_chains result}, or {role: {"problem": why}} when the seeds' chains
    cannot be pooled (other steps or other examples), which the report prints instead."""
    roles = [role for role in per_seed[0] if all(role in a for a in per_seed)] if per_seed else []
    out = {}
    for role in roles:
        try:
            out[role] = pool_chains([a[role] for a in per_seed])
        except StudioError as exc:
            out[role] = {"problem": str(exc)}
    return out


def pooled_attribution_lines(pooled: dict, metric: str = "exact_match") -> list[str]:
    """Text for the multi-seed report: one line per step and suite, pooled over seeds, with
    each seed's own difference at the end (short: the pooled verdict is the one that counts)."""
    lines = []
    for role, rep in pooled.items():
        if "problem" in rep:
            lines.append(f"{role} suite: not pooled: {rep['problem']}")
            continue
        lines.append(f"{role} suite {rep['suite']} ({rep['n_seeds']} seeds x n = "
                     f"{rep['n_examples']}), each step vs the one before, 95% CI over seeds and "
                     "examples, Holm-adjusted p:")
        lines += [_step_line(s, 42, "  (per seed " + " ".join(f"{d:+.2f}" for d in s["per_seed"])
                             + ")") for s in rep["steps"] if s["metric"] == metric]
    return lines
