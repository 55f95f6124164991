"""Finding and shifting dates (no engine needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from tunesmith.data.deid.dates import find_dates, shift_date


@pytest.mark.parametrize(
    ("text", "day", "shifted"),
    [
        ("03/04/2021", dt.date(2021, 3, 4), "04/13/2021"),
        ("3/4/21", dt.date(2021, 3, 4), "4/13/21"),
        ("2021-03-04", dt.date(2021, 3, 4), "2021-04-13"),
        ("March 4, 2021", dt.date(2021, 3, 4), "April 13, 2021"),
        ("4 Mar 2021", dt.date(2021, 3, 4), "13 Apr 2021"),
        ("04-Mar-2021", dt.date(2021, 3, 4), "13-Apr-2021"),
        ("Jan. 31st, 2020", dt.date(2020, 1, 31), "Mar. 11th, 2020"),
        ("25/12/2020", dt.date(2020, 12, 25), "3/2/2021"),
    ],
)
def test_find_and_shift(text: str, day: dt.date, shifted: str) -> None:
    (match,) = find_dates(text)
    assert match.day == day
    assert shift_date(text, match, 40) == shifted


def test_not_dates() -> None:
    text = "pain 6/10, murmur 2/6, BP 120/80, in 2019, version 1.4.2, may 5 tabs"
    assert list(find_dates(text)) == []


def test_month_day_needs_a_cue() -> None:
    assert [text[d.start : d.end] for text in ["seen on 3/14"] for d in find_dates(text)] == [
        "3/14"
    ]
