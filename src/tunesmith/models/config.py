"""Facts read from a model's ``config.json`` without loading weights or importing torch.

The registry needs a model's kind and context length to resolve a name, and it must stay cheap
(``tunesmith models`` lists models in well under a second), so this module reads the JSON
directly instead of going through ``AutoConfig`` — which would also need
``trust_remote_code`` for custom architectures just to read a few keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunesmith.errors import ModelError, ModelNotFoundError
from tunesmith.tasks import ModelKind

CONFIG_FILE = "config.json"

# BERT-style encoders: bidirectional, no generation head, used here for classification.
ENCODER_MODEL_TYPES = frozenset(
    {
        "albert",
        "bert",
        "big_bird",
        "camembert",
        "canine",
        "convbert",
        "data2vec-text",
        "deberta",
        "deberta-v2",
        "distilbert",
        "electra",
        "ernie",
        "esm",
        "flaubert",
        "funnel",
        "ibert",
        "layoutlm",
        "longformer",
        "luke",
        "megatron-bert",
        "mobilebert",
        "modernbert",
        "mpnet",
        "nezha",
        "nomic_bert",
        "rembert",
        "roberta",
        "roberta-prelayernorm",
        "roformer",
        "squeezebert",
        "xlm",
        "xlm-roberta",
        "xlm-roberta-xl",
        "xmod",
    }
)
# The same families as they appear in ``architectures`` (for configs without a model_type).
_ENCODER_ARCH_PREFIXES = (
    "Albert",
    "Bert",
    "Camembert",
    "DistilBert",
    "Deberta",
    "Electra",
    "MPNet",
    "ModernBert",
    "Roberta",
    "XLMRoberta",
)

# Keys that hold the longest input a model's position embeddings cover, most common first.
_CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_sequence_length",
    "seq_length",
    "n_ctx",
    "max_seq_len",
)
# RoBERTa-family position ids start after the padding index, so two slots are never usable.
_POSITION_OFFSET_TYPES = frozenset({"roberta", "xlm-roberta", "camembert", "longformer"})
# T5-style relative positions (learned buckets): no hard context limit.
_RELATIVE_POSITION_TYPES = frozenset({"t5", "mt5", "umt5", "longt5", "switch_transformers"})


def read_config(path: Path | str) -> dict[str, Any]:
    """``config.json`` of a model folder as a dict; a clear error when it is absent or broken."""
    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise ModelNotFoundError(
            f"{path} is not a Hugging Face model folder: it has no {CONFIG_FILE}"
        )
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {file}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{file} does not hold a JSON object")
    return data


def _as_mapping(path_or_config: object) -> Mapping[str, Any]:
    if isinstance(path_or_config, Mapping):
        return path_or_config
    if isinstance(path_or_config, Path | str):
        return read_config(path_or_config)
    to_dict = getattr(path_or_config, "to_dict", None)  # a transformers PretrainedConfig
    if callable(to_dict):
        return to_dict()
    raise TypeError(
        f"expected a folder, a config dict or a PretrainedConfig, not {path_or_config!r}"
    )


def detect_kind(path_or_config: Path | str | Mapping[str, Any] | object) -> ModelKind:
    """The architecture family: seq2seq if encoder-decoder, encoder if BERT-like, else causal.

    Accepts a model folder, a ``config.json`` dict or a ``PretrainedConfig``. Causal is the
    fallback because nearly every other architecture on the hub is a decoder.
    """
    config = _as_mapping(path_or_config)
    if config.get("is_encoder_decoder"):
        return ModelKind.SEQ2SEQ
    model_type = str(config.get("model_type") or "").lower()
    if model_type in ENCODER_MODEL_TYPES:
        return ModelKind.ENCODER
    architectures = config.get("architectures") or []
    if any(str(a).startswith(_ENCODER_ARCH_PREFIXES) for a in architectures):
        return ModelKind.ENCODER
    return ModelKind.CAUSAL


def max_length_from_config(path_or_config: Path | str | Mapping[str, Any] | object) -> int | None:
    """Longest input the model's position embeddings allow; None when positions are relative.

    Multimodal configs keep the language model's values under ``text_config``.
    """
    config = _as_mapping(path_or_config)
    model_type = str(config.get("model_type") or "").lower()
    if model_type in _RELATIVE_POSITION_TYPES or "relative_attention_num_buckets" in config:
        return None
    for key in _CONTEXT_KEYS:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            if model_type in _POSITION_OFFSET_TYPES:
                pad = config.get("pad_token_id")
                value -= (pad if isinstance(pad, int) else 1) + 1
            return value
    text_config = config.get("text_config")
    if isinstance(text_config, Mapping):
        return max_length_from_config(text_config)
    return None
