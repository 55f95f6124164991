"""LoRA layers that share an input, computed together: the same outputs and gradients as
peft's own forward, found from the model's calls, and out of the way when peft is asked for
something else (adapters disabled, merged)."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, TaskType, get_peft_model

from tests.training.conftest import packed_causal_batch, tiny_bert_classifier, tiny_llama
from tunesmith.training.lora_fusion import SharedInputGroup, fuse_shared_input_lora
from tunesmith.training.losses import CausalLMLoss
from tunesmith.training.precision import compute_lora_bases_in


def _lora_llama(**config: object) -> torch.nn.Module:
    lora = LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False, **config)
    return get_peft_model(tiny_llama(), lora)


def _loss_and_grads(model: torch.nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    loss, _, count = CausalLMLoss(model)(**packed_causal_batch())
    (loss / count).backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]


def _names(model: torch.nn.Module, groups: list[SharedInputGroup]) -> list[list[str]]:
    names = {module: name.rsplit(".", 1)[-1] for name, module in model.named_modules()}
    return [[names[layer] for layer in group.layers] for group in groups]


def test_the_layers_that_read_one_input_are_grouped_in_call_order():
    model = _lora_llama()
    groups = fuse_shared_input_lora(model)
    per_block = [["q_proj", "k_proj", "v_proj"], ["o_proj"], ["gate_proj", "up_proj"]]
    per_block.append(["down_proj"])
    assert _names(model, groups) == per_block * 2
    # each base weight is now a view of its group's one matrix: nothing is stored twice
    qkv = groups[0]
    for layer in qkv.layers:
        weight = layer.get_base_layer().weight
        assert weight.untyped_storage().data_ptr() == qkv.weight.untyped_storage().data_ptr()
    assert qkv.weight.shape == (32 + 16 + 16, 32)  # q: 4 heads x 8, k and v: 2 heads x 8


def test_fused_layers_give_peft_s_loss_and_gradients():
    reference_loss, reference_grads = _loss_and_grads(_lora_llama())
    model = _lora_llama()
    fuse_shared_input_lora(model)
    loss, grads = _loss_and_grads(model)
    # the same arithmetic, reassociated ((x A^T s) B^T): equal to fp32 rounding
    torch.testing.assert_close(loss, reference_loss, rtol=1e-5, atol=0)
    assert len(grads) == len(reference_grads) == 2 * 7 * 2  # A and B of every layer
    for got, want in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_fused_bf16_bases_follow_the_unfused_ones():
    reference = _lora_llama()
    compute_lora_bases_in(reference, torch.bfloat16)
    reference_loss, reference_grads = _loss_and_grads(reference)
    model = _lora_llama()
    compute_lora_bases_in(model, torch.bfloat16)
    groups = fuse_shared_input_lora(model)
    assert groups[0].weight.dtype == torch.bfloat16
    loss, grads = _loss_and_grads(model)
    torch.testing.assert_close(loss, reference_loss, rtol=1e-3, atol=0)
    for got, want in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-4)


def test_peft_s_other_paths_still_work_on_fused_layers():
    model = _lora_llama()
    base_model = tiny_llama()
    ids = torch.randint(3, 64, (2, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        unfused = model(input_ids=ids).logits
        fuse_shared_input_lora(model)
        fused = model(input_ids=ids).logits
        with model.disable_adapter():  # base vs fine-tuned: the base model's own outputs
            disabled = model(input_ids=ids).logits
        again = model(input_ids=ids).logits
        base = base_model(input_ids=ids).logits
    torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(disabled, base, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(again, fused)
    assert (fused - base).abs().max() > 1e-3  # the adapters do change the output
    # merging writes into the base weights, which are views of the fused matrices
    merged = model.merge_and_unload()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, fused, rtol=1e-4, atol=1e-5)


def test_a_follower_called_with_another_input_computes_its_own_output():
    model = _lora_llama()
    attention = model.get_base_model().model.layers[0].self_attn
    x = torch.randn(3, 32, generator=torch.Generator().manual_seed(4))
    other = torch.randn(3, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want_q, want_k = attention.q_proj(x), attention.k_proj(other)
        fuse_shared_input_lora(model)
        got_q, got_k = attention.q_proj(x), attention.k_proj(other)  # not the pending k of x
    torch.testing.assert_close(got_q, want_q, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_k, want_k, rtol=1e-5, atol=1e-6)


def test_dropout_keeps_each_layer_alone():
    """With LoRA dropout each layer draws its own mask, so no products are shared."""
    model = _lora_llama(lora_dropout=0.1)
    groups = fuse_shared_input_lora(model)
    assert all(len(group.layers) == 1 for group in groups)
    assert len(groups) == 2 * 7


def test_lora_dropout_layers_give_peft_s_loss_and_gradients():
    """Alone, a layer with LoRA dropout still goes through the fused node: the adapters read
    the dropped input, the base the whole one (the same masks: one draw per layer, in order)."""
    reference, model = _lora_llama(lora_dropout=0.3), _lora_llama(lora_dropout=0.3)
    fuse_shared_input_lora(model)
    results = []
    for each in (reference, model):
        each.train()
        torch.manual_seed(11)
        results.append(_loss_and_grads(each))
    (want_loss, want_grads), (loss, grads) = results
    torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=0)
    for got, want in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_layers_whose_base_bias_is_trained_keep_peft_s_forward():
    """peft's ``bias="all"`` trains the base layers' biases: the fused products, which treat
    the bases as frozen, would drop their gradients."""
    lora = LoraConfig(
        r=4, target_modules=["query", "key", "value"], bias="all", task_type=TaskType.SEQ_CLS
    )
    model = get_peft_model(tiny_bert_classifier(), lora).eval()
    assert fuse_shared_input_lora(model) == []
    ids = torch.randint(3, 64, (2, 9), generator=torch.Generator().manual_seed(6))
    model(input_ids=ids).logits.sum().backward()
    query = model.get_base_model().bert.encoder.layer[0].attention.self.query
    assert query.get_base_layer().bias.grad is not None


def test_an_encoder_with_biased_projections_is_fused_too():
    lora = LoraConfig(
        r=4,
        target_modules=["query", "key", "value", "dense"],
        task_type=TaskType.SEQ_CLS,
        init_lora_weights=False,
    )
    model = get_peft_model(tiny_bert_classifier(), lora).eval()  # no dropout
    ids = torch.randint(3, 64, (2, 9), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        want = model(input_ids=ids).logits
        groups = fuse_shared_input_lora(model)
        got = model(input_ids=ids).logits
    assert ["query", "key", "value"] in _names(model, groups)
    assert groups[0].bias is not None and groups[0].bias.shape == (96,)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_cpu_lora_training_fuses_its_layers(monkeypatch, precision):
    from tunesmith.training.precision import prepare_arithmetic

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = _lora_llama()
    assert prepare_arithmetic(model, precision, lora=True) == "fp32"
    q_proj = model.get_base_model().model.layers[0].self_attn.q_proj
    assert isinstance(q_proj.forward.func.__self__, SharedInputGroup)


def test_an_input_already_in_bf16_is_answered_as_peft_answers_it():
    """T5 hands its feed-forward output layer the weights' dtype: with bf16 bases, bf16."""
    reference, model = _lora_llama(), _lora_llama()
    for each in (reference, model):
        compute_lora_bases_in(each, torch.bfloat16)
    fuse_shared_input_lora(model)
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(7)).to(torch.bfloat16)
    with torch.no_grad():
        want = reference.get_base_model().model.layers[0].mlp.down_proj(x)
        got = model.get_base_model().model.layers[0].mlp.down_proj(x)
    assert got.dtype == want.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_second_adapter_and_a_bf16_model_are_answered_as_peft_answers_them():
    """A model served in bf16 with two adapters: the fused layers follow the active adapter
    and hand back peft's dtype (bf16 here, not the adapters' fp32)."""

    def served() -> torch.nn.Module:
        model = get_peft_model(
            tiny_llama().to(torch.bfloat16),
            LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
            autocast_adapter_dtype=True,
        )
        torch.manual_seed(1)
        model.add_adapter(
            "second", LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False)
        )
        return model.eval()

    reference, model = served(), served()
    groups = fuse_shared_input_lora(model)
    assert groups and all(group.out_dtype == torch.bfloat16 for group in groups)
    ids = torch.randint(3, 64, (2, 7), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        for adapter in ("default", "second", "default"):
            reference.set_adapter(adapter)
            model.set_adapter(adapter)
            want, got = reference(input_ids=ids).logits, model(input_ids=ids).logits
            assert got.dtype == torch.bfloat16
            torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
        model.set_adapter("default")
        first = model(input_ids=ids).logits
        model.set_adapter("second")
        assert (model(input_ids=ids).logits - first).abs().max() > 1e-2  # it did switch


def _bf16_fused(monkeypatch: pytest.MonkeyPatch, pack: bool) -> torch.nn.Module:
    from tunesmith.training import lora_fusion

    monkeypatch.setattr(lora_fusion, "_packs_pay_off", lambda weight: pack)
    model = _lora_llama()
    compute_lora_bases_in(model, torch.bfloat16)
    fuse_shared_input_lora(model)
    return model


def test_pre_packed_bases_give_the_plain_products_loss_and_gradients(monkeypatch):
    """oneDNN's packed weights (AVX512-BF16 CPUs without AMX) change the layout, not the
    arithmetic: the same loss and gradients as the plain bf16 products."""
    want_loss, want_grads = _loss_and_grads(_bf16_fused(monkeypatch, pack=False))
    try:
        packed = _bf16_fused(monkeypatch, pack=True)
        loss, grads = _loss_and_grads(packed)
    except RuntimeError as exc:  # a CPU whose oneDNN has no bf16 kernels
        pytest.skip(f"no packed bf16 products here: {exc}")
    group = packed.get_base_model().model.layers[1].self_attn.q_proj.forward.func.__self__
    assert set(group.base._packed) == {"forward", "backward"}
    torch.testing.assert_close(loss, want_loss, rtol=1e-5, atol=0)
    for got, want in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_packed_weights_are_made_again_after_the_weights_change():
    from tunesmith.training.lora_fusion import FrozenProducts

    generator = torch.Generator().manual_seed(9)
    weight = torch.randn(24, 16, generator=generator).to(torch.bfloat16)
    bias = torch.randn(24, generator=generator).to(torch.bfloat16)
    x = torch.randn(5, 16, generator=generator).to(torch.bfloat16)
    products = FrozenProducts(weight, bias)
    products.pack = True
    try:
        before = products.forward(x)
    except RuntimeError as exc:
        pytest.skip(f"no packed bf16 products here: {exc}")
    torch.testing.assert_close(before, torch.nn.functional.linear(x, weight, bias))
    weight.mul_(2)  # e.g. an adapter merged into the base weights
    torch.testing.assert_close(products.forward(x), torch.nn.functional.linear(x, weight, bias))
    torch.testing.assert_close(products.input_grad(before), before @ weight)
