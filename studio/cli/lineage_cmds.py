"""CLI for provenance: `studio lineage NAME[@VERSION]` and `studio lineage --checkpoint RUN/step-N`.

Thin layer over `evals.lineage`: the version chain (or the whole tree of a dataset) with the
runs trained on each version and their held-out metrics, or a checkpoint's way back to its data.
"""

from __future__ import annotations

import click

from kernel.errors import StudioError
from studio.cli.common import cli, emit, get_store, json_option, render, table

_PROVENANCE_KEYS = ("dataset_ref", "data_file", "rows_sha256", "train_file_sha256",
                    "formatted_sha256", "base_model", "base_model_sha256", "code_version",
                    "git_commit")


@cli.command("lineage")
@click.argument("ref", required=False)
@click.option("--checkpoint", default=None, metavar="RUN/step-N",
              help="Start from a checkpoint: every curation step that shaped its data.")
@json_option
@click.pass_context
def lineage_cmd(ctx: click.Context, ref: str | None, checkpoint: str | None, as_json: bool) -> None:
    """Curation steps of REF (NAME@VERSION: import -> VERSION; NAME: every version of the
    dataset as a tree) with the runs trained on each version and their held-out metrics."""
    from evals import lineage as L

    if bool(ref) == bool(checkpoint):
        raise StudioError("lineage: give a dataset NAME[@VERSION] or --checkpoint RUN/step-N (one)")
    store = get_store(ctx)
    if checkpoint:
        data = L.checkpoint_lineage(store, checkpoint)
        if as_json:
            emit(data, as_json)
            return
        prov = data["provenance"]
        click.echo(render({"checkpoint": data["checkpoint"], "run": data["run_id"],
                           **{k: prov.get(k) for k in _PROVENANCE_KEYS}}))
        for e in data["evals"]:
            click.echo(f"eval {e['suite']}: " + ", ".join(
                f"{m} {v:.3f}" for m, v in e["metrics"].items() if isinstance(v, (int, float))))
        if data["steps"]:
            click.echo(table(L.lineage_table(data["steps"])))
        return
    data = L.lineage(store, ref) if "@" in ref else L.dataset_tree(store, ref)
    emit(data, as_json, human=table(L.lineage_table(data["steps"])))
