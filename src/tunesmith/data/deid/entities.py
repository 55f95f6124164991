"""The identifier types tunesmith removes and the spans its detectors report.

The types follow the HIPAA Safe Harbor identifiers that occur in free text; the rarer numbered
ones (account, health plan, licence, device, vehicle numbers...) share ``ID`` so a placeholder
never tells more than the fact that a number was there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PhiType(StrEnum):
    NAME = "NAME"
    DATE = "DATE"
    AGE = "AGE"  # only ages over 89
    PHONE = "PHONE"  # phone and fax numbers
    EMAIL = "EMAIL"
    SSN = "SSN"
    MRN = "MRN"
    ID = "ID"  # account, health plan, licence, device, vehicle and other numbers
    URL = "URL"
    IP = "IP"
    ADDRESS = "ADDRESS"  # street address, PO box
    CITY = "CITY"
    ZIP = "ZIP"

    @property
    def placeholder(self) -> str:
        return f"[{self.value}]"


# When spans of two types overlap, the merged span takes the type of the surer finding (its
# score); between equally sure ones, the type that ranks first here: the more specific pattern
# wins ("john.smith@x.org" is an EMAIL, not a NAME).
PRIORITY: tuple[PhiType, ...] = (
    PhiType.EMAIL,
    PhiType.URL,
    PhiType.IP,
    PhiType.SSN,
    PhiType.MRN,
    PhiType.PHONE,
    PhiType.DATE,
    PhiType.AGE,
    PhiType.ID,
    PhiType.ADDRESS,
    PhiType.ZIP,
    PhiType.CITY,
    PhiType.NAME,
)
_RANK = {kind: i for i, kind in enumerate(PRIORITY)}


@dataclass(frozen=True)
class Finding:
    """One detected identifier: ``text[start:end]`` is of ``type``; ``source`` names the rule."""

    start: int
    end: int
    type: PhiType
    score: float = 1.0
    source: str = ""


def merge_findings(findings: list[Finding]) -> list[Finding]:
    """Overlapping findings become one span covering them all, typed by ``PRIORITY``.

    The union is the safe choice: two detectors that disagree on where an identifier ends
    must not leave the part only one of them saw.
    """
    merged: list[Finding] = []
    for item in sorted(findings, key=lambda f: (f.start, -f.end)):
        if merged and item.start < merged[-1].end:
            last = merged[-1]
            best = min(last, item, key=lambda f: (-f.score, _RANK[f.type]))
            merged[-1] = Finding(
                last.start, max(last.end, item.end), best.type, best.score, best.source
            )
        else:
            merged.append(item)
    return merged
