"""Class probabilities from a sequence-classification model.

The head's outputs are read the way training defined them (``data/labels.py``): a binary
problem has one logit whose sigmoid is P(names[1]); multiclass uses a softmax; multi-label a
sigmoid per label (the probabilities then need not sum to 1).

Texts are tokenized like training tokenizes them (the tokenizer's special tokens, truncation
at ``max_length``) and right-padded with an attention mask, as training's batches are.
Decoder classifiers find the last real token through ``config.pad_token_id``, which loading
sets. Texts are batched by length, so little compute goes to padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch

# Used when neither the tokenizer nor the config states a limit (tokenizers without one
# report a huge ``model_max_length``).
FALLBACK_MAX_LENGTH = 512


class LabelSpaceLike(Protocol):
    """What classification needs of ``tunesmith.data.labels.LabelSpace``."""

    @property
    def names(self) -> list[str]: ...

    @property
    def problem_type(self) -> str: ...


def classify(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    label_space: LabelSpaceLike,
    *,
    batch_size: int = 16,
    max_length: int | None = None,
) -> list[dict[str, float]]:
    """One ``{label: probability}`` per text, labels in the label space's order."""
    if not texts:
        return []
    limit = max_length or model_max_length(model, tokenizer)
    encoded = [
        list(ids) for ids in tokenizer(list(texts), truncation=True, max_length=limit)["input_ids"]
    ]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    probabilities: list[list[float]] = [[] for _ in texts]
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            inputs = _right_pad([encoded[i] for i in rows], pad_id, device)
            logits = model(**inputs).logits.float()
            for row, probs in zip(
                rows, to_probabilities(logits, label_space.problem_type), strict=True
            ):
                probabilities[row] = probs
    return [dict(zip(label_space.names, probs, strict=True)) for probs in probabilities]


def to_probabilities(logits: torch.Tensor, problem_type: str) -> list[list[float]]:
    """Per-class probabilities from a batch of head outputs ``[batch, outputs]``.

    A binary head has one output; a two-output head (e.g. a model trained elsewhere) is read
    with a softmax, so both shapes give ``[P(names[0]), P(names[1])]``. Computed in fp32 (a
    bf16 model's logits would give probabilities to two or three digits).
    """
    logits = logits.float()
    if problem_type == "multilabel":
        return torch.sigmoid(logits).tolist()
    if problem_type == "binary" and logits.shape[-1] == 1:
        positive = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - positive, positive], dim=-1).tolist()
    return torch.softmax(logits, dim=-1).tolist()


def predicted_labels(
    probabilities: Sequence[dict[str, float]], label_space: LabelSpaceLike, threshold: float = 0.5
) -> list[str | list[str]]:
    """The most probable class per text; multi-label: every label at or above ``threshold``."""
    if label_space.problem_type == "multilabel":
        return [[name for name, p in probs.items() if p >= threshold] for probs in probabilities]
    return [max(probs, key=lambda name: probs[name]) for probs in probabilities]


def model_max_length(model: Any, tokenizer: Any) -> int:
    """The longest input both the tokenizer and the position embeddings accept."""
    limits = [
        value
        for value in (
            getattr(tokenizer, "model_max_length", None),
            getattr(model.config, "max_position_embeddings", None),
        )
        if isinstance(value, int) and 0 < value < 1_000_000
    ]
    return min(limits) if limits else FALLBACK_MAX_LENGTH


def _right_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
