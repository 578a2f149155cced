"""`studio eval`, `studio compare`, `studio suites`, `studio curve`: thin glue over `evals`."""

from __future__ import annotations

import sys

import click

from evals.backends import BACKENDS, describe_identity
from evals.stats import format_p
from kernel.errors import StudioError
from studio.cli.common import EXIT_GATE_FAILED, cli, emit, get_store, json_option, table

backend_option = click.option("--backend", type=click.Choice(BACKENDS),
                              default="hf", show_default=True, help="Generation backend.")
dtype_option = click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]),
                            default=None, help="Weights dtype for hf/vllm (default float32). "
                            "Part of the cache key: outputs are reused only for the same one.")
base_url_option = click.option("--base-url", default=None,
                               help="OpenAI-compatible server URL (backend openai).")
batch_option = click.option("--batch-size", type=int, default=None, help="Generation batch size.")


def _backend_options(backend: str, base_url: str | None, batch_size: int | None,
                     dtype: str | None = None) -> dict:
    opts: dict = {}
    if batch_size:
        opts["batch_size"] = batch_size
    if dtype:
        if backend == "openai":
            raise StudioError("--dtype: the server decides the dtype with --backend openai")
        opts["dtype"] = dtype
    if backend == "openai":
        if not base_url:
            raise StudioError("--base-url is required with --backend openai")
        opts["base_url"] = base_url
    return opts


@cli.group("suites", invoke_without_command=True)
@json_option
@click.pass_context
def suites(ctx: click.Context, as_json: bool) -> None:
    """List eval suites (or add one: `studio suites add`)."""
    if ctx.invoked_subcommand:
        return
    from evals.suites import list_suites

    rows = list_suites(get_store(ctx))
    emit(rows, as_json, table(rows, ["name", "role", "n_rows", "metrics", "source"])
         if rows else "(no suites)")


@suites.command("add")
@click.argument("name")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="JSONL rows file.")
@click.option("--dataset", "ref", help="Dataset NAME[@VERSION]: its held-out split.")
@click.option("--role", type=click.Choice(["task", "general"]), default="task", show_default=True)
@click.option("--metric", "metrics", multiple=True, help="Metric spec (repeatable), e.g. exact_match, regex:^\\d+$.")
@click.option("--group-by", default=None, help="Row field clustering rows for the statistics.")
@click.option("--max-new-tokens", type=int, default=64, show_default=True)
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--n", "n_samples", type=int, default=1, show_default=True, help="Samples per prompt.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--replace", is_flag=True, help="Overwrite a suite of the same name.")
@json_option
@click.pass_context
def suites_add(ctx, name, path, ref, role, metrics, group_by, max_new_tokens, temperature,
               n_samples, seed, replace, as_json) -> None:
    """Create a suite from a JSONL file or a dataset's held-out split."""
    from evals.suites import suite_from_dataset, suite_from_file
    from evals.types import SamplingConfig

    if bool(path) == bool(ref):
        raise StudioError("give exactly one of --file or --dataset")
    opts = dict(role=role, metrics=list(metrics) or ["exact_match"], group_by=group_by,
                sampling=SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature,
                                        n=n_samples, seed=seed))
    store = get_store(ctx)
    suite = (suite_from_file(store, name, path, replace=replace, **opts) if path
             else suite_from_dataset(store, name, ref, replace=replace, **opts))
    emit({"name": suite.name, "role": suite.role, "n_rows": len(suite.rows),
          "metrics": suite.metrics, "sampling": suite.sampling.to_dict()}, as_json,
         f"suite {suite.name}: {len(suite.rows)} rows, metrics {', '.join(suite.metrics)}")


@cli.command("eval")
@click.option("--suite", required=True, help="Suite name (see `studio suites`).")
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              help="Checkpoint id or folder (repeatable); 'base:<model>' for a base model.")
@backend_option
@base_url_option
@batch_option
@dtype_option
@click.option("--contamination", is_flag=True, help="Flag held-out rows near-duplicating training rows.")
@click.option("--detach", is_flag=True, help="Generate in a background job; then `studio eval-ingest RUN`.")
@json_option
@click.pass_context
def eval_cmd(ctx, suite, checkpoints, backend, base_url, batch_size, dtype, contamination, detach,
             as_json) -> None:
    """Generate (cached) and score every checkpoint on a suite."""
    from evals.evaluate import evaluate

    store = get_store(ctx)
    opts = _backend_options(backend, base_url, batch_size, dtype)
    if detach:
        from evals.jobs import launch_eval

        run_id = launch_eval(store, suite, checkpoints, backend, opts, name=f"eval {suite}")
        emit({"run_id": run_id}, as_json, f"started eval job {run_id}; when it completes: "
             f"studio eval-ingest {run_id}")
        return
    res = evaluate(store, suite, list(checkpoints), backend, opts,
                   check_contamination=contamination)
    _emit_eval(res, as_json)


@cli.command("eval-ingest")
@click.argument("run_id")
@json_option
@click.pass_context
def eval_ingest_cmd(ctx, run_id, as_json) -> None:
    """Store a finished eval job's generations and score its suite."""
    from evals.eval_worker import ingest
    from kernel.jobs import get_run

    store = get_store(ctx)
    run = get_run(store, run_id)
    if run["kind"] != "eval":
        raise StudioError(f"run {run_id} is a {run['kind']} run, not an eval run")
    if run["state"] != "completed":
        raise StudioError(f"run {run_id} is {run['state']}, not completed")
    _emit_eval(ingest(store, run["run_dir"]), as_json)


def _emit_eval(res, as_json: bool) -> None:
    data = {"suite": res.suite.name, "n": len(res.suite.rows),
            "backend": (res.generation.identity or {}).get("backend"),
            "backend_config": res.generation.identity,
            "backend_version": res.generation.backend_version,
            "n_generated": res.generation.n_generated, "n_cached": res.generation.n_cached,
            "seconds": round(res.generation.seconds, 2), "results": res.summary,
            "contamination": res.contamination}
    lines = [f"suite {data['suite']} (n={data['n']}): generated {data['n_generated']}, "
             f"cached {data['n_cached']}; backend {describe_identity(data['backend_config'])}"]
    for ckpt, metrics in res.summary.items():
        for metric, s in metrics.items():
            lines.append(f"  {ckpt}  {metric}: {s['mean']:.4f} [{s['low']:.4f}, {s['high']:.4f}]")
    for ckpt, flagged in (res.contamination or {}).items():
        if flagged:
            lines.append(f"  warning: {ckpt}: {len(flagged)} held-out rows near-duplicate training rows")
    emit(data, as_json, "\n".join(lines))


def _short(text: str | None, limit: int = 40) -> str:
    text = repr(text or "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _render_comparison(c: dict) -> str:
    lines = [f"suite {c['suite']}: {c['candidate']} vs {c['baseline']} (n={c['n']}); "
             f"outputs of {describe_identity(c.get('backend'))}"]
    for m in c["metrics"]:
        mc = f", McNemar {format_p(m['p_mcnemar'])} (-{m['n_regressed']}/+{m['n_improved']})" \
            if m["p_mcnemar"] is not None else ""
        lines.append(f"  {m['metric']}: {m['baseline']['mean']:.4f} -> {m['candidate']['mean']:.4f}"
                     f"  diff {m['diff']:+.4f} [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]"
                     f"  {format_p(m['p_bootstrap'])}{mc}{'  REGRESSED' if m['regressed'] else ''}")
    lines += [f"  warning: {w}" for w in c["warnings"]]
    lines += _render_claims(c)
    lines.append(f"  regressions: {len(c['regressions'])}, improvements: {len(c['improvements'])}")
    for r in c["regressions"][:5]:
        lines.append(f"    - {r['row_id']}: ref {_short(r['reference'])} | A "
                     f"{_short(r['baseline_output'])} | B {_short(r['candidate_output'])}")
    lines.append(f"  gate: {'FAIL' if c['gate_failed'] else 'pass'} (margin {c['margin']})")
    lines += [f"    {r}" for r in c["gate_reasons"]]
    return "\n".join(lines)


@cli.command("compare")
@click.option("--baseline", default=None, help="Checkpoint A (e.g. base:<model>).")
@click.option("--candidate", default=None, help="Checkpoint B.")
@click.option("--baseline-group", default=None,
              help="Runs of A over seeds: a group from `studio train --seeds`, or a run-name glob.")
@click.option("--candidate-group", default=None, help="Runs of B over seeds (as --baseline-group).")
@click.option("--suite", required=True)
@click.option("--metric", "metrics", multiple=True, help="Restrict to these metrics.")
@click.option("--fail-on-regression", is_flag=True,
              help=f"Exit {EXIT_GATE_FAILED} when B is significantly worse than A by more "
              "than --margin.")
@click.option("--margin", type=float, default=0.0, show_default=True)
@click.option("--limit", type=int, default=20, show_default=True, help="Examples listed per side.")
@click.option("--adjust", type=click.Choice(["holm", "bh", "none"]), default="holm",
              show_default=True, help="Multiple-comparison adjustment over the metrics "
              "(Holm: family-wise error; bh: Benjamini-Hochberg false discovery rate).")
@backend_option
@base_url_option
@batch_option
@dtype_option
@json_option
@click.pass_context
def compare_cmd(ctx, baseline, candidate, baseline_group, candidate_group, suite, metrics,
                fail_on_regression, margin, limit, adjust, backend, base_url, batch_size,
                dtype, as_json) -> None:
    """Paired comparison of two checkpoints (or two seed groups) with CIs and an optional gate."""
    from evals.compare import compare, compare_groups

    if margin < 0:
        raise StudioError(f"--margin must be >= 0, got {margin}")
    grouped = _compare_sides(baseline, candidate, baseline_group, candidate_group)
    opts = _backend_options(backend, base_url, batch_size, dtype)
    if grouped:
        comp = compare_groups(get_store(ctx), suite, baseline_group, candidate_group, margin=margin,
                              backend=backend, backend_options=opts,
                              metrics=list(metrics) or None, adjust=adjust).to_dict()
        emit(comp, as_json, _render_group_comparison(comp))
    else:
        comp = compare(get_store(ctx), suite, baseline, candidate, margin=margin, backend=backend,
                       backend_options=opts, metrics=list(metrics) or None, limit=limit,
                       adjust=adjust).to_dict()
        emit(comp, as_json, _render_comparison(comp))
    if fail_on_regression and comp["gate_failed"]:
        click.echo("error: regression gate failed: " + "; ".join(comp["gate_reasons"]), err=True)
        sys.exit(EXIT_GATE_FAILED)


def _compare_sides(baseline, candidate, baseline_group, candidate_group) -> bool:
    """True for a group comparison; one-line errors for a missing or mixed pair of sides."""
    for side, one, group in (("baseline", baseline, baseline_group),
                             ("candidate", candidate, candidate_group)):
        if (one is None) == (group is None):
            raise StudioError(f"give exactly one of --{side} (a checkpoint) or --{side}-group "
                              "(runs over seeds)")
    if (baseline_group is None) != (candidate_group is None):
        raise StudioError("compare a group with a group (--baseline-group with --candidate-group)"
                          " or a checkpoint with a checkpoint")
    return baseline_group is not None


def _render_group_comparison(c: dict) -> str:
    def runs(rs: list[dict]) -> str:
        return ", ".join(f"{r['name'] or r['run_id']} (seed {r['seed']})" for r in rs)

    lines = [f"suite {c['suite']}: group {c['candidate']} vs group {c['baseline']} "
             f"(n={c['n']} examples)",
             f"  baseline runs: {runs(c['baseline_runs'])}",
             f"  candidate runs: {runs(c['candidate_runs'])}"]
    for m in c["metrics"]:
        lines.append(
            f"  {m['metric']}: {m['baseline']:.4f} -> {m['candidate']:.4f}  diff {m['diff']:+.4f} "
            f"[{m['ci_low']:+.4f}, {m['ci_high']:+.4f}] over seeds and examples  "
            f"{format_p(m['p_value'])}{'  REGRESSED' if m['regressed'] else ''}")
        lines.append("    per seed: " + ", ".join(f"seed {p['seed']} {p['diff']:+.4f}"
                                                     for p in m["per_seed"])
                     + f"  (seed sd: baseline {m['seed_sd_baseline']:.4f}, candidate "
                       f"{m['seed_sd_candidate']:.4f}; se from seeds {m['se_seed']:.4f}, "
                       f"from examples {m['se_example']:.4f})")
    lines += [f"  warning: {w}" for w in c["warnings"]]
    lines += _render_claims(c)
    lines.append(f"  gate: {'FAIL' if c['gate_failed'] else 'pass'} (margin {c['margin']})")
    lines += [f"    {r}" for r in c["gate_reasons"]]
    return "\n".join(lines)


def _render_claims(c: dict) -> list[str]:
    """Which differences survive the multiple-comparison adjustment."""
    if not c["claims"]:
        return []
    how = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}[c["adjust"]]
    kept = [k for k in c["claims"] if k["survives"]]
    lines = [f"  claims ({how} adjustment over {len(c['claims'])} tests): {len(kept)} survive"]
    for k in c["claims"]:
        verdict = f"B {k['direction']}" if k["survives"] else "no claim"
        lines.append(f"    {k['metric']}: {verdict} ({format_p(k['p_value'])}, "
                     f"adjusted {format_p(k['p_adjusted'])})")
    return lines


@cli.command("curve")
@click.option("--suite", required=True)
@click.option("--checkpoint", "checkpoints", multiple=True, required=True)
@click.option("--metric", default=None, help="Metric spec (default: the suite's first).")
@backend_option
@base_url_option
@batch_option
@dtype_option
@json_option
@click.pass_context
def curve_cmd(ctx, suite, checkpoints, metric, backend, base_url, batch_size, dtype,
              as_json) -> None:
    """The metric at every checkpoint of a run, and the best checkpoint."""
    from evals.compare import across_checkpoints

    data = across_checkpoints(get_store(ctx), suite, list(checkpoints), metric, backend,
                              _backend_options(backend, base_url, batch_size, dtype))
    points = [{**p, **{k: f"{p[k]:.4f}" for k in ("mean", "low", "high")}} for p in data["points"]]
    emit(data, as_json, table(points, ["checkpoint", "mean", "low", "high", "n"])
         + f"\nbest: {data['best']}")


@cli.command("judge")
@click.option("--suite", required=True)
@click.option("--baseline", required=True)
@click.option("--candidate", required=True)
@click.option("--judge", "judge_id", required=True,
              help="Judge checkpoint id/folder ('base:<name>' for a served model).")
@click.option("--judge-backend", type=click.Choice(BACKENDS), default="hf",
              show_default=True)
@click.option("--judge-endpoint", type=click.Choice(["completions", "chat"]), default="chat",
              show_default=True, help="OpenAI judge endpoint.")
@base_url_option
@click.option("--rubric", default=None, help="Also grade each answer 1-5 against this rubric.")
@click.option("--backend", type=click.Choice(BACKENDS), default="hf", show_default=True,
              help="Backend whose (cached) outputs of the two checkpoints are judged.")
@json_option
@click.pass_context
def judge_cmd(ctx, suite, baseline, candidate, judge_id, judge_backend, judge_endpoint, base_url,
              rubric, backend, as_json) -> None:
    """LLM-as-judge: pairwise in both orders (disagreement = tie), length-controlled win rate."""
    from evals.judge import judge_suite

    opts = _backend_options(judge_backend, base_url, None)
    if judge_backend == "openai":
        opts["endpoint"] = judge_endpoint
    data = judge_suite(get_store(ctx), suite, baseline, candidate, judge_id, judge_backend, opts,
                       gen_backend=backend, rubric=rubric)
    emit(data, as_json)
