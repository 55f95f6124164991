"""Metrics against values worked out by hand on small arrays."""

from __future__ import annotations

import json
import math

import pytest

from tunesmith.data.labels import LabelSpace
from tunesmith.evaluation.metrics import (
    OTHER,
    classification_metrics,
    exact_match,
    label_metrics,
    lm_metrics,
)


def test_binary_metrics_and_auroc():
    space = LabelSpace(["ham", "spam"])
    truth = ["spam", "spam", "ham", "ham", "spam"]
    p_spam = [0.9, 0.4, 0.35, 0.8, 0.7]  # predicts spam, ham, ham, spam, spam
    m = classification_metrics(truth, [{"ham": 1 - p, "spam": p} for p in p_spam], space)
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(0.6)
    # positive class spam: TP 2, FP 1, FN 1
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert m["positive_label"] == "spam"
    assert m["per_class"]["ham"]["f1"] == pytest.approx(0.5)
    assert m["f1_macro"] == pytest.approx(7 / 12)
    assert m["f1_micro"] == pytest.approx(0.6)
    assert m["f1_weighted"] == pytest.approx((3 * 2 / 3 + 2 * 0.5) / 5)
    # 4 of the 6 (spam, ham) pairs have the spam example scored higher
    assert m["auroc"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == {"labels": ["ham", "spam"], "matrix": [[1, 1], [1, 2]]}
    json.dumps(m)  # JSON-ready: no numpy types left


def test_multiclass_metrics_and_one_vs_rest_auroc():
    space = LabelSpace(["a", "b", "c"])
    truth = ["a", "a", "b", "b", "c", "c"]
    predicted = ["a", "b", "b", "b", "c", "a"]
    probs = [{n: 0.8 if n == p else 0.1 for n in space.names} for p in predicted]
    m = classification_metrics(truth, probs, space)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert m["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # one-vs-rest AUROC per class (ties count half): a 5/8, b 7/8, c 6/8
    assert m["auroc_macro_ovr"] == pytest.approx(0.75)
    assert "auroc" not in m


def test_multiclass_auroc_left_out_when_a_class_is_missing():
    space = LabelSpace(["a", "b", "c"])
    m = classification_metrics(["a", "b"], [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], space)
    assert "auroc_macro_ovr" not in m
    assert m["accuracy"] == 1.0


def test_binary_auroc_is_none_with_one_class_only():
    space = LabelSpace(["ham", "spam"])
    m = classification_metrics(["spam", "spam"], [[0.1, 0.9], [0.6, 0.4]], space)
    assert m["auroc"] is None


def test_multilabel_metrics():
    space = LabelSpace(["x", "y", "z"], multi_label=True)
    truth = [["x"], ["x", "y"], ["z"], []]
    predicted = [[1, 0, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]]
    probs = [[0.9 if v else 0.1 for v in row] for row in predicted]
    m = classification_metrics(truth, probs, space)
    assert m["subset_accuracy"] == pytest.approx(0.5)
    assert m["hamming_loss"] == pytest.approx(2 / 12)
    assert m["f1_micro"] == pytest.approx(0.75)  # TP 3, FP 1, FN 1
    assert m["f1_macro"] == pytest.approx((1 + 0 + 1) / 3)
    assert m["per_class"]["y"]["support"] == 1
    json.dumps(m)


def test_unparseable_predictions_count_as_wrong():
    space = LabelSpace(["ham", "spam"])
    m = label_metrics(["spam", "ham", "spam"], ["spam", None, "maybe spam?"], space)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["n_unparsed"] == 2
    assert (m["precision"], m["recall"]) == pytest.approx((1.0, 0.5))
    assert m["confusion_matrix"] == {
        "labels": ["ham", "spam", OTHER],
        "matrix": [[0, 0, 1], [0, 1, 1]],
    }


def test_lm_metrics():
    m = lm_metrics(loss_sum=6.0, n_correct=3, n_tokens=4)
    assert m["loss"] == pytest.approx(1.5)
    assert m["perplexity"] == pytest.approx(math.exp(1.5))
    assert m["token_accuracy"] == pytest.approx(0.75)
    assert lm_metrics(1e6, 0, 1)["perplexity"] == math.inf
    assert math.isnan(lm_metrics(0.0, 0, 0)["loss"])


def test_exact_match_ignores_case_space_and_end_punctuation():
    assert exact_match(["Spam", "ham", "Paris"], [" spam.", "HAM\n", "London"]) == pytest.approx(
        2 / 3
    )
