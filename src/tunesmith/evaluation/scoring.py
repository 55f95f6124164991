"""Scoring pieces of evaluation: teacher-forced loss, and reading a generated answer as a label.

The loss reuses training's batching and loss modules on purpose: evaluating a run's
validation file then gives exactly the ``valid_loss`` the training loop reported (same
masks, same packing, same per-token normalisation), so the two numbers can be compared.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from tunesmith.data.labels import order_names
from tunesmith.data.tokenization import TokenizedExample
from tunesmith.evaluation.metrics import normalize_answer
from tunesmith.tasks import ModelKind
from tunesmith.training.batching import TrainItem, pad_seq2seq
from tunesmith.training.losses import CausalLMLoss, Seq2SeqLoss, causal_lm_collate

# "A small set of short answers": at most this many distinct references, each at most
# SHORT_ANSWER_WORDS words, is read as a classification task (spam/ham, yes/no, A/B/C/D).
MAX_ANSWER_CLASSES = 20
SHORT_ANSWER_WORDS = 4


def score_lm(
    model: Any,
    examples: Sequence[TokenizedExample],
    *,
    kind: ModelKind,
    pad_id: int,
    row_capacity: int,
    batch_size: int = 8,
) -> tuple[float, int, int]:
    """(summed loss, correct target tokens, target tokens) over the examples' loss tokens."""
    items = [TrainItem(e.input_ids, e.labels) for e in examples]
    if not items:
        return 0.0, 0, 0
    collate: Callable[[list[TrainItem]], dict[str, torch.Tensor]]
    if kind == ModelKind.SEQ2SEQ:
        loss_module: torch.nn.Module = Seq2SeqLoss(model)
        collate = functools.partial(pad_seq2seq, pad_id=pad_id)
    else:
        loss_module = CausalLMLoss(model)
        collate = causal_lm_collate(model, row_capacity, pad_id)

    device = next(model.parameters()).device
    order = sorted(range(len(items)), key=lambda i: len(items[i]))  # less padding
    loss_sum, correct, count = 0.0, 0, 0
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = [items[i] for i in order[start : start + batch_size]]
            batch = {k: v.to(device) for k, v in collate(chunk).items()}
            part_loss, part_correct, part_count = loss_module(**batch)
            loss_sum += float(part_loss)
            correct += int(part_correct)
            count += int(part_count)
    return loss_sum, correct, count


def answer_classes(references: Sequence[str]) -> list[str] | None:
    """The label names when the references are a small set of short answers, else None.

    Needs 2 to ``MAX_ANSWER_CLASSES`` distinct answers (after ``normalize_answer``), each of
    at most ``SHORT_ANSWER_WORDS`` words, and some answer repeated: all-distinct references
    are free text, not classes. The first spelling seen names each class; classes are in
    the label order of classification data (``order_names``: ham before spam).
    """
    spelled: dict[str, str] = {}
    for reference in references:
        spelled.setdefault(normalize_answer(reference), reference.strip())
    if not 2 <= len(spelled) <= MAX_ANSWER_CLASSES or len(spelled) >= len(references):
        return None
    if any(not key or len(key.split()) > SHORT_ANSWER_WORDS for key in spelled):
        return None
    return order_names(spelled.values(), multi_label=False)


def parse_answer(text: str, names: Sequence[str]) -> str | None:
    """The class a generated answer names, or None when it names none or several.

    Tried in order: the whole answer, its first line, then a class name appearing as a
    whole word exactly once among the names ("The answer is spam." -> spam).
    """
    lookup = {normalize_answer(name): name for name in names}
    whole = normalize_answer(text)
    if whole in lookup:
        return lookup[whole]
    lines = text.strip().splitlines()
    first = normalize_answer(lines[0]) if lines else ""
    if first in lookup:
        return lookup[first]
    found = [name for key, name in lookup.items() if re.search(rf"\b{re.escape(key)}\b", whole)]
    return found[0] if len(found) == 1 else None
