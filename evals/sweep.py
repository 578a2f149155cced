"""Sweeps: a queued grid (or random sample) of training configs, picked by held-out statistics.

    spec = SweepSpec(name="s1", suite="held", axes=parse_grid(["lora_r=8,16", "lr=1e-4,3e-4"],
                     datasets=["support@v5", "support@v7"]), seeds=[0])
    start(store, base_cfg, spec)       # validates every config, queues one run per config x seed
    finish(store, "s1")                # waits, evaluates every run that trained to the end on
                                       # the suite in one backend, reports

Axes are TrainConfig field names (`lr`/`epochs` aliases too), so dataset versions are an axis
like any hyperparameter, and so is `replay_fraction` with `replay=DATASET` (the share of that
dataset's rows mixed into the training rows, `curation.replay.replay_mix`; mixes are built
when the sweep starts). A sweep is a run group (`training.groups`, kind "sweep"): it is listed
with the other groups and `training.groups.cancel_group` cancels the rest of it. The winner is
picked by `evals.sweep_winner.pick_winner` on held-out metrics, never by loss.

Successive halving (`halving=True`, asynchronous as in ASHA, Li et al. 2020, because on CPU
runs train one after another): at every eval step before the last (a rung), a run whose eval
loss is not among the best 1/eta of the runs that reached that rung so far stops. Each run
decides this itself in its training worker (`training.halving`, a Trainer callback), so it
works with `--detach` and nobody waiting; `wait` only reports those stops. A halved run ends
`completed` with a note and a usable last checkpoint, but it is no candidate: loss only
decides who keeps training, the winner is picked by the held-out metric among the runs that
trained to the end.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import dataclass, field

import numpy as np

from kernel.errors import StudioError
from training.config import TrainConfig
from training.halving import eval_losses, halving_stops  # noqa: F401  (the rule lives there)

NOT_AXES = {"seed": "list the seeds instead", "name": "the sweep names its runs"}
REPLAY_AXIS = "replay_fraction"  # not a TrainConfig field: the share of --replay rows mixed in


@dataclass
class SweepSpec:
    """What a sweep varies, how it is judged and how many runs it may queue."""

    name: str
    suite: str                                   # held-out suite that picks the winner
    axes: dict[str, list] = field(default_factory=dict)   # TrainConfig field -> values
    seeds: list[int] = field(default_factory=list)        # empty: the config's seed
    metric: str | None = None                    # default: the suite's first metric
    budget: int | None = None                    # at most this many runs (configs x seeds)
    random: int | None = None                    # sample this many configs from the grid
    sample_seed: int = 0
    halving: bool = False
    eta: int = 2                                 # halving keeps the best 1/eta at each rung
    replay: str | None = None                    # dataset mixed in by the replay_fraction axis

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- the grid -----------------------------------------------------------------------------------

def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _aliases() -> dict[str, str]:
    return {a: f.name for f in dataclasses.fields(TrainConfig)
            for a in f.metadata.get("cli_aliases", ())}


def _value(f: dataclasses.Field, text: str):
    """Typed by the field: '1e-4' -> 1e-4, 'true' -> True, 'q_proj+v_proj' -> a list. A value
    that does not parse stays text, and `check_axes` names it."""
    kind = str(f.type)
    if kind.startswith("list"):
        return [v for v in text.split("+") if v]
    if kind in ("int", "float"):
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            return text
    if kind == "bool":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def parse_grid(items: list[str], datasets: list[str] | None = None) -> dict[str, list]:
    """['lora_r=8,16', 'lr=1e-4,3e-4'] (+ dataset refs) -> {'lora_r': [8, 16],
    'learning_rate': [0.0001, 0.0003], 'dataset': [...]}; keys are TrainConfig fields."""
    fields, aliases = _fields(), _aliases()
    axes: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise StudioError(f"grid {item!r}: expected FIELD=V1,V2 (e.g. lora_r=8,16)")
        name = aliases.get(key, key)
        if name == REPLAY_AXIS:
            axes[name] = _fractions(key, values)
            continue
        if name in NOT_AXES:
            raise StudioError(f"grid {key}: not a sweep axis ({NOT_AXES[name]})")
        if name not in fields:
            known = sorted({*fields, *aliases, REPLAY_AXIS} - set(NOT_AXES))
            raise StudioError(f"grid {key}: not a TrainConfig field; known: "
                              f"{', '.join(known)}")
        if name in axes:
            raise StudioError(f"grid {key}: given twice")
        raw = [v.strip() for v in values.split(",") if v.strip()]
        if not raw:
            raise StudioError(f"grid {key}=: give at least one value")
        parsed = [_value(fields[name], v) for v in raw]
        repeated = [r for r, v in zip(raw, parsed, strict=True) if parsed.count(v) > 1]
        if repeated:
            raise StudioError(f"grid {key}: value {repeated[0]} is repeated")
        axes[name] = parsed
    if datasets:
        if "dataset" in axes:
            raise StudioError("give dataset versions either as datasets or as a grid axis "
                              "dataset=..., not both")
        axes["dataset"] = list(dict.fromkeys(datasets))
    return axes


def _fractions(key: str, values: str) -> list[float]:
    out = []
    for v in (v.strip() for v in values.split(",") if v.strip()):
        try:
            f = float(v)
        except ValueError:
            raise StudioError(f"grid {key}={v}: expected a number between 0 and 1") from None
        if not 0 <= f <= 1:
            raise StudioError(f"grid {key}={v}: expected a number between 0 and 1")
        out.append(f)
    if len(set(out)) != len(out) or not out:
        raise StudioError(f"grid {key}: give distinct values, e.g. 0,0.1,0.3")
    return out


def check_axes(cfg: TrainConfig, axes: dict[str, list]) -> None:
    """Every value of every axis makes a valid config on its own; the error names it."""
    fields = _fields()
    for name, values in axes.items():
        if name == REPLAY_AXIS:
            continue  # checked when parsed
        kind = str(fields[name].type)
        for v in values:
            if kind == "bool" and not isinstance(v, bool):
                raise StudioError(f"grid {name}={v}: expected true or false")
            try:
                TrainConfig.from_dict({**cfg.to_dict(), name: v}, source=f"grid {name}={v}")
            except StudioError as exc:
                msg = str(exc).removeprefix("invalid training config: ")
                raise StudioError(msg if msg.startswith("grid ") else
                                  f"grid {name}={v}: {msg}") from None


def expand(axes: dict[str, list]) -> list[dict]:
    """Every combination of the axes' values, first axis slowest."""
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]


def plan(cfg: TrainConfig, spec: SweepSpec) -> list[dict]:
    """The configs to run (params dicts): the grid, or `random` of them; refused when
    configs x seeds exceeds the budget."""
    check_axes(cfg, spec.axes)
    if REPLAY_AXIS in spec.axes and not spec.replay:
        raise StudioError(f"grid {REPLAY_AXIS} mixes in rows of another dataset: name it "
                          "with a replay dataset (DATASET[@VERSION])")
    grid = expand(spec.axes)
    if spec.random is not None:
        if spec.random < 1:
            raise StudioError(f"random sample of {spec.random}: must be at least 1")
        if spec.random > len(grid):
            raise StudioError(f"random sample of {spec.random}: the grid has only {len(grid)} configs")
        picked = sorted(random.Random(spec.sample_seed).sample(range(len(grid)), spec.random))
        grid = [grid[i] for i in picked]
    n_seeds = max(1, len(spec.seeds))
    if spec.budget is not None:
        if spec.budget < 1:
            raise StudioError(f"budget {spec.budget}: must be at least 1")
        if len(grid) * n_seeds > spec.budget:
            raise StudioError(
                f"budget {spec.budget}: the sweep needs {len(grid)} configs x {n_seeds} "
                f"seed(s) = {len(grid) * n_seeds} runs; sample at random "
                f"{max(1, spec.budget // n_seeds)} or give fewer values")
    if len(grid) < 2:
        raise StudioError(f"sweep {spec.name}: {len(grid)} config; give at least two values "
                          "on some axis (a grid FIELD=V1,V2 or several dataset versions)")
    return grid


def label(params: dict) -> str:
    """'lora_r=8 learning_rate=0.0001': what distinguishes a config, for tables."""
    return " ".join(f"{k}={'+'.join(v) if isinstance(v, list) else v}"
                    for k, v in params.items()) or "base config"


# --- launching ----------------------------------------------------------------------------------

def _check_spec(store, cfg: TrainConfig, spec: SweepSpec) -> None:
    from evals.metrics import get_metric
    from evals.suites import load_suite

    suite = load_suite(store, spec.suite)  # an unknown suite fails before any run is queued
    metric = spec.metric or suite.metrics[0]
    if metric not in suite.metrics:
        raise StudioError(f"metric {metric}: not a metric of suite {spec.suite} "
                          f"({', '.join(suite.metrics)})")
    if get_metric(metric).higher_is_better is None:
        raise StudioError(f"metric {metric}: has no better direction; pick another metric")
    if spec.halving:
        if spec.eta < 2:
            raise StudioError(f"eta {spec.eta}: halving keeps 1/eta per rung; use 2 or more")
        if min(spec.axes.get("eval_fraction", [cfg.eval_fraction])) <= 0:
            raise StudioError("successive halving stops runs on eval loss: set eval_fraction > 0")
        if min(spec.axes.get("max_steps", [cfg.max_steps])) <= 0:
            raise StudioError("successive halving needs max_steps > 0 (rungs are eval steps before it)")
    if store.query("SELECT id FROM run_groups WHERE name = ? OR id = ?", [spec.name, spec.name]):
        raise StudioError(f"sweep name {spec.name!r} is taken by another run group")


def start(store, cfg: TrainConfig, spec: SweepSpec) -> dict:
    """Validate every config (and seed), then queue one run per config x seed as one run group
    of kind 'sweep'. Returns {"sweep": group id, "name", "runs": [{run_id, config, seed, params}]}."""
    from kernel import jobs
    from training.groups import add_member, record_group
    from training.start_run import launch_training, prepare_training

    plan(cfg, spec)  # the grid's keys and values first: no store needed to refuse them
    _check_spec(store, cfg, spec)
    if not spec.metric:
        from evals.suites import load_suite

        spec = dataclasses.replace(spec, metric=load_suite(store, spec.suite).metrics[0])
    seeds = spec.seeds or [cfg.seed]
    spec = dataclasses.replace(spec, seeds=seeds)
    configs = plan(cfg, spec)
    runs = []
    for i, params in enumerate(configs):
        fields = {k: v for k, v in params.items() if k != REPLAY_AXIS}
        if params.get(REPLAY_AXIS):  # built once per (version, fraction) and reused
            from curation.replay import replay_mix

            if not fields.get("dataset", cfg.dataset):
                raise StudioError(f"grid {REPLAY_AXIS}: needs a dataset to mix into "
                                  "(the datasets or the config's dataset)")
            fields["dataset"] = replay_mix(store, fields.get("dataset", cfg.dataset),
                                           spec.replay, params[REPLAY_AXIS], spec.sample_seed)
        for s in seeds:
            c = TrainConfig.from_dict({**cfg.to_dict(), **fields, "seed": s,
                                       "name": f"{spec.name}-c{i}-seed{s}"}, source=spec.name)
            try:
                prepared = prepare_training(store, c)  # every run validated before any is queued
            except StudioError as exc:
                raise StudioError(f"sweep config {label(params)} (seed {s}): {exc}") from None
            runs.append({"config": i, "seed": s, "params": params, "cfg": c, "prep": prepared})
    group_id = jobs.new_run_id("sweep")
    with store.transaction() as con:
        record_group(con, group_id, spec.name, cfg.to_dict(), kind="sweep", spec=spec.to_dict())
    extra = None
    if spec.halving:  # each run stops itself at a rung (training.halving), detached or not
        from training.halving import write_settings

        def extra(run_dir):
            write_settings(run_dir, group_id, spec.eta)
    for r in runs:
        r["run_id"] = launch_training(store, r.pop("cfg"), r.pop("prep"), extra_inputs=extra)
        with store.transaction() as con:
            add_member(con, group_id, r["run_id"], r["seed"], {"config": r["config"],
                                                               **r["params"]})
    return {"sweep": group_id, "name": spec.name, "runs": runs}


def wait(store, ref: str, timeout_s: float | None = None, poll_s: float = 1.0,
         on_event=None) -> dict:
    """Block until every run of the sweep is finished, reporting the runs that stopped
    themselves by successive halving; returns the group (training.groups.get_group) with each
    member's run state (and `halved`, `note`)."""
    import time

    from kernel.jobs import list_runs
    from kernel.status import TERMINAL
    from training.groups import get_group

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen: dict[str, str] = {}
    while True:
        group = get_group(store, ref)
        if group["kind"] != "sweep":
            raise StudioError(f"run group {ref!r} is a {group['kind']} group, not a sweep")
        listed = {r["id"]: r for r in list_runs(store, kind="train")}
        runs = {m["run_id"]: listed[m["run_id"]] for m in group["members"]
                if m["run_id"] in listed}
        notes = {m["run_id"]: m["note"] for m in group["members"] if m["halved"]}
        for rid, r in runs.items():
            shown = f"{r['state']}: {notes[rid]}" if rid in notes else r["state"]
            if on_event and seen.get(rid) != shown:
                on_event(f"run {rid} ({r['name']}): {shown}")
            seen[rid] = shown
        if all(r["state"] in TERMINAL for r in runs.values()):
            group = get_group(store, ref)  # a stop recorded since the listing
            for m in group["members"]:
                m["state"] = runs.get(m["run_id"], {}).get("state", "missing")
            return group
        if deadline is not None and time.monotonic() > deadline:
            raise StudioError(f"sweep {ref}: runs still training after {timeout_s:.0f}s")
        time.sleep(poll_s)


# --- evaluating and reporting -------------------------------------------------------------------

def finish(store, ref: str, backend: str = "hf", backend_options: dict | None = None,
           timeout_s: float | None = None, on_event=None) -> dict:
    """Wait for the sweep's runs, evaluate the last checkpoint of every run that trained to
    the end (completed, not halved) on the suite (one backend, cached), and report the
    ranking and the winner's statistics."""
    from evals.evaluate import evaluate

    group = wait(store, ref, timeout_s=timeout_s, on_event=on_event)
    last = _last_checkpoints(store, [m["run_id"] for m in group["members"]])
    done = [m for m in group["members"] if m["state"] == "completed" and not m["halved"]
            and last.get(m["run_id"])]
    if not done:
        raise StudioError(f"sweep {ref}: no run completed with a checkpoint "
                          f"({', '.join(sorted({_state(m) for m in group['members']}))})")
    result = evaluate(store, group["spec"]["suite"], [last[m["run_id"]] for m in done],
                      backend, backend_options)
    scores = {m["run_id"]: result.scores[last[m["run_id"]]] for m in done}
    return report(group, scores, len(result.suite.rows), list(result.suite.metrics),
                  {m["run_id"]: last[m["run_id"]] for m in done})


def _state(member: dict) -> str:
    """A member's state for reports: 'stopped by halving' for a run that halved itself."""
    return "stopped by halving" if member.get("halved") else member["state"]


def _last_checkpoints(store, run_ids: list[str]) -> dict[str, str]:
    if not run_ids:
        return {}
    last = {}
    for c in store.query("SELECT id, run_id FROM checkpoints WHERE run_id IN "
                         f"({', '.join('?' for _ in run_ids)}) ORDER BY step", run_ids):
        last[c["run_id"]] = c["id"]
    return last


def report(group: dict, scores: dict[str, dict[str, np.ndarray]], n_examples: int,
           metrics: list[str], checkpoints: dict[str, str]) -> dict:
    """Ranking by the sweep's metric with CIs, the winner vs the others (paired), and the
    runs that did not train to the end (stopped by halving, failed, cancelled): those have no
    scores and are listed under `unfinished`, never ranked."""
    from evals.metrics import get_metric
    from evals.sweep_winner import pick_winner

    spec = group["spec"]
    metric = spec["metric"]
    by_config: dict[int, list[dict]] = {}
    for m in group["members"]:
        by_config.setdefault(int(m["params"].get("config", 0)), []).append(m)
    evaluated, unfinished, params_of = [], [], {}
    for i, members in sorted(by_config.items()):
        params = {k: v for k, v in members[0]["params"].items() if k != "config"}
        params_of[label(params)] = (i, params, members)
        ok = [m for m in members if m["run_id"] in scores]
        if ok:
            evaluated.append({"label": label(params), "seeds": [m["seed"] for m in ok],
                              "scores": np.vstack([scores[m["run_id"]][metric] for m in ok])})
        for m in members:
            if m["run_id"] not in scores:
                unfinished.append({"config": i, "label": label(params), "run_id": m["run_id"],
                                   "seed": m["seed"], "state": _state(m), "note": m["note"]})
    info = get_metric(metric)
    picked = pick_winner(evaluated, info.higher_is_better is not False, info.binary)
    for row in picked["ranking"]:
        i, params, members = params_of[row["label"]]
        runs = [m for m in members if m["run_id"] in scores]
        row.update(config=i, params=params, runs=[m["run_id"] for m in runs],
                   checkpoints=[checkpoints[m["run_id"]] for m in runs],
                   metrics={s: float(np.mean([scores[m["run_id"]][s].mean() for m in runs]))
                            for s in metrics})
    return {"sweep": group["id"], "name": group["name"], "suite": spec["suite"],
            "metric": metric, "n_examples": n_examples, "seeds": spec["seeds"],
            "axes": spec["axes"], "halving": bool(spec.get("halving")), **picked,
            "unfinished": unfinished}


def report_table(rep: dict) -> list[dict]:
    """Flat rows for the CLI and the UI: one per config, best first, then unfinished runs."""
    rows = []
    for rank, r in enumerate(rep["ranking"], 1):
        vs = r.get("vs_winner")
        rows.append({"rank": rank, "config": r["label"], "runs": r["n_runs"],
                     rep["metric"]: f"{r['mean']:.3f}",
                     "95% CI": f"[{r['low']:.3f}, {r['high']:.3f}]",
                     "winner - this": "" if vs is None else
                     f"{vs['diff']:+.3f} [{vs['low']:+.3f}, {vs['high']:+.3f}]",
                     f"p ({rep['adjust']})": "" if vs is None else f"{vs['p_adjusted']:.3g}",
                     "verdict": "winner" if vs is None else
                     "tied with winner" if r["tied_with_winner"] else "worse"})
    for u in rep["unfinished"]:
        rows.append({"rank": "-", "config": u["label"], "runs": f"seed {u['seed']}",
                     rep["metric"]: "", "95% CI": "", "winner - this": "",
                     f"p ({rep['adjust']})": "", "verdict": u["note"] or u["state"]})
    return rows
