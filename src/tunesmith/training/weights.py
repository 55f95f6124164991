"""Saving and loading the trainable weights of a run, in safetensors only.

A LoRA run saves its peft adapter; a full or head run saves the whole model. Either way the
folder also gets the tokenizer and ``tunesmith.json``, so it loads on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from tunesmith.errors import CheckpointError
from tunesmith.training import manifest

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def write_weights(
    model: nn.Module,
    tokenizer: Any,
    meta: dict[str, Any],
    folder: Path,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> None:
    """``state_dict``: the full weights gathered from FSDP shards (else the model's own)."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"state_dict": state_dict} if state_dict is not None else {}
    model.save_pretrained(folder, safe_serialization=True, **extra)  # type: ignore[operator]
    tokenizer.save_pretrained(folder)
    manifest.write(folder, meta)


def load_weights(model: nn.Module, folder: Path) -> None:
    """Load weights written by ``write_weights`` into the same (already set-up) model."""
    if is_peft(model):
        from peft import set_peft_model_state_dict

        path = folder / ADAPTER_WEIGHTS
        if not path.exists():
            raise CheckpointError(f"{folder} has no {ADAPTER_WEIGHTS}")
        set_peft_model_state_dict(model, load_file(str(path)))
        return
    result = model.load_state_dict(read_weights(folder), strict=False)
    # Tied weights (lm_head = embeddings) are saved once; anything else missing is an error.
    tied = _tied_keys(model)
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"weights in {folder} do not match the model: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The full model weights written by ``write_weights`` (tied weights appear once)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder} has no safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(str(file)))
    return state


def _tied_keys(model: nn.Module) -> set[str]:
    seen: dict[int, str] = {}
    tied: set[str] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            tied.add(name)
        else:
            seen[id(param)] = name
    return tied
