"""Finding the generator's identifiers in what was stored: one search for run.py and api.py.

An identifier counts when it stands as a whole word (a ZIP's five digits inside a
pseudonym's hex digest are no leak), in any case. A plain substring test comes first: a
regex per value over all the bytes is quadratic in the cohort's size (15,000 values x 2 MB
took minutes at 1,200 patients), and few values pass the substring test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def identifiers_in(data: bytes, values: Iterable[str]) -> list[str]:
    """The values that occur in ``data`` as whole words, ignoring case."""
    lowered = data.lower()
    candidates = [v for v in values if v.lower().encode() in lowered]
    return [v for v in candidates if _whole_word(v).search(data)]


def _whole_word(value: str) -> re.Pattern[bytes]:
    return re.compile(rb"(?<![0-9A-Za-z])" + re.escape(value.encode()) + rb"(?![0-9A-Za-z])", re.I)
