"""What the time estimate counts: the parameters that cost FLOPs per token."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoModel

from tunesmith.settings import Settings
from tunesmith.training.planning import count_parameters_of


@pytest.mark.parametrize("kind", ["causal", "encoder"])
def test_embedding_tables_are_not_counted(
    kind: str, causal_dir: Path, encoder_dir: Path, settings: Settings
) -> None:
    folder = causal_dir if kind == "causal" else encoder_dir
    model = AutoModel.from_pretrained(folder)
    total = sum(p.numel() for p in model.parameters())
    embedding = type(model.get_input_embeddings())
    tables = sum(m.weight.numel() for m in model.modules() if isinstance(m, embedding))
    assert tables >= model.get_input_embeddings().weight.numel() > 0
    assert count_parameters_of(folder, settings) == total - tables
