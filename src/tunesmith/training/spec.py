"""What a fine-tune is asked to do: the spec (a pydantic model) and how "auto" resolves.

A ``FinetuneSpec`` is the one input of ``tunesmith.finetune``; the CLI flags, the Python API
and the server's job request all build one. Every hyperparameter may be ``"auto"``;
``resolve_hyperparameters`` turns a spec plus the facts of the data and model into concrete
numbers, and the resolved values are what gets recorded in ``tunesmith.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunesmith.errors import ConfigError
from tunesmith.tasks import Method, ModelKind, Task

Auto = Literal["auto"]

# OpenAI's epoch heuristic (from its chat fine-tuning data-prep guide): aim for between
# 100 and 25,000 example-passes, 3 epochs when the data size allows it.
DEFAULT_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_EPOCHS = 1
MAX_EPOCHS = 25

# Base learning rates per method; OpenAI's ``learning_rate_multiplier`` scales these.
# Encoders (BERT style) tolerate higher full-fine-tune rates than decoders of the same size.
BASE_LEARNING_RATES: dict[tuple[Method, ModelKind], float] = {
    (Method.LORA, ModelKind.CAUSAL): 2e-4,
    (Method.LORA, ModelKind.ENCODER): 5e-4,
    (Method.LORA, ModelKind.SEQ2SEQ): 3e-4,
    (Method.FULL, ModelKind.CAUSAL): 2e-5,
    (Method.FULL, ModelKind.ENCODER): 5e-5,
    (Method.FULL, ModelKind.SEQ2SEQ): 1e-4,
    (Method.HEAD, ModelKind.CAUSAL): 1e-4,
    (Method.HEAD, ModelKind.ENCODER): 1e-3,
    (Method.HEAD, ModelKind.SEQ2SEQ): 1e-4,
}

# Longest sequence used when max_seq_length is "auto" and the model allows more: CPU
# training cost grows faster than linearly with length, and few fine-tuning examples need more.
AUTO_MAX_SEQ_LENGTH = 2048


class Hyperparameters(BaseModel):
    """Training settings. Each ``"auto"`` is resolved from the data and model."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: int | Auto = Field("auto", description="Passes over the training set.")
    batch_size: int | Auto = Field("auto", description="Examples per optimizer step.")
    learning_rate: float | Auto = Field(
        "auto", description="Peak learning rate; 'auto' = method default x multiplier."
    )
    learning_rate_multiplier: float | Auto = Field(
        "auto", description="OpenAI-style scale over the method's default rate ('auto' = 1.0)."
    )
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="Share of steps warming up.")
    lr_scheduler: Literal["linear", "cosine", "constant"] = "linear"
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_seq_length: int | Auto = Field(
        "auto", description="Tokens per example; longer examples are truncated with a warning."
    )
    weight_decay: float = Field(0.0, ge=0.0)
    dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="Overrides the model's dropout; None keeps it."
    )
    max_grad_norm: float | None = Field(1.0, gt=0.0)
    seed: int = 42
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout on the LoRA input (decision 008: off)."
    )
    lora_target_modules: str | list[str] = Field(
        "all-linear", description="'all-linear' or module names such as ['q_proj', 'v_proj']."
    )
    head_layers: int = Field(
        1, ge=0, description="With method 'head': top transformer blocks trained besides the head."
    )
    eval_every: int | Auto = Field("auto", description="Steps between validation passes.")
    checkpoint_every: int | Auto = Field("auto", description="Steps between checkpoints.")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many evaluations without a better valid_loss."
    )

    @model_validator(mode="after")
    def _check_positive(self) -> Hyperparameters:
        problems = []
        for name in ("n_epochs", "batch_size", "max_seq_length", "eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if value != "auto" and value < 1:
                problems.append(f"{name} must be 'auto' or an integer >= 1, got {value}")
        for name in ("learning_rate", "learning_rate_multiplier"):
            value = getattr(self, name)
            if value != "auto" and value <= 0:
                problems.append(f"{name} must be 'auto' or a number > 0, got {value}")
        if self.learning_rate != "auto" and self.learning_rate_multiplier != "auto":
            problems.append(
                "set learning_rate or learning_rate_multiplier, not both: the multiplier scales "
                "the method's default rate"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class FinetuneSpec(BaseModel):
    """Everything a fine-tune needs. Build one and pass it to ``tunesmith.finetune``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="Packaged id, local HF folder, or hub id (when online).")
    train_file: Path
    validation_file: Path | None = None
    validation_split: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="Hold out this share of train_file when no validation file.",
    )
    task: Task | None = Field(None, description="None: inferred from the data format.")
    method: Method = Method.LORA
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    output_dir: Path | None = Field(None, description="None: <data_dir>/runs/<run name>.")
    suffix: str | None = Field(None, max_length=64, description="Added to the run's name.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="'auto': bf16 autocast where the hardware multiplies bf16 natively (GPUs "
        "of Ampere or later, CPUs with AVX512-BF16 or AMX), fp32 elsewhere "
        "(training/precision.py).",
    )
    deidentify: bool = Field(
        False,
        description="De-identify every text field of the training and validation files into "
        "<run>/data/ before anything reads them, and train on those (training/deidentified.py).",
    )
    deidentify_mode: Literal["placeholder", "surrogate"] = Field(
        "placeholder",
        description="With deidentify: typed placeholders ([NAME], [DATE]) or consistent "
        "surrogates (fake names, dates shifted per record).",
    )
    deidentify_record_key: str | None = Field(
        None,
        description="With deidentify: the field naming a record's owner (e.g. patient_id), so "
        "one patient's lines share surrogates; its values become keyed pseudonyms.",
    )

    @model_validator(mode="after")
    def _check(self) -> FinetuneSpec:
        problems = []
        if self.validation_file is not None and self.validation_split > 0:
            problems.append("give validation_file or validation_split, not both")
        if not self.deidentify and (
            self.deidentify_mode != "placeholder" or self.deidentify_record_key
        ):
            problems.append(
                "deidentify_mode and deidentify_record_key apply only with deidentify=True"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass
class ResolvedHyperparameters:
    """Concrete numbers after "auto" is resolved; recorded with every run."""

    n_epochs: int
    batch_size: int
    learning_rate: float
    learning_rate_multiplier: float
    warmup_ratio: float
    lr_scheduler: str
    gradient_accumulation_steps: int
    max_seq_length: int
    weight_decay: float
    dropout: float | None
    max_grad_norm: float | None
    seed: int
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_target_modules: str | list[str]
    head_layers: int
    eval_every: int
    checkpoint_every: int
    early_stopping_patience: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auto_epochs(n_examples: int) -> int:
    """OpenAI's heuristic: 3 epochs, more for tiny sets, fewer for huge ones."""
    if n_examples <= 0:
        return DEFAULT_EPOCHS
    if n_examples * DEFAULT_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / n_examples))
    if n_examples * DEFAULT_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return DEFAULT_EPOCHS


def auto_batch_size(n_examples: int) -> int:
    """About 0.2% of the examples (OpenAI's rule), a power of two in [4, 32], at most n."""
    target = max(1.0, n_examples * 0.002)
    power = 2 ** round(math.log2(target))
    return max(1, min(n_examples, max(4, min(32, power))))


def auto_interval(total_steps: int, evaluations: int = 10) -> int:
    """Steps between evaluations/checkpoints so a run has about ``evaluations`` of them."""
    return max(1, math.ceil(total_steps / max(1, evaluations)))


# A validation pass (forward only) costs about a third of training on as many examples; auto
# evaluation keeps all passes together under this share of the training compute.
EVAL_BUDGET_SHARE = 0.25
MAX_AUTO_EVALUATIONS = 10


def auto_evaluations(n_train_examples: int, n_epochs: int, n_validation_examples: int) -> int:
    """How many validation passes "auto" affords: up to 10, within the evaluation budget."""
    if n_validation_examples == 0:
        return 1
    affordable = EVAL_BUDGET_SHARE * 3 * n_train_examples * n_epochs / n_validation_examples
    return max(1, min(MAX_AUTO_EVALUATIONS, math.floor(affordable)))


def resolve_hyperparameters(
    hp: Hyperparameters,
    *,
    n_train_examples: int,
    n_validation_examples: int = 0,
    method: Method,
    model_kind: ModelKind,
    model_max_length: int | None,
) -> ResolvedHyperparameters:
    """Turn every "auto" into a number, and check the combination once, listing all problems."""
    n_epochs = auto_epochs(n_train_examples) if hp.n_epochs == "auto" else hp.n_epochs
    batch_size = auto_batch_size(n_train_examples) if hp.batch_size == "auto" else hp.batch_size
    multiplier = 1.0 if hp.learning_rate_multiplier == "auto" else hp.learning_rate_multiplier
    if hp.learning_rate == "auto":
        learning_rate = BASE_LEARNING_RATES[(method, model_kind)] * multiplier
    else:
        learning_rate = hp.learning_rate
    context = model_max_length or AUTO_MAX_SEQ_LENGTH
    if hp.max_seq_length == "auto":
        max_seq_length = min(context, AUTO_MAX_SEQ_LENGTH)
    else:
        max_seq_length = hp.max_seq_length

    problems = []
    if max_seq_length > context:
        problems.append(
            f"max_seq_length {max_seq_length} exceeds the model's context of {context} tokens; "
            f"use {context} or less"
        )
    if n_train_examples < 1:
        problems.append("the training set has no examples")
    if problems:
        raise ConfigError(problems)

    steps_per_epoch = max(
        1, math.ceil(n_train_examples / (batch_size * hp.gradient_accumulation_steps))
    )
    total_steps = steps_per_epoch * n_epochs
    if hp.eval_every == "auto":
        evaluations = auto_evaluations(n_train_examples, n_epochs, n_validation_examples)
        eval_every = auto_interval(total_steps, evaluations)
    else:
        eval_every = hp.eval_every
    if hp.checkpoint_every == "auto":
        checkpoint_every = auto_interval(total_steps)
    else:
        checkpoint_every = hp.checkpoint_every
    return ResolvedHyperparameters(
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        learning_rate_multiplier=multiplier,
        warmup_ratio=hp.warmup_ratio,
        lr_scheduler=hp.lr_scheduler,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
        max_seq_length=max_seq_length,
        weight_decay=hp.weight_decay,
        dropout=hp.dropout,
        max_grad_norm=hp.max_grad_norm,
        seed=hp.seed,
        lora_r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        lora_target_modules=hp.lora_target_modules,
        head_layers=hp.head_layers,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        early_stopping_patience=hp.early_stopping_patience,
    )
