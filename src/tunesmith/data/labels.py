"""The label space of a classification dataset: names, their order, and how labels encode.

Three problem types, each with its own head and loss (the training loop picks the loss from
``problem_type``; Hugging Face's own rule would treat a one-output head as regression):

============  =======================  ===========  ====================================
problem_type  when                     num_outputs  loss, and label encoding
============  =======================  ===========  ====================================
binary        2 names, single label    1            BCE on one logit; label 0 or 1;
                                                    P(names[1]) = sigmoid(logit)
multiclass    3+ names, single label   len(names)   cross-entropy; label = class index
multilabel    any label is a list      len(names)   BCE per output; label = multi-hot list
============  =======================  ===========  ====================================

Name order is fixed once, from the training data, and saved with the run (``to_dict``), so
index ``i`` means the same class at training, evaluation and inference. The rule:

1. names are sorted (Python string order);
2. except that a binary pair is put as (negative, positive) when it is recognisable: a known
   pair such as ``normal``/``abnormal`` or ``legit``/``fraud`` (the tables below), or else a
   name and its negation, the negation being the negative class (``related``/``unrelated``,
   ``toxic``/``non-toxic``). The tables win: in ``safe``/``unsafe`` the negation is positive.

Sorting already gives (negative, positive) for the common pairs — ``0``/``1``,
``false``/``true``, ``no``/``yes``, ``ham``/``spam``, ``negative``/``positive`` — so rule 2
only changes the pairs where it would not. The positive class, ``names[1]``, is the one whose
probability a binary model outputs and the one precision/recall are reported for. Multi-label
spaces are always sorted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tunesmith.data.formats import ClassificationExample
from tunesmith.errors import ConfigError

ProblemType = Literal["binary", "multiclass", "multilabel"]

# Known (negative, positive) words; compared lower-cased with separators normalised.
NEGATIVE_NAMES = frozenset(
    {"0", "-1", "false", "f", "no", "n", "negative", "neg", "ham", "not_spam", "normal"}
    | {"benign", "legit", "legitimate", "genuine", "clean", "safe", "off", "real"}
)
POSITIVE_NAMES = frozenset(
    {"1", "true", "t", "yes", "y", "positive", "pos", "spam", "abnormal", "malignant"}
    | {"fraud", "fraudulent", "fake", "toxic", "unsafe", "on"}
)
_NEGATION = re.compile(r"^(?:not|non|no|un|in|ir|im|il)[ _-]?(.+)$")


def _normal(name: str) -> str:
    return re.sub(r"[\s_-]+", "_", name.strip().lower())


def _is_negation_of(candidate: str, other: str) -> bool:
    """``non-toxic`` negates ``toxic``; ``irrelevant`` negates ``relevant``."""
    match = _NEGATION.match(_normal(candidate))
    return match is not None and match.group(1) == _normal(other)


def order_names(names: Iterable[str], *, multi_label: bool) -> list[str]:
    """The canonical order of class names (see the module docstring for the rule)."""
    ordered = sorted(set(names))
    if len(ordered) != 2 or multi_label:
        return ordered
    a, b = ordered
    # The table wins over the negation rule: in safe/unsafe the negation is the positive class.
    if _normal(a) in NEGATIVE_NAMES and _normal(b) in POSITIVE_NAMES:
        return ordered
    if _normal(b) in NEGATIVE_NAMES and _normal(a) in POSITIVE_NAMES:
        return [b, a]
    if _is_negation_of(b, a):
        return [b, a]
    return ordered


@dataclass(frozen=True)
class LabelSpace:
    """Class names in index order, and whether an example may have several labels."""

    names: list[str]
    multi_label: bool = False
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        if len(self.names) < 2:
            problems.append(
                f"classification needs at least 2 classes, found {len(self.names)}: {self.names}"
            )
        if len(set(self.names)) != len(self.names):
            problems.append(f"class names repeat: {self.names}")
        if any(not isinstance(n, str) or not n for n in self.names):
            problems.append("class names must be non-empty strings")
        if problems:
            raise ConfigError(problems)
        object.__setattr__(self, "names", list(self.names))
        object.__setattr__(self, "_index", {name: i for i, name in enumerate(self.names)})

    @property
    def problem_type(self) -> ProblemType:
        if self.multi_label:
            return "multilabel"
        return "binary" if len(self.names) == 2 else "multiclass"

    @property
    def num_outputs(self) -> int:
        """Logits the head must produce: one for binary (sigmoid), else one per class."""
        return 1 if self.problem_type == "binary" else len(self.names)

    @property
    def positive_label(self) -> str | None:
        """The class whose probability a binary model outputs; None for other problem types."""
        return self.names[1] if self.problem_type == "binary" else None

    def index(self, name: str) -> int:
        """The index of a class name; ``ValueError`` naming the known classes if unknown."""
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"unknown label {name!r}; the classes are {self.names}") from None

    def encode(self, label: str | Sequence[str]) -> int | list[float]:
        """Binary: 0/1; multiclass: the index; multilabel: a multi-hot list of floats."""
        if self.multi_label:
            labels = [label] if isinstance(label, str) else list(label)
            hot = [0.0] * len(self.names)
            for name in labels:
                hot[self.index(name)] = 1.0
            return hot
        if not isinstance(label, str):
            raise ValueError(f"a single-label problem needs one label, got {label!r}")
        return self.index(label)

    def decode(
        self, value: int | float | Sequence[float], threshold: float = 0.5
    ) -> str | list[str]:
        """The inverse of ``encode``; also takes a binary probability or per-class probabilities."""
        if self.multi_label:
            if isinstance(value, int | float):
                raise ValueError("a multi-label problem decodes a vector, not a number")
            return [name for name, v in zip(self.names, value, strict=True) if v >= threshold]
        if isinstance(value, float) and self.problem_type == "binary":
            return self.names[1] if value >= threshold else self.names[0]
        if not isinstance(value, int):
            raise ValueError(f"a single-label problem decodes a class index, got {value!r}")
        return self.names[value]

    @classmethod
    def from_examples(cls, examples: Iterable[ClassificationExample]) -> LabelSpace:
        """The label space a training set defines; multi-label when any label is a list."""
        names: set[str] = set()
        multi_label = False
        for example in examples:
            if isinstance(example.label, list):
                multi_label = True
                names.update(example.label)
            else:
                names.add(example.label)
        return cls(order_names(names, multi_label=multi_label), multi_label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "multi_label": self.multi_label,
            "problem_type": self.problem_type,
            "num_outputs": self.num_outputs,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSpace:
        """Rebuild a saved label space; the saved order is kept as it is, never re-sorted."""
        return cls(list(data["names"]), bool(data.get("multi_label", False)))
