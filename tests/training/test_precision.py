"""What precision "auto" picks, and that bf16 LoRA bases change nothing but memory."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tests.helpers import write_jsonl
from tests.training.conftest import chat_rows, packed_causal_batch, tiny_llama
from tunesmith.training import precision as precision_module
from tunesmith.training.losses import CausalLMLoss
from tunesmith.training.precision import compute_lora_bases_in, resolve_precision
from tunesmith.training.run import finetune
from tunesmith.training.spec import FinetuneSpec, Hyperparameters


@pytest.mark.parametrize(
    ("native", "expected"), [(True, "bf16"), (False, "fp32")], ids=["bf16-cpu", "avx2-cpu"]
)
def test_auto_uses_bf16_only_where_the_cpu_multiplies_it(monkeypatch, native, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto") == expected
    assert resolve_precision("fp32") == "fp32"  # what is asked for wins
    assert resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="fp64"):
        resolve_precision("fp64")


def _lora_model() -> torch.nn.Module:
    return get_peft_model(
        tiny_llama(tie_word_embeddings=True),
        LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False),
    )


def _loss_and_grads(
    model: torch.nn.Module, autocast: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        loss, _, count = CausalLMLoss(model)(**packed_causal_batch())
    (loss / count).backward()
    grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    return loss.detach(), grads


def _with_small_adapters(model: torch.nn.Module) -> torch.nn.Module:
    """Adapters as they are a few steps into training: far smaller than the base."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(1e-3)
    return model


def test_bf16_lora_bases_keep_fp32_everywhere_else():
    model = _lora_model()
    frozen_fp32 = {
        name: param.data_ptr()
        for name, param in model.named_parameters()
        if not param.requires_grad
    }
    changed = compute_lora_bases_in(model, torch.bfloat16)
    # every frozen weight now lives in memory of its own: none still points where the loaded
    # checkpoint put it (a memory-mapped file, whose pages would otherwise stay resident)
    after = dict(model.named_parameters())
    assert all(after[name].data_ptr() != ptr for name, ptr in frozen_fp32.items())
    assert changed == 2 * 7  # every adapted linear layer of both blocks
    # the adapters, embeddings (tied to the output layer) and norms stay fp32
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    embeddings = model.get_base_model().get_input_embeddings().weight
    assert embeddings.dtype == torch.float32
    frozen_dtypes = {p.dtype for p in model.parameters() if not p.requires_grad}
    assert frozen_dtypes == {torch.float32, torch.bfloat16}
    loss, grads = _loss_and_grads(model)  # no autocast needed: the layers cast for themselves
    assert loss.dtype == torch.float32 and all(g.dtype == torch.float32 for g in grads)


def test_a_young_adapter_counts_in_bf16_as_in_fp32():
    """What a small adapter adds to its layer must survive: autocast adds it in bf16, where it
    is below the rounding step of the base layer's output, and loses much of it."""
    model = _with_small_adapters(_lora_model())
    layer = model.get_base_model().model.layers[0].mlp.down_proj
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        fp32_delta = layer(x) - layer.base_layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast_delta = (layer(x) - layer.base_layer(x)).float()
        compute_lora_bases_in(model, torch.bfloat16)
        bf16_delta = layer(x) - layer.base_layer(x)
    assert fp32_delta.abs().max() > 0
    torch.testing.assert_close(bf16_delta, fp32_delta, rtol=1e-3, atol=1e-7)
    lost = (autocast_delta - fp32_delta).abs().mean() / fp32_delta.abs().mean()
    assert lost > 0.2  # 0.35 here: a third of what the adapter adds is rounded away


def test_bf16_lora_bases_follow_fp32_gradients():
    reference = _with_small_adapters(_lora_model())
    fp32_loss, fp32_grads = _loss_and_grads(reference)
    model = _with_small_adapters(_lora_model())
    compute_lora_bases_in(model, torch.bfloat16)
    bf16_loss, bf16_grads = _loss_and_grads(model)
    torch.testing.assert_close(bf16_loss, fp32_loss, rtol=1e-2, atol=0)
    for got, want in zip(bf16_grads, fp32_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=0.05, atol=2e-3)


def test_a_bf16_lora_run_records_its_precision_and_saves_fp32_adapters(
    causal_dir, tmp_path, settings
):
    from safetensors.torch import load_file

    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(16, seed=1))
    spec = FinetuneSpec(
        model=str(causal_dir),
        train_file=train,
        method="lora",
        precision="bf16",
        output_dir=tmp_path / "run",
        hyperparameters=Hyperparameters(n_epochs=1, batch_size=8),
    )
    result = finetune(spec, settings=settings)
    meta = json.loads((result.output_dir / "tunesmith.json").read_text())
    assert meta["environment"]["precision"] == "bf16"
    adapter = load_file(str(result.output_dir / "adapter_model.safetensors"))
    assert adapter and {t.dtype for t in adapter.values()} == {torch.float32}
