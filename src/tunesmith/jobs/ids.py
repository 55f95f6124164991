"""Object ids: a prefix (``file-``, ``ftjob-``, ...) then 24 hex characters that sort by time.

The first 14 hex digits are microseconds since the epoch and the last 10 are random, so ids
created later sort later. That is what lets every list endpoint page with a plain
``id > after`` cursor and lets the queue claim the oldest job with ``ORDER BY id``. Within one
process ids are strictly increasing even when the clock does not move.
"""

from __future__ import annotations

import secrets
import threading
import time

_lock = threading.Lock()
_last = 0


def new_id(prefix: str) -> str:
    """A fresh id such as ``ftjob-0619f3a2b4c5d6e7f8a9b0c1``; ``prefix`` includes no dash."""
    global _last
    with _lock:
        now = max(time.time_ns() // 1000, _last + 1)
        _last = now
    return f"{prefix}-{now:014x}{secrets.token_hex(5)}"


def short(object_id: str) -> str:
    """The part after the prefix, as used inside fine-tuned model names."""
    return object_id.split("-", 1)[-1]
