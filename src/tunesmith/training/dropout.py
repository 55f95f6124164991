"""Dropout masks from fewer random draws (CPU training, decision 020).

torch's dropout on a CPU draws its mask with ``bernoulli_``: one double from the generator
(two 32-bit Mersenne Twister draws) per element, one element at a time, then divides the
mask and multiplies. Only on Intel CPUs does ATen hand ``bernoulli_`` to MKL's parallel
generator; elsewhere (AMD EPYC) a full fine-tune of MiniLM spent ~15% of each step drawing
dropout masks. Here a mask element costs a 32-bit lane of one full-range 64-bit draw (half
the generator's work) and the mask is applied in two passes: drop where the lane falls
under ``p`` (as a fraction of 2**32), scale the rest by ``1 / (1 - p)``, as torch does.

The distribution is torch's up to the resolution of the draw: an element is dropped with
probability ``round(p * 2**32) / 2**32`` (within 1.2e-10 of ``p``), every draw comes from
torch's default generator (so ``torch.manual_seed`` and the checkpointed RNG state make it
repeatable), and the backward pass applies the same mask and scale to the gradient.

``use_fast_dropout`` switches a model's ``nn.Dropout`` modules to it, in training only and
for CPU tensors; anything else (evaluation, ``p == 0``, in-place dropout, another device)
takes the module's own forward. Attention dropout is not an ``nn.Dropout`` call: transformers
hands the probability to ``sdpa``, whose CPU path then computes the attention with torch's
dropout. So a bidirectional (encoder) model on ``sdpa`` is switched to an attention
implementation of the same name's arithmetic (``dropout_sdpa_attention``): the scores,
the softmax in fp32, ``fast_dropout`` and the product with the values, as ``sdpa``'s own
math path computes them with a dropout. Without a dropout (evaluation, serving), and for
anything it does not handle (causal attention, grouped keys, extra arguments), it calls
transformers' ``sdpa`` as before.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch
from torch import nn

_LANES = 2  # 32-bit lanes in one 64-bit draw


def drop_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """A bool tensor of ``shape``, True (drop) with probability ``p`` per element."""
    count = shape.numel()
    words = torch.empty((count + _LANES - 1) // _LANES, dtype=torch.int64)
    # from the int64 minimum with no upper bound: all 64 bits uniform (``random_`` would
    # otherwise draw 63 bits, and a bounded range draws through a modulo)
    words.random_(-(2**63), None)
    lanes = words.view(torch.int32)[:count].view(shape)  # each uniform on [-2**31, 2**31)
    return lanes < round(p * 2**32) - 2**31


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        drop = drop_mask(x.shape, p)
        ctx.save_for_backward(drop)
        ctx.scale = 1.0 / (1.0 - p)
        return x.masked_fill(drop, 0).mul_(ctx.scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (drop,) = ctx.saved_tensors
        return grad.masked_fill(drop, 0).mul_(ctx.scale), None


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of ``x`` with probability ``p`` (0 < p < 1), mask as above."""
    return _Dropout.apply(x, p)


def _dropout_forward(module: nn.Dropout, original: Any, x: torch.Tensor) -> torch.Tensor:
    if module.training and 0.0 < module.p < 1.0 and not module.inplace and x.device.type == "cpu":
        return fast_dropout(x, module.p)
    return original(x)


def bernoulli_is_serial() -> bool:
    """Whether torch's ``bernoulli_`` draws one element at a time on this machine's CPU.

    ATen passes it to MKL's vectorised generator only on Intel CPUs (``cpuinfo`` vendor
    check in ``DistributionKernels.cpp``); on those, dropout is left as torch runs it.
    """
    return not (torch.backends.mkl.is_available() and _cpu_vendor() == "GenuineIntel")


def _cpu_vendor() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("vendor_id"):
            return line.split(":", 1)[1].strip()
    return None


DROPOUT_ATTENTION = "tunesmith_dropout_sdpa"


def dropout_sdpa_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: ``[B, H, T, D]`` in, ``[B, T, H, D]`` out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = (
        0.0 < dropout < 1.0
        and module.training
        and query.device.type == "cpu"
        and not (is_causal if is_causal is not None else getattr(module, "is_causal", False))
        and key.shape[1] == query.shape[1]  # no grouped keys
        and all(extra is None or isinstance(extra, bool) for extra in kwargs.values())
        and (attention_mask is None or attention_mask.dim() == 4)
    )
    if not plain:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(scale)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # True where a query may attend
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:  # additive
            scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(fast_dropout(probs, dropout), value)
    return output.transpose(1, 2).contiguous(), None


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(DROPOUT_ATTENTION, dropout_sdpa_attention)
    AttentionMaskInterface.register(DROPOUT_ATTENTION, sdpa_mask)


def _use_dropout_attention(model: nn.Module) -> None:
    """Switch a bidirectional model on ``sdpa`` to ``dropout_sdpa_attention``.

    Bidirectional is read from the attention modules' own ``is_causal`` (configs of causal
    LMs do not say it): a causal LM stays on ``sdpa``, where ``packed_attention`` expects it.
    """
    config = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return
    if getattr(config, "is_encoder_decoder", False):
        return
    causal = [
        m.is_causal for m in model.modules() if isinstance(getattr(m, "is_causal", None), bool)
    ]
    if not causal or any(causal):
        return
    _register_attention()
    config._attn_implementation = DROPOUT_ATTENTION


def use_fast_dropout(model: nn.Module) -> int:
    """Switch ``model``'s ``nn.Dropout`` modules, and the attention dropout of an encoder on
    ``sdpa``, to ``fast_dropout`` where torch's CPU dropout draws serially
    (``bernoulli_is_serial``) and the model is on the CPU; returns how many ``nn.Dropout``
    modules were switched."""
    parameter = next(model.parameters(), None)
    if parameter is None or parameter.device.type != "cpu" or torch.cuda.is_available():
        return 0
    if not bernoulli_is_serial():
        return 0
    switched = 0
    for module in model.modules():
        if type(module) is nn.Dropout and module.p > 0.0:
            module.forward = functools.partial(_dropout_forward, module, module.forward)  # type: ignore[method-assign]
            switched += 1
    _use_dropout_attention(model)
    return switched
