"""Fixtures for evaluation tests: the tiny tokenizer of the inference tests, and settings."""

from __future__ import annotations

import os

import pytest

from tests.inference.tiny_models import tiny_tokenizer
from tunesmith.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "home")
