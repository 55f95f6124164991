"""Temperature scaling: the fit recovers a known temperature, lowers the calibration error,
never changes a prediction, and is stored in and read from the run folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunesmith.errors import ConfigError
from tunesmith.inference.calibration import (
    Calibration,
    apply_calibration,
    calibrate,
    expected_calibration_error,
    fit_temperature,
    load_calibration,
    save_calibration,
    scaled,
)


def _overconfident(n: int = 4000, true_t: float = 2.5, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Binary logits whose calibrated version is ``z``; the model reports ``z * true_t``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return z * true_t, labels


def test_the_fit_recovers_the_temperature() -> None:
    logits, labels = _overconfident()
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)


def test_calibrate_lowers_the_error_and_keeps_every_prediction() -> None:
    logits, labels = _overconfident()
    p1 = 1 / (1 + np.exp(-logits))
    probs = [{"no": 1 - p, "yes": p} for p in p1]
    names = ["no", "yes"]
    fitted = calibrate(probs, [names[y] for y in labels], names, "binary", fitted_on="v.jsonl")
    assert fitted.ece_after < fitted.ece_before / 2
    assert fitted.nll_after < fitted.nll_before
    after = apply_calibration(probs, fitted, "binary")
    assert [max(p, key=p.get) for p in after] == [max(p, key=p.get) for p in probs]
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in after)


def test_multiclass_scaling_is_a_softmax_of_scaled_log_probabilities() -> None:
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    out = scaled(logits, 1.0)
    assert out == pytest.approx(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    assert scaled(logits, 100.0) == pytest.approx(np.full((2, 3), 1 / 3), abs=0.01)


def test_ece_of_a_perfectly_calibrated_bin_is_zero() -> None:
    probs = np.array([[0.25, 0.75]] * 4)
    assert expected_calibration_error(probs, np.array([1, 1, 1, 0])) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.array([1, 1, 1, 1])) == pytest.approx(0.25)


def test_stored_in_the_run_folder(tmp_path: Path) -> None:
    assert load_calibration(tmp_path) is None
    fitted = Calibration(1.7, 100, "valid.jsonl", 0.2, 0.05, 0.8, 0.6)
    save_calibration(tmp_path, fitted)
    assert load_calibration(tmp_path) == fitted


def test_multilabel_is_refused() -> None:
    with pytest.raises(ConfigError, match="binary and multiclass"):
        calibrate([{"a": 0.9, "b": 0.8}] * 2, ["a", "b"], ["a", "b"], "multilabel")
