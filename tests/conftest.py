"""Suite-wide settings: no model hub, ever; one converted copy of the packaged models."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from tunesmith.settings import Settings


@pytest.fixture(scope="session")
def packaged_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A data dir shared by the ``slow`` tests, so SmolLM2's GGUF is converted once a run."""
    return Settings(data_dir=tmp_path_factory.mktemp("packaged-home"))
