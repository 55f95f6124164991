"""Fixtures for inference tests: one tiny tokenizer and tiny models, built once per session."""

from __future__ import annotations

import os

import pytest

from tests.inference.tiny_models import tiny_causal, tiny_seq2seq, tiny_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def causal(tokenizer):
    return tiny_causal(tokenizer)


@pytest.fixture(scope="session")
def seq2seq(tokenizer):
    return tiny_seq2seq(tokenizer)
