"""Merge a LoRA checkpoint into its base model and save a full HF model (for export/serving),
with a model card that says what made it; optionally push it to the Hugging Face Hub.

Why a separate step: checkpoints stay small adapters (evals and vLLM load them as LoRA); a merged
copy is only needed to hand the model to tools without LoRA support. The card (README.md with
YAML front matter: base_model, library_name, tags) records the dataset version, content hashes,
the training config and the stored eval results, so the folder explains itself anywhere.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import yaml

from kernel.errors import StudioError
from training.checkpoints import resolve

CARD_TAGS = ["tuning-studio", "lora", "merged", "sft"]
PROVENANCE_EXPORT = "studio_provenance.json"
_TRUE = {"1", "true", "yes", "on"}


def merge_checkpoint(store, checkpoint_id: str, out: str | Path) -> Path:
    """Base + adapter merged into plain weights at `out` (safetensors), with the run's tokenizer."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = resolve(store, checkpoint_id)
    if ref.adapter_path is None:
        raise StudioError(f"{checkpoint_id} is a base model; there is no adapter to merge")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise StudioError(f"merge target {out} exists and is not empty")
    model = AutoModelForCausalLM.from_pretrained(ref.base_model)
    merged = PeftModel.from_pretrained(model, ref.adapter_path).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(ref.adapter_path).save_pretrained(out)
    # Marks the folder as a fine-tune (base-model pickers list it after real base models);
    # export_model replaces it with the full provenance.
    (out / PROVENANCE_EXPORT).write_text(json.dumps(
        {"checkpoint": checkpoint_id, "base_model": ref.base_model}, indent=2))
    return out


def checkpoint_evals(store, checkpoint_id: str) -> list[dict]:
    """The latest stored eval result per suite: [{suite, role, n, metrics: {metric: mean}}]."""
    rows = store.query("""
        SELECT e.suite, s.role, s.n_rows AS n, arg_max(e.summary, e.created_at) AS summary
        FROM eval_runs e LEFT JOIN eval_suites s ON s.name = e.suite
        WHERE e.checkpoint = ? GROUP BY ALL ORDER BY e.suite""", [checkpoint_id])
    return [{"suite": r["suite"], "role": r["role"], "n": r["n"],
             "metrics": json.loads(r["summary"]) if r["summary"] else {}} for r in rows]


def model_card(checkpoint_id: str, meta: dict, evals: list[dict]) -> str:
    """README.md text: YAML front matter for the Hub, then what the model was trained on."""
    from huggingface_hub import ModelCard, ModelCardData

    prov = meta.get("provenance") or {}
    config = prov.get("config") or {}
    data = ModelCardData(base_model=meta.get("base_model"), library_name="transformers",
                         tags=CARD_TAGS, pipeline_tag="text-generation")
    lines = [f"# {checkpoint_id} (merged)", "",
             f"LoRA fine-tune of `{meta.get('base_model')}` made with Tuning Studio, merged into "
             f"plain weights (step {meta.get('step')}).", "", "## Training data", ""]
    if prov.get("dataset_ref"):
        lines.append(f"- dataset version: `{prov['dataset_ref']}`")
    elif prov.get("data_file"):
        lines.append(f"- data file: `{prov['data_file']}`")
    for key in ("n_train", "n_eval", "rows_sha256", "train_file_sha256", "formatted_sha256",
                "base_model_sha256", "code_version", "git_commit"):
        if prov.get(key) is not None:
            lines.append(f"- {key}: `{prov[key]}`")
    lines += ["", "## Evaluation", ""]
    if evals:
        lines += ["| suite | role | n | metric | mean |", "|---|---|---|---|---|"]
        lines += [f"| {e['suite']} | {e['role'] or ''} | {e['n'] or ''} | {m} | {v:.4f} |"
                  for e in evals for m, v in e["metrics"].items() if isinstance(v, (int, float))]
    else:
        lines.append("No stored eval results for this checkpoint.")
    lines += ["", "## Training config", "", "```yaml",
              yaml.safe_dump(config, sort_keys=False).rstrip() if config else "# not recorded",
              "```", ""]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def check_hub_reachable(timeout_s: float = 3.0) -> str:
    """The Hub endpoint, or a one-line StudioError at once when offline (no retries)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        raise StudioError("--push: offline (HF_HUB_OFFLINE is set); export without --push and "
                          "upload the folder later")
    from huggingface_hub import constants

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise StudioError(f"--push: cannot reach {endpoint} ({exc.strerror or exc}); export "
                          "without --push and upload the folder later") from exc
    return endpoint


def push_folder(folder: Path, repo: str, private: bool = False) -> str:
    """Upload an exported folder to a Hub model repo (created if missing); returns its URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        url = api.create_repo(repo, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                          commit_message="Upload model exported by Tuning Studio")
    except HfHubHTTPError as exc:
        raise StudioError(f"--push {repo}: {str(exc).splitlines()[0]}") from exc
    return str(url)


def export_model(store, checkpoint_id: str, out: str | Path, push: str | None = None,
                 private: bool = False) -> dict:
    """Merge `checkpoint_id` into `out` with a model card (and its provenance as JSON); with
    `push`, check the Hub is reachable first (fail at once when offline), then upload."""
    if push:
        check_hub_reachable()
    ref = resolve(store, checkpoint_id)
    if ref.adapter_path is None:
        raise StudioError(f"{checkpoint_id} is a base model; there is no adapter to merge")
    meta = json.loads((Path(ref.adapter_path) / "meta.json").read_text())
    evals = checkpoint_evals(store, checkpoint_id)
    folder = merge_checkpoint(store, checkpoint_id, out)
    (folder / "README.md").write_text(model_card(checkpoint_id, meta, evals))
    (folder / PROVENANCE_EXPORT).write_text(json.dumps(
        {"checkpoint": checkpoint_id, "step": meta.get("step"),
         "provenance": meta.get("provenance"), "evals": evals}, indent=2, default=str))
    result = {"checkpoint": checkpoint_id, "path": str(folder), "evals": evals,
              "dataset_ref": (meta.get("provenance") or {}).get("dataset_ref")}
    if push:
        result["pushed"] = push_folder(folder, push, private)
    return result
