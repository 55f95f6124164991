"""Each Safe Harbor identifier type is found and replaced by its placeholder."""

from __future__ import annotations

import pytest

from tunesmith.data.deid import Deidentifier

CASES = [
    ("NAME", "Patient: Maria Gonzalez was seen today.", "Maria Gonzalez"),
    ("NAME", "Seen with Dr. Okonkwo in clinic.", "Okonkwo"),
    ("NAME", "Pt's wife linda at bedside.", "linda"),
    ("NAME", "SMITH, JOHN    MRN: 4820913", "SMITH, JOHN"),
    ("NAME", "Signed: Ana Ruiz, RN", "Ana Ruiz"),
    ("DATE", "Admitted on 03/14/2021 for CHF.", "03/14/2021"),
    ("DATE", "Discharged January 6, 2022 home.", "January 6, 2022"),
    ("DATE", "Echo on 2020-08-01 showed EF 35%.", "2020-08-01"),
    ("DATE", "Follow-up on 3/14 in clinic.", "3/14"),
    ("AGE", "A 94-year-old woman with CHF.", "94"),
    ("AGE", "Age: 101", "101"),
    ("PHONE", "Call back at (617) 555-0123 today.", "(617) 555-0123"),
    ("PHONE", "Fax: 617.555.0199", "617.555.0199"),
    ("EMAIL", "Email jdoe42@example.com for results.", "jdoe42@example.com"),
    ("SSN", "SSN: 123-45-6789", "123-45-6789"),
    ("MRN", "MRN: 00482913", "00482913"),
    ("MRN", "Medical record number MR5555219 on file.", "MR5555219"),
    ("ID", "Account #: ACCT-0723046", "ACCT-0723046"),
    ("ID", "BlueCross member ID W070778986", "W070778986"),
    ("ID", "Driver's license: D1234567", "D1234567"),
    ("ID", "Pacemaker serial no. PJN482910R checked.", "PJN482910R"),
    ("URL", "Portal: https://mychart.example.org/p/123", "https://mychart.example.org/p/123"),
    ("IP", "Logged in from 192.168.10.23 today.", "192.168.10.23"),
    ("ADDRESS", "Lives at 1234 Oak Street Apt. 5 alone.", "1234 Oak Street Apt. 5"),
    ("CITY", "Address: 12 Elm Ave, Springfield, MA 01103", "Springfield"),
    ("ZIP", "Address: 12 Elm Ave, Springfield, MA 01103", "01103"),
]


@pytest.mark.parametrize(("kind", "text", "value"), CASES)
def test_identifier_is_replaced(
    placeholder: Deidentifier, kind: str, text: str, value: str
) -> None:
    out, counts = placeholder.deidentify_text(text, record_key="r1")
    assert value not in out
    assert f"[{kind}]" in out
    assert counts.get(kind, 0) >= 1


def test_not_identifiers_are_kept(placeholder: Deidentifier) -> None:
    text = (
        "A 67-year-old man, MI in 2015. BP 132/84, pain 6/10, grade 2/6 murmur, Cr 1.4, 40 mg BID."
    )
    out, counts = placeholder.deidentify_text(text, record_key="r1")
    assert out == text
    assert counts == {}
