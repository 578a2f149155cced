"""What a run trained on, exactly: dataset version, content hashes, base model hash, config, code.

Why: a checkpoint is only useful evidence if one can say which rows, which base weights and
which code made it. The launcher calls `pin_dataset` (a bare `NAME` becomes `NAME@vN`, the
latest version at launch) and `record` (writes `RUN_DIR/provenance.json` before the job
starts, then stores it in `run_provenance`); the worker adds the hash of the formatted
(templated, tokenized) training examples with `record_formatted`; checkpoints copy the file into
their `meta.json` and eval results keep the part that identifies the data (`summary_for`).
The run folder stays the truth (workers never open the database); `sync` heals a store that
missed a record (the launcher died between writing the file and the row).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import time
from importlib import metadata
from pathlib import Path

from kernel.errors import NotFoundError

PROVENANCE_FILE = "provenance.json"
HASH_CACHE_FILE = "file-hashes.json"   # <workspace>/cache/: sha256 by path + mtime + size
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
PACKAGES = ("torch", "transformers", "peft", "accelerate", "tokenizers")
# the fields an eval result keeps: enough to tell which data and weights made the checkpoint
SUMMARY_KEYS = ("run_id", "dataset_ref", "rows_sha256", "train_file_sha256", "formatted_sha256",
                "base_model", "base_model_sha256", "code_version", "git_commit")


# --- hashing --------------------------------------------------------------------------------

def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def rows_sha256(rows: list[dict]) -> str:
    """Order-independent hash of row contents (canonical JSON of each row, sorted): the same
    rows give the same hash whatever the split or order, and any edit changes it."""
    lines = sorted(json.dumps(r, sort_keys=True, ensure_ascii=False, default=str) for r in rows)
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()


def examples_sha256(examples: list[dict]) -> str:
    """Hash of the encoded training examples (token ids and labels, in order): what the model
    actually saw after the chat template, truncation and masking."""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex["input_ids"], ex["labels"]], separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


class HashCache:
    """sha256 of files keyed by (absolute path, mtime_ns, size), kept in a JSON file, so a
    multi-GB base model is read once and later launches only stat it."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.entries: dict[str, str] = {}
        self.dirty = False
        if self.path and self.path.exists():
            with contextlib.suppress(OSError, ValueError):
                self.entries = json.loads(self.path.read_text())

    def sha256(self, file: Path) -> str:
        st = file.stat()
        key = f"{file.resolve()}|{st.st_mtime_ns}|{st.st_size}"
        if key not in self.entries:
            self.entries[key] = sha256_file(file)
            self.dirty = True
        return self.entries[key]

    def save(self) -> None:
        if not (self.path and self.dirty):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.entries, indent=0))
        os.replace(tmp, self.path)  # concurrent writers: the last one wins, both are right
        self.dirty = False


def model_folder(name: str) -> Path | None:
    """A local folder for a model name: the folder itself, or its HF cache snapshot."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached / not a repo name: no hash, not an error
        return None


def model_sha256(name: str, cache: HashCache | None = None) -> str | None:
    """Hash of a base model's weight files (names and contents), or None when none are found."""
    folder = model_folder(name)
    if folder is None:
        return None
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    cache = cache or HashCache(None)
    h = hashlib.sha256()
    for file in files:
        h.update(f"{file.relative_to(folder).as_posix()}:{cache.sha256(file)}\n".encode())
    return h.hexdigest()


# --- code version ---------------------------------------------------------------------------

def code_version(root: str | Path | None = None) -> dict:
    """Package version, git commit (+ dirty flag) when the code (`root`, default this checkout)
    is a git checkout, and the versions of the libraries that shape training. Never fails:
    unknowns are None."""
    try:
        version = metadata.version("tuning-studio")
    except metadata.PackageNotFoundError:
        version = None
    root = Path(root) if root else Path(__file__).resolve().parents[1]
    commit = dirty = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0:
            commit = out.stdout.strip()
            status = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                     "--untracked-files=no"], capture_output=True, text=True,
                                    timeout=10)
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    packages = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {"version": version, "git_commit": commit, "git_dirty": dirty, "packages": packages}


# --- recording ------------------------------------------------------------------------------

def pin_dataset(store, cfg):
    """The config with `dataset` pinned to `NAME@VERSION` (a bare name = latest at launch)."""
    if not cfg.dataset or "@" in cfg.dataset:
        return cfg
    from curation.datasets import resolve_ref

    dataset, version = resolve_ref(store, cfg.dataset)
    return dataclasses.replace(cfg, dataset=f"{dataset}@{version}")


def collect(store, cfg, run_dir: Path, train: list[dict], evals: list[dict]) -> dict:
    """The provenance of a run about to start (its train/eval files already written)."""
    from training.data import EVAL_FILE, TRAIN_FILE

    dataset = version = None
    if cfg.dataset:
        dataset, _, version = cfg.dataset.partition("@")
    cache = HashCache(store.workspace.root / "cache" / HASH_CACHE_FILE)
    base_hash = model_sha256(cfg.base_model, cache)
    cache.save()
    code = code_version()
    return {
        "run_id": run_dir.name, "dataset": dataset, "version": version or None,
        "dataset_ref": cfg.dataset or None, "data_file": None if cfg.dataset else cfg.data_file,
        "n_rows": len(train) + len(evals), "n_train": len(train), "n_eval": len(evals),
        "rows_sha256": rows_sha256(train + evals),
        "train_file_sha256": sha256_file(run_dir / TRAIN_FILE),
        "eval_file_sha256": sha256_file(run_dir / EVAL_FILE),
        "formatted_sha256": None,  # set by the worker (record_formatted)
        "base_model": cfg.base_model, "base_model_sha256": base_hash,
        "config": cfg.to_dict(), "code_version": code["version"],
        "git_commit": code["git_commit"], "git_dirty": code["git_dirty"],
        "packages": code["packages"], "recorded_at": time.time(),
    }


def read(run_dir: str | Path) -> dict:
    """The run folder's provenance ({} for runs started before provenance existed)."""
    path = Path(run_dir) / PROVENANCE_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write(run_dir: str | Path, prov: dict) -> None:
    path = Path(run_dir) / PROVENANCE_FILE
    tmp = path.with_name(f".{PROVENANCE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(prov, indent=2, default=str))
    os.replace(tmp, path)


def record(store, cfg, run_dir: Path, train: list[dict], evals: list[dict]) -> dict:
    """Write `provenance.json` into a prepared run folder (called by the launcher)."""
    prov = collect(store, cfg, Path(run_dir), train, evals)
    write(run_dir, prov)
    return prov


def record_formatted(run_dir: str | Path, examples: list[dict]) -> None:
    """Add the hash of the encoded training examples (called by the worker; no database)."""
    prov = read(run_dir)
    if prov:
        prov["formatted_sha256"] = examples_sha256(examples)
        write(run_dir, prov)


_COLUMNS = ("run_id", "dataset", "version", "dataset_ref", "data_file", "n_rows", "n_train",
            "n_eval", "rows_sha256", "train_file_sha256", "eval_file_sha256", "base_model",
            "base_model_sha256", "config", "code_version", "git_commit", "git_dirty", "packages")


def store_record(store, prov: dict) -> None:
    """Insert (or replace) a run's provenance row."""
    values = [json.dumps(prov.get(c), default=str) if c in ("config", "packages") else prov.get(c)
              for c in _COLUMNS]
    with store.transaction() as con:
        con.execute("DELETE FROM run_provenance WHERE run_id = ?", [prov["run_id"]])
        con.execute(f"INSERT INTO run_provenance ({', '.join(_COLUMNS)}) VALUES "
                    f"({', '.join('?' for _ in _COLUMNS)})", values)


def sync(store) -> int:
    """Store the provenance of train runs whose row is missing (from their run folders)."""
    missing = store.query("SELECT r.id, r.run_dir FROM runs r LEFT JOIN run_provenance p "
                          "ON p.run_id = r.id WHERE r.kind = 'train' AND p.run_id IS NULL")
    n = 0
    for run in missing:
        prov = read(run["run_dir"])
        if prov:
            store_record(store, {**prov, "run_id": run["id"]})
            n += 1
    return n


def get(store, run_id: str) -> dict:
    """A run's provenance: the stored row, completed by the run folder (formatted hash)."""
    rows = store.query("SELECT run_dir FROM runs WHERE id = ?", [run_id])
    if not rows:
        raise NotFoundError(f"run {run_id!r} not found")
    prov = read(rows[0]["run_dir"])
    if prov and not store.query("SELECT 1 FROM run_provenance WHERE run_id = ?", [run_id]):
        store_record(store, {**prov, "run_id": run_id})
    return prov


def summary_for(adapter_path: str | Path | None) -> dict | None:
    """The identifying part of a checkpoint's provenance (from its meta.json), or None."""
    if not adapter_path:
        return None
    try:
        meta = json.loads((Path(adapter_path) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    prov = meta.get("provenance") or {}
    return {k: prov.get(k) for k in SUMMARY_KEYS} if prov else None
