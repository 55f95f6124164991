"""Fixtures for the data tests: the tiny chat tokenizer and a writer of JSONL files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from transformers import PreTrainedTokenizerFast

from tests.helpers import make_tiny_chat_tokenizer, write_jsonl


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    """Shared, so tests must not change it; build a fresh one to test mutation."""
    return make_tiny_chat_tokenizer()


@pytest.fixture
def jsonl(tmp_path: Path) -> Callable[..., Path]:
    """``jsonl(rows, name="train.jsonl")`` writes a file under tmp_path and returns its path."""

    def write(rows: list[Any], name: str = "train.jsonl") -> Path:
        return write_jsonl(tmp_path / name, rows)

    return write
