"""Host memory: let glibc's malloc keep freed tensor memory for reuse (decision 023).

PyTorch's CPU tensors come straight from ``malloc``. glibc serves a large block (above its
``mmap`` threshold, 128 KiB at first and adjusted as blocks are freed) with a fresh ``mmap``,
gives it back to the kernel when it is freed, and trims the top of its heap once more than
twice that threshold is free there. A forward pass allocates and frees activations of a few
MiB each, of many sizes, so the same memory goes back and forth: each new block is zeroed
page by page by the kernel on first touch. On the 2-vCPU VMs we measure on, those page
faults took a third of a serving prefill and several percent of a training step.

``keep_freed_memory`` raises both limits once per process, with ``mallopt`` (the tunables
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` set the
same from the environment): blocks up to 32 MiB (glibc's largest threshold) come from the
heap, and up to 1 GiB of freed memory stays in the process. A training step or a batch of
replies then reuses the last one's pages. The price is resident memory that does not shrink
between steps; a process that has to give memory back sets ``TUNESMITH_MALLOC_TUNING=0``.

Nothing is changed where the operator already tuned malloc through those variables, where
another allocator is preloaded (``LD_PRELOAD``: jemalloc and tcmalloc keep memory on their
own), or where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

from tunesmith.settings import Settings

# mallopt's parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20

_GLIBC_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_lock = threading.Lock()
_done: bool | None = None  # None: not tried yet; else whether the limits were raised


def keep_freed_memory(settings: Settings) -> bool:
    """Raise glibc's mmap and trim thresholds for this process, once; True if they are."""
    global _done
    with _lock:
        if _done is None:
            _done = settings.malloc_tuning and _tune_glibc()
        return _done


def _tune_glibc() -> bool:
    if any(name in os.environ for name in _GLIBC_TUNABLES):
        return False  # the operator's own tuning wins
    if "LD_PRELOAD" in os.environ and "malloc" in os.environ["LD_PRELOAD"]:
        return False  # jemalloc / tcmalloc replace malloc; mallopt would not reach them
    libc = _glibc()
    if libc is None:
        return False
    return all(
        libc.mallopt(parameter, value) == 1  # mallopt answers 1 on success
        for parameter, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (_M_TOP_PAD, TOP_PAD),
        )
    )


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        version = libc.gnu_get_libc_version  # only glibc has it (musl, macOS do not)
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc
