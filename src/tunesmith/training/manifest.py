"""``tunesmith.json``: what a run (or checkpoint) folder is, so it reloads on its own.

Keys other packages rely on: ``base_model`` (the name as given), ``base_model_path``,
``model_kind``, ``task``, ``method``, ``label_space`` (or null), ``spec`` (the FinetuneSpec),
``hyperparameters`` (resolved), ``data`` (path, sha256 and size of each file), ``metrics``,
``trained_tokens``, ``steps``, ``status`` ("training" until the run completes, then "complete").
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith import __version__
from tunesmith.errors import CheckpointError

if TYPE_CHECKING:
    from tunesmith.models.registry import ResolvedModel
    from tunesmith.training.checkpoint import TrainerState
    from tunesmith.training.run import PreparedData
    from tunesmith.training.spec import FinetuneSpec, ResolvedHyperparameters

MANIFEST_FILE = "tunesmith.json"
METRICS_CSV = "metrics.csv"
FORMAT_VERSION = 1


def build(
    spec: FinetuneSpec,
    resolved: ResolvedModel,
    data: PreparedData,
    hp: ResolvedHyperparameters,
    params: tuple[int, int],
) -> dict[str, Any]:
    def describe(dataset: Any) -> dict[str, Any] | None:
        if dataset is None:
            return None
        return {
            "path": str(dataset.path),
            "sha256": dataset.sha256,
            "n_examples": len(dataset.examples),
            "format": dataset.format.value,
        }

    return {
        "format_version": FORMAT_VERSION,
        "tunesmith_version": __version__,
        "created_at": int(time.time()),
        "status": "training",
        "base_model": spec.model,
        "base_model_path": str(resolved.path),
        "model_kind": resolved.kind.value,
        "task": data.task.value,
        "method": spec.method.value,
        "label_space": data.label_space.to_dict() if data.label_space else None,
        "spec": spec.model_dump(mode="json"),
        "hyperparameters": hp.to_dict(),
        "data": {"train": describe(data.train), "validation": describe(data.validation)},
        "parameters": {"trainable": params[0], "total": params[1]},
        "environment": {"python": platform.python_version(), "machine": platform.machine()},
        "metrics": {},
        "trained_tokens": 0,
        "steps": 0,
    }


def finish(
    meta: dict[str, Any], metrics: dict[str, float], state: TrainerState, stopped_early: bool
) -> dict[str, Any]:
    return meta | {
        "status": "complete",
        "finished_at": int(time.time()),
        "metrics": metrics,
        "trained_tokens": state.total_tokens,
        "steps": state.step,
        "stopped_early": stopped_early,
        "train_seconds": round(state.elapsed_s, 2),
    }


def write(folder: Path, meta: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    tmp.replace(folder / MANIFEST_FILE)


def read(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"{folder} is not a tunesmith run folder (no {MANIFEST_FILE})"
        ) from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data
