"""Curation commands: import, datasets, show, browse, filter, dedup, clusters, keep, score,
hist, split, decontam, exclude, versions, diff, export. Thin: parse, call `curation.*`, print."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from curation.dedup import DEDUP_METHODS
from curation.formats import FORMATS
from curation.noisy_labels import DENOISE_SCORE, HIGH_MODE_POSTERIOR, OOF_SCORER
from curation.scoring import SCORERS
from kernel.errors import StudioError
from studio.cli.common import cli, emit, get_store, json_option, table


@contextmanager
def progress_bar(desc: str) -> Iterator:
    """A `progress(done, total)` callback drawing a tqdm bar on stderr (hidden when not a TTY)."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, file=sys.stderr, disable=None, leave=False)

    def update(done: int, total: int) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _parse_mapping(pairs: tuple[str, ...]) -> dict[str, str] | None:
    out = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field or not column:
            raise StudioError(f"--map {pair!r}: expected FIELD=COLUMN, e.g. response=answer_text")
        out[field.strip()] = column.strip()
    return out or None


@cli.command("import")
@click.argument("path")
@click.option("--name", required=True, help="Name of the new dataset.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Input schema (default: detected from the columns).")
@click.option("--map", "mapping", multiple=True, metavar="FIELD=COLUMN",
              help="Column for a canonical field (instruction, input, response, system, "
                   "messages, conversations, id, category, tags, tools, split); repeatable.")
@click.option("--field", default=None, metavar="KEY",
              help="The records are the list under this top-level key, e.g. --field data "
                   "for {\"data\": [...]}.")
@click.option("--strict", is_flag=True,
              help="Refuse the import if anything would be changed: values coerced to text, "
                   "repeated source ids replaced, fields dropped, a conversation starting "
                   "with the assistant.")
@click.option("--lenient", is_flag=True,
              help="CSV: read a malformed file (e.g. a broken quote) with a guessed dialect "
                   "instead of stopping at the bad line; check the rows afterwards.")
@click.option("--preview", is_flag=True, help="Show the detected format and first rows; write nothing.")
@json_option
@click.pass_context
def import_cmd(ctx, path, name, fmt, mapping, field, strict, lenient, preview, as_json):
    """Import PATH (JSONL, JSON, CSV, Parquet, a datasets folder or hub name) as NAME.

    The summary counts what was changed on the way in (see --strict) and what was kept that
    is worth knowing (non-text content parts, tool calls, a `split` column)."""
    from curation import importer

    if preview:
        got = importer.preview(path, fmt, _parse_mapping(mapping), lenient=lenient, field=field)
        rows = [{"line": r["line"], "instruction": r["instruction"], "response": r["response"],
                 "error": r["err"]} for r in got["rows"]]
        emit(got, as_json, f"format: {got['format']}  mapping: {got['mapping']}\n{table(rows)}")
        return
    with progress_bar("import") as cb:
        got = importer.import_file(get_store(ctx), path, name, fmt, _parse_mapping(mapping), cb,
                                   strict=strict, lenient=lenient, field=field)
    notes = importer.describe_changes(got["changes"], got["info"], got["unit"])
    emit(got, as_json, f"imported {got['n_rows']} rows as {got['name']}@{got['version']} "
                       f"(format {got['format']})" + "".join(f"\n  {n}" for n in notes))


@cli.command("datasets")
@json_option
@click.pass_context
def datasets_cmd(ctx, as_json):
    """List datasets with their latest version and row count."""
    from curation.datasets import list_datasets

    emit(list_datasets(get_store(ctx)), as_json)


@cli.command("show")
@click.argument("ref")
@json_option
@click.pass_context
def show_cmd(ctx, ref, as_json):
    """Summary of NAME[@VERSION]: operation, counts, scores, sample rows."""
    from curation.datasets import show

    got = show(get_store(ctx), ref)
    if as_json:
        emit(got, True)
        return
    sample = got.pop("sample")
    emit(got, False)
    click.echo(table(sample) if sample else "(no rows)")


@cli.command("browse")
@click.argument("ref")
@click.option("--where", default=None, help="Conditions, e.g. \"resp_chars>=10 and text~'hi'\".")
@click.option("--sort", default=None, help="Field or score; prefix '-' for descending.")
@click.option("--page", default=1, show_default=True)
@click.option("--page-size", default=20, show_default=True)
@json_option
@click.pass_context
def browse_cmd(ctx, ref, where, sort, page, page_size, as_json):
    """One page of rows of NAME[@VERSION] matching --where."""
    from curation.browse import browse

    rows, total = browse(get_store(ctx), ref, where, sort, page, page_size)
    if as_json:
        emit({"total": total, "page": page, "rows": rows}, True)
        return
    cols = ["id", "instruction", "response", "split", "is_dup"]
    click.echo(table([{c: r[c] for c in cols} for r in rows]) if rows else "(no rows)")
    click.echo(f"{total} matching rows; page {page}")


@cli.command("filter")
@click.argument("ref")
@click.option("--where", required=True, help="Conditions joined by 'and' (FIELD OP VALUE).")
@click.option("--out", default=None, help="Name of the new version (default vN).")
@json_option
@click.pass_context
def filter_cmd(ctx, ref, where, out, as_json):
    """Keep the rows of NAME[@VERSION] matching --where, as a new version."""
    from curation.browse import filter_version

    got = filter_version(get_store(ctx), ref, where, out)
    emit(got, as_json, f"{got['ref']}: {got['n_rows']} rows ({got['n_removed']} removed)")


@cli.command("dedup")
@click.argument("ref")
@click.option("--method", type=click.Choice(DEDUP_METHODS), default="exact",
              show_default=True,
              help="exact: same whole conversation after normalizing Unicode (NFKC), case and "
                   "whitespace only (punctuation, operators, signs and symbols count); near: "
                   "Jaccard of word 3-grams, character 3-grams in Chinese/Japanese (MinHash "
                   "LSH, checked exactly); semantic: cosine "
                   "of --model embeddings, else of TF-IDF vectors. Each flagged row is within "
                   "the threshold of the row kept for it.")
@click.option("--threshold", type=float, default=None,
              help="near: Jaccard (default 0.8); semantic: cosine (default 0.9).")
@click.option("--keep", default="first", show_default=True,
              help="Keeper per cluster: first, longest (response), tidy (least stray whitespace, then "
                   "first) or score:NAME (highest).")
@click.option("--model", default=None, help="semantic: sentence-transformers path or name.")
@click.option("--num-perm", default=128, show_default=True, help="near: MinHash permutations.")
@click.option("--ngram", default=3, show_default=True,
              help="near: shingle size in tokens (words; single Han/kana characters).")
@click.option("--out", default=None, help="Name of the new version (default vN).")
@json_option
@click.pass_context
def dedup_cmd(ctx, ref, method, threshold, keep, model, num_perm, ngram, out, as_json):
    """Flag duplicates of NAME[@VERSION] (one keeper per cluster) in a new version.

    Every method compares the whole conversation: system prompt and every turn."""
    from curation.dedup import dedup

    with progress_bar(f"dedup {method}") as cb:
        got = dedup(get_store(ctx), ref, method, threshold, keep, out, model, num_perm, ngram, cb)
    emit(got, as_json, f"{got['ref']}: {got['n_clusters']} clusters, {got['n_flagged']} rows "
                       f"flagged, {got['n_kept']} kept")


@cli.command("clusters")
@click.argument("ref")
@click.option("--cluster", default=None, help="Show one cluster's members side by side.")
@click.option("--page", default=1, show_default=True)
@click.option("--page-size", default=10, show_default=True)
@json_option
@click.pass_context
def clusters_cmd(ctx, ref, cluster, page, page_size, as_json):
    """Duplicate clusters of a dedup version (largest first), or one cluster's members."""
    from curation.dedup import cluster_members, clusters

    store = get_store(ctx)
    if cluster:
        got = cluster_members(store, ref, cluster)
        emit(got, as_json, table([{"id": m["id"], "keeper": not m["is_dup"],
                                   "instruction": m["instruction"], "response": m["response"]}
                                  for m in got["members"]]))
        return
    found, total = clusters(store, ref, page, page_size)
    if as_json:
        emit({"total": total, "clusters": found}, True)
        return
    keeper = {c["cluster"]: next(m for m in c["members"] if m["uid"] == c["keeper"])
              for c in found if c["keeper"]}
    click.echo(table([{"cluster": c["cluster"], "size": c["size"],
                       "keeper_id": keeper[c["cluster"]]["id"] if c["cluster"] in keeper else None,
                       "instruction": keeper.get(c["cluster"], {}).get("instruction")}
                      for c in found]) if found else "(no clusters)")
    click.echo(f"{total} clusters")


@cli.command("keep")
@click.argument("ref")
@click.argument("choices", nargs=-1, required=True, metavar="CLUSTER=ROW_ID...")
@click.option("--out", default=None, help="Name of the new version (default vN).")
@json_option
@click.pass_context
def keep_cmd(ctx, ref, choices, out, as_json):
    """Override keepers: CLUSTER=ROW_ID pairs; saves a new version."""
    from curation.dedup import save_keepers

    got = save_keepers(get_store(ctx), ref, _parse_mapping(choices) or {}, out)
    emit(got, as_json, f"{got['ref']}: keepers {got['keepers']}")


@cli.command("score")
@click.argument("ref")
@click.option("--scorer", type=click.Choice([*SCORERS, OOF_SCORER]),
              default="heuristic", show_default=True,
              help=f"{OOF_SCORER}: out-of-fold response loss from --folds LoRA runs on --model "
                   "(stored as oof_loss, the default score of `studio denoise`).")
@click.option("--model", default=None, help="Causal LM (HF name or folder) for model scorers.")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--max-length", default=512, show_default=True)
@click.option("--folds", default=3, show_default=True, help=f"{OOF_SCORER}: number of folds (k runs).")
@click.option("--train-steps", default=300, show_default=True, help=f"{OOF_SCORER}: steps per fold run.")
@click.option("--learning-rate", default=1e-3, show_default=True, help=f"{OOF_SCORER}: LoRA learning rate.")
@click.option("--seed", default=0, show_default=True, help=f"{OOF_SCORER}: fold split and training seed.")
@click.option("--retry/--no-retry", default=True, show_default=True,
              help=f"{OOF_SCORER}: train a fold model that did not learn a task once more "
                   "(next seed); otherwise that task's rows stay unjudged.")
@click.option("--out", default=None, help="Name of the new version (default vN).")
@json_option
@click.pass_context
def score_cmd(ctx, ref, scorer, model, batch_size, max_length, folds, train_steps, learning_rate,
              seed, retry, out, as_json):
    """Compute quality scores for every row of NAME[@VERSION] (a new version)."""
    from curation.scoring import score

    store = get_store(ctx)
    if scorer == OOF_SCORER:
        from training.config import TrainConfig
        from training.oof import score_out_of_fold

        cfg = TrainConfig(base_model=model or "", max_steps=train_steps, learning_rate=learning_rate,
                          seed=seed, packing=False)
        got = score_out_of_fold(store, ref, cfg, folds=folds, seed=seed, out=out,
                                max_length=max_length, retry=retry,
                                log=lambda line: click.echo(line, err=True))
    else:
        with progress_bar(f"score {scorer}") as cb:
            got = score(store, ref, scorer, model, out, batch_size, max_length, cb)
    emit(got, as_json, f"{got['ref']}: {', '.join(got['scores'])} on {got['n_rows']} rows")


@cli.command("hist")
@click.argument("ref")
@click.argument("score_name")
@click.option("--bins", default=10, show_default=True)
@json_option
@click.pass_context
def hist_cmd(ctx, ref, score_name, bins, as_json):
    """Histogram of one score of NAME[@VERSION]."""
    from curation.overview import histogram

    got = histogram(get_store(ctx), ref, score_name, bins)
    if as_json or got["labels"]:
        emit(got["labels"] if not as_json else got, as_json)
        return
    peak = max(got["counts"] or [1]) or 1
    for k, c in enumerate(got["counts"]):
        click.echo(f"{got['edges'][k]:>12.4g}  {'#' * round(40 * c / peak):<40} {c}")
    click.echo(f"n={got['n']} mean={got['mean']:.4g} missing={got['n_missing']}")


@cli.command("split")
@click.argument("ref")
@click.option("--held-out", type=float, required=True, help="Fraction held out, e.g. 0.1.")
@click.option("--seed", default=0, show_default=True)
@click.option("--stratify", default=None, help="Field to stratify by (category, source, n_turns).")
@click.option("--out", default=None, help="Name of the new version (default vN).")
@json_option
@click.pass_context
def split_cmd(ctx, ref, held_out, seed, stratify, out, as_json):
    """Seeded train/held-out split of NAME[@VERSION] (a new version)."""
    from curation.split import split

    got = split(get_store(ctx), ref, held_out, seed, stratify, out)
    emit(got, as_json, f"{got['ref']}: {got['n_train']} train, {got['n_heldout']} held out")


@cli.command("decontam")
@click.argument("ref")
@click.option("--against", required=True, help="Eval/held-out dataset ref to check against.")
@click.option("--ngram", default=8, show_default=True, help="Words in a shared n-gram.")
@click.option("--out", default=None, help="Name of the new version (default vN).")
@json_option
@click.pass_context
def decontam_cmd(ctx, ref, against, ngram, out, as_json):
    """Remove training rows sharing a long n-gram with --against (a new version)."""
    from curation.decontam import decontaminate

    got = decontaminate(get_store(ctx), ref, against, ngram, out=out)
    emit(got, as_json, f"{got['ref']}: {got['n_flagged']} of {got['n_checked']} rows "
                       f"contaminated by {against}, removed")


@cli.command("exclude")
@click.argument("ref")
@click.argument("ids", nargs=-1, required=True)
@click.option("--out", default=None, help="Name of the new version (default vN).")
@json_option
@click.pass_context
def exclude_cmd(ctx, ref, ids, out, as_json):
    """Drop rows by id (a new version)."""
    from curation.edits import exclude

    got = exclude(get_store(ctx), ref, list(ids), out)
    emit(got, as_json, f"{got['ref']}: {got['n_excluded']} rows excluded")


@cli.command("denoise")
@click.argument("ref")
@click.option("--score", "score_name", default=DENOISE_SCORE, show_default=True,
              help=f"Per-row loss score: {DENOISE_SCORE} from `studio score --scorer {OOF_SCORER}` "
                   "(out-of-fold), or resp_loss from `--scorer perplexity` (in-sample).")
@click.option("--group-by", type=click.Choice(["category", "source_file", "none"]),
              default="category", show_default=True, help="Fit one cut per group.")
@click.option("--min-group", default=20, show_default=True, help="Smaller groups are kept as is.")
@click.option("--posterior", default=HIGH_MODE_POSTERIOR, show_default=True,
              help="Flag a row where its group's high-loss mode has at least this posterior.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", default=None, help="Name of the new version (default vN).")
@json_option
@click.pass_context
def denoise_cmd(ctx, ref, score_name, group_by, min_group, posterior, seed, out, as_json):
    """Drop likely wrong labels: rows in the high-loss mode of their group (a new version)."""
    from curation.noisy_labels import drop_high_loss

    got = drop_high_loss(get_store(ctx), ref, score=score_name, group_by=group_by, seed=seed,
                         min_group=min_group, out=out, posterior=posterior)
    cuts = ", ".join(f"{k or '(all)'} {v:.3g}" for k, v in got["cuts"].items()) or "none"
    warnings = "".join(f"\nwarning: {k or '(all)'} left unjudged: {why}"
                       for k, why in got["unjudged"].items())
    emit(got, as_json, f"{got['ref']}: {got['n_excluded']} of {got['n_scored']} rows dropped "
                       f"as likely wrong labels (loss cuts: {cuts}){warnings}")


@cli.command("versions")
@click.argument("name")
@json_option
@click.pass_context
def versions_cmd(ctx, name, as_json):
    """Lineage of dataset NAME: every version, its parent, operation and parameters."""
    from curation.datasets import list_versions

    emit(list_versions(get_store(ctx), name), as_json)


@cli.command("diff")
@click.argument("a")
@click.argument("b", required=False)
@json_option
@click.pass_context
def diff_cmd(ctx, a, b, as_json):
    """Rows removed, added, changed and re-flagged from A to B (B alone: against its parent)."""
    from curation.datasets import diff, parent_ref

    store = get_store(ctx)
    if b is None:
        a, b = parent_ref(store, a), a
    got = diff(store, a, b)
    emit(got, as_json, "\n".join(
        f"{k:<10} {got[k]:>8}  {' '.join(got[k + '_ids'])}"
        for k in ("removed", "added", "changed", "reflagged")))


@cli.command("export")
@click.argument("ref")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet", "hf"]), default="jsonl",
              show_default=True)
@click.option("--split", type=click.Choice(["train", "heldout"]), default=None)
@click.option("--include-dups", is_flag=True, help="Also export rows flagged as duplicates.")
@click.option("--force", is_flag=True, help="Replace PATH if it exists (never through a symlink).")
@json_option
@click.pass_context
def export_cmd(ctx, ref, path, fmt, split, include_dups, force, as_json):
    """Write NAME[@VERSION] to PATH (jsonl, parquet, or a datasets folder)."""
    from curation.export import export

    got = export(get_store(ctx), ref, path, fmt, split, include_dups, force=force)
    emit(got, as_json, f"wrote {got['n_rows']} rows of {got['ref']} to {got['path']}")
