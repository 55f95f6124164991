"""Which arithmetic a fine-tune uses: what ``precision="auto"`` means on this machine.

bf16 (weights and optimizer state stay fp32; the matrix products of the model run in bf16) is
the fast path wherever the hardware multiplies bf16 natively: CUDA GPUs of Ampere or later, and
CPUs with AVX512-BF16 (AMD Zen 4, Intel Cooper Lake and later) or AMX (Intel Sapphire Rapids
and later). On a CPU without those instructions bf16 is emulated and several times *slower*
than fp32 (measured: 19.5 against 135 GFLOP/s on an AVX2-only EPYC), so there "auto" is fp32.
docs/decisions/012-bf16-on-cpu.md has the measurements behind this.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from tunesmith.training.dropout import use_fast_dropout
from tunesmith.training.fused_elementwise import fuse_elementwise
from tunesmith.training.lora_fusion import fuse_shared_input_lora

Precision = Literal["fp32", "bf16", "fp16"]


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu
    return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` multiplies bf16 in hardware (a GPU with bf16, or such a CPU)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve_precision(precision: str) -> Precision:
    """``"auto"`` -> the fastest exact-enough arithmetic here; anything else as asked."""
    if precision == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"unknown precision {precision!r}")
    return precision  # type: ignore[return-value]


def matmul_dtype(precision: Precision) -> torch.dtype:
    """The dtype the matrix products of a step run in under ``precision``."""
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def accelerate_mixed_precision(precision: Precision) -> str:
    """accelerate's name for it (``"no"`` is plain fp32)."""
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


def _input_to_weight_dtype(
    module: nn.Module, args: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, ...]:
    return (args[0].to(module.weight.dtype), *args[1:])


def _output_to_fp32(
    module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor
) -> torch.Tensor:
    return output.float()


def compute_lora_bases_in(model: nn.Module, dtype: torch.dtype) -> int:
    """Frozen LoRA base layers multiply in ``dtype`` and hand fp32 back; returns how many.

    Their weights are stored in ``dtype`` (no per-step casts, half the memory); each casts its
    input to ``dtype`` and its output back to fp32, so the adapter's contribution is added in
    fp32. Under autocast it would be added in bf16, where an adapter that has just started
    to learn is far below the rounding step of the base layer's output: measured on SmolLM2,
    autocast's loss curve lagged fp32's by several steps, this one follows it within 3%
    (docs/decisions/012-bf16-on-cpu.md). Embeddings, norms, attention, adapters and heads stay
    fp32, and a LoRA run saves only its adapters, so nothing written to disk changes.
    """
    from peft.tuners.lora import LoraLayer

    count = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer):
            continue
        base = module.get_base_layer()
        if isinstance(base, nn.Linear) and not base.weight.requires_grad:
            base.to(dtype)
            base.register_forward_pre_hook(_input_to_weight_dtype)
            base.register_forward_hook(_output_to_fp32)
            count += 1
    if count:
        _release_checkpoint_file(model)
    return count


def _release_checkpoint_file(model: nn.Module) -> None:
    """Copy the weights still backed by the memory-mapped checkpoint into memory of their own.

    transformers leaves loaded weights pointing into the mmap of the safetensors file, and
    one tensor alive keeps the whole mapping: after the base layers went to bf16, the pages
    of their fp32 originals (read once, to convert them) stayed resident. The embeddings and
    norms left are a small part of the model; with them copied the mapping is released
    (measured on SmolLM2: ~400 MiB less peak RSS, decision 012).
    """
    with torch.no_grad():
        for param in model.parameters():
            if not param.requires_grad and param.dtype == torch.float32:  # not the bf16 copies
                param.data = param.data.clone()


def prepare_arithmetic(model: nn.Module, precision: Precision, lora: bool) -> Precision:
    """Set ``model`` up for ``precision``; returns the autocast precision of the step.

    LoRA in bf16 on a CPU: the base layers multiply in bf16 and everything else is fp32
    (``compute_lora_bases_in``), so no autocast. LoRA on a CPU, bf16 or fp32: the adapted
    layers that share an input are computed together (``lora_fusion``), and RMSNorms and
    rotary embeddings are one autograd node each (``fused_elementwise``). Everything else
    (full and head fine-tunes, which update fp32 master weights, and LoRA on GPUs, whose
    attention kernels want bf16): autocast in ``precision``. On a CPU whose torch draws
    dropout masks one element at a time, every method's dropout draws them from fewer
    random numbers (``dropout.use_fast_dropout``).
    """
    use_fast_dropout(model)
    if lora and not torch.cuda.is_available() and precision in ("bf16", "fp32"):
        if precision == "bf16":
            compute_lora_bases_in(model, torch.bfloat16)
        fuse_shared_input_lora(model)
        fuse_elementwise(model)
        return "fp32"
    return precision
