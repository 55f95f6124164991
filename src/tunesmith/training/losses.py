"""The loss of each task, as small modules wrapping the model.

Wrapping the model (instead of computing the loss outside it) keeps one ``forward`` per step,
which is what DDP/FSDP need to synchronise gradients, and lets the causal-LM loss skip the
vocabulary projection wherever the loss is masked: with a 49k vocabulary the logits of the
prompt tokens are the largest tensor of the step, and nothing needs them.

Every module returns sums, not means: ``(loss_sum, correct, count)``. The loop divides by the
number of target tokens (or examples) of the whole optimizer step, so gradient accumulation,
packing and several ranks all weight each target token the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.models.loading import DROPOUT_FIELDS
from tunesmith.training.batching import (
    IGNORE_INDEX,
    TrainItem,
    attention_pair_cost,
    pack_causal,
    pack_sharing_prefixes,
    packed_row_capacity,
)
from tunesmith.training.packed_attention import use_packed_attention
from tunesmith.training.setup import transformer_blocks

LossOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def unwrap_peft(model: nn.Module) -> nn.Module:
    """The transformers model inside a peft wrapper (LoRA layers stay injected in it)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class CausalLMLoss(nn.Module):
    """Next-token cross-entropy on target positions only (assistant turns / completions)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        lm = unwrap_peft(model)
        # Computing logits only at target positions needs the decoder stack and the head
        # separately; models with logit post-processing fall back to the full forward.
        self._decoder = getattr(lm, "base_model", None)
        self._head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
        softcap = getattr(getattr(lm, "config", None), "final_logit_softcapping", None)
        self._selective = self._decoder is not None and self._head is not None and not softcap

    def forward(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, targets: torch.Tensor
    ) -> LossOutput:
        mask = targets != IGNORE_INDEX
        # use_cache=False matters: with a KV cache transformers ignores the restarting
        # position ids and would let packed examples attend to each other.
        if self._selective:
            assert self._decoder is not None and self._head is not None
            hidden = self._decoder(
                input_ids=input_ids, position_ids=position_ids, use_cache=False
            ).last_hidden_state
            logits = self._head(hidden[mask])
        else:
            out = self.model(input_ids=input_ids, position_ids=position_ids, use_cache=False)
            logits = out.logits[mask]
        wanted = targets[mask]
        loss_sum = F.cross_entropy(logits.float(), wanted, reduction="sum")
        correct = (logits.argmax(dim=-1) == wanted).sum()
        return loss_sum, correct, mask.sum()


def causal_lm_collate(
    model: nn.Module, max_seq_length: int, pad_id: int, *, share_prefixes: bool = True
) -> Callable[[list[TrainItem]], dict[str, torch.Tensor]]:
    """The collate function of ``CausalLMLoss``: packed rows.

    On a CPU the model is switched to per-example attention (``packed_attention``), which
    costs the same however the examples are laid out, so the whole batch goes into one row
    with no padding, and examples that begin with the same prompt tokens compute them once
    (``batching.pack_sharing_prefixes``, decision 025) unless ``share_prefixes`` is off or
    the model has a dropout (each example would draw its own masks over those tokens).
    Elsewhere each batch's row length is chosen by what the block-diagonal masked attention
    costs in this model (``batching.best_row_capacity``).
    """
    lm = unwrap_peft(model)
    if use_packed_attention(lm):
        if share_prefixes and not has_dropout(lm):
            return lambda items: pack_sharing_prefixes(items, pad_id)

        def one_row(items: list[TrainItem]) -> dict[str, torch.Tensor]:
            return pack_causal(items, sum(len(item) for item in items), pad_id)

        return one_row
    blocks = transformer_blocks(lm)
    hidden = getattr(getattr(lm, "config", None), "hidden_size", None)
    pair_cost = 0.0
    if blocks is not None and isinstance(hidden, int):
        pair_cost = attention_pair_cost(hidden, sum(p.numel() for p in blocks[0].parameters()))
    capacity = packed_row_capacity(max_seq_length)

    def collate(items: list[TrainItem]) -> dict[str, torch.Tensor]:
        return pack_causal(items, capacity, pad_id, pair_cost)

    return collate


def has_dropout(model: nn.Module) -> bool:
    """Whether a training forward of ``model`` draws dropout masks: a dropout module with
    p > 0 (peft's LoRA dropout among them) or a dropout probability in its config that
    transformers hands to attention or to functional dropout calls."""
    if any(isinstance(module, nn.Dropout) and module.p > 0 for module in model.modules()):
        return True
    config = getattr(model, "config", None)
    return any(
        isinstance(value := getattr(config, name, None), float) and value > 0
        for name in DROPOUT_FIELDS
    )


class ClassificationLoss(nn.Module):
    """Binary cross-entropy (one logit, or one per label) or categorical cross-entropy."""

    def __init__(self, model: nn.Module, problem_type: str) -> None:
        super().__init__()
        if problem_type not in ("binary", "multiclass", "multilabel"):
            raise ValueError(f"unknown problem type {problem_type!r}")
        self.model = model
        self.problem_type = problem_type

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor
    ) -> LossOutput:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
        count = torch.tensor(targets.shape[0], device=logits.device)
        if self.problem_type == "binary":
            scores = logits.view(-1)
            loss_sum = F.binary_cross_entropy_with_logits(scores, targets.float(), reduction="sum")
            correct = ((scores > 0).long() == targets).sum()
        elif self.problem_type == "multilabel":
            # summed over labels, averaged per example when the loop divides by `count`
            loss_sum = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
            loss_sum = loss_sum / targets.shape[1]
            correct = ((logits > 0).float() == targets).all(dim=1).sum()
        else:
            loss_sum = F.cross_entropy(logits, targets, reduction="sum")
            correct = (logits.argmax(dim=-1) == targets).sum()
        return loss_sum, correct, count


class Seq2SeqLoss(nn.Module):
    """Cross-entropy of the decoder's targets (T5 style: the model shifts labels itself)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor
    ) -> LossOutput:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=targets)
        mask = targets != IGNORE_INDEX
        logits = out.logits[mask].float()
        wanted = targets[mask]
        loss_sum = F.cross_entropy(logits, wanted, reduction="sum")
        correct = (logits.argmax(dim=-1) == wanted).sum()
        return loss_sum, correct, mask.sum()


def batch_count(batch: dict[str, Any], problem: str) -> int:
    """Targets in a collated batch: target tokens for LM/seq2seq, examples for classification."""
    targets = batch["targets"]
    if problem in ("binary", "multiclass", "multilabel"):
        return int(targets.shape[0])
    return int((targets != IGNORE_INDEX).sum())
