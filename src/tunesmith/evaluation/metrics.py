"""Metrics of classification and language-model evaluation, as plain JSON-ready dicts.

Classification metrics come from scikit-learn with ``zero_division=0``: a class never
predicted scores 0 precision instead of raising a warning, which on small evaluation sets is
the common case, not an error. Every average is reported (macro treats classes equally,
micro examples, weighted follows the class frequencies) because on imbalanced data they tell
different stories. For a binary problem ``precision``/``recall``/``f1`` are those of the
positive class, ``names[1]`` (see ``data/labels.py``).

Predictions outside the label space (an unparseable generated answer) count as wrong: they
appear in the confusion matrix as an extra ``OTHER`` column and in no class's precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    hamming_loss,
    precision_recall_fscore_support,
    roc_auc_score,
)

OTHER = "(other)"  # the confusion-matrix column of predictions outside the label space

Probabilities = Sequence[Mapping[str, float]] | Sequence[Sequence[float]] | np.ndarray
Label = str | Sequence[str]


class LabelSpaceLike(Protocol):
    """What the metrics need of ``tunesmith.data.labels.LabelSpace``."""

    @property
    def names(self) -> list[str]: ...

    @property
    def problem_type(self) -> str: ...


def classification_metrics(
    y_true: Sequence[Label],
    y_prob: Probabilities,
    label_space: LabelSpaceLike,
    *,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """All metrics of a classifier from true labels (names) and predicted probabilities.

    ``y_prob`` is one ``{name: probability}`` per example (what ``classify`` returns) or an
    array ``[n, len(names)]`` in the label space's order.
    """
    names = list(label_space.names)
    probs = _as_matrix(y_prob, names)
    if label_space.problem_type == "multilabel":
        truth = _multi_hot(y_true, names)
        result = _multilabel_metrics(truth, (probs >= threshold).astype(int), names)
        result["auroc_macro"] = _safe_auroc(truth, probs, average="macro")
        return result
    predicted = [names[i] for i in probs.argmax(axis=1)]
    result = label_metrics(y_true, predicted, label_space)
    truth_index = np.array([names.index(str(t)) if t in names else -1 for t in y_true])
    if label_space.problem_type == "binary":
        result["auroc"] = _safe_auroc((truth_index == 1).astype(int), probs[:, 1])
    elif set(truth_index.tolist()) == set(range(len(names))):
        result["auroc_macro_ovr"] = _safe_auroc(
            truth_index, probs, average="macro", multi_class="ovr"
        )
    return result


def label_metrics(
    y_true: Sequence[Label],
    y_pred: Sequence[Label | None],
    label_space: LabelSpaceLike,
) -> dict[str, Any]:
    """Metrics from hard predictions (names; None or unknown names count as wrong)."""
    names = list(label_space.names)
    if label_space.problem_type == "multilabel":
        truth = _multi_hot(y_true, names)
        predicted = _multi_hot([p or [] for p in y_pred], names)
        return _multilabel_metrics(truth, predicted, names)
    truth_names = [str(t) for t in y_true]
    pred = [p if isinstance(p, str) and p in names else OTHER for p in y_pred]
    result: dict[str, Any] = {
        "n": len(truth_names),
        "problem_type": label_space.problem_type,
        "accuracy": float(accuracy_score(truth_names, pred)) if truth_names else 0.0,
    }
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            truth_names, pred, labels=names, average=average, zero_division=0
        )
        result |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    if label_space.problem_type == "binary":
        p, r, f, _ = precision_recall_fscore_support(
            truth_names, pred, labels=[names[1]], average=None, zero_division=0
        )
        result |= {"positive_label": names[1], "precision": p[0], "recall": r[0], "f1": f[0]}
    result["per_class"] = _per_class(truth_names, pred, names)
    result["confusion_matrix"] = _confusion(truth_names, pred, names)
    result["n_unparsed"] = sum(1 for p in pred if p == OTHER)
    return _floats(result)


def lm_metrics(loss_sum: float, n_correct: int, n_tokens: int) -> dict[str, float]:
    """Mean loss per target token, its perplexity, and the share of tokens predicted right.

    Sums come in, not means, so that batches of different sizes weigh every token the same
    (the training loop reports ``valid_loss`` the same way).
    """
    if n_tokens == 0:
        return {"loss": math.nan, "perplexity": math.nan, "token_accuracy": math.nan, "n_tokens": 0}
    loss = loss_sum / n_tokens
    perplexity = math.exp(loss) if loss < 700 else math.inf  # exp overflows past ~709
    return {
        "loss": loss,
        "perplexity": perplexity,
        "token_accuracy": n_correct / n_tokens,
        "n_tokens": n_tokens,
    }


def normalize_answer(text: str) -> str:
    """Case-folded, inner whitespace collapsed, outer whitespace and end punctuation gone."""
    return " ".join(text.split()).casefold().strip(" .!?;:,'\"`")


def exact_match(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Share of predictions equal to their reference after ``normalize_answer``."""
    if not references:
        return 0.0
    hits = sum(
        normalize_answer(r) == normalize_answer(p)
        for r, p in zip(references, predictions, strict=True)
    )
    return hits / len(references)


# --- helpers -------------------------------------------------------------------------------


def _as_matrix(y_prob: Probabilities, names: list[str]) -> np.ndarray:
    rows = list(y_prob)
    if rows and isinstance(rows[0], Mapping):
        return np.array([[row[name] for name in names] for row in rows], dtype=float)
    return np.asarray(rows, dtype=float).reshape(len(rows), len(names))


def _multi_hot(labels: Sequence[Label], names: list[str]) -> np.ndarray:
    """Rows of 0/1 per name; a single string counts as a one-label list."""
    hot = np.zeros((len(labels), len(names)), dtype=int)
    for row, label in enumerate(labels):
        for name in [label] if isinstance(label, str) else label:
            if name in names:
                hot[row, names.index(name)] = 1
    return hot


def _multilabel_metrics(truth: np.ndarray, pred: np.ndarray, names: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "n": int(truth.shape[0]),
        "problem_type": "multilabel",
        "subset_accuracy": float(accuracy_score(truth, pred)) if len(truth) else 0.0,
        "hamming_loss": float(hamming_loss(truth, pred)) if len(truth) else 0.0,
    }
    result["accuracy"] = result["subset_accuracy"]
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(truth, pred, average=average, zero_division=0)
        result |= {f"precision_{average}": p, f"recall_{average}": r, f"f1_{average}": f}
    per_p, per_r, per_f, support = precision_recall_fscore_support(
        truth, pred, average=None, zero_division=0
    )
    result["per_class"] = {
        name: {"precision": per_p[i], "recall": per_r[i], "f1": per_f[i], "support": support[i]}
        for i, name in enumerate(names)
    }
    return _floats(result)


def _per_class(truth: list[str], pred: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    p, r, f, support = precision_recall_fscore_support(
        truth, pred, labels=names, average=None, zero_division=0
    )
    return {
        name: {"precision": p[i], "recall": r[i], "f1": f[i], "support": support[i]}
        for i, name in enumerate(names)
    }


def _confusion(truth: list[str], pred: list[str], names: list[str]) -> dict[str, Any]:
    """Rows are true labels, columns predictions; ``OTHER`` added only when it occurs."""
    columns = [*names, OTHER] if OTHER in pred else names
    matrix = confusion_matrix(truth, pred, labels=columns)
    return {"labels": columns, "matrix": matrix[: len(names)].tolist()}


def _safe_auroc(truth: np.ndarray, scores: np.ndarray, **kwargs: Any) -> float | None:
    """AUROC, or None where it is undefined: a class (or, multi-label, a label's presence
    or absence) missing from the truth. Checked up front, since scikit-learn warns then."""
    if len(truth) == 0:
        return None
    # multi-label: each label must be present and absent somewhere; else the classes differ
    columns = list(truth.T) if truth.ndim == 2 else [truth]
    if any(len(np.unique(column)) < 2 for column in columns):
        return None
    try:
        value = float(roc_auc_score(truth, scores, **kwargs))
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _floats(value: Any) -> Any:
    """numpy scalars to Python numbers, recursively, so the result is JSON-ready."""
    if isinstance(value, dict):
        return {k: _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


__all__ = [
    "OTHER",
    "classification_metrics",
    "exact_match",
    "label_metrics",
    "lm_metrics",
    "normalize_answer",
]
