"""The whole state of an FSDP-sharded model and optimizer, for checkpoints that rank 0 writes.

Under FSDP (``tunesmith finetune --fsdp``) each rank holds a shard of every parameter and of
its optimizer state. A checkpoint holds them whole (a "full state dict"): the weights in the
model's own format (``save_pretrained``), the optimizer state keyed by parameter name. So a run
resumes with any number of processes, with or without FSDP, and its folders load like any
other run's. Gathering and scattering are collectives: every rank calls these functions.

They use PyTorch's ``torch.distributed.checkpoint.state_dict`` API, which also accepts a plain
or DDP-wrapped module, so the same calls work (and are tested) without FSDP.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

# The loss modules (``losses.py``) hold the model as ``.model``: its keys start with this.
MODEL_PREFIX = "model."
# ``optimizer.pt`` written from a full state dict says so: its state is keyed by name.
NAMED_OPTIMIZER_STATE = "named_state"


def _is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _options(*, broadcast: bool = False) -> StateDictOptions:
    # cpu_offload: the gathered tensors go to rank 0's CPU memory (and only rank 0 keeps them).
    return StateDictOptions(
        full_state_dict=True,
        cpu_offload=_is_distributed(),
        broadcast_from_rank0=broadcast and _is_distributed(),
        strict=False,
    )


def _plain_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it


def gather_model_state(loss_module: nn.Module) -> dict[str, torch.Tensor]:
    """The model's full weights (its own key names) on rank 0; other ranks get ``{}``."""
    full: dict[str, Any] = get_model_state_dict(loss_module, options=_options())
    return {k[len(MODEL_PREFIX) :]: v for k, v in full.items() if k.startswith(MODEL_PREFIX)}


def scatter_model_state(loss_module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load full weights given on rank 0 (other ranks pass ``{}``) into every rank's shard."""
    prefixed: dict[str, Any] = {MODEL_PREFIX + k: v for k, v in state.items()}
    set_model_state_dict(loss_module, prefixed, options=_options(broadcast=True))


def gather_optimizer_state(loss_module: nn.Module, optimizer: Any) -> dict[str, Any]:
    """The optimizer's full state keyed by parameter name on rank 0 (``{}`` elsewhere)."""
    return get_optimizer_state_dict(loss_module, _plain_optimizer(optimizer), options=_options())


def scatter_optimizer_state(loss_module: nn.Module, optimizer: Any, state: dict[str, Any]) -> None:
    """Load a full, name-keyed optimizer state (read by every rank) into this rank's shard."""
    set_optimizer_state_dict(
        loss_module, _plain_optimizer(optimizer), optim_state_dict=state, options=_options()
    )


def named_optimizer_state(
    loss_module: nn.Module, optimizer: Any, state: dict[str, Any]
) -> dict[str, Any]:
    """An index-keyed ``optimizer.state_dict()`` (a run without FSDP) keyed by name instead.

    ``torch.optim`` numbers the parameters of its groups in order; the loop builds its only
    group from the model's trainable parameters in ``named_parameters`` order.
    """
    names = [
        MODEL_PREFIX + name
        for name, param in _model(loss_module).named_parameters()
        if param.requires_grad
    ]
    groups = state["param_groups"]
    if sum(len(g["params"]) for g in groups) != len(names):
        raise ValueError("the optimizer state does not match the model's trainable parameters")
    by_index = {i: names[i] for g in groups for i in g["params"]}
    return {
        "state": {by_index[i]: value for i, value in state["state"].items()},
        "param_groups": [{**g, "params": [by_index[i] for i in g["params"]]} for g in groups],
    }


def _model(loss_module: nn.Module) -> nn.Module:
    inner: Any = getattr(loss_module, "module", loss_module)  # DDP
    model: nn.Module = inner.model
    return model
