"""OpenAI-compatible backend: any server by base URL (`vllm serve`, SGLang, llama.cpp server).

Plain HTTP with `requests`. Default endpoint `/v1/completions` with the prompt already rendered
by the training chat template (the most faithful choice); `endpoint="chat"` sends the prompt as
one user message to `/v1/chat/completions` (for judges on generic chat servers). Which served
model answers for a checkpoint: `served_models={checkpoint: name}`, else the adapter folder's
name (vLLM's `--lora-modules NAME=PATH`), else the server's first model.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from evals.backends.base import Completion
from evals.prompts import truncate_at_stop
from evals.types import ModelRef, SamplingConfig
from kernel.errors import StudioError


def _v1(base_url: str) -> str:
    url = base_url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class OpenAIBackend:
    name = "openai"

    def __init__(self, models: list[ModelRef] | None = None, base_url: str = "",
                 api_key: str | None = None, endpoint: str = "completions",
                 served_models: dict[str, str] | None = None, concurrency: int = 4,
                 timeout_s: float = 120.0, batch_size: int | None = None):
        import requests

        if not base_url:
            raise StudioError("openai backend: field 'base_url' is required")
        if endpoint not in ("completions", "chat"):
            raise StudioError(f"openai backend: field 'endpoint' must be completions|chat, got {endpoint!r}")
        self.base_url = _v1(base_url)
        self.endpoint = endpoint
        self.served = dict(served_models or {})
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.session = requests.Session()
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"
        self._server_models: list[str] | None = None

    @staticmethod
    def cache_identity(options: dict) -> dict:
        """The server decides dtype and quantization, so the server (URL) is the identity."""
        return {"backend": "openai", "base_url": _v1(options.get("base_url") or ""),
                "endpoint": options.get("endpoint", "completions")}

    def identity(self) -> dict:
        return self.cache_identity({"base_url": self.base_url, "endpoint": self.endpoint})

    def _get(self, path: str) -> dict:
        import requests

        try:
            resp = self.session.get(self.base_url + path, timeout=self.timeout_s)
            resp.raise_for_status()
        except requests.RequestException as exc:
            raise StudioError(f"openai backend: GET {self.base_url}{path} failed ({exc})") from exc
        return resp.json()

    def version(self) -> str:
        models = self.server_models()
        return f"openai-compatible:{self.base_url}:{models[0] if models else '?'}"

    def server_models(self) -> list[str]:
        if self._server_models is None:
            self._server_models = [m["id"] for m in self._get("/models").get("data", [])]
        return self._server_models

    def served_name(self, model: ModelRef) -> str:
        if model.name in self.served:
            return self.served[model.name]
        available = self.server_models()
        if model.adapter_path:
            guess = Path(model.adapter_path).name
            if guess in available:
                return guess
            raise StudioError(f"openai backend: no served model for {model.name}; server has "
                              f"{available}; pass served_models={{{model.name!r}: NAME}}")
        if not available:
            raise StudioError(f"openai backend: {self.base_url}/models lists no model")
        return available[0]

    def _one(self, model_name: str, prompt: str, sampling: SamplingConfig, sample: int) -> Completion:
        import requests

        body = {"model": model_name, "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature, "top_p": sampling.top_p, "n": 1,
                "seed": sampling.seed_for(prompt, sample)}
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if self.endpoint == "chat":
            url, body["messages"] = "/chat/completions", [{"role": "user", "content": prompt}]
        else:
            url, body["prompt"] = "/completions", prompt
        try:
            resp = self.session.post(self.base_url + url, json=body, timeout=self.timeout_s)
            resp.raise_for_status()
        except requests.RequestException as exc:
            raise StudioError(f"openai backend: POST {self.base_url}{url} failed ({exc})") from exc
        data = resp.json()
        choice = data["choices"][0]
        text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        n_tokens = (data.get("usage") or {}).get("completion_tokens", 0)
        return Completion(text=truncate_at_stop(text or "", sampling.stop), n_tokens=n_tokens,
                          finish_reason=choice.get("finish_reason"))

    def generate(self, model: ModelRef, prompts: list[str],
                 sampling: SamplingConfig) -> list[list[Completion]]:
        name = self.served_name(model)
        jobs = [(i, s) for s in range(sampling.n) for i in range(len(prompts))]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            outs = list(pool.map(lambda js: self._one(name, prompts[js[0]], sampling, js[1]), jobs))
        results: list[list[Completion]] = [[] for _ in prompts]
        for (i, _s), comp in zip(jobs, outs, strict=True):
            results[i].append(comp)
        return results

    def close(self) -> None:
        self.session.close()
