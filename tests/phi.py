"""Invented clinical notes carrying one value of each Safe Harbor identifier type, and a scan
that looks for those values in the bytes of every file under some folders.

Used by the de-identified training tests (engine, CLI, API, example): after a de-identified
fine-tune, no original value may appear in any file the run or the server wrote, binary files
included. Every value is invented, and long or distinctive enough that finding it by chance
in a binary file (weights, a database page) is out of the question.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

# type -> (a sentence the detector is known to handle, the value it holds)
IDENTIFIERS: dict[str, tuple[str, str]] = {
    "name": ("Patient: Maria Gonzalez was seen today.", "Maria Gonzalez"),
    "date": ("Admitted on 03/14/2021 for CHF.", "03/14/2021"),
    "age over 89": ("A 94-year-old woman with CHF.", "94-year-old"),
    "phone": ("Call back at (617) 555-0123 today.", "(617) 555-0123"),
    "fax": ("Fax: 617.555.0199", "617.555.0199"),
    "email": ("Email jdoe42@example.com for results.", "jdoe42@example.com"),
    "ssn": ("SSN: 123-45-6789", "123-45-6789"),
    "mrn": ("MRN: 00482913", "00482913"),
    "account": ("Account #: ACCT-0723046", "ACCT-0723046"),
    "health plan": ("BlueCross member ID W070778986", "W070778986"),
    "licence": ("Driver's license: D1234567", "D1234567"),
    "device": ("Pacemaker serial no. PJN482910R checked.", "PJN482910R"),
    "url": ("Portal: https://mychart.example.org/p/123", "mychart.example.org/p/123"),
    "ip": ("Logged in from 192.168.10.23 today.", "192.168.10.23"),
    "address": ("Lives at 1234 Oak Street Apt. 5 alone.", "1234 Oak Street"),
    "city": ("Address: 12 Elm Ave, Springfield, MA 01103", "Springfield"),
    # the ZIP with its state: five digits alone turn up by chance in hashes and metrics
    "zip": ("Mailing address: 40 Pine Rd, Worcester, MA 01608", "MA 01608"),
}
VALUES = [value for _, value in IDENTIFIERS.values()]

_OUTCOMES = (
    ("readmitted", "Lives alone and ran out of furosemide at home."),
    ("home", "Daughter at bedside, follow-up booked within a week."),
)


def note_rows(n: int, offset: int = 0) -> list[dict[str, str]]:
    """``n`` classification rows; together they carry every identifier type (when n >= 17)."""
    sentences = [sentence for sentence, _ in IDENTIFIERS.values()]
    rows = []
    for i in range(offset, offset + n):
        label, story = _OUTCOMES[i % 2]
        sentence = sentences[i % len(sentences)]
        rows.append({"text": f"{sentence} {story} Visit {i}.", "label": label})
    return rows


def files_under(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def find_values(values: Iterable[str], roots: Iterable[Path]) -> dict[str, list[str]]:
    """``{file: [values found in its bytes]}``, exact or lower-cased, for every file under
    ``roots``. Empty means none of the values reached any of those files."""
    found: dict[str, list[str]] = {}
    wanted = [(v, v.encode(), v.lower().encode()) for v in values]
    for path in files_under(*roots):
        data = path.read_bytes()
        lower = data.lower()
        hits = [v for v, exact, low in wanted if exact in data or low in lower]
        if hits:
            found[str(path)] = hits
    return found


def find_words(values: Iterable[str], roots: Iterable[Path]) -> dict[str, list[str]]:
    """Like ``find_values``, but each value only as a whole token (no letter or digit on
    either side), case-insensitively: for generated values such as five-digit ZIPs, which a
    plain search finds inside any long hexadecimal digest."""
    patterns = [
        (v, re.compile(rb"(?<![0-9A-Za-z])" + re.escape(v.encode()) + rb"(?![0-9A-Za-z])", re.I))
        for v in values
    ]
    found: dict[str, list[str]] = {}
    for path in files_under(*roots):
        data = path.read_bytes()
        hits = [v for v, pattern in patterns if pattern.search(data)]
        if hits:
            found[str(path)] = hits
    return found
