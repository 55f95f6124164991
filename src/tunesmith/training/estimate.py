"""What a fine-tune will cost before it starts: epochs, steps, tokens and time.

The time is an estimate from first principles, not a promise: training a transformer costs
about 6 FLOPs per parameter per token for a full fine-tune (2 forward, 4 backward) and about
4 for LoRA or a frozen base (no weight gradients for the frozen weights), and this machine's
speed is measured here with a short matrix product, in the dtype the fine-tune will multiply
in (bf16 where "auto" picks it, ``precision.py``). ``ACHIEVED_FRACTION`` is the share of that
peak a training step reaches in practice (measured on this project's benchmarks): bf16 steps
reach less of their higher peak, as the work outside matrix products does not get faster.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from tunesmith.tasks import Method
from tunesmith.training.precision import matmul_dtype, resolve_precision
from tunesmith.training.spec import auto_batch_size, auto_epochs

ACHIEVED_FRACTION = {"fp32": 0.35, "bf16": 0.22, "fp16": 0.22}
FLOPS_PER_PARAM_TOKEN = {Method.FULL: 6.0, Method.LORA: 4.0, Method.HEAD: 4.0}


@dataclass
class TrainingEstimate:
    n_epochs: int
    batch_size: int
    steps: int
    tokens_per_epoch: int
    tokens_to_train: int  # tokens processed over all epochs (what OpenAI bills)
    seconds: float | None  # None when the model size is unknown
    device: str
    precision: str  # what "auto" resolves to here

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def measured_matmul_flops(
    device: str = "cpu", dtype: torch.dtype = torch.float32, size: int = 1024, repeats: int = 4
) -> float:
    """FLOP/s of a square matrix product in ``dtype`` on ``device`` (measured once a process)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = max(time.perf_counter() - start, 1e-9)
    return 2 * size**3 * repeats / seconds


def estimate_training(
    *,
    n_examples: int,
    tokens_per_epoch: int,
    n_params: int | None,
    method: Method,
    n_epochs: int | str = "auto",
    batch_size: int | str = "auto",
    gradient_accumulation_steps: int = 1,
    precision: str = "auto",
) -> TrainingEstimate:
    epochs = auto_epochs(n_examples) if n_epochs == "auto" else int(n_epochs)
    batch = auto_batch_size(n_examples) if batch_size == "auto" else int(batch_size)
    steps = math.ceil(n_examples / (batch * gradient_accumulation_steps)) * epochs
    tokens = tokens_per_epoch * epochs
    device = "cuda" if torch.cuda.is_available() else "cpu"
    arithmetic = resolve_precision(precision)
    seconds = None
    if n_params:
        flops = FLOPS_PER_PARAM_TOKEN[method] * n_params * tokens
        peak = measured_matmul_flops(device, matmul_dtype(arithmetic))
        seconds = flops / (peak * ACHIEVED_FRACTION[arithmetic])
    return TrainingEstimate(
        n_epochs=epochs,
        batch_size=batch,
        steps=steps,
        tokens_per_epoch=tokens_per_epoch,
        tokens_to_train=tokens,
        seconds=seconds,
        device=device,
        precision=arithmetic,
    )
