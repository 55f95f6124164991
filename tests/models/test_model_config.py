"""Model kind and context length read from config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunesmith.errors import ModelError, ModelNotFoundError
from tunesmith.models.config import detect_kind, max_length_from_config
from tunesmith.tasks import ModelKind


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"model_type": "llama"}, ModelKind.CAUSAL),
        ({"model_type": "bert"}, ModelKind.ENCODER),
        ({"model_type": "xlm-roberta"}, ModelKind.ENCODER),
        ({"model_type": "deberta-v2"}, ModelKind.ENCODER),
        ({"architectures": ["MPNetForMaskedLM"]}, ModelKind.ENCODER),
        ({"model_type": "t5", "is_encoder_decoder": True}, ModelKind.SEQ2SEQ),
        ({"model_type": "bart", "is_encoder_decoder": True}, ModelKind.SEQ2SEQ),
        ({"model_type": "something-new"}, ModelKind.CAUSAL),
    ],
)
def test_detect_kind(config: dict, kind: ModelKind) -> None:
    assert detect_kind(config) == kind


def test_detect_kind_reads_folders_and_configs(llama_dir: Path, bert_dir: Path) -> None:
    from transformers import AutoConfig

    assert detect_kind(llama_dir) == ModelKind.CAUSAL
    assert detect_kind(AutoConfig.from_pretrained(bert_dir)) == ModelKind.ENCODER


@pytest.mark.parametrize(
    ("config", "length"),
    [
        ({"model_type": "llama", "max_position_embeddings": 8192}, 8192),
        ({"model_type": "gpt2", "n_positions": 1024}, 1024),
        ({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}, 512),
        ({"model_type": "t5", "relative_attention_num_buckets": 32}, None),
        ({"model_type": "gemma3", "text_config": {"max_position_embeddings": 32768}}, 32768),
        ({"model_type": "mystery"}, None),
    ],
)
def test_max_length(config: dict, length: int | None) -> None:
    assert max_length_from_config(config) == length


def test_folder_without_config_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        detect_kind(tmp_path)


def test_broken_config_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        detect_kind(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ModelError, match="JSON object"):
        detect_kind(tmp_path)
