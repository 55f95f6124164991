"""Dates in clinical text: finding them, and shifting them while keeping their written form.

A date is found with the positions of its month, day and year inside the match, so surrogate
mode can rewrite just those parts: "03/04/2021" stays "MM/DD/YYYY", "Jan. 5" stays an
abbreviated month without a year. A year alone is not an identifier under Safe Harbor and is
never matched.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

_MONTH = (
    r"(?P<mn>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)(?P<dot>\.)?"
)
_DAY = r"(?P<d>(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?)"
_YEAR4 = r"(?P<y>(?:1[89]|20)\d{2})"
_START = r"(?<![\w/.:-])"
_END = r"(?![\w/-]|[.,:]\d)"
# Words after which a bare "3/14" is a date rather than a score ("pain 6/10", "murmur 2/6").
_CUE = (
    r"(?:\b(?:on|since|from|until|till|to|by|dated|date|of|after|before|starting|through|thru"
    r"|between|and|DOS|admitted|discharged|seen|visit|last|next)\s+|[:(]\s*)"
)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        (
            "iso",
            _START + r"(?P<y>(?:19|20)\d{2})(?P<s>[-/.])(?P<m>0?[1-9]|1[0-2])(?P=s)"
            r"(?P<d>0?[1-9]|[12]\d|3[01])" + r"(?![\w/:-]|\.\d)",
        ),
        (
            "numeric",
            _START + r"(?P<a>\d{1,2})(?P<s>[/.-])(?P<b>\d{1,2})(?P=s)(?P<y>\d{4}|\d{2})" + _END,
        ),
        ("month_day", _START + _MONTH + r"\s+" + _DAY + r"(?:,?\s+" + _YEAR4 + r")?" + _END),
        (
            "day_month",
            _START + _DAY + r"\s+(?:of\s+)?" + _MONTH + r"(?:,?\s+" + _YEAR4 + r")?" + _END,
        ),
        ("dash_month", _START + r"(?P<d>\d{1,2})-" + _MONTH + r"-(?P<y>\d{4}|\d{2})" + _END),
        ("month_year", _START + _MONTH + r",?\s+" + _YEAR4 + _END),
        ("month_slash_year", _START + r"(?P<m>0?[1-9]|1[0-2])/" + _YEAR4 + _END),
        ("short", _CUE + r"(?P<m>0?[1-9]|1[0-2])/(?P<d>0?[1-9]|[12]\d|3[01])" + _END),
    )
)

_MONTH_NUMBERS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}


@dataclass(frozen=True)
class DateMatch:
    """A date in the text and where its parts are, so a shifted date can keep the same form."""

    start: int
    end: int
    day: dt.date
    has_day: bool
    has_year: bool
    parts: tuple[tuple[str, int, int], ...]  # ("m" | "mn" | "d" | "y", start, end), absolute


def _leading_digits(text: str) -> str:
    """ "4th" -> "4": the number of a day or month part (its suffix kept apart)."""
    return text[: len(text) - len(text.lstrip("0123456789"))]


def _two_digit_year(value: int) -> int:
    return 2000 + value if value <= dt.date.today().year % 100 + 1 else 1900 + value


def _parse(name: str, m: re.Match[str]) -> DateMatch | None:
    """Validate one regex match and locate its parts; None when it is no real date."""
    g = m.groupdict()
    parts: dict[str, tuple[int, int]] = {}
    if g.get("mn"):
        if not g["mn"][0].isupper():  # "may 5" is a verb and a number
            return None
        month = _MONTH_NUMBERS[g["mn"][:3].lower()]
        parts["mn"] = m.span("mn")
    elif name == "numeric":
        a, b = int(g["a"]), int(g["b"])
        first, second = ("m", "d") if a <= 12 else ("d", "m")
        if first == "d" and b > 12:
            return None
        month = a if first == "m" else b
        parts[first], parts[second] = m.span("a"), m.span("b")
    else:
        month = int(g["m"])
        parts["m"] = m.span("m")
    if g.get("y"):
        year = int(g["y"]) if len(g["y"]) == 4 else _two_digit_year(int(g["y"]))
        parts["y"] = m.span("y")
    else:
        year = 2000  # a leap year, so "2/29" without a year still parses
    if g.get("d"):
        parts["d"] = m.span("d")
    has_day = "d" in parts
    day_num = int(_leading_digits(m.string[slice(*parts["d"])])) if has_day else 15
    if not 1 <= month <= 12 or not 1 <= day_num <= calendar.monthrange(year, month)[1]:
        return None
    start = m.start("m") if name == "short" else m.start()  # the cue word is not the date
    return DateMatch(
        start,
        m.end(),
        dt.date(year, month, day_num),
        has_day,
        "y" in parts,
        tuple((k, s, e) for k, (s, e) in parts.items()),
    )


def find_dates(text: str) -> Iterator[DateMatch]:
    """Every date in ``text``; where two readings overlap, the longer one is kept."""
    found: list[DateMatch] = []
    for name, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            parsed = _parse(name, m)
            if parsed:
                found.append(parsed)
    found.sort(key=lambda d: (d.start, -(d.end - d.start)))
    last_end = -1
    for item in found:
        if item.start >= last_end:
            last_end = item.end
            yield item


def _month_text(original: str, month: int) -> str:
    full = len(original) > 3 and original.lower() != "sept"
    text = calendar.month_name[month] if full else calendar.month_abbr[month]
    return text.upper() if original.isupper() else text


def _suffix(old: str, day: int) -> str:
    """Keep an ordinal suffix ("4th") right for the new day ("1st"), in the same case."""
    if not old:
        return ""
    new = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return new.upper() if old.isupper() else new


def shift_date(text: str, match: DateMatch, days: int) -> str:
    """``text[match.start:match.end]`` moved by ``days``, written the way it was written."""
    new = match.day + dt.timedelta(days=days)
    values = {"m": new.month, "d": new.day, "y": new.year}
    out = text[match.start : match.end]
    # zero-padding is a property of the whole date: "03/14" becomes "09/07", "3/14" "9/7"
    padded = any(text[s:e].startswith("0") for k, s, e in match.parts if k in ("m", "d"))
    for kind, start, end in sorted(match.parts, key=lambda p: -p[1]):
        old = text[start:end]
        if kind == "mn":
            value = _month_text(old, new.month)
        elif kind == "y" and len(old) == 2:
            value = f"{new.year % 100:02d}"
        else:
            digits = _leading_digits(old)
            width = 2 if padded and kind in ("m", "d") else 1
            value = f"{values[kind]:0{width}d}" + _suffix(old[len(digits) :], values[kind])
        out = out[: start - match.start] + value + out[end - match.start :]
    return out
