"""`python -m tests.torchrun_probe RUN_DIR`: the training worker, with every write of the studio's
run files (status, metrics, checkpoints, result) recorded per rank in `RUN_DIR/probe/`.

Used by tests/test_torchrun.py to check which rank of a torchrun launch wrote what: the probe
wraps the real functions (they still write), it fakes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(run_dir: str) -> None:
    from kernel import status as st
    from training import callbacks, trainer

    rank = int(os.environ.get("RANK", "0"))
    probe = Path(run_dir) / "probe"
    probe.mkdir(exist_ok=True)
    writes: list[str] = []

    def recorded(name, fn):
        def wrapper(*args, **kwargs):
            writes.append(name)
            return fn(*args, **kwargs)
        return wrapper

    st.write_status = recorded("status", st.write_status)
    st.append_metrics = recorded("metrics", st.append_metrics)
    callbacks.save_checkpoint = recorded("checkpoint", callbacks.save_checkpoint)
    summary = trainer.run(run_dir)
    (probe / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "summary": summary, "writes": writes}))


if __name__ == "__main__":
    main(sys.argv[1])
