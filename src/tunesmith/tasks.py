"""The small vocabulary every layer of the engine shares: tasks, methods, model kinds."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """What the model learns to do; it decides the data format and the loss."""

    CHAT = "chat"  # {"messages": [...]}; causal-LM loss on assistant tokens
    COMPLETION = "completion"  # {"prompt", "completion"}; loss on the completion only
    CLASSIFICATION = "classification"  # {"text", "label"}; cross-entropy on a classifier head


class Method(StrEnum):
    """Which parameters are trained."""

    LORA = "lora"  # low-rank adapters on the chosen linear layers (peft); base frozen
    FULL = "full"  # every parameter
    HEAD = "head"  # only the final layers / the new classifier head; the rest frozen


class ModelKind(StrEnum):
    """The architecture family of a model folder, read from its config."""

    CAUSAL = "causal"  # GPT / LLaMA style decoder
    ENCODER = "encoder"  # BERT style
    SEQ2SEQ = "seq2seq"  # T5 style encoder-decoder
