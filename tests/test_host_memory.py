"""host_memory: glibc keeps freed blocks of tensor size in the process, for reuse.

Each case runs in a child process: the tuning is process-wide and done once. What is checked
is the mechanism, which is deterministic: where glibc puts a process's first 24 MiB block
(mallinfo2's ``hblkhd``: bytes in blocks mmapped on their own; ``arena``: the heap's size)
and whether the heap keeps it when it is freed. What that saves (page faults in a forward
pass) depends on thresholds glibc raises itself as blocks are freed, and is measured in
docs/benchmarks.md, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import ctypes, json, sys
    from tunesmith.host_memory import keep_freed_memory
    from tunesmith.settings import Settings

    tuned = keep_freed_memory(Settings()) if sys.argv[1] == "tune" else None

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)

    block = libc.malloc(24 * 2**20)
    ctypes.memset(block, 1, 24 * 2**20)
    alive = libc.mallinfo2()
    libc.free(block)
    freed = libc.mallinfo2()
    print(json.dumps({
        "tuned": tuned,
        "mmapped_alive": alive.hblkhd,
        "mmapped_freed": freed.hblkhd,
        "heap_freed": freed.arena,
    }))
    """
)

MIB = 2**20

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
def test_a_freed_block_stays_in_the_heap_when_tuned() -> None:
    untuned = _child("plain")
    tuned = _child("tune")
    assert untuned["tuned"] is None and tuned["tuned"] is True
    # glibc's defaults: an mmap of its own, unmapped on free (the next one faults in afresh)
    assert untuned["mmapped_alive"] >= 24 * MIB
    assert untuned["mmapped_freed"] < 24 * MIB
    # tuned: from the heap, which keeps it when freed
    assert tuned["mmapped_alive"] < 24 * MIB
    assert tuned["heap_freed"] >= 24 * MIB


@glibc_only
def test_setting_off_leaves_malloc_alone() -> None:
    result = _child("tune", TUNESMITH_MALLOC_TUNING="0")
    assert result["tuned"] is False
    assert result["mmapped_alive"] >= 24 * MIB


@glibc_only
def test_operators_own_malloc_tuning_wins() -> None:
    result = _child("tune", MALLOC_TRIM_THRESHOLD_="131072")
    assert result["tuned"] is False
