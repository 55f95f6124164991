"""host_memory: glibc keeps freed tensor memory, so a repeated allocation faults no pages in.

Each case runs in a child process: the tuning is process-wide and done once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

# Four 8 MiB tensors made and freed ten times (after three warm-up rounds): glibc trims the
# freed top of its heap each time unless told to keep it, and the kernel faults the pages in
# again, zeroed, on the next round.
CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import torch
    from tunesmith.host_memory import keep_freed_memory
    from tunesmith.settings import Settings

    tuned = keep_freed_memory(Settings()) if sys.argv[1] == "tune" else None

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def round_of_blocks():
        blocks = [torch.ones(2**21) for _ in range(4)]
        del blocks

    for _ in range(3):
        round_of_blocks()
    before = faults()
    for _ in range(10):
        round_of_blocks()
    print(json.dumps({"tuned": tuned, "faults": faults() - before}))
    """
)

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="mallopt is glibc's",
)


def _child(mode: str, **env: str) -> dict[str, object]:
    child_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "TUNESMITH_MALLOC"))
    }
    child_env.update(env)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        env=child_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@glibc_only
def test_freed_blocks_are_reused_without_page_faults() -> None:
    untuned = _child("plain")
    tuned = _child("tune")
    assert tuned["tuned"] is True
    pages_per_round = 4 * (2**21 * 4) // 4096
    assert untuned["faults"] >= 5 * pages_per_round  # glibc alone hands the pages back
    assert tuned["faults"] < pages_per_round // 10


@glibc_only
def test_setting_off_leaves_malloc_alone() -> None:
    result = _child("tune", TUNESMITH_MALLOC_TUNING="0")
    assert result["tuned"] is False
    assert result["faults"] >= 5 * 4 * (2**21 * 4) // 4096


@glibc_only
def test_operators_own_malloc_tuning_wins() -> None:
    result = _child("tune", MALLOC_TRIM_THRESHOLD_="131072")
    assert result["tuned"] is False
