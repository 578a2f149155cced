"""`studio demo`: run the evaluation-driven loop end to end and print this run's comparison."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from evals.stats import format_p
from studio.cli.common import cli, emit, get_workspace, json_option


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def _ci(low: float, high: float, signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"[{fmt.format(low)}, {fmt.format(high)}]"


def render_result(r: dict) -> str:
    """The human report: curation quality, scores with CIs, the paired tests, forgetting."""
    c = r["curation"]
    lines = [f"Tuning Studio demo  (seed {r['seed']}{', quick' if r['quick'] else ''}; "
             f"backend {r['backend']}; {r['total_s'] / 60:.1f} min)", ""]
    lines.append(f"Curation  {r['versions']['raw']} -> {r['versions']['curated']}  "
                 f"(lineage {' -> '.join(r['lineage'])})")
    for step in c.get("steps", []):
        lines.append(f"  {step['name']:<28} {step['n_in']:>6} -> {step['n_out']:>6} rows")
    q = c["quality"]
    lines.append(f"  vs planted noise: precision {q['precision']:.3f}, recall {q['recall']:.3f} "
                 f"(bad labels removed {q['bad_labels_removed']}/{q['n_planted_bad_labels']}, "
                 f"redundant duplicates removed {q['dups_removed']}/{q['n_planted_redundant_dups']}, "
                 f"false positives {q['false_positives']})")
    if c.get("loss_auroc") is not None:
        lines.append(f"  loss score AUROC for wrong labels: {c['loss_auroc']:.3f}")
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
    lines += [f"note: {n}" for n in r.get("notes", [])]
    lines.append("")
    lines.append("Step times: " + ", ".join(f"{s['name']} {s['seconds']:.0f}s" for s in r["steps"]))
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
@click.option("--quick", is_flag=True, help="Reduced data and steps (CI); curation need not win here.")
@json_option
@click.pass_context
def demo(ctx: click.Context, no_ui: bool, seed: int, quick: bool, as_json: bool) -> None:
    """Build a tiny model, curate noisy data, tune raw vs curated vs curated+replay, compare."""
    from studio.demo import run_demo

    workspace = get_workspace(ctx)
    with stdout_to_stderr():
        result = run_demo(workspace.root, seed=seed, quick=quick,
                          progress=lambda line: click.echo(line, err=True))
    data = result.to_dict()
    emit(data, as_json, human=render_result(data))
    if not no_ui:
        from studio.cli.ui_cmds import ui

        ctx.find_root().obj["workspace_arg"] = str(workspace.root)
        ctx.invoke(ui, page="compare")
