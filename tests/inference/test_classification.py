"""Class probabilities from tiny random classifiers (BERT-style and Llama-style heads)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.inference.tiny_models import tiny_classifier
from tunesmith.data.labels import LabelSpace
from tunesmith.inference.classification import classify, predicted_labels, to_probabilities

TEXTS = ["free prize now", "see you at lunch", "a", "meeting moved to three o'clock, ok?"]


@pytest.mark.parametrize("decoder", [False, True])
def test_multiclass_probabilities_sum_to_one_and_ignore_batching(tokenizer, decoder):
    space = LabelSpace(["a", "b", "c"])
    model = tiny_classifier(tokenizer, 3, decoder=decoder)
    together = classify(model, tokenizer, TEXTS, space)
    one_by_one = classify(model, tokenizer, TEXTS, space, batch_size=1)
    for probs, alone in zip(together, one_by_one, strict=True):
        assert list(probs) == ["a", "b", "c"]
        assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-6)
        for name in probs:
            assert probs[name] == pytest.approx(alone[name], abs=1e-5)


def test_binary_single_logit_is_the_positive_class(tokenizer):
    space = LabelSpace(["ham", "spam"])
    model = tiny_classifier(tokenizer, 1)
    (probs,) = classify(model, tokenizer, TEXTS[:1], space)
    inputs = tokenizer(TEXTS[:1], return_tensors="pt")
    with torch.no_grad():
        logit = model(**inputs).logits[0, 0]
    assert probs["spam"] == pytest.approx(torch.sigmoid(logit).item(), abs=1e-6)
    assert probs["ham"] + probs["spam"] == pytest.approx(1.0)


def test_multilabel_sigmoid_per_label_and_threshold():
    logits = torch.tensor([[0.0, 2.0, -2.0]])
    space = LabelSpace(["x", "y", "z"], multi_label=True)
    (row,) = to_probabilities(logits, "multilabel")
    assert row[0] == pytest.approx(0.5)
    assert row[1] == pytest.approx(1 / (1 + math.exp(-2)))
    probs = [dict(zip(space.names, row, strict=True))]
    assert predicted_labels(probs, space) == [["x", "y"]]


def test_two_output_binary_head_reads_as_softmax():
    (row,) = to_probabilities(torch.tensor([[0.0, math.log(3.0)]]), "binary")
    assert row == pytest.approx([0.25, 0.75])


def test_truncation_to_max_length(tokenizer):
    space = LabelSpace(["a", "b", "c"])
    model = tiny_classifier(tokenizer, 3)
    long_text = "x" * 2000  # longer than the model's 512 positions
    (probs,) = classify(model, tokenizer, [long_text], space, max_length=16)
    (same,) = classify(model, tokenizer, ["x" * 16], space)
    assert probs == pytest.approx(same)
    assert classify(model, tokenizer, [long_text], space)  # capped at the model's limit
