"""Check a training file (and its validation file) before any model is loaded.

``validate_file`` never raises on bad data: it returns a ``ValidationReport`` listing every
error and warning, each with file, line and field, plus statistics. The CLI prints it, the
server returns ``to_dict()``, and training refuses to start while ``ok`` is False.

Errors (training would fail or learn the wrong thing): everything ``reading`` finds per
record (bad JSON or UTF-8, not an object, missing or ill-typed fields, unknown roles or keys,
no assistant message to learn, bad weights or labels), a file mixing formats, a validation
file in another format, fewer than two classes, a validation label absent from the training
file, and an example present in both files.

Warnings (training works, results may suffer): fewer than 10 examples, examples longer than
``max_seq_length`` (they will be truncated, or dropped when nothing to learn is left), class
imbalance (majority/minority > 10, or a class with fewer than 5 examples), and duplicates.

Duplicates, the choice made: within one file they are a WARNING naming both lines — a repeat
only weights an example more, and some people repeat examples on purpose. An example in both
the training and the validation file is an ERROR naming both lines — it makes the validation
loss measure memorisation, which silently defeats the point of a validation set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.data.formats import (
    ChatExample,
    ClassificationExample,
    CompletionExample,
    DataFormat,
    Example,
    PreferenceExample,
)
from tunesmith.data.reading import Dataset, ScanResult, scan_file
from tunesmith.data.stats import DatasetStats, describe, label_counts
from tunesmith.data.tokenization import IGNORE_INDEX, tokenize_dataset
from tunesmith.errors import ConfigError, DataError, DataIssue
from tunesmith.tasks import ModelKind, Task

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MIN_EXAMPLES = 10  # OpenAI's minimum for a fine-tuning job
MAX_IMBALANCE = 10.0  # majority / minority class count
MIN_PER_CLASS = 5


@dataclass
class ValidationReport:
    """Everything found in a training file and, when given, its validation file."""

    file: str
    format: str | None
    errors: list[DataIssue] = field(default_factory=list)
    warnings: list[DataIssue] = field(default_factory=list)
    stats: DatasetStats | None = None
    validation_file: str | None = None
    validation_stats: DatasetStats | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def issues(self) -> list[DataIssue]:
        """Errors then warnings: the list a ``DataError`` takes."""
        return [*self.errors, *self.warnings]

    def raise_for_errors(self) -> None:
        """Raise ``DataError`` with every error when there are any."""
        if self.errors:
            raise DataError(self.errors, summary=f"{len(self.errors)} error(s) in the data")

    def add(self, issues: list[DataIssue]) -> None:
        for issue in issues:
            (self.errors if issue.severity == "error" else self.warnings).append(issue)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: what the server returns and the dashboard shows."""
        return {
            "file": self.file,
            "format": self.format,
            "ok": self.ok,
            "errors": [issue.to_dict() for issue in self.errors],
            "warnings": [issue.to_dict() for issue in self.warnings],
            "stats": self.stats.to_dict() if self.stats else None,
            "validation_file": self.validation_file,
            "validation_stats": self.validation_stats.to_dict() if self.validation_stats else None,
        }


def validate_file(
    path: Path | str,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    validation_path: Path | str | None = None,
    max_seq_length: int | None = None,
    fmt: DataFormat | str | None = None,
) -> ValidationReport:
    """Check ``path`` (and ``validation_path``); count tokens when a tokenizer is given."""
    train = scan_file(path, fmt=fmt)
    fmt_name = train.format.value if train.format else None
    report = ValidationReport(file=str(train.path), format=fmt_name)
    report.add(train.issues)
    _check_file(train, report)
    report.stats = _stats(train, tokenizer, max_seq_length, report)
    if validation_path is not None:
        valid = scan_file(validation_path, fmt=fmt)
        report.validation_file = str(valid.path)
        report.add(valid.issues)
        _check_validation_file(train, valid, report)
        report.validation_stats = _stats(valid, tokenizer, max_seq_length, report)
    return report


def _check_file(scan: ScanResult, report: ValidationReport) -> None:
    """The checks that need the whole file: size, duplicates, classes."""
    name = str(scan.path)
    if scan.format is None:
        return
    if 0 < len(scan.examples) < MIN_EXAMPLES:
        message = (
            f"only {len(scan.examples)} valid examples; OpenAI requires at least {MIN_EXAMPLES}, "
            "and 50-100 well-made examples usually give a clear improvement"
        )
        report.add([DataIssue(name, None, None, message, "warning")])
    report.add(_duplicates(scan.examples, name))
    labelled = [e for e in scan.examples if isinstance(e, ClassificationExample)]
    if labelled:
        report.add(_class_checks(labelled, name))


def _duplicates(examples: list[Example], name: str) -> list[DataIssue]:
    issues = []
    seen: dict[str, Example] = {}
    for example in examples:
        key = example_key(example)
        first = seen.setdefault(key, example)
        if first is example:
            continue
        label = getattr(example, "label", None)
        if label != getattr(first, "label", None):  # classification: same text, other label
            message = (
                f"same text as line {first.line} with a different label "
                f"({getattr(first, 'label', None)!r} there, {label!r} here)"
            )
            issues.append(DataIssue(name, example.line, "label", message, "warning"))
            continue
        message = f"duplicate of line {first.line}"
        issues.append(DataIssue(name, example.line, None, message, "warning"))
    return issues


def example_key(example: Example) -> str:
    """What makes two examples the same; for classification, the text alone (leakage)."""
    if isinstance(example, ClassificationExample):
        return example.text
    if isinstance(example, CompletionExample):
        return json.dumps([example.prompt, example.completion])
    if isinstance(example, ChatExample):
        return json.dumps([_message_key(m) for m in example.messages])
    assert isinstance(example, PreferenceExample)
    parts = [example.messages, example.preferred, example.non_preferred]
    return json.dumps([[_message_key(m) for m in part] for part in parts])


def _message_key(message: dict[str, Any]) -> list[Any]:
    return [message.get("role"), message.get("content"), message.get("tool_calls")]


def _class_checks(examples: list[ClassificationExample], name: str) -> list[DataIssue]:
    counts = label_counts(examples)
    if len(counts) < 2:
        message = f"classification needs at least two classes; every example is {list(counts)}"
        return [DataIssue(name, None, "label", message)]
    issues = []
    (major, n_major), (minor, n_minor) = next(iter(counts.items())), list(counts.items())[-1]
    if n_major / n_minor > MAX_IMBALANCE:
        message = (
            f"class imbalance: {major!r} has {n_major} examples, {minor!r} only {n_minor} "
            f"(ratio {n_major / n_minor:.1f}); the model may learn to ignore the rare class"
        )
        issues.append(DataIssue(name, None, "label", message, "warning"))
    for label, n in counts.items():
        if n < MIN_PER_CLASS:
            message = f"class {label!r} has only {n} example(s); give it at least {MIN_PER_CLASS}"
            issues.append(DataIssue(name, None, "label", message, "warning"))
    return issues


def _check_validation_file(train: ScanResult, valid: ScanResult, report: ValidationReport) -> None:
    """The validation file's own checks, then the checks across the two files."""
    name = str(valid.path)
    if valid.format is not None and train.format is not None and valid.format != train.format:
        message = (
            f"the validation file is {valid.format.value} data "
            f"but the training file is {train.format.value}"
        )
        report.add([DataIssue(name, None, None, message)])
        return
    report.add([i for i in _duplicates(valid.examples, name)])
    in_train = {example_key(e): e.line for e in train.examples}
    for example in valid.examples:
        line = in_train.get(example_key(example))
        if line is not None:
            message = (
                f"also in the training file {train.path} at line {line}; validation examples "
                "must not be in the training set"
            )
            report.add([DataIssue(name, example.line, None, message)])
    report.add(_unseen_labels(train.examples, valid.examples, name))


def _unseen_labels(train: list[Example], valid: list[Example], name: str) -> list[DataIssue]:
    known = set(label_counts([e for e in train if isinstance(e, ClassificationExample)]))
    issues = []
    for example in valid:
        if not isinstance(example, ClassificationExample) or not known:
            continue
        labels = example.label if isinstance(example.label, list) else [example.label]
        for label in labels:
            if label not in known:
                message = f"label {label!r} does not occur in the training file"
                issues.append(DataIssue(name, example.line, "label", message))
    return issues


def _stats(
    scan: ScanResult,
    tokenizer: PreTrainedTokenizerBase | None,
    max_seq_length: int | None,
    report: ValidationReport,
) -> DatasetStats:
    fmt = scan.format.value if scan.format else None
    if tokenizer is None or scan.format is None or not scan.examples:
        return describe(scan.examples, fmt, max_seq_length=max_seq_length)
    if scan.format is DataFormat.PREFERENCE:
        return describe(scan.examples, fmt, max_seq_length=max_seq_length)
    try:
        lengths, n_target, issues = _count_tokens(scan, tokenizer, max_seq_length)
    except ConfigError as exc:
        report.add([DataIssue(str(scan.path), None, None, f"cannot count tokens: {exc}")])
        return describe(scan.examples, fmt, max_seq_length=max_seq_length)
    report.add(issues)
    return describe(
        scan.examples,
        fmt,
        lengths=lengths,
        n_target_tokens=n_target,
        max_seq_length=max_seq_length,
    )


def _count_tokens(
    scan: ScanResult, tokenizer: PreTrainedTokenizerBase, max_seq_length: int | None
) -> tuple[list[int], int | None, list[DataIssue]]:
    """Token counts per sequence, trained tokens kept after truncation, and the warnings."""
    name = str(scan.path)
    assert scan.format is not None
    if scan.format is DataFormat.CLASSIFICATION:
        lengths = [len(tokenizer(e.text)["input_ids"]) for e in scan.examples]  # type: ignore[union-attr]
        lines = [e.line for e in scan.examples]
        return lengths, None, _long_warnings(name, lines, lengths, max_seq_length)
    dataset = Dataset(scan.path, scan.format, scan.examples, scan.sha256)
    tokenized = tokenize_dataset(
        dataset,
        tokenizer,
        task=Task(scan.format.value),
        model_kind=ModelKind.CAUSAL,
        max_seq_length=None,
        raise_on_error=False,
    )
    issues = [*tokenized.errors, *tokenized.warnings]
    n_target = 0
    for item in tokenized.examples:
        labels = item.labels if isinstance(item.labels, list) else []  # causal: always a list
        kept = sum(1 for label in labels[:max_seq_length] if label != IGNORE_INDEX)
        n_target += kept
        if max_seq_length is not None and item.length > max_seq_length:
            issues.append(_long_warning(name, item.line, item.length, max_seq_length, kept == 0))
    return [t.length for t in tokenized.examples], n_target, issues


def _long_warnings(
    name: str, lines: list[int], lengths: list[int], max_seq_length: int | None
) -> list[DataIssue]:
    if max_seq_length is None:
        return []
    return [
        _long_warning(name, line, n, max_seq_length, dropped=False)
        for line, n in zip(lines, lengths, strict=True)
        if n > max_seq_length
    ]


def _long_warning(name: str, line: int, n: int, max_seq_length: int, dropped: bool) -> DataIssue:
    message = f"{n} tokens, will be truncated to {max_seq_length}"
    if dropped:
        message += "; nothing to learn is left, so the example will be dropped"
    return DataIssue(name, line, None, message, "warning")
