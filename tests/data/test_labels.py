"""LabelSpace: name order, problem types, encoding and the saved form."""

from __future__ import annotations

import pytest

from tunesmith.data import ClassificationExample, LabelSpace
from tunesmith.data.labels import order_names
from tunesmith.errors import ConfigError


def space(*labels: str | list[str]) -> LabelSpace:
    return LabelSpace.from_examples(
        ClassificationExample("t", label, i) for i, label in enumerate(labels)
    )


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["spam", "ham"], ["ham", "spam"]),
        (["1", "0"], ["0", "1"]),
        (["positive", "negative"], ["negative", "positive"]),
        (["true", "false"], ["false", "true"]),
        (["yes", "no"], ["no", "yes"]),
        # where sorting alone would put the positive class first
        (["normal", "abnormal"], ["normal", "abnormal"]),
        (["fraud", "legit"], ["legit", "fraud"]),
        (["related", "unrelated"], ["unrelated", "related"]),
        (["safe", "unsafe"], ["safe", "unsafe"]),
        (["rotten", "fresh"], ["fresh", "rotten"]),  # unrecognised: sorted
    ],
)
def test_binary_order(names: list[str], expected: list[str]) -> None:
    assert order_names(names, multi_label=False) == expected


def test_binary() -> None:
    labels = space("spam", "ham", "spam")
    assert labels.names == ["ham", "spam"]
    assert (labels.problem_type, labels.num_outputs, labels.positive_label) == ("binary", 1, "spam")
    assert labels.encode("ham") == 0 and labels.encode("spam") == 1
    assert labels.decode(1) == "spam"
    assert labels.decode(0.7) == "spam" and labels.decode(0.2) == "ham"


def test_multiclass() -> None:
    labels = space("LOC", "HUM", "NUM", "HUM")
    assert labels.names == ["HUM", "LOC", "NUM"]
    assert (labels.problem_type, labels.num_outputs, labels.positive_label) == (
        "multiclass",
        3,
        None,
    )
    assert labels.encode("NUM") == 2
    assert labels.decode(1) == "LOC"
    with pytest.raises(ValueError, match="unknown label 'DESC'"):
        labels.encode("DESC")
    with pytest.raises(ValueError, match="needs one label"):
        labels.encode(["HUM"])


def test_multilabel() -> None:
    labels = space(["b", "c"], "a", ["a"])
    assert labels.names == ["a", "b", "c"]
    assert (labels.problem_type, labels.num_outputs) == ("multilabel", 3)
    assert labels.encode(["c", "a"]) == [1.0, 0.0, 1.0]
    assert labels.encode("b") == [0.0, 1.0, 0.0]
    assert labels.decode([0.9, 0.1, 0.6]) == ["a", "c"]


def test_two_names_multilabel_is_not_binary() -> None:
    labels = space(["x", "y"], ["x"])
    assert (labels.problem_type, labels.num_outputs) == ("multilabel", 2)


def test_saved_order_is_kept() -> None:
    labels = LabelSpace(["spam", "ham"], multi_label=False)  # an explicit order is never re-sorted
    restored = LabelSpace.from_dict(labels.to_dict())
    assert restored == labels
    assert restored.names == ["spam", "ham"] and restored.encode("ham") == 1
    assert labels.to_dict() == {
        "names": ["spam", "ham"],
        "multi_label": False,
        "problem_type": "binary",
        "num_outputs": 1,
    }


@pytest.mark.parametrize("names", [["only"], ["a", "a"], ["a", ""]])
def test_invalid_spaces(names: list[str]) -> None:
    with pytest.raises(ConfigError):
        LabelSpace(names)
