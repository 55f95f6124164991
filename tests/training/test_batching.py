"""Batching: deterministic epoch order, and packing that changes nothing the model learns."""

from __future__ import annotations

import torch

from tests.training.conftest import tiny_llama
from tunesmith.training.batching import (
    IGNORE_INDEX,
    TrainItem,
    attention_pair_cost,
    best_row_capacity,
    epoch_batches,
    pack_causal,
    shard,
)
from tunesmith.training.losses import CausalLMLoss


def test_epoch_order_is_a_function_of_seed_and_epoch() -> None:
    lengths = [5, 50, 7, 33, 2, 90, 14, 8, 61, 3]
    first = epoch_batches(lengths, 3, seed=1, epoch=0)
    assert first == epoch_batches(lengths, 3, seed=1, epoch=0)
    assert first != epoch_batches(lengths, 3, seed=1, epoch=1)
    assert first != epoch_batches(lengths, 3, seed=2, epoch=0)
    flat = sorted(i for batch in first for i in batch)
    assert flat == list(range(len(lengths)))  # every example exactly once
    assert sorted(len(b) for b in first) == [1, 3, 3, 3]


def test_length_bucketing_groups_similar_lengths() -> None:
    lengths = [1, 100] * 20
    batches = epoch_batches(lengths, 4, seed=0, epoch=0)
    mixed = [b for b in batches if len({lengths[i] for i in b}) > 1]
    assert len(mixed) <= 1  # at most the batch at the boundary mixes short and long


def test_packed_batches_are_shuffled_not_bucketed() -> None:
    """Without bucketing, a batch's lengths (and what goes with them) are mixed."""
    lengths = [1, 100] * 20
    batches = epoch_batches(lengths, 4, seed=0, epoch=0, bucket=False)
    assert batches == epoch_batches(lengths, 4, seed=0, epoch=0, bucket=False)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    mixed = [b for b in batches if len({lengths[i] for i in b}) > 1]
    assert len(mixed) >= len(batches) // 2


def test_shard_splits_a_global_batch_across_ranks() -> None:
    batch = [10, 11, 12, 13, 14]
    assert shard(batch, 0, 2) == [10, 12, 14]
    assert shard(batch, 1, 2) == [11, 13]


def _items() -> list[TrainItem]:
    gen = torch.Generator().manual_seed(1)
    items = []
    for n in (9, 4, 13, 6, 11):
        ids = torch.randint(3, 64, (n,), generator=gen).tolist()
        labels = [IGNORE_INDEX] * (n // 2) + ids[n // 2 :]  # loss on the second half only
        items.append(TrainItem(input_ids=ids, labels=labels))
    return items


def test_packed_rows_keep_examples_apart() -> None:
    batch = pack_causal(_items(), row_capacity=24, pad_id=0)
    assert batch["input_ids"].shape[0] < 5  # fewer rows than examples
    # positions restart at 0 at each example start
    starts = (batch["position_ids"] == 0).sum().item()
    assert starts >= 5
    real = sum(len(item) for item in _items())
    assert (batch["targets"] != IGNORE_INDEX).sum() == sum(
        sum(1 for x in item.labels[1:] if x != IGNORE_INDEX)
        for item in _items()  # type: ignore[index]
    )
    assert batch["input_ids"].numel() >= real


def test_packed_loss_equals_one_example_at_a_time() -> None:
    model = tiny_llama()
    loss = CausalLMLoss(model)
    items = _items()
    packed_sum, packed_correct, packed_count = loss(**pack_causal(items, 24, pad_id=0))
    single = [loss(**pack_causal([item], 1, pad_id=0)) for item in items]
    assert packed_count == sum(int(s[2]) for s in single)
    torch.testing.assert_close(packed_sum, sum(s[0] for s in single), rtol=1e-5, atol=1e-5)
    assert packed_correct == sum(int(s[1]) for s in single)


def test_selective_logits_match_the_full_forward() -> None:
    model = tiny_llama()
    items = _items()
    batch = pack_causal(items, 64, pad_id=0)
    loss_sum, _, count = CausalLMLoss(model)(**batch)
    logits = model(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
    ).logits
    expected = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    torch.testing.assert_close(loss_sum, expected, rtol=1e-5, atol=1e-5)
    assert count == (batch["targets"] != IGNORE_INDEX).sum()


def test_row_length_follows_the_cost_of_attention() -> None:
    lengths = [100, 20] * 4
    # no attention cost: one long row, the least padding
    assert best_row_capacity(lengths, 512, pair_cost=0.0) == 512
    # SmolLM2's cost (hidden 576, 3.54M parameters a block): a long and a short example a
    # row (4 rows of 120) beats one row of 480 and eight rows padded to 100
    cost = attention_pair_cost(576, 3_540_000)
    assert 1e-3 < cost < 2e-3
    assert best_row_capacity(lengths, 512, cost) == 128
    # a very expensive attention: one example a row, rows as short as the examples
    assert best_row_capacity(lengths, 512, pair_cost=1.0) == 100
    # never shorter than the longest example, never longer than allowed
    assert best_row_capacity([300, 20], 256, cost) == 300


def test_cheaper_rows_change_no_loss() -> None:
    model = tiny_llama()
    loss = CausalLMLoss(model)
    items = _items()
    long_rows = loss(**pack_causal(items, 64, pad_id=0))
    cheap = pack_causal(items, 64, pad_id=0, pair_cost=0.05)
    assert cheap["input_ids"].shape[1] < pack_causal(items, 64, pad_id=0)["input_ids"].shape[1]
    short_rows = loss(**cheap)
    torch.testing.assert_close(short_rows[0], long_rows[0], rtol=1e-5, atol=1e-5)
    assert int(short_rows[2]) == int(long_rows[2])
