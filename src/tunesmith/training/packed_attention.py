"""Causal attention over packed rows, one example at a time (CPU training, decision 018).

Packing lays a batch's examples end to end; position ids restart at 0 for each example, and
transformers' ``sdpa`` turns that into a block-diagonal causal mask over the whole row. On a
CPU, SDPA with a mask computes every (query, key) pair of the row and then masks most of
them, and the cost of a row grows with the square of its length. So rows were kept short,
which left padding in them, and the matrix products paid for that padding as well.

Here attention runs per example instead: for each run of consecutive position ids (an
example, or a row's tail of padding) one causal SDPA call over just its tokens, with no mask
at all (the flash kernel's causal path, which skips the blocks above the diagonal). What is
computed is what the block-diagonal mask computes, without the pairs it throws away, and the
row length stops mattering: ``causal_lm_collate`` then puts the whole batch into one row
without padding.

An example may also share its first tokens with an earlier one in its row
(``batching.pack_sharing_prefixes``, decision 025): an example whose position ids start at
``p > 0`` continues the row's last example that starts at 0, and its tokens attend to that
example's first ``p`` tokens and then causally to their own, as they would with those tokens
in front of them. The shared keys and values are the ones computed once for the earlier
example, and their gradients sum over every example that reads them.

It is registered with transformers as an attention implementation (``AttentionInterface``)
together with a mask function (``AttentionMaskInterface``) that builds no mask where this
function needs none and ``sdpa``'s mask everywhere else. Anything other than a packed
prefill (a padding mask, a KV cache, decoding) is handed to transformers' own ``sdpa``, so a
model switched to it still evaluates and generates as before. ``use_packed_attention``
switches a model only after checking, on a small packed input, that it gives ``sdpa``'s
answer: a model whose layers do not pass position ids on to attention stays on ``sdpa``.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

PACKED_ATTENTION = "tunesmith_packed_sdpa"

# The probe's two examples, packed in one row (lengths chosen to differ).
_PROBE_LENGTHS = (5, 7)
# Relative difference from sdpa's output the probe accepts. The two paths sum attention in a
# different order; bf16 base layers can turn that into a bf16 rounding step (1/256) here and
# there. One example attending to the other changes the output by far more.
_PROBE_TOLERANCE = 2e-2


class Segment(NamedTuple):
    """A run of consecutive position ids in a packed row: tokens ``start:end`` of the row,
    the first at position ``offset`` (the number of tokens it shares with the row's last
    segment at offset 0; 0 for an example of its own)."""

    start: int
    end: int
    offset: int


def row_segments(position_ids: torch.Tensor) -> list[list[Segment]]:
    """The segments of each row: runs of consecutive position ids (transformers' rule for
    packed sequences: a new sequence starts wherever the position does not go up by one)."""
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] - position_ids[:, :-1] != 1
    width = position_ids.shape[1]
    segments = []
    for row, positions in zip(starts.cpu(), position_ids.cpu(), strict=True):
        firsts = row.nonzero().flatten()
        offsets = positions[firsts].tolist()
        bounds = [*firsts.tolist(), width]
        segments.append(
            [
                Segment(start, end, offset)
                for (start, end), offset in zip(itertools.pairwise(bounds), offsets, strict=True)
            ]
        )
    return segments


def packed_sdpa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: query [B, H, T, D], key/value [B, H_kv, T, D];
    returns [B, T, H, D]."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    position_ids = kwargs.get("position_ids")
    segments = None
    packed_prefill = (
        attention_mask is None
        and position_ids is not None
        and query.shape[2] == key.shape[2] > 1
        and getattr(module, "is_causal", True)
        and kwargs.get("position_bias") is None
    )
    if packed_prefill:
        assert position_ids is not None
        # computed again in every layer: ~20 us against a step of ~1 s, and no state to keep
        segments = row_segments(position_ids.expand(query.shape[0], -1))
    if segments is None or all(len(row) == 1 and row[0].offset == 0 for row in segments):
        return sdpa_attention_forward(  # type: ignore[no-any-return]
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    gqa = query.shape[1] != key.shape[1]
    rows = []
    for row, row_query, row_key, row_value in zip(
        segments, query.split(1), key.split(1), value.split(1), strict=True
    ):
        # one split per tensor, not a slice per example: the backward of a slice is a
        # zero-filled full-size gradient per example, of a split one concatenation
        lengths = [segment.end - segment.start for segment in row]
        parts = []
        root: tuple[torch.Tensor, torch.Tensor] | None = None  # the last offset-0 segment's
        for segment, q, k, v in zip(
            row,
            row_query.split(lengths, dim=2),
            row_key.split(lengths, dim=2),
            row_value.split(lengths, dim=2),
            strict=True,
        ):
            shared = segment.offset
            if shared == 0:
                root = (k, v)
            if shared == 0 or root is None:  # an example of its own
                out = F.scaled_dot_product_attention(
                    q, k, v, dropout_p=dropout, is_causal=True, scale=scaling, enable_gqa=gqa
                )
            else:
                root_key, root_value = root
                if shared > root_key.shape[2]:
                    raise ValueError(
                        f"a packed example shares {shared} tokens, but the example it "
                        f"continues has {root_key.shape[2]}"
                    )
                out = F.scaled_dot_product_attention(
                    q,
                    torch.cat([root_key[:, :, :shared], k], dim=2),
                    torch.cat([root_value[:, :, :shared], v], dim=2),
                    attn_mask=_after_shared(q.shape[2], shared),
                    dropout_p=dropout,
                    scale=scaling,
                    enable_gqa=gqa,
                )
            parts.append(out.transpose(1, 2))
        rows.append(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0].contiguous())
    # [B, T, H, D], made contiguous by the concatenations themselves
    return (torch.cat(rows, dim=0) if len(rows) > 1 else rows[0]), None


@functools.lru_cache(maxsize=512)
def _after_shared(length: int, shared: int) -> torch.Tensor:
    """The mask of ``length`` queries that follow ``shared`` keys they all see: causal,
    aligned to the bottom right ([length, shared + length], True where attended)."""
    return torch.ones(length, shared + length, dtype=torch.bool).tril(shared)


def packed_sdpa_mask(**kwargs: Any) -> torch.Tensor | None:
    """No mask for a prefill without padding (``packed_sdpa_attention`` reads the examples
    from the position ids); ``sdpa``'s mask for anything else."""
    from transformers.masking_utils import sdpa_mask

    no_mask_needed = (
        kwargs.get("attention_mask") is None
        and kwargs.get("q_offset", 0) == 0
        and kwargs.get("kv_offset", 0) == 0
        and kwargs.get("q_length") == kwargs.get("kv_length")
    )
    return None if no_mask_needed else sdpa_mask(**kwargs)


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(PACKED_ATTENTION, packed_sdpa_attention)
    AttentionMaskInterface.register(PACKED_ATTENTION, packed_sdpa_mask)


def uses_packed_attention(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) == PACKED_ATTENTION


def use_packed_attention(model: nn.Module) -> bool:
    """Switch a causal LM on a CPU from ``sdpa`` to per-example attention; True if it now
    uses it. Only on a CPU (on GPUs the per-example calls are small kernel launches, not
    measured) and only if a packed probe gives ``sdpa``'s output."""
    if uses_packed_attention(model):
        return True
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    if not getattr(config, "is_causal", True) or getattr(config, "is_encoder_decoder", False):
        return False
    if _has_sliding_window(config):  # its own mask function; too long for the probe to see
        return False
    # A training model is still on the CPU here even where accelerate will move it to a GPU,
    # so a machine with CUDA keeps sdpa (the rule of ``precision.prepare_arithmetic``).
    parameter = next(model.parameters(), None)
    if parameter is None or parameter.device.type != "cpu" or torch.cuda.is_available():
        return False
    _register()
    try:
        reference = _probe(model)
        config._attn_implementation = PACKED_ATTENTION
        packed = _probe(model)
    except Exception:  # a model the probe cannot run stays on sdpa
        config._attn_implementation = "sdpa"
        return False
    scale = reference.abs().max().clamp_min(1e-6)
    if not ((packed - reference).abs().max() / scale <= _PROBE_TOLERANCE):
        config._attn_implementation = "sdpa"
        return False
    return True


def _has_sliding_window(config: Any) -> bool:
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return any("sliding" in str(kind) for kind in layer_types)
    window = getattr(config, "sliding_window", None)
    return bool(window) and getattr(config, "use_sliding_window", True) is not False


def _probe(model: nn.Module) -> torch.Tensor:
    """The model's output for two short examples packed in one row."""
    vocab = int(getattr(model.config, "vocab_size", 2) or 2)
    total = sum(_PROBE_LENGTHS)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab, (1, total), generator=generator)
    position_ids = torch.cat([torch.arange(n) for n in _PROBE_LENGTHS]).unsqueeze(0)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(input_ids=input_ids, position_ids=position_ids, use_cache=False)
    finally:
        model.train(was_training)
    logits = out.logits if hasattr(out, "logits") else out.last_hidden_state
    return logits.float()
