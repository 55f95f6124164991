"""Checkpoints: what a checkpoint folder holds, how it is written whole, and how it is found.

A checkpoint folder (``checkpoints/step-000040``) reloads on its own: it has the weights
(a peft adapter or a full model, safetensors), the tokenizer and ``tunesmith.json`` like a
finished run, plus what resuming needs: the optimizer and scheduler state, the progress of
the loop and the RNG states. It is written into a temporary sibling and renamed into place
after a ``COMPLETE`` marker, so a crash mid-write never leaves a folder that looks usable.

Only the newest checkpoint keeps the optimizer state (the large part); older ones keep
weights, so they can still be served or evaluated. At most ``KEEP_CHECKPOINTS`` are kept.
Loading uses ``torch.load(weights_only=True)``: no pickled code is ever executed.

Progress is counted in global micro-batches and steps, which do not depend on the number of
processes, and the optimizer state is whole (rank 0 writes it; under FSDP it is gathered first,
keyed by parameter name), so a checkpoint resumes with any number of processes.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from tunesmith.errors import CheckpointError
from tunesmith.training.fsdp import (
    NAMED_OPTIMIZER_STATE,
    named_optimizer_state,
    scatter_optimizer_state,
)

CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PREFIX = "step-"
COMPLETE_MARKER = "COMPLETE"
TRAINER_STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.safetensors"
KEEP_CHECKPOINTS = 3


@dataclass
class TrainerState:
    """Where the loop is: enough to continue exactly where it stopped."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # 0-based epoch in progress
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed
    total_tokens: int = 0  # real (non-padding) tokens trained so far
    best_valid_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    elapsed_s: float = 0.0  # training time before this process, for the ETA

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainerState:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:06d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first."""
    root = run_dir / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and (p / COMPLETE_MARKER).exists()
    ]
    return sorted(found, key=lambda p: p.name)


def latest_resumable(run_dir: Path) -> Path | None:
    """The newest complete checkpoint that still has its optimizer state."""
    for path in reversed(list_checkpoints(run_dir)):
        if (path / OPTIMIZER_FILE).exists():
            return path
    return None


def save_checkpoint(
    run_dir: Path,
    state: TrainerState,
    write_weights: Callable[[Path], None],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint for ``state.step`` and prune older ones.

    ``optimizer_state``: a full state dict gathered from FSDP shards (keyed by parameter name)
    to write instead of ``optimizer.state_dict()``.
    """
    root = run_dir / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(state.step)
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_weights(tmp)
    blob: dict[str, Any] = {"scheduler": scheduler.state_dict()}
    if optimizer_state is not None:
        blob |= {"optimizer": optimizer_state, NAMED_OPTIMIZER_STATE: True}
    else:
        blob["optimizer"] = optimizer.state_dict()
    torch.save(blob, tmp / OPTIMIZER_FILE)
    save_file(_rng_tensors(), str(tmp / RNG_FILE))
    payload = {"trainer": state.state_dict(), "python_rng": _python_rng_state()}
    (tmp / TRAINER_STATE_FILE).write_text(json.dumps(payload, indent=2))
    (tmp / COMPLETE_MARKER).write_text("")
    shutil.rmtree(final, ignore_errors=True)
    tmp.replace(final)
    _prune(root, keep=final)
    return final


def load_checkpoint(
    path: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    module: torch.nn.Module | None = None,
    sharded: bool = False,
) -> TrainerState:
    """Restore optimizer, scheduler and RNG from ``path``; return the loop's progress.

    The weights are loaded by the caller (they are a peft adapter or a full model). ``module``
    is the loss module as prepared by accelerate; an optimizer state keyed by name (written
    under FSDP) is loaded through it, and so is any state when ``sharded`` (FSDP: every rank
    calls this, and each takes its shard).
    """
    if not (path / COMPLETE_MARKER).exists():
        raise CheckpointError(f"{path} is not a complete checkpoint")
    try:
        blob = torch.load(path / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
        named = bool(blob.get(NAMED_OPTIMIZER_STATE))
        if named or sharded:
            if module is None:
                raise ValueError("this optimizer state needs the prepared module to load")
            state = blob["optimizer"]
            if not named:  # written without FSDP: keyed by index
                state = named_optimizer_state(module, optimizer, state)
            scatter_optimizer_state(module, optimizer, state)
        else:
            optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        payload = json.loads((path / TRAINER_STATE_FILE).read_text())
        _restore_rng(load_file(str(path / RNG_FILE)), payload["python_rng"])
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"cannot resume from {path}: {exc}") from exc
    return TrainerState.from_dict(payload["trainer"])


def _prune(root: Path, keep: Path) -> None:
    """Drop optimizer state from all but the newest checkpoint; keep the newest few."""
    complete = sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX)
    )
    for path in complete:
        if path != keep:
            (path / OPTIMIZER_FILE).unlink(missing_ok=True)
    for path in complete[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(path, ignore_errors=True)


def _rng_tensors() -> dict[str, torch.Tensor]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, rng_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = rng_state
    return tensors


def _python_rng_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _restore_rng(tensors: dict[str, torch.Tensor], python_state: list[Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    version, internal, gauss = python_state
    random.setstate((version, tuple(internal), gauss))
