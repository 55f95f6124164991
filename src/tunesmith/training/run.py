"""``finetune``: the whole cycle from a spec to a run folder, the engine's front door.

    setup:  resolve the model -> load and validate the data -> tokenizer -> resolve "auto"
            -> tokenize -> load the model (seeded) -> apply the method -> accelerator
    train:  ``loop.run_loop`` (checkpoints, evaluation, early stopping, stop requests)
    save:   weights + tokenizer + ``tunesmith.json`` + ``metrics.csv`` in the run folder

The order matters: the tokenizer comes before "auto" is resolved because the context length
is the model's; the seed is set before the model loads because a new classifier head is
initialised randomly; the method is applied before the optimizer exists.

Under ``torchrun`` (``training/distributed.py``) every rank runs this whole function on the
same data; the accelerator joins them (NCCL on GPUs, gloo on CPU) and only rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs
from torch import nn
from transformers import set_seed

from tunesmith.data.formats import task_for_format
from tunesmith.data.labels import LabelSpace
from tunesmith.data.reading import Dataset, load_dataset
from tunesmith.data.tokenization import tokenize_dataset
from tunesmith.data.validation import validate_file
from tunesmith.errors import CheckpointError, ConfigError, DataError
from tunesmith.host_memory import keep_freed_memory
from tunesmith.models.loading import load_model, load_tokenizer
from tunesmith.models.registry import resolve_model
from tunesmith.settings import Settings, load_settings
from tunesmith.tasks import Method, ModelKind, Task
from tunesmith.training import manifest
from tunesmith.training.batching import (
    TrainItem,
    pad_classification,
    pad_seq2seq,
)
from tunesmith.training.callbacks import TrainingCallback
from tunesmith.training.checkpoint import latest_resumable
from tunesmith.training.deidentified import deidentified_spec
from tunesmith.training.loop import LoopContext, run_loop
from tunesmith.training.losses import (
    CausalLMLoss,
    ClassificationLoss,
    Seq2SeqLoss,
    causal_lm_collate,
    unwrap_peft,
)
from tunesmith.training.metrics_csv import MetricsCSVWriter
from tunesmith.training.precision import (
    Precision,
    accelerate_mixed_precision,
    prepare_arithmetic,
    resolve_precision,
)
from tunesmith.training.setup import apply_method, count_parameters
from tunesmith.training.spec import FinetuneSpec, ResolvedHyperparameters, resolve_hyperparameters
from tunesmith.training.weights import load_weights, read_weights, write_weights

ResumeMode = Literal["auto", "never", "must"]


@dataclass
class FinetuneResult:
    """What a finished fine-tune produced."""

    output_dir: Path
    metrics: dict[str, float]
    trained_tokens: int
    steps: int
    manifest: dict[str, Any]


@dataclass
class PreparedData:
    train: Dataset
    validation: Dataset | None
    task: Task
    label_space: LabelSpace | None


def finetune(
    spec: FinetuneSpec,
    *,
    settings: Settings | None = None,
    callbacks: Sequence[TrainingCallback] = (),
    resume: ResumeMode = "auto",
    fsdp: bool = False,
) -> FinetuneResult:
    """Fine-tune ``spec.model`` on ``spec.train_file``; return the run folder and metrics.

    With ``resume="auto"`` a run folder that already holds a complete checkpoint continues
    from it, and one whose training finished returns its stored result (the job worker
    relies on both after a crash); ``"must"`` requires a checkpoint; ``"never"`` refuses a
    folder that holds a run. ``fsdp``: shard a full fine-tune over the ranks of a ``torchrun``
    launch (FSDP2 through accelerate; GPUs only) instead of replicating it (DDP).
    """
    settings = settings or load_settings()
    keep_freed_memory(settings)
    if fsdp:
        check_fsdp(spec.method, cuda=torch.cuda.is_available())
    run_dir = spec.output_dir or default_run_dir(spec, settings)
    spec = spec.model_copy(update={"output_dir": run_dir})
    finished = _finished_result(run_dir)
    if finished is not None:
        if resume == "auto":  # e.g. a job requeued after training ended: nothing left to do
            return finished
        raise ConfigError(f"{run_dir} already holds a finished run; choose another output_dir")
    checkpoint = latest_resumable(run_dir)
    if checkpoint is not None and resume == "never":
        raise ConfigError(f"{run_dir} already holds a run; choose another output_dir or resume it")
    if checkpoint is None and resume == "must":
        raise CheckpointError(f"no complete checkpoint to resume in {run_dir}")
    if checkpoint is not None:
        spec = _spec_of_checkpointed_run(run_dir, spec, callbacks)
    t_setup = time.perf_counter()

    resolved = resolve_model(spec.model, settings)
    data = _load_data(deidentified_spec(spec, run_dir, settings, callbacks))
    tokenizer = load_tokenizer(resolved.path, settings)
    hp = resolve_hyperparameters(
        spec.hyperparameters,
        n_train_examples=len(data.train.examples),
        n_validation_examples=len(data.validation.examples) if data.validation else 0,
        method=spec.method,
        model_kind=resolved.kind,
        model_max_length=resolved.max_length,
    )
    train_items, valid_items = _tokenize(data, tokenizer, resolved.kind, hp, callbacks)

    set_seed(hp.seed)  # before the model loads: a new classifier head starts random
    model = load_model(
        resolved,
        task=data.task,
        settings=settings,
        label_space=data.label_space,
        dropout=hp.dropout,
    )
    model = apply_method(model, spec.method, data.task, resolved.kind, hp)
    precision = resolve_precision(spec.precision)
    autocast = prepare_arithmetic(model, precision, lora=spec.method == Method.LORA)
    problem, loss_module, collate = _loss_and_collate(
        model, tokenizer, data, resolved.kind, hp, share_prefixes=settings.share_prompt_prefixes
    )
    accelerator = _accelerator(autocast, model, fsdp=fsdp)

    run_dir.mkdir(parents=True, exist_ok=True)
    meta = manifest.build(spec, resolved, data, hp, count_parameters(model))
    meta["environment"] |= {  # how many trained it (the last launch, after a resume)
        "processes": accelerator.num_processes,
        "backend": _backend(),
        "fsdp": fsdp,
        "precision": precision,  # what "auto" chose on this machine
        "device": str(accelerator.device),
    }
    if accelerator.is_main_process:
        manifest.write(run_dir, meta)
    writer = MetricsCSVWriter(run_dir / manifest.METRICS_CSV)
    ctx = LoopContext(
        accelerator=accelerator,
        model=model,
        loss_module=loss_module,
        train_items=train_items,
        valid_items=valid_items,
        collate=collate,
        problem=problem,
        hp=hp,
        run_dir=run_dir,
        write_weights=lambda path, state=None: write_weights(model, tokenizer, meta, path, state),
        load_weights=lambda path: load_weights(model, path),
        read_weights=read_weights,
        callbacks=[writer, *callbacks],
        resume_from=checkpoint,
        plan_extra={"setup_s": round(time.perf_counter() - t_setup, 2)},
    )
    outcome = run_loop(ctx)

    meta = manifest.finish(meta, outcome.final_metrics, outcome.state, outcome.stopped_early)
    if accelerator.is_main_process:
        write_weights(model, tokenizer, meta, run_dir, outcome.full_state)
        for callback in callbacks:
            callback.on_train_end(meta)
    return FinetuneResult(
        output_dir=run_dir,
        metrics=outcome.final_metrics,
        trained_tokens=outcome.state.total_tokens,
        steps=outcome.state.step,
        manifest=meta,
    )


def resume_run(
    run_dir: Path, *, settings: Settings | None = None, callbacks: Sequence[TrainingCallback] = ()
) -> FinetuneResult:
    """Continue the run in ``run_dir`` from its newest complete checkpoint."""
    meta = manifest.read(run_dir)
    spec = FinetuneSpec.model_validate(meta["spec"]).model_copy(update={"output_dir": run_dir})
    return finetune(spec, settings=settings, callbacks=callbacks, resume="must")


def _finished_result(run_dir: Path) -> FinetuneResult | None:
    """The result of a run folder whose training already completed, else None."""
    if not (run_dir / manifest.MANIFEST_FILE).exists():
        return None
    meta = manifest.read(run_dir)
    if meta.get("status") != "complete":
        return None
    return FinetuneResult(
        output_dir=run_dir,
        metrics=meta.get("metrics", {}),
        trained_tokens=meta.get("trained_tokens", 0),
        steps=meta.get("steps", 0),
        manifest=meta,
    )


def default_run_dir(spec: FinetuneSpec, settings: Settings) -> Path:
    """``<data_dir>/runs/<model>-<suffix>-<timestamp>``: readable and unique."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(spec.model).name).strip("-") or "model"
    parts = [base, spec.suffix] if spec.suffix else [base]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return settings.runs_dir / "-".join([*parts, stamp])


def _spec_of_checkpointed_run(
    run_dir: Path, spec: FinetuneSpec, callbacks: Sequence[TrainingCallback]
) -> FinetuneSpec:
    """Resuming continues the stored run: its settings win, and each difference is reported."""
    stored = FinetuneSpec.model_validate(manifest.read(run_dir)["spec"])
    stored = stored.model_copy(update={"output_dir": run_dir})
    new, old = spec.model_dump(mode="json"), stored.model_dump(mode="json")
    for key in sorted(set(new) | set(old)):
        if new.get(key) != old.get(key):
            for callback in callbacks:
                callback.on_message(
                    "warning",
                    f"resuming: {key} differs ({new.get(key)!r} asked, {old.get(key)!r} in the "
                    "checkpoint); the checkpoint's value wins",
                )
    return stored


def _load_data(spec: FinetuneSpec) -> PreparedData:
    report = validate_file(spec.train_file, validation_path=spec.validation_file)
    if not report.ok:
        raise DataError(report.errors, summary=f"{spec.train_file} has errors")
    train = load_dataset(spec.train_file)
    validation = load_dataset(spec.validation_file) if spec.validation_file else None
    if validation is not None and validation.format != train.format:
        raise DataError(
            [],
            summary=f"{spec.validation_file} is {validation.format.value} data "
            f"but {spec.train_file} is {train.format.value}",
        )
    if validation is None and spec.validation_split > 0:
        train, validation = _split(train, spec.validation_split, spec.hyperparameters.seed)
    task = spec.task or task_for_format(train.format)
    label_space = None
    if task == Task.CLASSIFICATION:
        label_space = LabelSpace.from_examples(train.examples)
    return PreparedData(train=train, validation=validation, task=task, label_space=label_space)


def _split(dataset: Dataset, share: float, seed: int) -> tuple[Dataset, Dataset]:
    """A fixed-seed hold-out of ``share`` of the examples (the file was deduplicated-checked)."""
    order = list(range(len(dataset.examples)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, round(share * len(order)))
    held = set(order[:n_valid])
    train = [e for i, e in enumerate(dataset.examples) if i not in held]
    valid = [e for i, e in enumerate(dataset.examples) if i in held]
    return (
        dataclasses.replace(dataset, examples=train),
        dataclasses.replace(dataset, examples=valid),
    )


def _tokenize(
    data: PreparedData,
    tokenizer: Any,
    kind: ModelKind,
    hp: ResolvedHyperparameters,
    callbacks: Sequence[TrainingCallback],
) -> tuple[list[TrainItem], list[TrainItem]]:
    def run(dataset: Dataset | None) -> list[TrainItem]:
        if dataset is None:
            return []
        tokenized = tokenize_dataset(
            dataset,
            tokenizer,
            task=data.task,
            model_kind=kind,
            max_seq_length=hp.max_seq_length,
            label_space=data.label_space,
        )
        for warning in tokenized.warnings:  # truncation is never silent
            for callback in callbacks:
                callback.on_message("warning", str(warning))
        return [TrainItem(input_ids=e.input_ids, labels=e.labels) for e in tokenized.examples]

    return run(data.train), run(data.validation)


def _loss_and_collate(
    model: nn.Module,
    tokenizer: Any,
    data: PreparedData,
    kind: ModelKind,
    hp: ResolvedHyperparameters,
    *,
    share_prefixes: bool,
) -> tuple[str, nn.Module, Callable[[list[TrainItem]], dict[str, torch.Tensor]]]:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if data.task == Task.CLASSIFICATION:
        assert data.label_space is not None
        problem = data.label_space.problem_type
        multi = problem == "multilabel"
        return (
            problem,
            ClassificationLoss(model, problem),
            (lambda items: pad_classification(items, pad_id, multi_target=multi)),
        )
    if kind == ModelKind.SEQ2SEQ:
        return "seq2seq", Seq2SeqLoss(model), lambda items: pad_seq2seq(items, pad_id)
    if kind == ModelKind.ENCODER:
        raise ConfigError(
            f"{data.task.value} needs a causal or seq2seq model; encoders can "
            "only be fine-tuned for classification"
        )
    collate = causal_lm_collate(model, hp.max_seq_length, pad_id, share_prefixes=share_prefixes)
    return "lm", CausalLMLoss(model), collate


def check_fsdp(method: Method, *, cuda: bool) -> None:
    """FSDP shards a full fine-tune over GPUs; say so when asked for anything else."""
    problems = []
    if method != Method.FULL:
        problems.append(
            f"FSDP shards full fine-tunes; method {method.value!r} trains few parameters: "
            "drop --fsdp (DDP replicates the model on each process)"
        )
    if not cuda:
        problems.append(
            "FSDP needs GPUs (accelerate shards only on accelerators); on CPU drop --fsdp "
            "and train with DDP over gloo"
        )
    if problems:
        raise ConfigError(problems)


def _accelerator(precision: Precision, model: nn.Module, *, fsdp: bool) -> Accelerator:
    """The accelerator of this process: one process, or one rank of a ``torchrun`` launch.

    Under ``torchrun`` (WORLD_SIZE > 1) the backend is NCCL on GPUs and gloo on CPU; on CPU
    accelerate must be told to use it (``cpu=True``), or every rank would train alone.
    ``split_batches``: the loop's micro-batches are global and split over the ranks, so the
    scheduler steps once per optimizer step, whatever the number of ranks.
    """
    cuda = torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    options: dict[str, Any] = {}
    if distributed:
        options["cpu"] = not cuda
        options["kwargs_handlers"] = [InitProcessGroupKwargs(backend="nccl" if cuda else "gloo")]
    if fsdp:
        from accelerate import FullyShardedDataParallelPlugin

        # FSDP2, one shard unit per transformer block; checkpoints gather the full state.
        blocks = getattr(unwrap_peft(model), "_no_split_modules", None) or []
        options["fsdp_plugin"] = FullyShardedDataParallelPlugin(
            fsdp_version=2,
            auto_wrap_policy="transformer_based_wrap",
            transformer_cls_names_to_wrap=list(blocks),
            state_dict_type="FULL_STATE_DICT",
            reshard_after_forward=True,
        )
    mixed_precision = accelerate_mixed_precision(precision)
    _forget_other_mixed_precision(mixed_precision)
    return Accelerator(
        mixed_precision=mixed_precision,
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        **options,
    )


def _forget_other_mixed_precision(mixed_precision: str) -> None:
    """accelerate keeps one mixed-precision setting per process and refuses another: a second
    fine-tune in the same process (a library user's loop, a test session) may use other
    arithmetic (a LoRA run in bf16 autocasts nothing, a full one does). Its state is dropped
    then; the process group (``PartialState``) stays as it is."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", mixed_precision)) != mixed_precision:
        AcceleratorState._reset_state(reset_partial_state=False)


def _backend() -> str | None:
    """The process group's backend ("gloo", "nccl"), None in a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return str(torch.distributed.get_backend())
    return None
