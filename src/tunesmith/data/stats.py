"""Statistics of a dataset, as shown by ``tunesmith validate`` and the dashboard.

Token counts need a tokenizer and follow how training will tokenize: chat through the chat
template, completion as prompt + completion + eos, classification as the text with the
tokenizer's special tokens. ``n_target_tokens`` counts the tokens that carry loss (assistant
turns, completions) after truncation to ``max_seq_length``, which is what a fine-tune learns
from and what OpenAI bills as trained tokens per epoch.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from tunesmith.data.formats import ChatExample, ClassificationExample, Example


@dataclass(frozen=True)
class Summary:
    """Min, mean, median, 95th percentile, max and total of a list of counts."""

    min: int
    mean: float
    p50: int
    p95: int
    max: int
    total: int

    @classmethod
    def of(cls, values: list[int]) -> Summary | None:
        if not values:
            return None
        ordered = sorted(values)
        return cls(
            min=ordered[0],
            mean=round(sum(ordered) / len(ordered), 2),
            p50=_percentile(ordered, 0.50),
            p95=_percentile(ordered, 0.95),
            max=ordered[-1],
            total=sum(ordered),
        )


def _percentile(ordered: list[int], q: float) -> int:
    """Nearest-rank percentile: the smallest value with at least ``q`` of the values at or below."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class DatasetStats:
    """What a file holds. Token fields are None without a tokenizer."""

    n_examples: int
    format: str | None
    tokens: Summary | None = None
    n_target_tokens: int | None = None
    n_truncated: int | None = None
    max_seq_length: int | None = None
    label_distribution: dict[str, int] | None = None
    messages_per_example: Summary | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def describe(
    examples: list[Example],
    fmt: str | None,
    *,
    lengths: list[int] | None = None,
    n_target_tokens: int | None = None,
    max_seq_length: int | None = None,
) -> DatasetStats:
    """Stats of parsed examples; ``lengths`` are token counts (one per sequence) when known."""
    stats = DatasetStats(n_examples=len(examples), format=fmt, max_seq_length=max_seq_length)
    if lengths is not None:
        stats.tokens = Summary.of(lengths)
        stats.n_target_tokens = n_target_tokens
        stats.n_truncated = (
            sum(1 for n in lengths if n > max_seq_length) if max_seq_length is not None else 0
        )
    chats = [e for e in examples if isinstance(e, ChatExample)]
    if chats:
        stats.messages_per_example = Summary.of([len(e.messages) for e in chats])
    labelled = [e for e in examples if isinstance(e, ClassificationExample)]
    if labelled:
        stats.label_distribution = label_counts(labelled)
    return stats


def label_counts(examples: list[ClassificationExample]) -> dict[str, int]:
    """Examples per label, most frequent first; a multi-label example counts for each label."""
    counts: Counter[str] = Counter()
    for example in examples:
        counts.update(example.label if isinstance(example.label, list) else [example.label])
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
