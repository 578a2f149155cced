"""The demo's steps in the order a user would take them: build the base model, import, dedup
and heuristics, train on raw data, score by loss and filter, train curated and curated+replay,
evaluate all four checkpoints through one backend, compare with paired statistics.

Why: the studio's promise is that curation decisions are judged by evaluation. This module
only orchestrates library calls (curation, training, evals), times each step and collects the
figures; every number in the result comes from the runs of this invocation and nothing is
adjusted.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from huggingface_hub.utils import disable_progress_bars
from transformers.utils import logging as hf_logging

from curation.browse import filter_version
from curation.datasets import list_datasets, load_rows, resolve_ref
from curation.dedup import dedup
from curation.filters import Condition
from curation.importer import import_file
from curation.scoring import score
from curation.versions import lineage
from evals.backends import get_backend
from evals.compare import compare_results
from evals.evaluate import evaluate
from evals.suites import suite_from_file
from kernel.store import Store
from kernel.version_names import first_free_name
from kernel.workspace import Workspace
from studio.demo.attribution import attribute, demo_chain
from studio.demo.clock import Clock, Progress
from studio.demo.data import DemoData, build_demo_data
from studio.demo.denoise import denoise, losses_of, quality, score_rows
from studio.demo.health import check_learning
from studio.demo.result import DemoResult, Paired, Score
from studio.demo.settings import FULL_PLAN, LABELS, QUICK_PLAN, DemoSettings
from training.checkpoints import base_checkpoint_id
from training.checkpoints import resolve as resolve_model
from training.config import TrainConfig
from training.data import write_jsonl
from training.oof import training_losses
from training.start_run import launch_training, wait_for_checkpoints
from training.tiny_model import TinyModelConfig, build_tiny_model


def _quiet_libraries() -> None:
    """Our progress lines only: no per-file progress bars from transformers / HF hub."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    # vLLM's own log handler writes to stdout, which `--json` keeps for the result; unconfigured,
    # its warnings reach stderr through Python's last-resort handler.
    os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _set_threads(n: int) -> None:
    """Torch threads here and in the job processes (they inherit the environment); the model
    builder and the trainer read STUDIO_TORCH_THREADS."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["STUDIO_TORCH_THREADS"] = str(n)
    torch.set_num_threads(n)


def _unique_name(store: Store, base: str) -> str:
    """`base`, or `base-2`, `base-3`... when an earlier demo in this workspace took it."""
    return first_free_name(base, {d["name"] for d in list_datasets(store)})


def base_model_path(workspace: Workspace, pretrain_steps: int) -> Path:
    return workspace.models_dir / f"tiny-{TinyModelConfig(pretrain_steps=pretrain_steps).fingerprint()}"


def _is_built(path: Path) -> bool:
    return (path / "config.json").exists() and (path / "model.safetensors").exists()


def ensure_base_model(workspace: Workspace, pretrain_steps: int, progress: Progress) -> Path:
    """The offline tiny model, cached in models/ under its config fingerprint."""
    cfg = TinyModelConfig(pretrain_steps=pretrain_steps)
    path = base_model_path(workspace, pretrain_steps)
    if _is_built(path):
        progress(f"      reusing {path}")
        return path
    tmp = path.with_name(path.name + ".building")
    build_tiny_model(tmp, cfg, log=lambda line: progress("      " + line))
    tmp.rename(path)
    return path


def _paired(comparison, metric: str = "exact_match") -> Paired:
    row = next(m for m in comparison.metrics if m["metric"] == metric)
    by_category = {b["category"]: {k: b[k] for k in ("n", "baseline", "candidate", "diff")}
                   for b in comparison.breakdown if b["metric"] == metric}
    return Paired(baseline=comparison.baseline, candidate=comparison.candidate,
                  baseline_mean=row["baseline"]["mean"], candidate_mean=row["candidate"]["mean"],
                  diff=row["diff"], ci_low=row["ci_low"], ci_high=row["ci_high"],
                  p_value=row["p_value"], n=row["n"], by_category=by_category)


def _scores(result, labels: dict[str, str], metric: str = "exact_match") -> dict[str, Score]:
    out = {}
    for label, ckpt in labels.items():
        s = result.summary[ckpt][metric]
        out[label] = Score(mean=s["mean"], low=s["low"], high=s["high"], n=s["n"])
    return out


def pick_backend(requested: str, progress: Progress) -> tuple[str, list[str]]:
    """vLLM when it imports; otherwise HF, said loudly (the numbers stay real, only slower)."""
    if requested != "vllm":
        return requested, []
    try:  # a probe, not a use: vLLM is optional and loads only when it evaluates
        import vllm  # noqa: F401
    except Exception as exc:  # vLLM's import can fail in many ways; any of them means "absent"
        note = (f"WARNING: vLLM is not usable here ({type(exc).__name__}: {exc}); "
                "evaluating with the HF backend instead")
        progress(note)
        return "hf", [note]
    return "vllm", []


def _evaluate_all(store: Store, suites: dict[str, str], checkpoints: dict[str, str],
                  backend_name: str, only: dict[str, list[str]] | None = None) -> dict:
    """Every checkpoint on every suite through ONE backend instance (one vLLM engine); `only`
    names, per suite role, the checkpoint labels that role needs (default: all)."""
    refs = [resolve_model(store, c) for c in checkpoints.values()]
    options = {"max_model_len": 128} if backend_name == "vllm" else {}
    backend = get_backend(backend_name, refs, **options)
    labels = only or {}
    try:
        return {role: evaluate(store, suite, [checkpoints[k] for k in labels.get(role, checkpoints)],
                               backend=backend)
                for role, suite in suites.items()}
    finally:
        backend.close()


def _make_suites(store: Store, data: DemoData, seed: int, settings: DemoSettings
                 ) -> dict[str, str]:
    """The held-out suite greedy and sampled (the claim's metric), and the general suite."""
    names = {"task": f"demo-heldout-s{seed}", "general": f"demo-general-s{seed}",
             "task_sampled": f"demo-heldout-s{seed}-sampled"}
    greedy = {"max_new_tokens": 16}
    sampled = {**greedy, "temperature": settings.claim_temperature, "top_p": 1.0,
               "n": settings.claim_samples}
    for role, path, sampling in (("task", data.heldout_path, greedy),
                                 ("general", data.general_path, greedy),
                                 ("task_sampled", data.heldout_path, sampled)):
        suite_from_file(store, names[role], path, replace=True, role=role.split("_")[0],
                        metrics=["exact_match"], sampling=sampling)
    return names


def run_demo(workspace: str | Path, seed: int = 0, quick: bool = False,
             progress: Progress = print, settings: DemoSettings | None = None,
             suite_seed: int | None = None) -> DemoResult:
    """Run every step of the demo in `workspace` and return this run's figures. `suite_seed`
    fixes the held-out and general suites across several seeds (`run_demo_seeds`)."""
    settings = settings or DemoSettings.preset(quick)
    _quiet_libraries()
    _set_threads(settings.threads)
    ws = Workspace.open(workspace)
    store = Store(ws)
    plan = list(QUICK_PLAN if quick else FULL_PLAN)
    if _is_built(base_model_path(ws, settings.pretrain_steps)):
        plan[0] = ("base model", 1.0)
    clock = Clock(plan, progress)
    backend, notes = pick_backend(settings.backend, progress)

    with clock.step("base model", f"tiny Llama, {settings.pretrain_steps} pretraining steps"):
        model = ensure_base_model(ws, settings.pretrain_steps, progress)
    with clock.step("import", "built-in noisy dataset + held-out and general suites"):
        data = build_demo_data(ws.root / "demo-data" / f"seed-{seed}", settings.data, seed,
                               suite_seed=suite_seed)
        dataset = _unique_name(store, f"demo-s{seed}")
        imported = _import(store, data, dataset)
        all_suites = _make_suites(store, data, seed if suite_seed is None else suite_seed,
                                  settings)
        suites = {role: all_suites[role] for role in ("task", "general")}
        progress(f"      {data.n_train} rows ({len(data.bad_label_ids)} wrong/empty/truncated, "
                 f"{len(data.duplicate_ids)} planted copies); suites: {data.n_heldout} held-out, "
                 f"{data.n_general} general")

    with clock.step("dedup + heuristics", "exact + near duplicates, empty/truncated answers"):
        steps, heuristic_ref = _dedup_and_heuristics(store, imported["raw"], settings)

    train = _trainer(store, model, settings, seed, progress)
    early = settings.early_step if settings.detector == "early" else None
    with clock.step("train raw", f"LoRA r{settings.lora_r}, {settings.train_steps} steps"):
        raw = train(imported["raw"], "demo-raw", save_steps=early)

    detail = {"oof": f"out-of-fold loss, {settings.oof_folds} LoRA runs",
              "in-sample": "loss under the raw-tuned model",
              "early": f"loss under the raw run at step {settings.early_step}"}[settings.detector]
    with clock.step("noisy-label filter", detail):
        curated_ref, loss_step, detection = _noisy_label_filter(
            store, heuristic_ref, raw, data, settings, model, seed, progress)
        steps.append(loss_step)
        notes += [f"noisy-label filter left {name} unjudged: {why}"
                  for name, why in detection["unjudged"].items()]
        notes += [f"out-of-fold model {run['fold']}: {task} losses did not spread "
                  f"({t['spread']:.2f}), so it was trained again with seed {run['retry']['seed']}: "
                  f"spread {t['retry_spread']:.2f}, {'used' if t['used'] else 'not used'}"
                  for run in detection["fold_runs"] if run.get("retry")
                  for task, t in run["retry"]["tasks"].items()]

    with clock.step("train curated", f"same settings on {curated_ref}"):
        curated = train(curated_ref, "demo-curated")

    with clock.step("train curated+replay", f"{curated_ref} + base-task replay"):
        replay_ref = _replay_mix(store, curated_ref, imported["replay"], settings, seed)
        replay = train(replay_ref, "demo-curated-replay")

    runs = {"raw": raw, "curated": curated, "curated+replay": replay}
    checkpoints = {"base": base_checkpoint_id(model),
                   **{label: run.last for label, run in runs.items()}}
    with clock.step("evaluate", f"4 checkpoints x 2 suites through {backend}, raw and curated "
                    f"sampled ({settings.claim_samples} at T={settings.claim_temperature:g})"):
        results = _evaluate_all(store, all_suites, checkpoints, backend,
                                only={"task_sampled": ["raw", "curated"]})
        sampled = results.pop("task_sampled")

    with clock.step("compare", "paired statistics"):
        task, general = results["task"], results["general"]
        c = checkpoints
        curated_vs_raw = _paired(compare_results(task, c["raw"], c["curated"], seed=seed))
        curated_vs_raw_sampled = _paired(compare_results(sampled, c["raw"], c["curated"],
                                                         seed=seed))
        forgetting = {label: _paired(compare_results(general, c["base"], c[label], seed=seed))
                      for label in LABELS[1:]}
        replay_effect = _paired(compare_results(general, c["curated"], c["curated+replay"],
                                                seed=seed))
        scores = {role: _scores(res, checkpoints) for role, res in results.items()}
        learning = {}
        for label, run in runs.items():
            gain = _paired(compare_results(task, c["base"], c[label], seed=seed))
            learning[label] = asdict(check_learning(
                label, run.losses, gain.diff, gain.ci_low, settings.min_heldout_gain,
                settings.max_loss_ratio))
        notes += [f"{label} run did not learn the task: {'; '.join(v['problems'])}"
                  + (" -- it is no fair baseline, so curated - raw says little"
                     if label == "raw" else "")
                  for label, v in learning.items() if not v["learned"]]

    with clock.step("attribute steps", "train each step's version; paired difference per step"):
        chain = demo_chain(imported["raw"], steps[0]["n_in"], steps, replay_ref,
                           _kept(store, replay_ref))
        trained = {imported["raw"]: [raw.last], curated_ref: [curated.last],
                   replay_ref: [replay.last]}
        attribution = attribute(store, chain, trained, lambda ref, name: train(ref, name).last,
                                suites, backend,
                                lambda ckpts: _evaluate_all(store, suites, ckpts, backend))

    all_ids = {r["id"] for r in _rows(store, imported["raw"])}
    kept = {r["id"] for r in _rows(store, curated_ref)}
    curation = {"steps": steps, "quality": data.score_curation(all_ids, kept), **detection}
    per_example = {role: {label: res.scores[ckpt]["exact_match"].tolist()
                          for label, ckpt in checkpoints.items()}
                   for role, res in results.items()}
    per_example["task_sampled"] = {label: sampled.scores[checkpoints[label]]["exact_match"].tolist()
                                   for label in ("raw", "curated")}
    return DemoResult(
        workspace=str(ws.root), seed=seed, quick=quick, backend=backend, base_model=str(model),
        dataset=dataset, versions={"raw": imported["raw"], "heuristic": heuristic_ref,
                                   "curated": curated_ref, "replay": replay_ref},
        lineage=_lineage(store, curated_ref), curation=curation, checkpoints=checkpoints,
        suites=all_suites, scores=scores, curated_vs_raw=curated_vs_raw,
        curated_vs_raw_sampled=curated_vs_raw_sampled, forgetting=forgetting,
        replay_effect=replay_effect, learning=learning, attribution=attribution,
        steps=clock.steps, total_s=clock.elapsed(), notes=notes, per_example=per_example)


def _rows(store: Store, ref: str) -> list[dict]:
    return load_rows(store, ref)


def _lineage(store: Store, ref: str) -> list[str]:
    dataset, version = resolve_ref(store, ref)
    with store.connect() as con:
        chain = lineage(con, dataset, version)
    return [f"{dataset}@{v}" for v in reversed(chain)]


def _import(store: Store, data: DemoData, dataset: str) -> dict[str, str]:
    """The noisy training file and the replay rows, each as a dataset (version v1)."""
    raw = import_file(store, data.train_path, dataset)
    replay = import_file(store, data.replay_path, f"{dataset}-replay")
    return {"raw": f"{raw['name']}@{raw['version']}",
            "replay": f"{replay['name']}@{replay['version']}"}


def _replay_mix(store: Store, curated_ref: str, replay_ref: str, settings: DemoSettings,
                seed: int) -> str:
    """curated rows + a seeded sample of replay rows, imported as their own dataset."""
    curated = _rows(store, curated_ref)
    replay = _rows(store, replay_ref)
    k = min(len(replay), round(settings.replay_fraction * len(curated)))
    picked = random.Random(seed).sample(replay, k)
    dataset = curated_ref.split("@")[0]
    path = store.workspace.root / "demo-data" / f"{dataset}-curated-replay.jsonl"
    write_jsonl(path, [{"id": r["id"], "messages": r["messages"], "category": r["category"]}
                       for r in curated + picked])
    name = _unique_name(store, f"{dataset}-curated-replay")
    out = import_file(store, path, name)
    return f"{out['name']}@{out['version']}"


def train_config(settings: DemoSettings, model: Path, seed: int, ref: str = "", name: str = "",
                 save_steps: int | None = None) -> TrainConfig:
    """The demo's LoRA settings, the same for every run it trains (fold runs included)."""
    return TrainConfig(base_model=str(model), dataset=ref, name=name, lora_r=settings.lora_r,
                       lora_alpha=2 * settings.lora_r, lora_dropout=0.0,
                       learning_rate=settings.learning_rate, max_steps=settings.train_steps,
                       batch_size=settings.batch_size, seed=seed, eval_fraction=0.0,
                       packing=False, save_steps=save_steps or settings.train_steps,
                       logging_steps=max(1, settings.train_steps // 10), warmup_ratio=0.0,
                       lr_scheduler=settings.lr_scheduler, max_grad_norm=settings.max_grad_norm,
                       report_to=[])


@dataclass
class TrainedRun:
    """A finished demo run: its checkpoints (step order) and logged training losses."""

    run_id: str
    checkpoints: list[str]
    losses: list[float]

    @property
    def last(self) -> str:
        return self.checkpoints[-1]


def _trainer(store: Store, model: Path, settings: DemoSettings, seed: int,
             progress: Progress) -> Callable[..., TrainedRun]:
    """A function that trains one LoRA run on a dataset ref (as a durable job)."""
    def train(ref: str, name: str, save_steps: int | None = None) -> TrainedRun:
        cfg = train_config(settings, model, seed, ref, name, save_steps)
        run_id = launch_training(store, cfg)

        def show(record: dict) -> None:
            if "loss" in record and "step" in record:
                progress(f"      step {record['step']}/{settings.train_steps} "
                         f"loss {record['loss']:.3f}")

        run, ordered = wait_for_checkpoints(store, run_id, f"demo ({name})", poll_s=2.0,
                                            on_metrics=show)
        return TrainedRun(run_id=run_id, checkpoints=[c["id"] for c in ordered],
                          losses=training_losses(run["run_dir"]))

    return train


def _step(name: str, before: dict | int, after: dict, detail: str | None = None) -> dict:
    """A curation step for the report. `name` says what the step does, the same on every seed
    (the attribution pools steps over seeds by it); `detail` is what this seed's run of it
    found (e.g. the noisy-label cuts)."""
    n_in = before if isinstance(before, int) else before["n_kept"]
    return {"name": name, "detail": detail, "ref": after["ref"], "n_in": n_in,
            "n_kept": after["n_kept"], "n_out": after["n_kept"]}


def _kept(store: Store, ref: str) -> int:
    """Rows a version trains on (duplicates flagged by dedup excluded)."""
    return len(_rows(store, ref))


def _dedup_and_heuristics(store: Store, raw_ref: str, settings: DemoSettings
                          ) -> tuple[list[dict], str]:
    """Exact dedup, near dedup, heuristic scores, then a filter dropping empty answers + dups."""
    n_raw = _kept(store, raw_ref)
    exact = dedup(store, raw_ref, method="exact", keep=settings.dedup_keep)
    exact["n_kept"] = _kept(store, exact["ref"])
    near = dedup(store, exact["ref"], method="near", threshold=settings.near_dup_threshold,
                 keep=settings.dedup_keep)
    near["n_kept"] = _kept(store, near["ref"])
    scored = score(store, near["ref"], "heuristic")
    kept = filter_version(store, scored["ref"], [
        Condition("is_dup", "=", False), Condition("empty_response", "=", 0),
        Condition("resp_chars", ">=", settings.min_response_chars)])
    kept["n_kept"] = _kept(store, kept["ref"])
    steps = [_step("exact dedup", n_raw, exact),
             _step(f"near dedup (Jaccard>={settings.near_dup_threshold})", exact, near),
             _step("heuristics (empty answers)", near, kept)]
    return steps, kept["ref"]


def _noisy_label_filter(store: Store, ref: str, raw: TrainedRun, data: DemoData,
                        settings: DemoSettings, model: Path, seed: int, progress: Progress
                        ) -> tuple[str, dict, dict]:
    """Score every row with the settings' detector, drop each task's high-loss mode, and
    measure the detector (and, for comparison, the in-sample loss) against the planted noise."""
    n_in = _kept(store, ref)
    early = next((c for c in raw.checkpoints if c.endswith(f"/step-{settings.early_step}")), None)
    cfg = train_config(settings, model, seed)
    scored_ref, score_name, details = score_rows(
        store, ref, settings.detector, raw_checkpoint=raw.last, early_checkpoint=early,
        train_cfg=cfg, folds=settings.oof_folds, seed=seed,
        log=lambda line: progress("      " + line))
    kept = denoise(store, scored_ref, score_name, seed)
    kept["n_kept"] = _kept(store, kept["ref"])
    bad = data.bad_label_ids
    detector = quality(settings.detector, losses_of(store, scored_ref, score_name), bad, seed)
    compared = [asdict(detector)]
    if settings.detector != "in-sample":  # the former method, on the same rows: one cheap pass
        in_ref, in_name, _ = score_rows(store, ref, "in-sample", raw_checkpoint=raw.last)
        compared.append(asdict(quality("in-sample", losses_of(store, in_ref, in_name), bad, seed)))
    cuts = ", ".join(f"{k} {v:.2f}" for k, v in kept["cuts"].items())
    step = _step(f"noisy labels: {settings.detector} loss per task and model", n_in, kept,
                 f"cuts: {cuts}")
    for name, why in kept["unjudged"].items():
        progress(f"      warning: noisy-label filter left {name} unjudged: {why}")
    folds = [{k: r.get(k) for k in ("fold", "run_id", "n_train", "n_scored", "retry")}
             for r in details.get("runs", [])]
    return kept["ref"], step, {"detector": asdict(detector), "detectors": compared,
                               "loss_auroc": detector.auroc, "fold_runs": folds,
                               "unjudged": kept["unjudged"]}
