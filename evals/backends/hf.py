"""HF transformers backend: batched `generate` with left padding, base or base + LoRA adapter.

Each base model is loaded once; adapters are attached to it by name through peft and switched
with `set_adapter` (the base model runs with adapters disabled), so evaluating N checkpoints
costs one model load.
"""

from __future__ import annotations

from evals.backends.base import Completion
from evals.prompts import load_tokenizer, truncate_at_stop
from evals.types import ModelRef, SamplingConfig


class HFBackend:
    name = "hf"

    def __init__(self, models: list[ModelRef] | None = None, batch_size: int = 8,
                 device: str | None = None, dtype: str = "float32", threads: int | None = None):
        import torch

        self.batch_size = batch_size
        # CPU threads while generating. None = 1 for small models on CPU (their matmuls are too
        # small to split; on a busy 2-core machine 2 threads ran 35x slower than 1, measured
        # here) and torch's default otherwise. vLLM's CPU engine also drops to 1 thread.
        self.threads = threads
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype_name = dtype
        self.dtype = getattr(torch, dtype)
        self._bases: dict[str, object] = {}      # base_model -> model (maybe a PeftModel)
        self._adapters: dict[str, str] = {}      # adapter_path -> adapter name

    @staticmethod
    def cache_identity(options: dict) -> dict:
        """dtype changes the numbers; batch size and threads do not (greedy, same kernels)."""
        return {"backend": "hf", "dtype": options.get("dtype", "float32"), "quantization": None}

    def identity(self) -> dict:
        return self.cache_identity({"dtype": self.dtype_name})

    def version(self) -> str:
        import transformers

        return f"transformers-{transformers.__version__}"

    def _model_for(self, ref: ModelRef):
        from transformers import AutoModelForCausalLM

        model = self._bases.get(ref.base_model)
        if model is None:
            model = AutoModelForCausalLM.from_pretrained(ref.base_model, dtype=self.dtype)
            model.to(self.device).eval()
            self._bases[ref.base_model] = model
            if self.threads is None and self.device == "cpu":
                small = sum(p.numel() for p in model.parameters()) < 50_000_000
                self.threads = 1 if small else 0
        if ref.adapter_path and ref.adapter_path not in self._adapters:
            from peft import PeftModel

            name = f"a{len(self._adapters)}"
            if isinstance(model, PeftModel):
                model.load_adapter(ref.adapter_path, adapter_name=name)
            else:
                model = PeftModel.from_pretrained(model, ref.adapter_path, adapter_name=name)
                model.to(self.device).eval()
                self._bases[ref.base_model] = model
            self._adapters[ref.adapter_path] = name
        return model

    def generate(self, model: ModelRef, prompts: list[str],
                 sampling: SamplingConfig) -> list[list[Completion]]:
        import contextlib

        import torch

        net = self._model_for(model)
        tok = load_tokenizer(model.adapter_path or model.base_model, model.chat_template)
        eos_id = tok.convert_tokens_to_ids(model.eos_token) if model.eos_token else tok.eos_token_id
        ctx = contextlib.nullcontext()
        if model.adapter_path:
            net.set_adapter(self._adapters[model.adapter_path])
        elif type(net).__name__.startswith("Peft"):
            ctx = net.disable_adapter()
        results: list[list[Completion]] = [[] for _ in prompts]
        saved = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with ctx, torch.inference_mode():
                for sample in range(sampling.n):
                    for start in range(0, len(prompts), self.batch_size):
                        batch = prompts[start:start + self.batch_size]
                        for i, comp in enumerate(self._batch(net, tok, eos_id, batch, sampling, sample)):
                            results[start + i].append(comp)
        finally:
            torch.set_num_threads(saved)
        return results

    def _batch(self, net, tok, eos_id: int, batch: list[str], sampling: SamplingConfig,
               sample: int) -> list[Completion]:
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        kwargs = {"max_new_tokens": sampling.max_new_tokens, "eos_token_id": eos_id,
                  "pad_token_id": tok.pad_token_id}
        if sampling.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            # generate() samples a batch with one generator; each row draws with its own
            # (`RowSampler`), so a prompt's sample does not depend on its batch
            from transformers import LogitsProcessorList

            sampler = RowSampler([sampling.seed_for(p, sample) for p in batch],
                                 sampling.temperature, sampling.top_p)
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None,
                          logits_processor=LogitsProcessorList([sampler]))
        out = net.generate(**enc, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        return [self._completion(ids, eos_id, tok, sampling) for ids in new]

    @staticmethod
    def _completion(ids: list[int], eos_id: int, tok, sampling: SamplingConfig) -> Completion:
        if eos_id in ids:
            ids = ids[: ids.index(eos_id) + 1]
            reason = "stop"
        else:
            reason = "length"
        # A byte-level token can end in the middle of a character (generation cut at max tokens
        # or at EOS): decode() renders those bytes as U+FFFD, while vLLM's incremental
        # detokenizer holds them back and never emits them. Drop them too, so both backends give
        # the same text for the same tokens (exact match would otherwise depend on the backend).
        text = tok.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
        return Completion(text=truncate_at_stop(text, sampling.stop), token_ids=ids,
                          n_tokens=len(ids), finish_reason=reason)

    def close(self) -> None:
        self._bases.clear()
        self._adapters.clear()


class RowSampler:
    """A logits processor that samples each row's next token with the row's own generator
    (after transformers' own temperature and top-p warpers, as `do_sample` applies them) and
    leaves only that token, so greedy decoding emits it: the same prompt and seed give the
    same sample in any batch, as vLLM's per-request seeds do."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        import torch
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.warpers = [TemperatureLogitsWarper(temperature)]
        if top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))

    def __call__(self, input_ids, scores):
        import torch

        warped = scores.float()
        for warp in self.warpers:
            warped = warp(input_ids, warped)
        probs = torch.softmax(warped, dim=-1).cpu()
        picked = torch.stack([torch.multinomial(probs[i], 1, generator=g)
                              for i, g in enumerate(self.generators)]).to(scores.device)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, picked, 0.0)
