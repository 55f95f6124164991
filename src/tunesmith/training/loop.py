"""The training loop: one function you can read top to bottom.

    run_loop(ctx) -> LoopResult

It is given a model already wrapped in its loss module (``losses.py``), the tokenized
examples, the resolved hyperparameters and a collate function, and it:

1. builds AdamW over the trainable parameters and the warmup + decay schedule;
2. restores optimizer, scheduler, RNG and progress from a checkpoint when resuming;
3. for each optimizer step, collates its micro-batches (deterministic order, see
   ``batching.epoch_batches``: shuffled and packed for a causal LM, length-bucketed else),
   counts the step's target tokens, and back-propagates ``loss_sum / targets`` for each
   micro-batch, so every target token weighs the same
   whatever the packing, accumulation or number of ranks;
4. reports metrics to the callbacks, evaluates, keeps the best weights, checkpoints,
   stops early, and stops on request (cancel / pause) after writing a checkpoint.

It runs under ``accelerate`` so the same code runs in one process or under ``torchrun``
(``training/distributed.py`` launches it). ``hp.batch_size`` is the *global* micro-batch: every
rank builds the same epoch order and takes its share of each micro-batch, so the optimizer
steps, the learning-rate schedule and the checkpoint's progress do not depend on the number of
processes, and a checkpoint resumes with any number of them. Under FSDP every rank takes part
in gathering the full weights and optimizer state, which rank 0 alone writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn
from transformers import get_scheduler

from tunesmith.errors import TrainingInterrupted
from tunesmith.training.batching import TrainItem, epoch_batches, shard
from tunesmith.training.callbacks import (
    CheckpointInfo,
    EvalMetrics,
    StepMetrics,
    TrainingCallback,
    TrainingPlan,
)
from tunesmith.training.checkpoint import (
    CHECKPOINTS_DIR,
    TrainerState,
    load_checkpoint,
    save_checkpoint,
)
from tunesmith.training.fsdp import gather_model_state, gather_optimizer_state, scatter_model_state
from tunesmith.training.losses import batch_count
from tunesmith.training.spec import ResolvedHyperparameters

BEST_DIR = "best"


@dataclass
class LoopContext:
    """Everything the loop needs; built by ``training/run.py``."""

    accelerator: Accelerator
    model: nn.Module  # the trainable model (peft or transformers), for saving
    loss_module: nn.Module  # wraps ``model``; forward(**batch) -> (loss_sum, correct, count)
    train_items: Sequence[TrainItem]
    valid_items: Sequence[TrainItem]
    collate: Callable[[list[TrainItem]], dict[str, torch.Tensor]]
    problem: str  # "lm", "seq2seq", "binary", "multiclass", "multilabel"
    hp: ResolvedHyperparameters
    run_dir: Path
    # write_weights(path, state_dict=None) saves the current weights (+ tokenizer, manifest);
    # under FSDP it is given the gathered full state dict (rank 0 only calls it).
    write_weights: Callable[..., None]
    load_weights: Callable[[Path], None]  # loads weights written by write_weights
    read_weights: Callable[[Path], dict[str, torch.Tensor]] | None = None  # FSDP: best weights
    callbacks: Sequence[TrainingCallback] = ()
    resume_from: Path | None = None
    plan_extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoopResult:
    state: TrainerState
    final_metrics: dict[str, float]
    stopped_early: bool
    full_state: dict[str, torch.Tensor] | None = None  # FSDP: the gathered weights (rank 0)


def run_loop(ctx: LoopContext) -> LoopResult:
    acc, hp = ctx.accelerator, ctx.hp
    sharded = _sharded(acc)
    micro_batches_per_epoch = math.ceil(len(ctx.train_items) / hp.batch_size)
    steps_per_epoch = math.ceil(micro_batches_per_epoch / hp.gradient_accumulation_steps)
    total_steps = steps_per_epoch * hp.n_epochs

    trainable = [p for p in ctx.model.parameters() if p.requires_grad]
    optimizer = build_optimizer(trainable, hp.learning_rate, hp.weight_decay)
    scheduler = get_scheduler(
        hp.lr_scheduler,
        optimizer,
        num_warmup_steps=math.ceil(hp.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    state = TrainerState()
    if ctx.resume_from is not None:
        # Into the plain model, before accelerate wraps (DDP) or shards (FSDP) it.
        ctx.load_weights(ctx.resume_from)
    loss_module, optimizer, scheduler = acc.prepare(ctx.loss_module, optimizer, scheduler)
    if ctx.resume_from is not None:
        state = load_checkpoint(
            ctx.resume_from, optimizer, scheduler, module=loss_module, sharded=sharded
        )
        _emit(
            ctx, "on_message", "info", f"resumed from {ctx.resume_from.name} at step {state.step}"
        )

    trainable_params = sum(p.numel() for p in trainable)
    plan = TrainingPlan(
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        n_epochs=hp.n_epochs,
        batch_size=hp.batch_size,
        n_train_examples=len(ctx.train_items),
        n_validation_examples=len(ctx.valid_items),
        trainable_params=trainable_params,
        total_params=sum(p.numel() for p in ctx.model.parameters()),
        resumed_from_step=state.step,
        hyperparameters=hp.to_dict() | ctx.plan_extra,
    )
    _emit(ctx, "on_train_begin", plan)

    lengths = [len(item) for item in ctx.train_items]
    prior_elapsed = state.elapsed_s  # training time before a resume
    process_start = time.perf_counter()
    steps_this_process = 0
    stopped_early = False
    last_valid: tuple[float, float] | None = None
    loss = accuracy = math.nan  # stay NaN only if a resumed run had no step left

    while state.epoch < hp.n_epochs and not stopped_early:
        # Global micro-batches of this epoch (the same on every rank, whatever the number of
        # ranks); each rank takes its share of every one.
        batches = epoch_batches(
            lengths, hp.batch_size, hp.seed, state.epoch, bucket=ctx.problem != "lm"
        )
        for first in range(state.batch_in_epoch, len(batches), hp.gradient_accumulation_steps):
            step_batches = batches[first : first + hp.gradient_accumulation_steps]
            loss, accuracy, tokens = _optimizer_step(
                ctx, loss_module, optimizer, scheduler, step_batches
            )
            state.step += 1
            state.batch_in_epoch = first + len(step_batches)
            state.total_tokens += tokens
            steps_this_process += 1

            this_process = time.perf_counter() - process_start
            elapsed = prior_elapsed + this_process
            per_step = this_process / steps_this_process  # this process's speed, for the ETA
            epoch_progress = state.epoch + state.batch_in_epoch / len(batches)
            at_epoch_end = state.batch_in_epoch >= len(batches)

            valid = None
            if ctx.valid_items and (state.step % hp.eval_every == 0 or at_epoch_end):
                valid = _evaluate(ctx, loss_module)
                last_valid = valid
                improved = state.best_valid_loss is None or valid[0] < state.best_valid_loss
                if improved:
                    state.best_valid_loss, state.best_step = valid[0], state.step
                    state.evals_without_improvement = 0
                    _write_weights(ctx, loss_module, ctx.run_dir / CHECKPOINTS_DIR / BEST_DIR)
                else:
                    state.evals_without_improvement += 1
                _emit(
                    ctx,
                    "on_evaluate",
                    EvalMetrics(
                        step=state.step,
                        epoch=epoch_progress,
                        valid_loss=valid[0],
                        valid_accuracy=valid[1],
                        is_best=improved,
                    ),
                )
                patience = hp.early_stopping_patience
                if patience is not None and state.evals_without_improvement >= patience:
                    stopped_early = True
                    _emit(
                        ctx,
                        "on_message",
                        "info",
                        f"early stopping at step {state.step}: valid_loss has not improved "
                        f"for {patience} evaluations (best {state.best_valid_loss:.4f} at "
                        f"step {state.best_step})",
                    )

            _emit(
                ctx,
                "on_step_end",
                StepMetrics(
                    step=state.step,
                    epoch=epoch_progress,
                    train_loss=loss,
                    train_accuracy=accuracy,
                    learning_rate=scheduler.get_last_lr()[0],
                    tokens=tokens,
                    total_tokens=state.total_tokens,
                    elapsed_s=elapsed,
                    eta_s=per_step * (total_steps - state.step),
                    valid_loss=valid[0] if valid else None,
                    valid_accuracy=valid[1] if valid else None,
                ),
            )

            if at_epoch_end:  # the next step starts the next epoch at its first batch
                state.epoch += 1
                state.batch_in_epoch = 0
            stop_reason = _stop_requested(ctx)
            state.elapsed_s = elapsed
            must_save = stop_reason is not None or state.step % hp.checkpoint_every == 0
            if must_save or at_epoch_end or stopped_early:
                path = _checkpoint(ctx, loss_module, state, optimizer, scheduler, loss, valid)
                if stop_reason is not None:
                    raise TrainingInterrupted(stop_reason, str(path))
            if at_epoch_end or stopped_early:
                break

    final_metrics = {"train_loss": loss, "train_mean_token_accuracy": accuracy}
    if last_valid is not None:
        final_metrics |= {"valid_loss": last_valid[0], "valid_mean_token_accuracy": last_valid[1]}
    if state.best_step is not None and state.best_step != state.step:
        # Keep the best weights seen on the validation set, not the last ones (only rank 0
        # writes them; under FSDP every rank holds a shard of them).
        best = ctx.run_dir / CHECKPOINTS_DIR / BEST_DIR
        if sharded:
            assert ctx.read_weights is not None
            scatter_model_state(loss_module, ctx.read_weights(best) if acc.is_main_process else {})
        elif acc.is_main_process:
            ctx.load_weights(best)
        _emit(
            ctx,
            "on_message",
            "info",
            f"kept the weights of step {state.best_step} (best valid_loss "
            f"{state.best_valid_loss:.4f}) instead of the last step {state.step}",
        )
    if state.best_valid_loss is not None:
        final_metrics["best_valid_loss"] = state.best_valid_loss
        final_metrics["best_step"] = float(state.best_step or 0)
    full_state = gather_model_state(loss_module) if sharded else None
    acc.wait_for_everyone()
    return LoopResult(
        state=state,
        final_metrics=final_metrics,
        stopped_early=stopped_early,
        full_state=full_state,
    )


def build_optimizer(
    params: list[nn.Parameter], learning_rate: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over ``params``; on a CPU, torch's fused implementation.

    torch's default AdamW on a CPU loops over the parameters, about ten operations each, and
    a LoRA has hundreds of small tensors: fused AdamW updates them all in one kernel, with the
    same update (measured on SmolLM2's 420 LoRA tensors: 5.5 against 36 ms a step). GPUs keep
    torch's default (``foreach``); fused was not measured there.
    """
    on_cpu = not torch.cuda.is_available() and all(p.device.type == "cpu" for p in params)
    return torch.optim.AdamW(
        params, lr=learning_rate, weight_decay=weight_decay, fused=True if on_cpu else None
    )


def _optimizer_step(
    ctx: LoopContext,
    loss_module: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    step_batches: list[list[int]],
) -> tuple[float, float, int]:
    """One optimizer step over its micro-batches; returns (loss, accuracy, real tokens)."""
    acc, hp = ctx.accelerator, ctx.hp
    if not loss_module.training:  # a walk over every module: ~7 ms a step for a peft model
        loss_module.train()
    mine = [
        [ctx.train_items[i] for i in shard(b, acc.process_index, acc.num_processes)]
        for b in step_batches
    ]
    # A micro-batch smaller than the number of ranks (the last of an epoch) leaves some ranks
    # without an example. They still run the forward and backward, on the batch's first
    # example with weight 0: DDP and FSDP need every rank in every collective.
    weights = [1.0 if items else 0.0 for items in mine]
    collated = [
        ctx.collate(items or [ctx.train_items[b[0]]])
        for items, b in zip(mine, step_batches, strict=True)
    ]
    tokens = sum(len(item) for items in mine for item in items)
    local_count = sum(
        batch_count(batch, ctx.problem)
        for batch, weight in zip(collated, weights, strict=True)
        if weight
    )
    # Every rank divides by the step's global number of targets (DDP then averages the
    # gradients over ranks, hence the factor of world size).
    global_count = _all_sum(acc, float(local_count))
    scale = acc.num_processes / max(global_count, 1.0)

    loss_sum = torch.zeros((), device=acc.device)
    correct = torch.zeros((), device=acc.device)
    for index, (batch, weight) in enumerate(zip(collated, weights, strict=True)):
        batch = {k: v.to(acc.device) for k, v in batch.items()}
        last = index == len(collated) - 1
        context = acc.no_sync(loss_module) if not last else nullcontext()
        with context, acc.autocast():
            part_loss, part_correct, _ = loss_module(**batch)
            acc.backward(part_loss * (scale * weight))
        loss_sum += part_loss.detach() * weight
        correct += part_correct.detach() * weight
    if hp.max_grad_norm is not None:
        acc.clip_grad_norm_(
            [p for p in loss_module.parameters() if p.requires_grad], hp.max_grad_norm
        )
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    loss = _all_sum(acc, float(loss_sum)) / max(global_count, 1.0)
    accuracy = _all_sum(acc, float(correct)) / max(global_count, 1.0)
    return loss, accuracy, int(_all_sum(acc, float(tokens)))


@torch.no_grad()
def _evaluate(ctx: LoopContext, loss_module: nn.Module) -> tuple[float, float]:
    """(loss, accuracy) over the whole validation set, batched by length."""
    acc, hp = ctx.accelerator, ctx.hp
    loss_module.eval()
    order = sorted(range(len(ctx.valid_items)), key=lambda i: len(ctx.valid_items[i]))
    mine = shard(order, acc.process_index, acc.num_processes)
    # Every rank runs as many forwards as the rank with the most examples (FSDP gathers the
    # weights in each forward); a rank out of examples repeats one and ignores the result.
    per_rank = math.ceil(len(order) / acc.num_processes)
    loss_sum = correct = count = 0.0
    for start in range(0, per_rank, hp.batch_size):
        indices = mine[start : start + hp.batch_size]
        items = [ctx.valid_items[i] for i in indices or order[:1]]
        batch = {k: v.to(acc.device) for k, v in ctx.collate(items).items()}
        with acc.autocast():
            part_loss, part_correct, part_count = loss_module(**batch)
        if indices:
            loss_sum += float(part_loss)
            correct += float(part_correct)
            count += float(part_count)
    loss_module.train()
    total = max(_all_sum(acc, count), 1.0)
    return _all_sum(acc, loss_sum) / total, _all_sum(acc, correct) / total


def _checkpoint(
    ctx: LoopContext,
    loss_module: nn.Module,
    state: TrainerState,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    loss: float,
    valid: tuple[float, float] | None,
) -> Path:
    path = ctx.run_dir / CHECKPOINTS_DIR
    model_state = optimizer_state = None
    if _sharded(ctx.accelerator):  # every rank takes part in gathering; rank 0 keeps them
        model_state = gather_model_state(loss_module)
        optimizer_state = gather_optimizer_state(loss_module, optimizer)
    if ctx.accelerator.is_main_process:
        path = save_checkpoint(
            ctx.run_dir,
            state,
            lambda folder: ctx.write_weights(folder, model_state),
            optimizer,
            scheduler,
            optimizer_state=optimizer_state,
        )
        metrics = {"train_loss": loss}
        if valid is not None:
            metrics |= {"valid_loss": valid[0], "valid_mean_token_accuracy": valid[1]}
        _emit(
            ctx,
            "on_checkpoint",
            CheckpointInfo(step=state.step, epoch=state.epoch + 0.0, path=path, metrics=metrics),
        )
    ctx.accelerator.wait_for_everyone()
    return path


def _sharded(acc: Accelerator) -> bool:
    return acc.distributed_type == DistributedType.FSDP


def _write_weights(ctx: LoopContext, loss_module: nn.Module, path: Path) -> None:
    """Rank 0 writes the weights; under FSDP every rank first helps gather them."""
    state = gather_model_state(loss_module) if _sharded(ctx.accelerator) else None
    if ctx.accelerator.is_main_process:
        ctx.write_weights(path, state)


def _stop_requested(ctx: LoopContext) -> str | None:
    """The first stop reason any callback gives (rank 0 decides for every rank)."""
    reason = None
    if ctx.accelerator.is_main_process:
        for callback in ctx.callbacks:
            reason = callback.should_stop()
            if reason:
                break
    if ctx.accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        holder = [reason]
        broadcast_object_list(holder, from_process=0)
        reason = holder[0]
    return reason


def _all_sum(acc: Accelerator, value: float) -> float:
    if acc.num_processes == 1:
        return value
    tensor = torch.tensor([value], device=acc.device, dtype=torch.float64)
    return float(acc.reduce(tensor, reduction="sum").item())


def _emit(ctx: LoopContext, hook: str, *args: Any) -> None:
    """Call ``hook`` on every callback, on the main process only."""
    if not ctx.accelerator.is_main_process:
        return
    for callback in ctx.callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(*args)
