"""A tiny OpenAI-compatible HTTP server over the HF backend (127.0.0.1, stdlib http.server).

Why: the OpenAI backend must be tested against real HTTP without waiting ~50 s for vLLM's
api_server on CPU; also handy as a local judge endpoint. Serves `/v1/models`,
`/v1/completions` (raw prompt) and `/v1/chat/completions` (messages rendered with the model's
chat template). Models are registered by served name -> ModelRef.

    with serve({"base": ModelRef(...)}) as url: OpenAIBackend(base_url=url) ...
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from evals.backends.hf import HFBackend
from evals.prompts import load_tokenizer
from evals.types import ModelRef, SamplingConfig


def _handler(models: dict[str, ModelRef], backend: HFBackend, lock: threading.Lock):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _send(self, code: int, data: dict) -> None:
            body = json.dumps(data).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [
                    {"id": name, "object": "model"} for name in models]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            model = models.get(req.get("model"))
            if model is None:
                self._send(404, {"error": {"message": f"model {req.get('model')!r} not served"}})
                return
            chat = self.path.rstrip("/") == "/v1/chat/completions"
            if chat:
                tok = load_tokenizer(model.adapter_path or model.base_model, model.chat_template)
                prompt = tok.apply_chat_template(req["messages"], add_generation_prompt=True,
                                                 tokenize=False)
            elif self.path.rstrip("/") == "/v1/completions":
                prompt = req["prompt"]
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            sampling = SamplingConfig(max_new_tokens=int(req.get("max_tokens", 16)),
                                      temperature=float(req.get("temperature", 0.0)),
                                      top_p=float(req.get("top_p", 1.0)),
                                      seed=int(req.get("seed", 0)), stop=tuple(req.get("stop") or ()))
            with lock:
                comp = backend.generate(model, [prompt], sampling)[0][0]
            choice = {"index": 0, "finish_reason": comp.finish_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": comp.text}
            else:
                choice["text"] = comp.text
            self._send(200, {"object": "chat.completion" if chat else "text_completion",
                             "model": req["model"], "choices": [choice],
                             "usage": {"completion_tokens": comp.n_tokens}})

    return Handler


@contextmanager
def serve(models: dict[str, ModelRef], port: int = 0, batch_size: int = 1):
    """Run the server in a background thread; yields its base URL (http://127.0.0.1:PORT)."""
    backend = HFBackend(batch_size=batch_size)
    server = ThreadingHTTPServer(("127.0.0.1", port),
                                 _handler(models, backend, threading.Lock()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        backend.close()
