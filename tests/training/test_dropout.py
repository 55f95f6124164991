"""Dropout masks from fewer random draws: the drop rate, the mask the output and the gradient
share, the attention path against the plain arithmetic, and where the switch happens."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.training.conftest import tiny_bert_classifier, tiny_llama
from tunesmith.training import dropout as dropout_module
from tunesmith.training.dropout import (
    DROPOUT_ATTENTION,
    drop_mask,
    dropout_sdpa_attention,
    fast_dropout,
    use_fast_dropout,
)


@pytest.fixture(autouse=True)
def _serial_bernoulli(monkeypatch):
    """Every test runs as on a CPU whose torch draws masks serially, whatever this one is."""
    monkeypatch.setattr(dropout_module, "_cpu_vendor", lambda: "AuthenticAMD")


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_the_mask_drops_a_share_p_of_the_elements(p):
    torch.manual_seed(0)
    mask = drop_mask(torch.Size([1000, 1000]), p)
    # binomial standard deviation at a million draws is at most 5e-4
    assert abs(mask.float().mean().item() - p) < 3e-3
    # the two 32-bit lanes of a draw are independent: neighbours agree as chance says
    pairs = mask.view(-1, 2)
    both = (pairs[:, 0] & pairs[:, 1]).float().mean().item()
    assert abs(both - p * p) < 3e-3


def test_the_mask_follows_torch_s_seed():
    torch.manual_seed(7)
    first = drop_mask(torch.Size([33, 17]), 0.3)  # odd count: the last draw's half is unused
    torch.manual_seed(7)
    assert torch.equal(drop_mask(torch.Size([33, 17]), 0.3), first)
    assert not torch.equal(drop_mask(torch.Size([33, 17]), 0.3), first)


def test_output_and_gradient_share_the_mask_and_torch_s_scale():
    x = torch.randn(4, 9, 16, requires_grad=True)
    upstream = torch.randn(4, 9, 16)
    torch.manual_seed(3)
    out = fast_dropout(x, 0.25)
    out.backward(upstream)
    torch.manual_seed(3)
    keep = ~drop_mask(x.shape, 0.25)
    assert torch.allclose(out, x.detach() * keep / 0.75)
    assert torch.allclose(x.grad, upstream * keep / 0.75)


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 64, (3, 10), generator=generator)
    attention_mask = torch.ones(3, 10, dtype=torch.long)
    attention_mask[1, 6:] = 0  # padding: the attention takes a mask
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def test_an_encoder_is_switched_and_evaluates_exactly_as_before(tmp_path):
    reference, model = tiny_bert_classifier(), tiny_bert_classifier()
    switched = use_fast_dropout(model)
    assert switched == sum(type(m) is nn.Dropout for m in model.modules())
    assert model.config._attn_implementation == DROPOUT_ATTENTION
    reference.eval(), model.eval()
    with torch.no_grad():
        assert torch.equal(model(**_batch()).logits, reference(**_batch()).logits)
    model.save_pretrained(tmp_path)  # the saved config names no attention of ours
    assert DROPOUT_ATTENTION not in (tmp_path / "config.json").read_text()


def test_a_causal_lm_keeps_sdpa_for_per_example_attention():
    model = tiny_llama()
    model.config.attention_dropout = 0.1  # even with an attention dropout to speed up
    use_fast_dropout(model)
    assert model.config._attn_implementation == "sdpa"


def test_a_switched_encoder_trains_with_dropout():
    model = tiny_bert_classifier()
    use_fast_dropout(model)
    model.train()
    torch.manual_seed(0)
    first = model(**_batch()).logits
    torch.manual_seed(1)
    second = model(**_batch()).logits
    assert not torch.allclose(first, second)  # masks differ between draws
    torch.manual_seed(0)
    again = model(**_batch()).logits
    assert torch.equal(first, again)  # and follow the seed
    again.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_attention_computes_softmax_dropout_values_with_its_mask():
    module = nn.Module().train()
    module.is_causal = False
    query, key, value = (torch.randn(2, 4, 6, 8, requires_grad=True) for _ in range(3))
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    mask[1, :, :, 4:] = False
    torch.manual_seed(5)
    out, _ = dropout_sdpa_attention(module, query, key, value, mask, dropout=0.2, scaling=0.3)
    torch.manual_seed(5)
    drop = drop_mask(torch.Size([2, 4, 6, 6]), 0.2)
    scores = (query @ key.transpose(-1, -2) * 0.3).masked_fill(~mask, float("-inf"))
    expected = (scores.softmax(-1).masked_fill(drop, 0) / 0.8) @ value
    assert torch.allclose(out, expected.transpose(1, 2), atol=1e-6)
    assert out.is_contiguous()


def test_without_dropout_the_attention_is_transformers_sdpa():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    module = nn.Module().eval()
    module.is_causal = False
    query, key, value = (torch.randn(2, 4, 6, 8) for _ in range(3))
    ours, _ = dropout_sdpa_attention(module, query, key, value, None, dropout=0.0)
    theirs, _ = sdpa_attention_forward(module, query, key, value, None, dropout=0.0)
    assert torch.equal(ours, theirs)


def test_evaluation_and_p_zero_take_the_module_s_own_forward():
    layer = nn.Dropout(0.0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), layer)
    assert use_fast_dropout(model) == 1  # the p=0 module is left alone
    model.eval()
    x = torch.randn(3, 4)
    assert torch.equal(model(x), model[0](x))


def test_intel_cpus_keep_torch_s_dropout(monkeypatch):
    monkeypatch.setattr(dropout_module, "_cpu_vendor", lambda: "GenuineIntel")
    if not torch.backends.mkl.is_available():
        pytest.skip("without MKL every CPU draws dropout masks serially")
    model = tiny_bert_classifier()
    assert use_fast_dropout(model) == 0
    assert model.config._attn_implementation == "sdpa"


def test_a_machine_with_a_gpu_keeps_torch_s_dropout(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = tiny_bert_classifier()
    assert use_fast_dropout(model) == 0
    assert model.config._attn_implementation == "sdpa"
