"""RMSNorm and rotary embeddings as one autograd node each (CPU training).

A Llama-style RMSNorm is five elementwise operations forward and rotary embeddings eight
(``q * cos + rotate_half(q) * sin``, a slice, a negation and a concatenation among them).
Autograd records every one, and their backward passes are about as many again, each a pass
over the activations and a dispatch of its own. On a CPU a LoRA step of a small model spends
much of its time in such dispatches rather than in arithmetic. Here each is one autograd
node with a hand-written backward pass:

* RMSNorm: the same forward operations in the same order (its output is bit for bit the
  module's), and a backward of four (``gx = r * (g*w - n * mean(g*w * n))``, ``n = x * r``).
* Rotary embeddings: ``q * cos`` with the rotated half added in place by ``addcmul``
  (fp32 rounding differs by an ulp), and the transposed rotation in the backward pass.

Measured on SmolLM2 LoRA steps on a 2-core CPU, alternating with the unfused model: 3% less
time a step for the norms, 2% for the rotary embeddings (docs/benchmarks.md).

Nothing is switched on trust. A norm module is switched only where a probe on random input
gives the module's own output (Gemma's ``(1 + weight)`` norm keeps its forward). Rotary
embeddings are reached through transformers' per-module function slot (the ``kernels``
package's ``_kernel_funcs``, which routes a model's calls of ``apply_rotary_pos_emb`` to a
wrapper owned by each attention module), so only this model's attention changes, and only
where a probe gives the function's own output. Partial rotary (``cos`` narrower than the
heads), a ``cos`` that needs a gradient or any other call falls back to the original.
"""

from __future__ import annotations

import functools
import types
from typing import Any

import torch
from torch import nn

_PROBE_ROWS = 3
_ROTARY = "rotary_pos_emb"  # the slot name of transformers' apply_rotary_pos_emb


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, eps: float
    ) -> torch.Tensor:
        # transformers' order of operations: variance, rsqrt(variance + eps), x * r, w * that
        rstd = torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True).add_(eps))
        normed = hidden * rstd
        ctx.save_for_backward(normed, rstd, weight)
        return weight * normed

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        normed, rstd, weight = ctx.saved_tensors
        grad_normed = grad * weight
        projection = (grad_normed * normed).mean(-1, keepdim=True)
        grad_hidden = torch.addcmul(grad_normed, normed, projection, value=-1).mul_(rstd)
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (grad * normed).sum(dim=tuple(range(grad.dim() - 1)))
        return grad_hidden, grad_weight, None


def rms_norm(hidden: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * x / sqrt(mean(x^2) + eps)`` over the last dimension, as one autograd node."""
    return _RMSNorm.apply(hidden, weight, eps)  # type: ignore[no-any-return]


class _Rotary(torch.autograd.Function):
    """``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = cat(-x2, x1)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        half = x.shape[-1] // 2
        ctx.save_for_backward(cos, sin)
        out = x * cos
        out[..., :half].addcmul_(x[..., half:], sin[..., :half], value=-1)
        out[..., half:].addcmul_(x[..., :half], sin[..., half:])
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        half = grad.shape[-1] // 2
        grad_x = grad * cos
        grad_x[..., :half].addcmul_(grad[..., half:], sin[..., half:])
        grad_x[..., half:].addcmul_(grad[..., :half], sin[..., :half], value=-1)
        return grad_x, None, None


def apply_rotary(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' ``apply_rotary_pos_emb`` (full-width rotation), one node per tensor."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return _Rotary.apply(q, cos, sin), _Rotary.apply(k, cos, sin)


def _norm_parts(module: nn.Module) -> tuple[torch.Tensor, float]:
    """A Llama-style norm's weight and epsilon."""
    return getattr(module, "weight"), getattr(module, "variance_epsilon")  # noqa: B009


def _norm_forward(module: nn.Module, original: Any, hidden: torch.Tensor) -> torch.Tensor:
    weight, eps = _norm_parts(module)
    if hidden.dtype != torch.float32 or weight.dtype != torch.float32:
        return original(hidden)  # type: ignore[no-any-return]  # casts of its own: as it is
    return rms_norm(hidden, weight, eps)


def _rotary_forward(original: Any, _wrapper: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """``apply_rotary`` for transformers' usual call ``(q, k, cos, sin)``; else ``original``.

    Bound to the slot's wrapper as a method (``kernels`` reads ``forward.__func__``)."""
    if len(args) == 4 and set(kwargs) <= {"unsqueeze_dim"} and _full_rotation(*args):
        return apply_rotary(*args, **kwargs)
    return original(*args, **kwargs)


def _full_rotation(q: Any, k: Any, cos: Any, sin: Any) -> bool:
    tensors = (q, k, cos, sin)
    return (
        all(isinstance(t, torch.Tensor) for t in tensors)
        and cos.shape[-1] == sin.shape[-1] == q.shape[-1] == k.shape[-1]
        and q.shape[-1] % 2 == 0
        and not (cos.requires_grad or sin.requires_grad)
    )


def _is_llama_style_norm(module: nn.Module) -> bool:
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__.endswith("RMSNorm")
        and isinstance(weight, nn.Parameter)
        and weight.dim() == 1
        and weight.dtype == torch.float32
        and isinstance(getattr(module, "variance_epsilon", None), float)
    )


def _norm_probe(module: nn.Module) -> bool:
    """Does the fused norm give the module's own output (to fp32 rounding)?"""
    weight, eps = _norm_parts(module)
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(_PROBE_ROWS, weight.shape[0], generator=generator).to(weight.device)
    try:
        with torch.no_grad():
            expected = module(hidden)
            got = rms_norm(hidden, weight, eps)
    except Exception:  # a module the probe cannot run keeps its forward
        return False
    return expected.dtype == got.dtype and torch.allclose(got, expected, rtol=1e-5, atol=1e-6)


def _rotary_probe(original: Any) -> bool:
    """Does ``apply_rotary`` give ``original``'s output on random heads (to fp32 rounding)?"""
    generator = torch.Generator().manual_seed(0)
    q, k = (torch.randn(1, heads, 5, 8, generator=generator) for heads in (4, 2))
    cos, sin = (torch.randn(1, 5, 8, generator=generator) for _ in range(2))
    try:
        with torch.no_grad():
            expected = original(q, k, cos, sin)
            got = apply_rotary(q, k, cos, sin)
        return all(
            torch.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(got, expected, strict=True)
        )
    except Exception:  # a function the probe cannot run stays as it is
        return False


def fuse_rms_norms(model: nn.Module) -> int:
    """Give the model's Llama-style RMSNorm modules the one-node norm; returns how many."""
    count = 0
    for module in model.modules():
        if _is_llama_style_norm(module) and "forward" not in vars(module) and _norm_probe(module):
            module.forward = functools.partial(_norm_forward, module, module.forward)
            count += 1
    return count


def fuse_rotary(model: nn.Module) -> int:
    """Route the rotary embeddings of the model's attention modules to ``apply_rotary``;
    returns how many modules now use it."""
    count = 0
    for module in model.modules():
        funcs = vars(module).get("_kernel_funcs")
        wrapper = funcs.get(_ROTARY) if isinstance(funcs, dict) else None
        if not isinstance(wrapper, nn.Module) or "forward" in vars(wrapper):
            continue
        original = wrapper.forward  # the slot's own forward: transformers' function
        if _rotary_probe(original):
            forward = functools.partial(_rotary_forward, original)
            wrapper.forward = types.MethodType(forward, wrapper)
            count += 1
    return count


def fuse_elementwise(model: nn.Module) -> int:
    """Both of the above; returns how many modules were switched."""
    return fuse_rms_norms(model) + fuse_rotary(model)
