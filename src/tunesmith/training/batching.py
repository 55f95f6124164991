"""Turning tokenized examples into batches with little compute spent on padding.

Two ideas, both exact (they change the compute, never what is learned):

* **Epoch order** is a pure function of (seed, epoch), so a resumed run rebuilds the same
  order and skips what it already did, and every rank of a distributed run sees the same
  order. Padded batches (classification, seq2seq) are length-bucketed: sorted inside windows
  of many batches, then the batches shuffled, so little of a batch is padding. Packed batches
  (causal LM) are plainly shuffled: packing already wastes little, and bucketed batches are
  correlated with whatever correlates with length (SMS spam is long, ham short), so the steps
  took turns at one class; the loss then fell far more slowly than with shuffled batches.
* **In-batch packing** (causal LM): the examples of one micro-batch are laid end to end in as
  few rows as fit ``row_capacity`` tokens. Position ids restart at 0 for each example, which
  makes transformers build a block-diagonal causal mask, so no example attends to another —
  the same result as padding each example, without the padding. The loss is normalised by
  the number of target tokens of the whole optimizer step, so packing does not reweight
  examples either. How long the rows are is chosen per batch by cost (``best_row_capacity``):
  the masked attention of a row costs the square of its length, so short examples go into
  short rows, and one long row is used only where that costs less than padding. On a CPU,
  where attention runs one example at a time (``packed_attention``, decision 018), the
  layout costs nothing and a batch is one row without padding (``losses.causal_lm_collate``).
* **Shared prompt prefixes** (causal LM on a CPU, decision 025): examples that begin with the
  same tokens (a chat template's header and system prompt) compute those tokens once. In a
  causal model a token's hidden states depend only on the tokens before it and its position,
  so the shared tokens' states are the same in every example; each later example keeps only
  its own tokens, at their own positions, and its attention reads the shared keys and values
  (``packed_attention``). The loss and gradients are the sums the unshared row gives.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE_INDEX = -100

# Tokens per packed row (never less than the batch's longest example). Attention cost and
# memory grow with the square of the row length — on CPU the masked attention keeps an
# L x L matrix per head and layer for the backward pass — so rows stay short: at 512 tokens
# attention adds ~15% to a 135M model's step, at 2048 it dominates it and needs gigabytes.
PACKED_ROW_TOKENS = 512

# How much more a (query, key) pair of masked attention costs than its FLOP count says,
# relative to a matrix product: CPU SDPA with a block-diagonal mask, measured on SmolLM2
# (docs/decisions/012-bf16-on-cpu.md). Only the choice of row length depends on it.
ATTENTION_KERNEL_OVERHEAD = 4.0

# Fewest leading tokens an example shares with an earlier one in its row (decision 025). A few
# tokens (a lone BOS, a role marker) save little compute, and a sharer's attention needs a
# mask and copies of the shared keys and values.
MIN_SHARED_PREFIX = 8

# Batches sorted together for length bucketing: large enough to group similar lengths,
# small enough that the order stays well mixed.
BUCKET_WINDOW_BATCHES = 50


@dataclass(frozen=True)
class TrainItem:
    """What batching needs of a tokenized example."""

    input_ids: list[int]
    labels: list[int] | int | list[float]  # per-token ids (LM), class index or multi-hot

    def __len__(self) -> int:
        return len(self.input_ids)


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int, *, bucket: bool = True
) -> list[list[int]]:
    """Indices of each micro-batch of one epoch, deterministic in (seed, epoch).

    Shuffle; with ``bucket``, sort by length inside windows of ``BUCKET_WINDOW_BATCHES``
    batches, cut into batches and shuffle the batches. The last batch may be smaller.
    """
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not bucket:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    window = batch_size * BUCKET_WINDOW_BATCHES
    bucketed: list[int] = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        bucketed.extend(sorted(chunk, key=lambda i: lengths[i]))
    batches = [bucketed[i : i + batch_size] for i in range(0, len(bucketed), batch_size)]
    rng.shuffle(batches)
    return batches


def shard(batch: list[int], rank: int, world_size: int) -> list[int]:
    """This rank's share of a global batch: every ``world_size``-th example."""
    return batch[rank::world_size]


def _first_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: group indices into rows of at most ``capacity`` tokens."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        size = lengths[index]
        for row, free in enumerate(room):
            if size <= free:
                rows[row].append(index)
                room[row] -= size
                break
        else:
            rows.append([index])
            room.append(capacity - size)
    return rows


def _widest(rows: list[list[int]], lengths: Sequence[int]) -> int:
    """Tokens in the fullest row: the width every row of the batch is padded to."""
    return max(sum(lengths[i] for i in row) for row in rows)


def packed_row_capacity(max_seq_length: int) -> int:
    """Row length for packing: ``PACKED_ROW_TOKENS`` unless examples are limited to fewer."""
    return min(max_seq_length, PACKED_ROW_TOKENS)


def attention_pair_cost(hidden_size: int, block_params: int) -> float:
    """Cost of one attended (query, key) pair, in tokens of the rest of the model.

    A token costs about 2 FLOPs per parameter of a transformer block in its matrix products;
    a pair costs 4 x ``hidden_size`` in attention (scores and weighted sum), at
    ``ATTENTION_KERNEL_OVERHEAD`` times the price per FLOP.
    """
    return ATTENTION_KERNEL_OVERHEAD * 4 * hidden_size / max(2 * block_params, 1)


def best_row_capacity(lengths: Sequence[int], max_capacity: int, pair_cost: float) -> int:
    """The row length, at most ``max_capacity``, that makes a packed batch cheapest.

    A batch of ``rows`` rows padded to ``width`` costs ``rows * width`` tokens of the model's
    matrix products plus ``rows * width**2 * pair_cost`` of masked attention. Tried: the
    longest example (one per row, or more where they fit), the powers of two above it, and
    ``max_capacity``. Without an attention cost the longest rows win (least padding).
    """
    longest = max(lengths)
    candidates = {max(longest, max_capacity)}
    size = 1 << (longest - 1).bit_length()
    while size < max_capacity:
        candidates.add(max(size, longest))
        size *= 2
    candidates.add(longest)

    def cost(capacity: int) -> float:
        rows = _first_fit(lengths, capacity)
        width = _widest(rows, lengths)
        return len(rows) * width * (1 + pair_cost * width)

    return min(sorted(candidates, reverse=True), key=cost)


def pack_causal(
    items: Sequence[TrainItem], row_capacity: int, pad_id: int, pair_cost: float = 0.0
) -> dict[str, torch.Tensor]:
    """Pack examples into rows for a causal LM; targets are already shifted by one.

    Returns ``input_ids`` and ``position_ids`` [rows, length] and ``targets`` [rows, length]
    where ``targets[r, t]`` is the token to predict from position t (IGNORE_INDEX where no
    loss). Padding at the end of a row forms its own segment (positions from 0) so it never
    sits inside a real example's attention block. Rows hold at most ``row_capacity`` tokens
    (or the longest example); with ``pair_cost`` (``attention_pair_cost``) the cheapest row
    length up to that is used.
    """
    lengths = [len(item) for item in items]
    capacity = max(row_capacity, max(lengths))
    if pair_cost > 0:
        capacity = best_row_capacity(lengths, capacity, pair_cost)
    rows = _first_fit(lengths, capacity)
    width = _widest(rows, lengths)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for r, row in enumerate(rows):
        cursor = 0
        for index in row:
            item = items[index]
            n = len(item)
            labels = item.labels
            assert isinstance(labels, list)
            input_ids[r, cursor : cursor + n] = torch.tensor(item.input_ids)
            position_ids[r, cursor : cursor + n] = torch.arange(n)
            # the target of position t is the label of token t+1 within the same example
            targets[r, cursor : cursor + n - 1] = torch.tensor(labels[1:], dtype=torch.long)
            cursor += n
        position_ids[r, cursor:] = torch.arange(width - cursor)
    return {"input_ids": input_ids, "position_ids": position_ids, "targets": targets}


@dataclass(frozen=True)
class SharedPlacement:
    """Where one sequence goes in a row that shares prefixes: ``index`` in the caller's list;
    ``shared`` leading tokens it takes from ``root`` (the index of the last sequence laid out
    whole before it; 0 and itself for a sequence laid out whole)."""

    index: int
    shared: int
    root: int


def share_prefixes(
    sequences: Sequence[Sequence[int]], limits: Sequence[int]
) -> list[SharedPlacement]:
    """The order and shared prefixes of ``sequences`` laid out in one row (decision 025).

    Sorted by token ids, so sequences with a common beginning are neighbours. The first of
    each group (its *root*) is laid out whole; each of the others keeps only the tokens after
    the ones it has in common with the root, at their own positions, so its position ids
    start at the number of tokens shared. ``packed_sdpa_attention`` reads that as
    "continues the row's last sequence that starts at 0 and attends to its first that many
    tokens". Sequence ``i`` shares at most ``limits[i]`` tokens, and none unless it shares
    ``MIN_SHARED_PREFIX`` or more. A sequence that would start right after the previous
    one's last position shares one token less, so it never reads as that one going on.
    """
    layout: list[SharedPlacement] = []
    root = -1
    last_position = -1  # of the previous sequence laid out
    for index in sorted(range(len(sequences)), key=lambda i: list(sequences[i])):
        shared = 0
        if root >= 0:
            shared = _common_length(sequences[index], sequences[root], limits[index])
            if shared and shared == last_position + 1 and layout[-1].index != root:
                shared -= 1
        if shared < MIN_SHARED_PREFIX:
            root, shared = index, 0
        layout.append(SharedPlacement(index, shared, root))
        last_position = len(sequences[index]) - 1
    return layout


def _common_length(mine: Sequence[int], theirs: Sequence[int], limit: int) -> int:
    """How many leading tokens ``mine`` and ``theirs`` have in common, up to ``limit``."""
    shared = 0
    for a, b in zip(mine[:limit], theirs, strict=False):
        if a != b:
            break
        shared += 1
    return shared


def pack_sharing_prefixes(items: Sequence[TrainItem], pad_id: int) -> dict[str, torch.Tensor]:
    """One row without padding, in which examples share the prompt tokens they begin with
    (``share_prefixes``). A token is shared only where this example has no loss on it (no
    target at it or before it), so no target is lost and none is counted twice. The result
    has ``pack_causal``'s keys and sums the same loss."""
    layout = share_prefixes([item.input_ids for item in items], [_loss_free(i) for i in items])
    width = sum(len(items[place.index]) - place.shared for place in layout)
    input_ids = torch.full((1, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((1, width), dtype=torch.long)
    targets = torch.full((1, width), IGNORE_INDEX, dtype=torch.long)
    cursor = 0
    for place in layout:
        item, shared = items[place.index], place.shared
        labels = item.labels
        assert isinstance(labels, list)
        kept = len(item) - shared
        input_ids[0, cursor : cursor + kept] = torch.tensor(item.input_ids[shared:])
        position_ids[0, cursor : cursor + kept] = torch.arange(shared, len(item))
        targets[0, cursor : cursor + kept - 1] = torch.tensor(
            labels[shared + 1 :], dtype=torch.long
        )
        cursor += kept
    return {"input_ids": input_ids, "position_ids": position_ids, "targets": targets}


def _loss_free(item: TrainItem) -> int:
    """Leading tokens of ``item`` with no target at or before them (the target of position t
    is label t+1), never all of it."""
    labels = item.labels
    assert isinstance(labels, list)
    for position, label in enumerate(labels[1:]):
        if label != IGNORE_INDEX:
            return min(position, len(item) - 1)
    return len(item) - 1


def pad_classification(
    items: Sequence[TrainItem], pad_id: int, multi_target: bool
) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example of the batch (bucketing keeps that short)."""
    width = max(len(item) for item in items)
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    for r, item in enumerate(items):
        input_ids[r, : len(item)] = torch.tensor(item.input_ids)
        attention_mask[r, : len(item)] = 1
    if multi_target:
        targets = torch.tensor([item.labels for item in items], dtype=torch.float)
    else:
        targets = torch.tensor([item.labels for item in items], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "targets": targets}


def pad_seq2seq(items: Sequence[TrainItem], pad_id: int) -> dict[str, torch.Tensor]:
    """Encoder inputs right-padded; decoder labels padded with IGNORE_INDEX."""
    width = max(len(item) for item in items)
    label_width = max(len(item.labels) for item in items)  # type: ignore[arg-type]
    input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(items), width), dtype=torch.long)
    targets = torch.full((len(items), label_width), IGNORE_INDEX, dtype=torch.long)
    for r, item in enumerate(items):
        labels = item.labels
        assert isinstance(labels, list)
        input_ids[r, : len(item)] = torch.tensor(item.input_ids)
        attention_mask[r, : len(item)] = 1
        targets[r, : len(labels)] = torch.tensor(labels, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "targets": targets}
