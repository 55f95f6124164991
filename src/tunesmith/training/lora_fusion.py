"""LoRA layers that read the same input, computed together (CPU training, decision 015).

A transformer block hands one tensor to several adapted projections: q, k and v read the
normed hidden states, gate and up read the MLP's input. peft runs each layer alone, which on a
CPU costs more than the arithmetic: per layer a cast of the input to the base weights' dtype,
a thin product for A and one for B, a multiply of the full-width output by LoRA's scaling,
and in the backward pass one more gradient to add into the shared input's. Here a group of
layers that share an input makes

* one product of the input with its bases' frozen weights, concatenated (each base layer's
  weight becomes a view of that matrix, so nothing is stored twice), and one cast of the
  input for it;
* one product with their A matrices, concatenated for the step, scaled on the rank side
  (16 columns, not the output's 576 or 1536), then each layer's own B.

Single layers (o, down) keep the rank-side scaling and the one cast. The arithmetic is
LoRA's, reassociated: ``(x A^T s) B^T`` for ``(x A^T B^T) s``; tests/training check outputs
and gradients against peft's own forward, and docs/benchmarks.md the loss curves. A group's
products are one autograd node with a hand-written backward pass (decision 021), which
spares the full-width copies and additions autograd's own graph of them makes. On CPUs with
AVX512-BF16 and no AMX, bf16 base weights are multiplied pre-packed for oneDNN (decision 022).

Which layers share an input is observed, not guessed from names: one forward pass of the
model's dummy inputs records the tensor each adapted layer is called with, and layers called
one after another with the very same tensor form a group. At run time the group's first
layer computes every member's output and its followers hand back theirs if they are called
with that tensor, as they were in the probe; anything else (adapters disabled or merged,
another active adapter, extra arguments, a different input) falls back to peft's forward.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _plain_linear_lora(layer: nn.Module) -> bool:
    """A peft ``lora.Linear`` with one vanilla adapter over a frozen ``nn.Linear``."""
    from peft.tuners.lora import Linear as LoraLinear

    if type(layer) is not LoraLinear or layer.merged or layer.disable_adapters:
        return False
    active = layer.active_adapters
    if len(active) != 1 or active[0] not in layer.lora_A or active[0] in layer.lora_variant:
        return False
    base = layer.get_base_layer()
    return (
        type(base) is nn.Linear
        and not base.weight.requires_grad
        and (base.bias is None or not base.bias.requires_grad)  # peft's bias="all" trains it
        and not layer.fan_in_fan_out
        and layer.lora_B[active[0]].bias is None
    )


class SharedInputGroup:
    """Adapted linear layers called one after another with the same input tensor.

    ``out_dtype`` is the dtype peft's forward hands back for them (observed in the probe):
    fp32 in training, where bf16 bases cast their outputs up, the weights' dtype in serving.
    """

    def __init__(self, layers: Sequence[nn.Module], out_dtype: torch.dtype) -> None:
        self.layers = list(layers)
        self.out_dtype = out_dtype
        bases = [layer.get_base_layer() for layer in self.layers]
        self.out_features = [base.out_features for base in bases]
        self.weight = self._share(bases, "weight")
        self.bias = self._share(bases, "bias") if bases[0].bias is not None else None
        self.base = FrozenProducts(self.weight, self.bias)
        self._pending: tuple[torch.Tensor, list[torch.Tensor | None]] | None = None
        for index, layer in enumerate(self.layers):
            layer.forward = functools.partial(self.forward, index)

    @staticmethod
    def _share(bases: list[nn.Linear], name: str) -> torch.Tensor:
        """One frozen tensor of the bases' ``name``; each base's becomes a view into it."""
        if len(bases) == 1:
            return getattr(bases[0], name).detach()
        joined = torch.cat([getattr(base, name).detach() for base in bases])
        offset = 0
        for base in bases:
            param = getattr(base, name)
            param.data = joined[offset : offset + param.shape[0]]
            offset += param.shape[0]
        return joined

    def forward(self, index: int, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        layer = self.layers[index]
        if index == 0:
            adapter = None if args or kwargs else self._plain_adapter()
            if adapter is None:
                self._pending = None
                self.base.forget_packed()  # merging may write into the weights
                return type(layer).forward(layer, x, *args, **kwargs)
            outputs: list[torch.Tensor | None] = list(self._products(x, adapter))
            self._pending = (x, outputs) if len(outputs) > 1 else None
            return outputs[0]  # type: ignore[return-value]
        pending = self._pending
        if not (args or kwargs) and pending is not None and pending[0] is x:
            output = pending[1][index]
            if output is not None:
                pending[1][index] = None
                if index == len(self.layers) - 1:
                    self._pending = None
                return output
        # the leader fell back, or this layer is not called as in the probe: peft's forward
        return type(layer).forward(layer, x, *args, **kwargs)

    def _plain_adapter(self) -> str | None:
        """The one active adapter, if it is a vanilla one in every member; else None."""
        first = self.layers[0]
        if first.merged or first.disable_adapters or len(first.active_adapters) != 1:
            return None
        adapter: str = first.active_adapters[0]
        for layer in self.layers:
            if adapter not in layer.lora_A or adapter in layer.lora_variant:
                return None
            if layer.lora_B[adapter].bias is not None:
                return None
            dropout = layer.lora_dropout[adapter]
            if len(self.layers) > 1 and layer.training and not isinstance(dropout, nn.Identity):
                return None  # each member would need its own mask
        return adapter

    def _products(self, x: torch.Tensor, adapter: str) -> list[torch.Tensor]:
        lora = self.layers
        a_weights = [layer.lora_A[adapter].weight for layer in lora]
        a_weight = a_weights[0] if len(lora) == 1 else torch.cat(a_weights)
        ranks = [weight.shape[0] for weight in a_weights]
        scales = [layer.scaling[adapter] for layer in lora]
        scale: float | torch.Tensor = scales[0]
        if len(set(scales)) > 1:
            scale = torch.tensor(scales, dtype=a_weight.dtype).repeat_interleave(
                torch.tensor(ranks)
            )
        # peft's arithmetic: the base product in its weights' dtype, the adapter's product
        # and the sum in the adapter's (fp32), the result in what peft hands back
        adapter_input = lora[0].lora_dropout[adapter](x.to(a_weight.dtype))
        b_weights = [layer.lora_B[adapter].weight for layer in lora]
        outputs = _LoraGroupProducts.apply(x, adapter_input, self.base, a_weight, scale, *b_weights)
        return [output.to(self.out_dtype) for output in outputs]


class _LoraGroupProducts(torch.autograd.Function):
    """A group's outputs ``base_i(x) + (x' A^T s)_i B_i^T`` as one autograd node.

    ``x`` feeds the frozen base product and ``x'`` (``x`` in the adapters' dtype, after
    LoRA's dropout, if any) the adapters' A. Written by hand because autograd's own graph
    makes full-width passes that are not arithmetic: each output a copy of its part of the
    base product and then a second one inside ``addmm``; in the backward pass the parts'
    gradients concatenated in fp32 and then cast to the bases' dtype, and the adapters'
    input gradient added to the base's in a pass of its own. Here each output is its part of
    the base product, cast once and summed with its B product in place; the gradients are
    cast straight into one matrix for the bases' product, and the adapters' input gradient
    is summed into the base's by the product that makes it. The products are the same, so
    are their results (tests compare them with peft's).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        adapter_input: torch.Tensor,
        base_products: FrozenProducts,
        a_weight: torch.Tensor,
        scale: float | torch.Tensor,
        *b_weights: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        leading, width = x.shape[:-1], x.shape[-1]
        flat = adapter_input.reshape(-1, width)
        base = base_products.forward(x.reshape(-1, width).to(base_products.weight.dtype))
        inner = flat @ a_weight.t()
        inner.mul_(scale)
        dtype = a_weight.dtype
        outputs = []
        ctx.columns, ctx.ranks = _slices(b_weights, 0), _slices(b_weights, 1)
        for columns, ranks, b_weight in zip(ctx.columns, ctx.ranks, b_weights, strict=True):
            if len(b_weights) == 1:
                part = base.to(dtype)  # the base product itself where it already is `dtype`
            else:
                part = base.new_empty(base.shape[0], b_weight.shape[0], dtype=dtype)
                part.copy_(base[:, columns])
            part.addmm_(inner[:, ranks], b_weight.t())
            outputs.append(part.view(*leading, b_weight.shape[0]))
        ctx.save_for_backward(x, adapter_input, a_weight, inner, *b_weights)
        ctx.base_products, ctx.scale = base_products, scale
        ctx.one_input = adapter_input is x  # no dropout, no cast: one gradient for both
        return tuple(outputs)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, *grads: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, adapter_input, a_weight, inner, *b_weights = ctx.saved_tensors
        base_products: FrozenProducts = ctx.base_products
        needs_x, needs_adapter_input = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        rows, dtype = inner.shape[0], a_weight.dtype
        flat_grads = [grad.reshape(rows, -1).to(dtype) for grad in grads]
        grad_x = None
        if needs_x:
            # the outputs' gradients cast straight into one matrix for the bases' product
            weight = base_products.weight
            grad_base = weight.new_empty(rows, weight.shape[0])
            for columns, grad in zip(ctx.columns, flat_grads, strict=True):
                grad_base[:, columns].copy_(grad)
            grad_x = base_products.input_grad(grad_base).to(x.dtype)
        grad_inner = torch.empty_like(inner)
        grad_b_weights: list[torch.Tensor | None] = []
        for index, (ranks, grad, b_weight) in enumerate(
            zip(ctx.ranks, flat_grads, b_weights, strict=True)
        ):
            grad_inner[:, ranks] = grad @ b_weight
            needs_b = ctx.needs_input_grad[5 + index]
            grad_b_weights.append(grad.t() @ inner[:, ranks] if needs_b else None)
        grad_inner.mul_(ctx.scale)
        flat_input = adapter_input.reshape(rows, -1)
        grad_a = grad_inner.t() @ flat_input if ctx.needs_input_grad[3] else None
        grad_adapter_input = None
        if grad_x is not None and ctx.one_input:
            grad_x.view(rows, -1).addmm_(grad_inner, a_weight)
        elif needs_adapter_input:
            grad_adapter_input = (grad_inner @ a_weight).view(adapter_input.shape)
        if grad_x is not None:
            grad_x = grad_x.view(x.shape)
        return (grad_x, grad_adapter_input, None, grad_a, None, *grad_b_weights)


class FrozenProducts:
    """The bases' frozen product ``x W^T + b`` and its input gradient ``g W``.

    On a CPU with AVX512-BF16 but no AMX, bf16 weights are also kept pre-packed in oneDNN's
    blocked layout, one copy for each direction, each made at its first use. On the AMD EPYC
    the benchmark's products then took 230 against 250 ms a step backward and 466 against
    494 ms forward and backward, with the same results. The packs cost a second and a
    third copy of the weights. On Intel's AMX, oneDNN builds a packed product's kernel for
    each new row count (45% slower than a plain product for a new count), and a packed
    training row has a new count almost every step, so the plain products stay there.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight, self.bias = weight, bias
        self.pack = _packs_pay_off(weight)
        self._packed: dict[str, torch.Tensor] = {}
        self._version = weight._version

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed_weight("forward", self.weight)
        if packed is None:
            return F.linear(x, self.weight, self.bias)
        return _packed_linear(x, packed, self.bias)

    def input_grad(self, grad: torch.Tensor) -> torch.Tensor:
        packed = self._packed_weight("backward", self.weight.t())
        if packed is None:
            return grad @ self.weight
        return _packed_linear(grad, packed, None)

    def forget_packed(self) -> None:
        self._packed.clear()

    def _packed_weight(self, direction: str, weight: torch.Tensor) -> torch.Tensor | None:
        """``weight`` as the (rows x in) matrix of a product, packed; None where not used."""
        if not self.pack:
            return None
        if self.weight._version != self._version:  # written in place since it was packed
            self._packed.clear()
            self._version = self.weight._version
        if direction not in self._packed:
            reorder = torch.ops.mkldnn._reorder_linear_weight
            self._packed[direction] = reorder(weight.contiguous(), None)
        return self._packed[direction]


def _packs_pay_off(weight: torch.Tensor) -> bool:
    cpu = torch.cpu
    return (
        weight.dtype == torch.bfloat16
        and weight.device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and bool(cpu._is_avx512_bf16_supported())
        and not cpu._is_amx_tile_supported()
    )


def _packed_linear(
    x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``x W^T + b`` with ``W`` pre-packed by ``_reorder_linear_weight`` (oneDNN)."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")  # type: ignore[no-any-return]


def _slices(b_weights: Sequence[torch.Tensor], dim: int) -> list[slice]:
    """Each member's columns of the base product (``dim`` 0: its B's rows) or of the rank
    side (``dim`` 1: its B's columns)."""
    bounds = [0, *itertools.accumulate(weight.shape[dim] for weight in b_weights)]
    return [slice(start, end) for start, end in itertools.pairwise(bounds)]


def _calls_in_order(
    model: nn.Module, layers: list[nn.Module], out_dtypes: dict[nn.Module, torch.dtype]
) -> list[tuple[nn.Module, Any]]:
    """(layer, input) for each call of ``layers`` in one forward pass of dummy inputs; the
    dtype of each layer's output goes into ``out_dtypes``."""
    calls: list[tuple[nn.Module, Any]] = []

    def record(module: nn.Module, args: tuple[Any, ...]) -> None:
        calls.append((module, args[0] if args else None))  # keeps each input alive: ids stay

    def record_dtype(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        out_dtypes[module] = output.dtype

    handles = [layer.register_forward_pre_hook(record) for layer in layers]
    handles += [layer.register_forward_hook(record_dtype) for layer in layers]
    try:
        inputs = _dummy_inputs(model)
        if inputs is None:
            return []
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(**inputs)
        finally:
            model.train(was_training)
    except Exception:  # a model the probe cannot run simply stays unfused
        return []
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _dummy_inputs(model: nn.Module) -> dict[str, torch.Tensor] | None:
    """transformers' own small example batch for the model (``PreTrainedModel.dummy_inputs``)."""
    try:
        inputs = dict(model.dummy_inputs)
    except (AttributeError, NotImplementedError):
        return None
    device = next(model.parameters()).device
    return {name: value.to(device) for name, value in inputs.items()}


def _groups(
    calls: list[tuple[nn.Module, Any]],
    eligible: set[nn.Module],
    out_dtypes: dict[nn.Module, torch.dtype],
) -> list[list[nn.Module]]:
    """Runs of consecutive calls with the same tensor; a layer called twice stays alone."""
    seen: dict[nn.Module, int] = {}
    for layer, _ in calls:
        seen[layer] = seen.get(layer, 0) + 1
    groups: list[list[nn.Module]] = []
    previous_input: Any = None
    for layer, given in calls:
        if layer not in eligible or seen[layer] > 1:
            previous_input = None
            continue
        current = groups[-1] if groups else None
        if (
            current is not None
            and given is previous_input
            and given is not None
            and _compatible(current[0], layer)
            and out_dtypes[current[0]] == out_dtypes[layer]
        ):
            current.append(layer)
        else:
            groups.append([layer])
        previous_input = given
    return groups


def _compatible(first: nn.Module, other: nn.Module) -> bool:
    """Can ``other`` share ``first``'s products (same base dtype and bias, no dropout)?"""
    a, b = first.get_base_layer(), other.get_base_layer()
    no_dropout = all(
        isinstance(layer.lora_dropout[layer.active_adapters[0]], nn.Identity)
        for layer in (first, other)
    )
    return (
        no_dropout
        and a.weight.dtype == b.weight.dtype
        and a.in_features == b.in_features
        and (a.bias is None) == (b.bias is None)
    )


def fuse_shared_input_lora(model: nn.Module) -> list[SharedInputGroup]:
    """Compute the model's plain LoRA layers in groups that share an input; returns them.

    Layers the probe did not see called (or that are not plain peft ``lora.Linear`` over a
    frozen ``nn.Linear``) keep peft's forward.
    """
    layers = [module for module in model.modules() if _plain_linear_lora(module)]
    if not layers:
        return []
    out_dtypes: dict[nn.Module, torch.dtype] = {}
    calls = _calls_in_order(model, layers, out_dtypes)
    groups = _groups(calls, set(layers), out_dtypes)
    return [SharedInputGroup(group, out_dtypes[group[0]]) for group in groups]
