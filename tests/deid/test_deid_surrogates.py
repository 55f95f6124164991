"""Surrogate mode: consistent fake values per record, dates shifted by one offset per record."""

from __future__ import annotations

import datetime as dt
import re

from tunesmith.data.deid import Deidentifier
from tunesmith.data.deid.dates import find_dates

NOTE = (
    "Patient: John Kowalski  DOB: 03/04/1950\n"
    "Mr. Kowalski was admitted on 03/10/2021 and discharged on 03/17/2021. "
    "His daughter Anna Kowalski called from 617-555-0123. In 2019 he had a fall."
)


def _dates(text: str) -> list[dt.date]:
    return [d.day for d in find_dates(text)]


def test_same_name_same_surrogate_within_record(surrogate: Deidentifier) -> None:
    out, counts = surrogate.deidentify_text(NOTE, record_key="patient-1")
    assert "Kowalski" not in out and "John" not in out and "Anna" not in out
    surnames = re.findall(r"Mr\. (\w+)", out)
    assert surnames and surnames[0] in out.split("Patient: ")[1].split("\n")[0]
    assert out.count(surnames[0]) == 3  # header, "Mr. X", "Anna X"
    assert counts["NAME"] >= 3


def test_same_key_across_texts_and_instances(surrogate: Deidentifier, salt: bytes) -> None:
    first, _ = surrogate.deidentify_text("Mr. Kowalski seen on 03/10/2021.", record_key="patient-1")
    second, _ = surrogate.deidentify_text("Kowalski called on 03/10/2021.", record_key="patient-1")
    assert first.split()[1] == second.split()[0]  # same fake surname
    rerun = Deidentifier("surrogate", salt=salt, engine=surrogate.engine)
    assert (
        rerun.deidentify_text("Mr. Kowalski seen on 03/10/2021.", record_key="patient-1")[0]
        == first
    )


def test_other_record_or_salt_gives_other_values(surrogate: Deidentifier) -> None:
    text = "Mr. Kowalski seen on 03/10/2021."
    base, _ = surrogate.deidentify_text(text, record_key="patient-1")
    other_record, _ = surrogate.deidentify_text(text, record_key="patient-2")
    other_salt = Deidentifier("surrogate", salt=b"other", engine=surrogate.engine)
    assert base != other_record
    assert base != other_salt.deidentify_text(text, record_key="patient-1")[0]


def test_dates_shift_together_and_keep_format(surrogate: Deidentifier) -> None:
    out, _ = surrogate.deidentify_text(NOTE, record_key="patient-1")
    before, after = _dates(NOTE), _dates(out)
    assert len(after) == len(before) == 3
    shifts = {(b - a).days for a, b in zip(before, after, strict=True)}
    assert len(shifts) == 1 and 0 < abs(shifts.pop()) <= 365
    assert re.search(r"\b\d\d/\d\d/\d{4}\b", out)  # MM/DD/YYYY stays MM/DD/YYYY
    assert "In 2019" in out  # a year alone is no identifier


def test_intervals_survive_across_texts_of_one_record(surrogate: Deidentifier) -> None:
    a, _ = surrogate.deidentify_text("Admitted January 6, 2022.", record_key="p9")
    b, _ = surrogate.deidentify_text("Discharged 2022-01-16.", record_key="p9")
    assert (_dates(b)[0] - _dates(a)[0]).days == 10


def test_old_age_becomes_90_plus(surrogate: Deidentifier) -> None:
    out, counts = surrogate.deidentify_text("A 94-year-old woman; age 67 sister.", record_key="p1")
    assert "90+-year-old" in out and "94" not in out and "67" in out
    assert counts == {"AGE": 1}


def test_structured_surrogates_keep_shape(surrogate: Deidentifier) -> None:
    text = "SSN 123-45-6789, MRN: 00482913, phone (617) 555-0123, email jdoe@example.com"
    out, _ = surrogate.deidentify_text(text, record_key="p1")
    for original in ("123-45-6789", "00482913", "(617) 555-0123", "jdoe@example.com"):
        assert original not in out
    assert re.search(r"SSN 9\d\d-\d\d-\d{4}", out)  # 9xx: never an issued SSN
    assert re.search(r"MRN: \d{8}", out)
    assert re.search(r"\(\d{3}\) \d{3}-\d{4}", out)
    assert re.search(r"[\w.]+@example\.com", out)
