"""kernel.machine: figures name the CPU precisely enough to tell two 'AMD EPYC's apart."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kernel.machine import describe, describe_line
from studio.cli.demo_cmds import render_seeds


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_describe_reads_this_cpu():
    text = Path("/proc/cpuinfo").read_text()
    first = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    first = {k.strip(): v.strip() for k, v in first.items()}
    m = describe()
    assert m["cpu"] == first.get("model name", m["cpu"])
    assert m["family"] == first.get("cpu family") and m["model"] == first.get("model")
    flags = set(first.get("flags", "").split())
    if "avx2" in flags and "avx512f" not in flags:
        assert m["isa"] == "avx2"
    assert m["cores"] >= 1
    import duckdb
    import torch

    assert m["software"]["duckdb"] == duckdb.__version__
    assert m["software"]["torch"] == torch.__version__


def test_one_line_names_family_model_and_vector_instructions():
    zen3 = {"cpu": "AMD EPYC", "family": "25", "model": "1", "isa": "avx2", "cores": 2}
    zen4 = dict(zen3, model="17", isa="avx512f")
    assert describe_line(zen3) == "AMD EPYC (family 25 model 1, avx2), 2 cores"
    assert describe_line(zen3) != describe_line(zen4)
    bare = {"cpu": "arm64", "family": None, "model": None, "isa": None, "cores": 8}
    assert describe_line(bare) == "arm64, 8 cores"


def test_the_seeds_report_says_which_machine_made_it():
    zen3 = {"cpu": "AMD EPYC", "family": "25", "model": "1", "isa": "avx2", "cores": 2}
    g = {"diff": 0.1, "ci_low": 0.0, "ci_high": 0.2, "p_value": 0.05, "n_seeds_baseline": 2,
         "n": 300, "se_seed": 0.01, "se_example": 0.02}
    report = {"seeds": [0, 1], "total_s": 60, "per_seed": [], "targets": {},
              "pooled": {"curated_vs_raw": g, "replay_effect": g}}
    text = render_seeds({**report, "machine": zen3})
    assert text.splitlines()[1] == ("Machine: AMD EPYC (family 25 model 1, avx2), 2 cores "
                                    "(figures repeat exactly on this kind of CPU with these "
                                    "versions only)")
    zen3["software"] = {"torch": "2.13.0+cpu", "peft": "0.21.2", "duckdb": "2.0.1"}
    assert "2 cores; torch 2.13.0+cpu, peft 0.21.2 (figures" in render_seeds({**report,
                                                                            "machine": zen3})
    old = render_seeds(report).splitlines()  # a report saved before machines were named
    assert "Machine:" not in "\n".join(old) and old[1] == ""


def test_the_seeds_report_shows_each_seeds_gain_by_task():
    g = {"diff": 0.1, "ci_low": 0.0, "ci_high": 0.2, "p_value": 0.05, "n_seeds_baseline": 1,
         "n": 300, "se_seed": 0.01, "se_example": 0.02}
    paired = {"baseline_mean": 0.39, "candidate_mean": 0.96, "diff": 0.57, "ci_low": 0.5,
              "ci_high": 0.6, "by_category": {
                  "last_word": {"n": 100, "baseline": 1.0, "candidate": 1.0, "diff": 0.0},
                  "join_dash": {"n": 100, "baseline": 0.06, "candidate": 0.94, "diff": 0.88}}}
    seed = {"seed": 6, "curated_vs_raw": paired, "replay_effect": dict(paired),
            "curation": {"detector": {"precision": 0.94, "recall": 0.95}},
            "forgetting": {k: {"diff": 0.0} for k in ("raw", "curated", "curated+replay")}}
    text = render_seeds({"seeds": [6], "total_s": 60, "per_seed": [seed], "targets": {},
                         "pooled": {"curated_vs_raw": g, "replay_effect": g}})
    assert "  seed 6    last_word 100% -> 100%, join_dash 6% -> 94%" in text.splitlines()
