"""Calibrated class probabilities: temperature scaling, fitted on held-out data.

A fine-tuned classifier ranks well long before its probabilities mean what they say: trained
to a low loss on a small set, it is usually over-confident. Temperature scaling (Guo et al.,
"On Calibration of Modern Neural Networks", 2017) divides the head's logits by one number T,
fitted on held-out data by minimising the negative log-likelihood. One parameter cannot
overfit a few hundred examples, and dividing by T never changes which class is most likely,
so accuracy, F1 and AUROC stay exactly as they were; only the probabilities move.

    calibration = calibrate_run(run_dir, "validation.jsonl", settings=settings)
    print(calibration.temperature, calibration.ece_before, calibration.ece_after)

The fit is stored as ``<run>/calibration.json``; ``tunesmith predict`` (``predict_lines``)
applies it whenever a run folder holds one. The logits are recovered from the probabilities
``classify`` returns (clipped away from 0 and 1), so any classifier it serves can be
calibrated; binary and multi-class only (multi-label would need one T per label).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.errors import ConfigError

CALIBRATION_FILE = "calibration.json"
ECE_BINS = 10
_EPS = 1e-7
_T_RANGE = (0.05, 20.0)


@dataclass
class Calibration:
    """A fitted temperature and what it did on the data it was fitted on."""

    temperature: float
    n_examples: int
    fitted_on: str
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    method: str = "temperature"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def logits_of(probabilities: np.ndarray, problem_type: str) -> np.ndarray:
    """Logits giving these probabilities: one column (binary) or log-probabilities."""
    p = np.clip(probabilities, _EPS, 1 - _EPS)
    if problem_type == "binary":
        return np.log(p[:, 1] / (1 - p[:, 1]))
    if problem_type == "multiclass":
        return np.log(p)
    raise ConfigError(f"temperature scaling covers binary and multiclass, not {problem_type}")


def scaled(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Per-class probabilities ``[n, classes]`` of logits divided by ``temperature``."""
    z = logits / temperature
    if z.ndim == 1:  # binary: sigmoid of the one logit is P(class 1)
        positive = 1 / (1 + np.exp(-z))
        return np.stack([1 - positive, positive], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    chosen = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(chosen, _EPS, 1.0)).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] of least NLL: a log-spaced grid, then golden-section refinement
    (the NLL is smooth and, in practice, has one minimum in T)."""
    grid = np.geomspace(*_T_RANGE, num=121)
    losses = [negative_log_likelihood(scaled(logits, t), labels) for t in grid]
    best = int(np.argmin(losses))
    low, high = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        loss_a = negative_log_likelihood(scaled(logits, float(np.exp(a))), labels)
        loss_b = negative_log_likelihood(scaled(logits, float(np.exp(b))), labels)
        low, high = (low, b) if loss_a < loss_b else (a, high)
    return float(np.exp((low + high) / 2))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS
) -> float:
    """Top-label ECE: the gap between confidence and accuracy, averaged over equal-width
    confidence bins weighted by how many predictions fall in each."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            total += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(total)


def calibrate(
    probabilities: Sequence[dict[str, float]],
    labels: Sequence[str],
    names: Sequence[str],
    problem_type: str,
    *,
    fitted_on: str = "",
) -> Calibration:
    """Fit a temperature to ``classify``'s output on held-out examples with known labels."""
    if len(probabilities) < 2:
        raise ConfigError("calibration needs at least two held-out examples")
    matrix = np.array([[p[name] for name in names] for p in probabilities], dtype=np.float64)
    index = {name: i for i, name in enumerate(names)}
    truth = np.array([index[label] for label in labels])
    logits = logits_of(matrix, problem_type)
    temperature = fit_temperature(logits, truth)
    before, after = scaled(logits, 1.0), scaled(logits, temperature)
    return Calibration(
        temperature=round(temperature, 4),
        n_examples=len(truth),
        fitted_on=fitted_on,
        ece_before=round(expected_calibration_error(before, truth), 4),
        ece_after=round(expected_calibration_error(after, truth), 4),
        nll_before=round(negative_log_likelihood(before, truth), 4),
        nll_after=round(negative_log_likelihood(after, truth), 4),
    )


def apply_calibration(
    probabilities: Sequence[dict[str, float]], calibration: Calibration, problem_type: str
) -> list[dict[str, float]]:
    """``classify``'s probabilities with the fitted temperature applied."""
    if not probabilities:
        return []
    names = list(probabilities[0])
    matrix = np.array([[p[name] for name in names] for p in probabilities], dtype=np.float64)
    out = scaled(logits_of(matrix, problem_type), calibration.temperature)
    return [dict(zip(names, row.tolist(), strict=True)) for row in out]


def save_calibration(run_dir: Path, calibration: Calibration) -> Path:
    path = Path(run_dir) / CALIBRATION_FILE
    path.write_text(json.dumps(calibration.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def load_calibration(run_dir: Path | str) -> Calibration | None:
    """The run folder's calibration, or None when it has none."""
    path = Path(run_dir).expanduser() / CALIBRATION_FILE
    if not path.is_file():
        return None
    return Calibration(**json.loads(path.read_text(encoding="utf-8")))


def calibrate_run(run_dir: Path, data: Path | str, *, settings: Any) -> Calibration:
    """Score ``data`` (held-out, labelled) with the run's classifier, fit a temperature, and
    store it in the run folder, where prediction picks it up."""
    from tunesmith.data.formats import ClassificationExample
    from tunesmith.data.reading import load_dataset
    from tunesmith.inference.classification import classify
    from tunesmith.models.loading import load_any
    from tunesmith.tasks import Task

    loaded = load_any(run_dir, settings, task=Task.CLASSIFICATION)
    dataset = load_dataset(data)
    examples = [e for e in dataset.examples if isinstance(e, ClassificationExample)]
    space = loaded.label_space
    assert space is not None  # a classification run always records its label space
    probabilities = classify(loaded.model, loaded.tokenizer, [e.text for e in examples], space)
    calibration = calibrate(
        probabilities,
        [str(e.label) for e in examples],
        space.names,
        space.problem_type,
        fitted_on=Path(data).name,
    )
    save_calibration(run_dir, calibration)
    return calibration
