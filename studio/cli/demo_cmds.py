"""`studio demo`: run the evaluation-driven loop end to end and print this run's comparison."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from evals.stats import format_p
from kernel.machine import describe_line
from studio.cli.common import cli, emit, get_workspace, json_option


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def _note(note: str) -> str:
    """A run that did not learn is a warning (the comparison it enters is not fair)."""
    return ("WARNING: " if "did not learn" in note else "note: ") + note


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ci(low: float, high: float, signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"[{fmt.format(low)}, {fmt.format(high)}]"


def _machine(r: dict) -> list[str]:
    """The CPU the figures came from (they repeat exactly on the same kind of CPU only); no
    line for a result saved before results named their machine."""
    if not r.get("machine"):
        return []
    sw = r["machine"].get("software") or {}
    libs = ", ".join(f"{k} {sw[k]}" for k in ("torch", "transformers", "peft") if k in sw)
    return [f"Machine: {describe_line(r['machine'])}{'; ' + libs if libs else ''} (figures "
            "repeat exactly on this kind of CPU with these versions only)"]


def _by_task(p: dict) -> str:
    """'last_word 100% -> 100%, join_dash 6% -> 94%': where a held-out gain came from."""
    return ", ".join(f"{task} {100 * b['baseline']:.0f}% -> {100 * b['candidate']:.0f}%"
                     for task, b in p["by_category"].items())


def render_result(r: dict) -> str:
    """The human report: curation quality, scores with CIs, the paired tests, forgetting."""
    c = r["curation"]
    lines = [f"Tuning Studio demo  (seed {r['seed']}{', quick' if r['quick'] else ''}; "
             f"backend {r['backend']}; {r['total_s'] / 60:.1f} min)", *_machine(r), ""]
    lines.append(f"Curation  {r['versions']['raw']} -> {r['versions']['curated']}  "
                 f"(lineage {' -> '.join(r['lineage'])})")
    for step in c.get("steps", []):
        detail = f"  ({step['detail']})" if step.get("detail") else ""
        lines.append(f"  {step['name']:<28} {step['n_in']:>6} -> {step['n_out']:>6} rows{detail}")
    q = c["quality"]
    lines.append(f"  vs planted noise: precision {q['precision']:.3f}, recall {q['recall']:.3f} "
                 f"(bad labels removed {q['bad_labels_removed']}/{q['n_planted_bad_labels']}, "
                 f"redundant duplicates removed {q['dups_removed']}/{q['n_planted_redundant_dups']}, "
                 f"false positives {q['false_positives']})")
    for d in c.get("detectors", []):
        lines.append(f"  noisy-label score {d['method']:<10} AUROC {_num(d['auroc'])}, "
                     f"precision {_num(d['precision'])}, recall {_num(d['recall'])} "
                     f"({d['n_flagged']} flagged, {d['n_bad']} bad of {d['n_scored']} scored)"
                     + ("  <- used" if d["method"] == c["detector"]["method"] else ""))
    lines.append("")
    header = f"  {'checkpoint':<16}" + "".join(f"{role + ' suite (n=' + str(next(iter(s.values()))['n']) + ')':>34}"
                                              for role, s in r["scores"].items())
    lines.append("Exact match, mean [95% CI]")
    lines.append(header)
    labels = list(next(iter(r["scores"].values())))
    for label in labels:
        cells = "".join(f"{_pct(s[label]['mean']):>14} {_ci(s[label]['low'], s[label]['high']):>19}"
                        for s in r["scores"].values())
        lines.append(f"  {label:<16}{cells}")
    p = r["curated_vs_raw"]
    lines += ["", f"Held-out task suite: curated - raw = {p['diff']:+.3f} "
              f"95% CI {_ci(p['ci_low'], p['ci_high'], True)}, {format_p(p['p_value'])} (n={p['n']})"]
    if p.get("by_category"):
        lines.append(f"  by task, raw -> curated: {_by_task(p)}")
    ps = r.get("curated_vs_raw_sampled")
    if ps:
        lines += [f"  sampled (the claim's metric; share of samples right): raw "
                  f"{_pct(ps['baseline_mean'])}, curated {_pct(ps['candidate_mean'])}, curated - "
                  f"raw = {ps['diff']:+.3f} 95% CI {_ci(ps['ci_low'], ps['ci_high'], True)}, "
                  f"{format_p(ps['p_value'])}",
                  f"  sampled by task, raw -> curated: {_by_task(ps)}"]
    lines.append("Forgetting on the general suite (run - base):")
    for label, f in r["forgetting"].items():
        lines.append(f"  {label:<16} {f['diff']:+.3f} {_ci(f['ci_low'], f['ci_high'], True)}  "
                     f"{format_p(f['p_value'])}")
    e = r["replay_effect"]
    lines.append(f"Replay: curated+replay - curated on the general suite = {e['diff']:+.3f} "
                 f"{_ci(e['ci_low'], e['ci_high'], True)}, {format_p(e['p_value'])}")
    if r.get("attribution"):
        from studio.demo.attribution import attribution_lines

        lines += ["", "Which step made the difference (exact match):",
                  *attribution_lines(r["attribution"])]
    lines += [_note(n) for n in r.get("notes", [])]
    lines.append("")
    lines.append("Step times: " + ", ".join(f"{s['name']} {s['seconds']:.0f}s" for s in r["steps"]))
    return "\n".join(lines)


def render_seeds(r: dict) -> str:
    """Per-seed and pooled figures, and whether each of the demo's three targets is met."""
    lines = [f"Tuning Studio demo over seeds {', '.join(map(str, r['seeds']))} "
             f"({r['total_s'] / 60:.1f} min)", *_machine(r), "",
             f"  {'seed':<5} {'raw':>7} {'curated':>8} {'curated - raw [95% CI]':>28} "
             f"{'filter P / R':>14} {'forgetting raw / cur / cur+replay':>36} {'replay [95% CI]':>26}"]
    for s in r["per_seed"]:
        p, d, f, e = (s["curated_vs_raw"], s["curation"]["detector"], s["forgetting"],
                      s["replay_effect"])
        forget = " / ".join(f"{f[k]['diff']:+.2f}" for k in ("raw", "curated", "curated+replay"))
        lines.append(f"  {s['seed']:<5} {_pct(p['baseline_mean']):>7} {_pct(p['candidate_mean']):>8} "
                     f"{p['diff']:+.3f} {_ci(p['ci_low'], p['ci_high'], True):>19} "
                     f"{_num(d['precision']):>6} / {_num(d['recall']):<6}"
                     f"{forget:>36} {e['diff']:+.3f} {_ci(e['ci_low'], e['ci_high'], True):>19}")
    if all(s.get("curated_vs_raw_sampled") for s in r["per_seed"]):
        lines += ["", "  held-out suite sampled (the claim's metric), raw / curated / curated - raw:"]
        lines += [f"  seed {s['seed']:<4} {_pct(p['baseline_mean'])} / {_pct(p['candidate_mean'])}"
                  f" / {p['diff']:+.3f} {_ci(p['ci_low'], p['ci_high'], True)};  by task "
                  f"{_by_task(p)}"
                  for s in r["per_seed"] for p in [s["curated_vs_raw_sampled"]]]
    if any(s["curated_vs_raw"].get("by_category") for s in r["per_seed"]):
        lines += ["", "  held-out exact match (greedy) by task, raw -> curated (a task is mostly "
                      "learnt whole or not at all):"]
        lines += [f"  seed {s['seed']:<4} {_by_task(s['curated_vs_raw'])}" for s in r["per_seed"]]
    lines.append("")
    for name, label in (("curated_vs_raw_sampled", "curated - raw, held-out suite sampled"),
                        ("curated_vs_raw", "curated - raw, held-out suite greedy"),
                        ("replay_effect", "curated+replay - curated, general suite")):
        if name not in r["pooled"]:
            continue
        g = r["pooled"][name]
        lines.append(f"  pooled {label}: {g['diff']:+.3f} {_ci(g['ci_low'], g['ci_high'], True)}, "
                     f"p = {g['p_value']:.3g} (two-level CI over {g['n_seeds_baseline']} seeds x "
                     f"{g['n']} examples{', paired by seed' if g.get('paired_seeds') else ''}; "
                     f"se seeds {g['se_seed']:.3f}, examples {g['se_example']:.3f})")
    if r.get("attribution_pooled"):
        from studio.demo.attribution import pooled_attribution_lines

        lines += ["", "Which step made the difference (exact match), pooled over seeds:",
                  *pooled_attribution_lines(r["attribution_pooled"])]
    lines += ["", "Targets:"]
    for name, t in r["targets"].items():
        lines.append(f"  [{'met' if t['met'] else 'NOT MET'}] {name}: {t['detail']}")
    lines += [_note(n) for n in r.get("notes", [])]
    return "\n".join(lines)


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to fd 1 (vLLM's engine process logs there) to stderr, so
    stdout carries only the result."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@cli.command("demo")
@click.option("--no-ui", is_flag=True, help="Do not open the studio on the Compare page afterwards.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for data, training, statistics.")
@click.option("--seeds", default=None,
              help="Comma-separated seeds (e.g. 0,1,2): the loop once per seed, then per-seed and "
                   "pooled figures and the three targets. Overrides --seed.")
@click.option("--quick", is_flag=True, help="Reduced data and steps (CI); curation need not win here.")
@json_option
@click.pass_context
def demo(ctx: click.Context, no_ui: bool, seed: int, seeds: str | None, quick: bool,
         as_json: bool) -> None:
    """Build a tiny model, curate noisy data, tune raw vs curated vs curated+replay, compare."""
    from studio.demo import run_demo, run_demo_seeds
    from training.groups import parse_seeds

    workspace = get_workspace(ctx)
    progress = lambda line: click.echo(line, err=True)  # noqa: E731
    with stdout_to_stderr():
        if seeds:
            data = run_demo_seeds(workspace.root, parse_seeds(seeds), quick=quick,
                                  progress=progress).to_dict()
        else:
            data = run_demo(workspace.root, seed=seed, quick=quick, progress=progress).to_dict()
    emit(data, as_json, human=render_seeds(data) if seeds else render_result(data))
    if not no_ui:
        from studio.cli.ui_cmds import ui

        ctx.find_root().obj["workspace_arg"] = str(workspace.root)
        ctx.invoke(ui, page="compare")
