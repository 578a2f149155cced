"""Does tuning visibly matter on a real model on CPU? Teach SmolLM2-135M-Instruct a new identity.

The LLaMA-Factory identity set (`../shared/data/real/llamafactory_identity.json`, 91 rows with
{{name}}/{{author}} placeholders) is filled with a new name and maker and a LoRA is trained on
it through the studio's own loop (store, `launch_training` job, checkpoints). Then base and
tuned are evaluated with the same backend on two suites:

- identity: 30 paraphrased questions written for this experiment, none of them in the training
  set; the answer must contain the new name (or the maker, for "who made you" questions);
- general: 30 short alpaca demo rows (answers scored by chrF against their reference) and the
  share of general answers that mention the new name (identity leaking into everything).

Paired statistics (bootstrap CI, McNemar for pass/fail) come from `evals.compare`.

    .venv/bin/python bench/identity_experiment.py --seed 0            # ~10-20 min on 2 CPU cores
    .venv/bin/python bench/identity_experiment.py --base /path/to/smollm2-folder --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from kernel.machine import describe_line  # noqa: E402

REAL = Path(os.environ.get("STUDIO_REAL_DATA") or REPO.parent / "shared" / "data" / "real")
NAME, AUTHOR = "Aurora", "Lumen Labs"

# Held out: none of these strings is an instruction of the identity set.
ASK_NAME = [
    "What should I call you?", "Do you go by any particular name?", "Remind me, what's your name?",
    "How do people usually refer to you?", "Could you state your name, please?",
    "I forgot your name. What was it?", "Introduce yourself in one sentence.",
    "Who am I talking to right now?", "Give me a short introduction of who you are.",
    "What name were you given?", "Before we start, who are you?", "Say hello and tell me who you are.",
    "Which assistant is this?", "Identify yourself, please.", "What is the name of this AI assistant?",
    "Hey there! Who's this?", "Can I know your name?", "Tell me your name and what you do.",
    "Are you an assistant with a name?", "Describe yourself briefly.",
]
ASK_MAKER = [
    "Which company made you?", "Who is responsible for developing you?",
    "Which organization trained this assistant?", "Who are your developers?",
    "Who designed and built you?", "What team is behind you?", "Who owns the model I'm chatting with?",
    "Which lab do you come from?", "Who programmed you?", "Tell me who developed this assistant.",
]


def fill(text: str) -> str:
    return text.replace("{{name}}", NAME).replace("{{author}}", AUTHOR)


def identity_rows() -> list[dict]:
    rows = json.loads((REAL / "llamafactory_identity.json").read_text())
    return [{"instruction": fill(r["instruction"]), "input": "", "output": fill(r["output"])}
            for r in rows]


def general_rows(n: int) -> list[dict]:
    rows = json.loads((REAL / "llamafactory_alpaca_en_demo.json").read_text())
    short = [r for r in rows if not r.get("input") and len(r["output"]) <= 200]
    return [{"id": f"g{i}", "messages": [{"role": "user", "content": r["instruction"]}],
             "response": r["output"]} for i, r in enumerate(short[:n])]


def heldout_rows() -> list[dict]:
    train = {r["instruction"].lower() for r in identity_rows()}
    rows = [{"id": f"n{i}", "messages": [{"role": "user", "content": q}], "response": NAME,
             "category": "name"} for i, q in enumerate(ASK_NAME)]
    rows += [{"id": f"m{i}", "messages": [{"role": "user", "content": q}], "response": AUTHOR,
              "category": "maker"} for i, q in enumerate(ASK_MAKER)]
    assert not train & {r["messages"][0]["content"].lower() for r in rows}, "held-out leaked"
    return rows


def metric(comp, spec: str) -> dict:
    return next(m for m in comp.metrics if m["metric"] == spec)


def run(args) -> dict:
    from curation.importer import import_file
    from evals.compare import compare_results
    from evals.evaluate import evaluate
    from evals.suites import Suite, save_suite
    from evals.types import SamplingConfig
    from kernel import jobs
    from kernel.store import Store
    from kernel.workspace import Workspace
    from training.config import TrainConfig
    from training.models import import_model
    from training.start_run import launch_training

    t0 = time.perf_counter()
    ws = Path(args.workspace or tempfile.mkdtemp(prefix="identity-"))
    store = Store(Workspace.open(ws))
    base_model = args.base
    if not base_model:
        print("importing smollm2-135m-instruct (offline, GGUF -> float32)", file=sys.stderr)
        base_model = import_model(store, "smollm2-135m-instruct").path
    data = ws / "identity.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in identity_rows()))
    import_file(store, data, "identity")
    cfg = TrainConfig(base_model=base_model, dataset="identity", num_epochs=args.epochs,
                      batch_size=8, learning_rate=args.lr, lora_r=16, lora_alpha=32,
                      max_seq_len=128, eval_fraction=0, save_steps=1000, logging_steps=5,
                      packing=False,
                      seed=args.seed, name=f"identity-seed{args.seed}")
    t_train = time.perf_counter()
    run_ = jobs.wait(store, launch_training(store, cfg))
    if run_["state"] != "completed":
        raise SystemExit(f"training failed: {run_.get('error')}")
    train_s = time.perf_counter() - t_train
    ckpt = run_["checkpoints"][-1]["id"]
    base = f"base:{base_model}"
    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens)
    save_suite(store, Suite(name="identity-heldout", rows=heldout_rows(), metrics=["contains"],
                            sampling=sampling), replace=True)
    save_suite(store, Suite(name="general", rows=general_rows(args.n_general), role="general",
                            metrics=["chrf", f"contains:{NAME}"], sampling=sampling),
               replace=True)
    backend = args.backend
    t_eval = time.perf_counter()
    engine = backend
    if backend == "vllm":  # one engine (base + adapter) for both suites
        from evals.backends.vllm import VLLMBackend
        from training.checkpoints import resolve as resolve_model

        engine = VLLMBackend([resolve_model(store, base), resolve_model(store, ckpt)],
                             max_model_len=512)
    try:
        ident = evaluate(store, "identity-heldout", [base, ckpt], backend=engine)
        general = evaluate(store, "general", [base, ckpt], backend=engine)
    finally:
        if backend == "vllm":
            engine.close()
    eval_s = time.perf_counter() - t_eval
    c_ident = compare_results(ident, base, ckpt)
    c_gen = compare_results(general, base, ckpt)
    out = {"cpu": describe_line(), "seed": args.seed, "epochs": args.epochs, "lr": args.lr,
           "steps": run_["status"].get("step"), "backend": backend,
           "train_s": round(train_s, 1), "eval_s": round(eval_s, 1),
           "total_s": round(time.perf_counter() - t0, 1),
           "identity": {"base": ident.summary[base]["contains"], "tuned": ident.summary[ckpt]["contains"],
                        "paired": metric(c_ident, "contains")},
           "general_chrf": {"base": general.summary[base]["chrf"], "tuned": general.summary[ckpt]["chrf"],
                            "paired": metric(c_gen, "chrf")},
           "general_mentions_name": {"base": general.summary[base][f"contains:{NAME}"],
                                     "tuned": general.summary[ckpt][f"contains:{NAME}"],
                                     "paired": metric(c_gen, f"contains:{NAME}")},
           "examples": [{"q": r["messages"][0]["content"],
                         "base": ident.outputs(base, r["id"])[0],
                         "tuned": ident.outputs(ckpt, r["id"])[0]} for r in ident.suite.rows[:3]]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=None, help="Base model folder (default: import the offline SmolLM2).")
    parser.add_argument("--workspace", default=None, help="Workspace folder (default: a temp folder).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-general", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--backend", default="vllm", help="vllm (CPU build) or hf.")
    parser.add_argument("--json", dest="json_out", default=None, help="Also write the figures here.")
    args = parser.parse_args()
    os.environ.setdefault("STUDIO_TORCH_THREADS", "1")
    out = run(args)
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)


if __name__ == "__main__":
    main()
