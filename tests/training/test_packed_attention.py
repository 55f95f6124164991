"""Per-example attention over packed rows gives sdpa's block-diagonal answer (decision 018)."""

from __future__ import annotations

import torch

from tests.training.conftest import TINY_DECODER, tiny_llama
from tests.training.test_batching import _items
from tunesmith.training.batching import (
    IGNORE_INDEX,
    MIN_SHARED_PREFIX,
    TrainItem,
    pack_causal,
    pack_sharing_prefixes,
)
from tunesmith.training.losses import CausalLMLoss, causal_lm_collate, has_dropout
from tunesmith.training.packed_attention import (
    PACKED_ATTENTION,
    row_segments,
    use_packed_attention,
    uses_packed_attention,
)


def _loss_and_grads(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, list]:
    model.zero_grad()
    loss_sum, _, _ = CausalLMLoss(model)(**batch)
    loss_sum.backward()
    return loss_sum.detach(), [p.grad.clone() for p in model.parameters()]


def test_segments_are_runs_of_consecutive_positions() -> None:
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 4, 5, 6, 7, 8]])
    assert row_segments(positions) == [[(0, 3, 0), (3, 5, 0), (5, 9, 0)], [(0, 9, 0)]]
    # an example that shares its first tokens with an earlier one starts at their count
    shared = torch.tensor([[0, 1, 2, 3, 2, 3, 4, 0, 1]])
    assert row_segments(shared) == [[(0, 4, 0), (4, 7, 2), (7, 9, 0)]]


def test_per_example_attention_gives_the_masked_loss_and_gradients() -> None:
    items = _items()
    batch = pack_causal(items, 24, pad_id=0)  # several rows, several examples each, padding
    reference = tiny_llama().train()
    expected_loss, expected_grads = _loss_and_grads(reference, batch)

    model = tiny_llama().train()
    assert use_packed_attention(model)
    assert model.config._attn_implementation == PACKED_ATTENTION
    loss, grads = _loss_and_grads(model, batch)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_one_unpadded_row_gives_the_loss_of_the_examples_alone() -> None:
    model = tiny_llama()
    collate = causal_lm_collate(model, 64, pad_id=0)
    assert uses_packed_attention(model)
    items = _items()
    batch = collate(items)
    assert batch["input_ids"].shape == (1, sum(len(item) for item in items))  # no padding
    loss = CausalLMLoss(model)
    packed_sum, _, packed_count = loss(**batch)
    single = [loss(**pack_causal([item], 1, pad_id=0)) for item in items]
    assert packed_count == sum(int(s[2]) for s in single)
    torch.testing.assert_close(packed_sum, sum(s[0] for s in single), rtol=1e-5, atol=1e-5)


def test_a_switched_model_still_pads_and_generates_as_sdpa_does() -> None:
    reference = tiny_llama()
    model = tiny_llama()
    assert use_packed_attention(model)
    # a left-padded batch: the padding mask goes through sdpa's mask, not around it
    ids = torch.tensor([[0, 0, 5, 6, 7], [3, 4, 5, 6, 7]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        torch.testing.assert_close(
            model(input_ids=ids, attention_mask=mask).logits[:, -1],
            reference(input_ids=ids, attention_mask=mask).logits[:, -1],
        )
    generated = model.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
    expected = reference.generate(ids, attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(generated, expected)


def test_a_model_whose_layers_hide_the_positions_stays_on_sdpa(monkeypatch) -> None:
    """If attention never sees the position ids it cannot find the examples: the probe sees
    the examples attend to each other and leaves the model alone."""
    from tunesmith.training import packed_attention

    original = packed_attention.packed_sdpa_attention

    def without_positions(*args, **kwargs):
        kwargs.pop("position_ids", None)
        return original(*args, **kwargs)

    monkeypatch.setattr(packed_attention, "packed_sdpa_attention", without_positions)
    model = tiny_llama()
    assert not use_packed_attention(model)
    assert model.config._attn_implementation == "sdpa"


def test_a_sliding_window_model_stays_on_sdpa() -> None:
    from transformers import MistralConfig, MistralForCausalLM

    model = MistralForCausalLM(MistralConfig(**TINY_DECODER, sliding_window=8))
    assert not use_packed_attention(model)
    assert model.config._attn_implementation == "sdpa"


def test_scoring_under_inference_mode_uses_per_example_attention() -> None:
    from tunesmith.evaluation.scoring import score_lm
    from tunesmith.tasks import ModelKind

    model = tiny_llama()
    items = _items()
    loss_sum, _, count = score_lm(model, items, kind=ModelKind.CAUSAL, pad_id=0, row_capacity=64)
    assert uses_packed_attention(model)
    with torch.no_grad():
        reference = CausalLMLoss(tiny_llama())
        single = [reference(**pack_causal([item], 1, pad_id=0)) for item in items]
    assert count == sum(int(s[2]) for s in single)
    assert abs(loss_sum - float(sum(s[0] for s in single))) < 1e-4


def test_a_machine_with_a_gpu_keeps_sdpa(monkeypatch) -> None:
    """The training model is still on the CPU when the collate is made; accelerate moves it
    to the GPU later, where the per-example calls have not been measured."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = tiny_llama()
    assert not use_packed_attention(model)
    assert model.config._attn_implementation == "sdpa"


def _prompted_items() -> list[TrainItem]:
    """Chats as a template makes them: two system prompts, each example's own user turn and
    answer (loss on the answer only). One example has a target inside the common prompt, one
    shares too little to be worth it."""
    gen = torch.Generator().manual_seed(2)

    def tokens(n: int) -> list[int]:
        return torch.randint(3, 64, (n,), generator=gen).tolist()

    system_a, system_b = tokens(12), tokens(10)
    items = []
    for system, user, answer in (
        (system_a, 5, 3),
        (system_a, 9, 2),
        (system_a, 1, 4),
        (system_b, 6, 3),
        (system_b, 4, 5),
        (system_a[:5], 7, 2),  # shares 5 tokens: below MIN_SHARED_PREFIX, its own example
    ):
        ids = system + tokens(user) + tokens(answer)
        labels = [IGNORE_INDEX] * (len(ids) - answer) + ids[-answer:]
        items.append(TrainItem(input_ids=ids, labels=labels))
    # loss on every token but the first: nothing it begins with can be shared
    ids = system_a + tokens(4)
    items.append(TrainItem(input_ids=ids, labels=[IGNORE_INDEX, *ids[1:]]))
    return items


def test_examples_that_begin_alike_share_those_tokens() -> None:
    items = _prompted_items()
    batch = pack_sharing_prefixes(items, pad_id=0)
    plain = pack_causal(items, sum(len(item) for item in items), pad_id=0)
    # three examples continue system_a's root (12 shared tokens each, or 11 where the root
    # is followed by an example that would otherwise read as its own continuation), one
    # continues system_b's (10); the rest are whole
    saved = plain["input_ids"].shape[1] - batch["input_ids"].shape[1]
    assert 12 + 12 + 10 <= saved <= 12 + 12 + 10 + 2 or saved >= 2 * 11 + 10
    assert saved >= MIN_SHARED_PREFIX * 3
    offsets = [segment.offset for segment in row_segments(batch["position_ids"])[0]]
    assert offsets.count(0) == 4  # two roots, the short sharer, the all-loss example
    assert all(offset == 0 or offset >= MIN_SHARED_PREFIX for offset in offsets)
    # the same targets, each once
    assert sorted(batch["targets"][batch["targets"] != IGNORE_INDEX].tolist()) == sorted(
        plain["targets"][plain["targets"] != IGNORE_INDEX].tolist()
    )


def test_shared_prefixes_give_the_loss_and_gradients_of_the_whole_examples() -> None:
    items = _prompted_items()
    model = tiny_llama().train()
    assert use_packed_attention(model)
    expected_loss, expected_grads = _loss_and_grads(
        model, pack_causal(items, sum(len(item) for item in items), pad_id=0)
    )
    loss, grads = _loss_and_grads(model, pack_sharing_prefixes(items, pad_id=0))
    torch.testing.assert_close(loss, expected_loss, rtol=1e-5, atol=1e-5)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_an_example_never_reads_as_the_one_before_it_going_on() -> None:
    """A sharer whose first position would follow the previous example's last one shares one
    token less, so its segment does not merge into that example's."""
    root = list(range(3, 23))  # 20 tokens, loss on the last
    duplicate = list(root)  # continues root at 18, up to its first target; ends at 19
    follower = [*root, 50, 51, 52]  # would continue root at 20: right after position 19
    items = [
        TrainItem(input_ids=ids, labels=[IGNORE_INDEX] * (len(ids) - 1) + [ids[-1]])
        for ids in (root, duplicate, follower)
    ]
    batch = pack_sharing_prefixes(items, pad_id=0)
    assert [s.offset for s in row_segments(batch["position_ids"])[0]] == [0, 18, 19]
    model = tiny_llama()
    assert use_packed_attention(model)
    expected = CausalLMLoss(model)(**pack_causal(items, 64, pad_id=0))[0]
    torch.testing.assert_close(CausalLMLoss(model)(**batch)[0], expected, rtol=1e-5, atol=1e-5)


def test_the_cpu_collate_shares_prefixes_only_without_dropout() -> None:
    items = _prompted_items()
    whole = sum(len(item) for item in items)
    model = tiny_llama()
    assert causal_lm_collate(model, 64, pad_id=0)(items)["input_ids"].shape[1] < whole
    off = causal_lm_collate(model, 64, pad_id=0, share_prefixes=False)
    assert off(items)["input_ids"].shape[1] == whole
    model.model.layers[0].self_attn.config.attention_dropout = 0.1
    assert has_dropout(model)
    assert causal_lm_collate(model, 64, pad_id=0)(items)["input_ids"].shape[1] == whole
