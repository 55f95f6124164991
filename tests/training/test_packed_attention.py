"""Per-example attention over packed rows gives sdpa's block-diagonal answer (decision 018)."""

from __future__ import annotations

import torch

from tests.training.conftest import TINY_DECODER, tiny_llama
from tests.training.test_batching import _items
from tunesmith.training.batching import pack_causal
from tunesmith.training.losses import CausalLMLoss, causal_lm_collate
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
    assert row_segments(positions) == [[(0, 3), (3, 5), (5, 9)], [(0, 9)]]


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
