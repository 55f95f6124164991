"""``check_dataset``: the data report plus what training on it would cost.

This is what ``tunesmith data validate`` and the dashboard's dataset page show: the
validator's errors, warnings and statistics (``data/validation.py``) and, from the token
counts, the epochs "auto" would pick, the tokens to be trained and a time estimate for this
machine (``estimate.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunesmith.data.validation import ValidationReport, validate_file
from tunesmith.settings import Settings
from tunesmith.tasks import Method
from tunesmith.training.estimate import TrainingEstimate, estimate_training
from tunesmith.training.spec import AUTO_MAX_SEQ_LENGTH


@dataclass
class DatasetCheck:
    report: ValidationReport
    estimate: TrainingEstimate | None
    model: str | None
    max_seq_length: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report.to_dict(),
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "model": self.model,
            "max_seq_length": self.max_seq_length,
        }


def check_dataset(
    file: Path,
    *,
    settings: Settings,
    validation: Path | None = None,
    model: str | None = None,
    method: Method = Method.LORA,
    max_seq_length: int | None = None,
    n_epochs: int | str = "auto",
    batch_size: int | str = "auto",
) -> DatasetCheck:
    """Validate ``file``; with ``model``, count tokens and estimate the training cost."""
    tokenizer = None
    n_params = None
    if model is not None:
        from tunesmith.models.loading import load_tokenizer
        from tunesmith.models.registry import resolve_model

        resolved = resolve_model(model, settings)
        tokenizer = load_tokenizer(resolved.path, settings)
        context = resolved.max_length or AUTO_MAX_SEQ_LENGTH
        max_seq_length = max_seq_length or min(context, AUTO_MAX_SEQ_LENGTH)
        n_params = count_parameters_of(resolved.path, settings)
    report = validate_file(
        file, tokenizer=tokenizer, validation_path=validation, max_seq_length=max_seq_length
    )
    estimate = None
    stats = report.stats
    if stats is not None and stats.n_examples > 0:
        tokens = stats.tokens.total if stats.tokens is not None else 0
        estimate = estimate_training(
            n_examples=stats.n_examples,
            tokens_per_epoch=tokens,
            n_params=n_params,
            method=method,
            n_epochs=n_epochs,
            batch_size=batch_size,
        )
    return DatasetCheck(
        report=report, estimate=estimate, model=model, max_seq_length=max_seq_length
    )


def count_parameters_of(path: Path, settings: Settings) -> int:
    """The parameters of the model at ``path`` that cost FLOPs per token, counted on the meta
    device (no weights loaded). Embedding tables are left out: a lookup multiplies nothing, and
    they are a large share of small models (28M of SmolLM2-135M's, half of MiniLM's)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path, trust_remote_code=settings.trust_remote_code)
    with torch.device("meta"):
        model = AutoModel.from_config(config, trust_remote_code=settings.trust_remote_code)
    embeddings = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    }
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)
