"""RMSNorm and rotary embeddings as one autograd node each: the module's output, autograd's
gradients, and only where a probe shows it reproduces the original."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.models.llama import modeling_llama
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from tests.training.conftest import packed_causal_batch, tiny_llama
from tunesmith.training.fused_elementwise import (
    apply_rotary,
    fuse_elementwise,
    fuse_rms_norms,
    fuse_rotary,
    rms_norm,
)
from tunesmith.training.losses import CausalLMLoss


def _llama_norm(width: int = 48) -> LlamaRMSNorm:
    norm = LlamaRMSNorm(width, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(width, generator=torch.Generator().manual_seed(3)))
    return norm


@pytest.mark.parametrize("weight_trains", [False, True])
def test_the_fused_norm_gives_the_module_s_output_and_gradients(weight_trains):
    norm = _llama_norm()
    norm.weight.requires_grad_(weight_trains)
    x = torch.randn(2, 7, 48, generator=torch.Generator().manual_seed(4))
    upstream = torch.randn(2, 7, 48, generator=torch.Generator().manual_seed(5))

    def run(forward):
        norm.weight.grad = None
        leaf = x.clone().requires_grad_()
        out = forward(leaf)
        out.backward(upstream)
        return out.detach(), leaf.grad, norm.weight.grad

    want = run(norm)
    got = run(lambda h: rms_norm(h, norm.weight, norm.variance_epsilon))
    assert torch.equal(got[0], want[0])  # the same operations in the same order
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-6)
    if weight_trains:
        torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=1e-6)
    else:
        assert got[2] is None and want[2] is None


def _loss_and_grads(model: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    loss, _, count = CausalLMLoss(model)(**packed_causal_batch())
    (loss / count).backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_a_llama_s_norms_and_rotary_embeddings_are_switched_and_it_trains_as_before():
    reference = tiny_llama().train()
    model = tiny_llama().train()
    assert fuse_rms_norms(model) == 2 * 2 + 1  # two per block and the final one
    assert fuse_rotary(model) == 2  # each block's attention
    assert fuse_elementwise(model) == 0  # switched once
    want_loss, want_grads = _loss_and_grads(reference)
    got_loss, got_grads = _loss_and_grads(model)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-6, atol=0)
    for got, want in zip(got_grads, want_grads, strict=True):  # the norms' weights included
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


class _OffsetRMSNorm(LlamaRMSNorm):
    """Gemma's variant: scaled by (1 + weight). Its attributes look like Llama's."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return (1 + self.weight) * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


def test_a_norm_the_probe_does_not_reproduce_keeps_its_forward():
    model = nn.Sequential(_OffsetRMSNorm(16), _llama_norm(16))
    assert fuse_rms_norms(model) == 1
    assert "forward" not in vars(model[0]) and "forward" in vars(model[1])


def test_a_bf16_input_goes_to_the_module_s_own_casts():
    norm = _llama_norm()
    want = norm(torch.ones(3, 48, dtype=torch.bfloat16))
    fuse_rms_norms(norm)
    got = norm(torch.ones(3, 48, dtype=torch.bfloat16))
    assert got.dtype == want.dtype == torch.float32  # fp32 weight times the bf16 cast back
    assert torch.equal(got, want)


def test_rotary_gives_transformers_output_and_gradients():
    gen = torch.Generator().manual_seed(6)
    # queries laid out as the attention modules hand them over: [B, T, H, D] transposed
    q = torch.randn(2, 7, 4, 8, generator=gen).transpose(1, 2)
    k = torch.randn(2, 7, 2, 8, generator=gen).transpose(1, 2)
    cos, sin = torch.randn(2, 7, 8, generator=gen), torch.randn(2, 7, 8, generator=gen)
    upstream = [torch.randn(2, heads, 7, 8, generator=gen) for heads in (4, 2)]

    def run(function):
        leaves = [q.clone().requires_grad_(), k.clone().requires_grad_()]
        outputs = function(*leaves, cos, sin)
        torch.autograd.backward(outputs, upstream)
        return [o.detach() for o in outputs], [leaf.grad for leaf in leaves]

    want_out, want_grads = run(modeling_llama.apply_rotary_pos_emb)
    got_out, got_grads = run(apply_rotary)
    for got, want in zip(got_out + got_grads, want_out + want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_only_this_model_s_attention_is_rerouted(monkeypatch):
    switched, other = tiny_llama(), tiny_llama()
    fuse_rotary(switched)
    calls = []
    monkeypatch.setattr(
        "tunesmith.training.fused_elementwise._Rotary.apply",
        lambda *args: calls.append(1) or args[0] * args[1],
    )
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        other(input_ids=ids)
        assert calls == []
        switched(input_ids=ids)
    assert len(calls) == 2 * 2  # q and k in each of the two blocks


def test_partial_rotary_goes_to_the_original_function():
    model = tiny_llama()
    fuse_rotary(model)
    wrapper = model.model.layers[0].self_attn._kernel_funcs["rotary_pos_emb"]
    gen = torch.Generator().manual_seed(8)
    q, k = torch.randn(1, 4, 3, 8, generator=gen), torch.randn(1, 2, 3, 8, generator=gen)
    cos = sin = torch.randn(1, 3, 4, generator=gen)  # narrower than the heads
    with pytest.raises(RuntimeError):  # transformers' own function: the shapes do not match
        wrapper(q, k, cos, sin)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_cpu_lora_training_switches_norms_and_rotary(monkeypatch, precision):
    from peft import LoraConfig, get_peft_model

    from tunesmith.training.precision import prepare_arithmetic

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules="all-linear"))
    prepare_arithmetic(model, precision, lora=True)
    assert fuse_elementwise(model) == 0  # already switched, every module
    block = model.get_base_model().model.layers[0]
    assert "forward" in vars(block.input_layernorm)
    assert "forward" in vars(block.self_attn._kernel_funcs["rotary_pos_emb"])
