"""FSDP's checkpoint state on real shards: two gloo processes run ``fsdp_ranks.py``.

Accelerate enables FSDP on accelerators only, so ``finetune --fsdp`` itself needs GPUs; what is
FSDP-specific in tunesmith (gathering full weights and optimizer state for rank 0 to write, and
scattering them back on resume) is checked here on CPU with PyTorch's FSDP2.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_full_state_gathers_and_scatters_over_fsdp2_shards(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        str(HERE / "fsdp_ranks.py"), str(tmp_path),
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent.parent / "src")}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    assert (tmp_path / "ok").read_text() == "ok"
