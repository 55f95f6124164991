"""tunesmith: self-hosted fine-tuning of pre-trained language models.

The Python API mirrors the CLI: build a ``FinetuneSpec``, call ``finetune``, get a
``FinetuneResult`` with the run folder and metrics::

    import tunesmith

    spec = tunesmith.FinetuneSpec(model="smollm2-135m-instruct", train_file="train.jsonl",
                                  validation_file="valid.jsonl")
    result = tunesmith.finetune(spec)
    report = tunesmith.evaluate(result.output_dir, "valid.jsonl", baseline=spec.model)

Names are imported lazily so that ``import tunesmith`` (and ``tunesmith --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "FinetuneSpec": "tunesmith.training.spec",
    "Hyperparameters": "tunesmith.training.spec",
    "FinetuneResult": "tunesmith.training.run",
    "finetune": "tunesmith.training.run",
    "resume_run": "tunesmith.training.run",
    "evaluate": "tunesmith.evaluation.evaluate",
    "EvaluationReport": "tunesmith.evaluation.evaluate",
    "validate_file": "tunesmith.data.validation",
    "ValidationReport": "tunesmith.data.validation",
    "check_dataset": "tunesmith.training.planning",
    "load_dataset": "tunesmith.data.reading",
    "list_models": "tunesmith.models.registry",
    "resolve_model": "tunesmith.models.registry",
    "TrainingCallback": "tunesmith.training.callbacks",
    "BaseCallback": "tunesmith.training.callbacks",
    "Settings": "tunesmith.settings",
    "load_settings": "tunesmith.settings",
    "Task": "tunesmith.tasks",
    "Method": "tunesmith.tasks",
    "ModelKind": "tunesmith.tasks",
    "TunesmithError": "tunesmith.errors",
    "ConfigError": "tunesmith.errors",
    "DataError": "tunesmith.errors",
    "DataIssue": "tunesmith.errors",
    "ModelError": "tunesmith.errors",
    "CheckpointError": "tunesmith.errors",
    "TrainingInterrupted": "tunesmith.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tunesmith' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
