"""What an evaluation found, as JSON (``to_dict``) and as rich tables for the terminal.

The main table puts the baseline and the fine-tuned model side by side with the change, so
"did fine-tuning help?" is answered at a glance; confusion matrices and notes follow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

# Rows of the main table, in this order, when present. (key, label, higher is better)
METRIC_ROWS: list[tuple[str, str, bool]] = [
    ("accuracy", "accuracy", True),
    ("precision", "precision (positive class)", True),
    ("recall", "recall (positive class)", True),
    ("f1", "F1 (positive class)", True),
    ("f1_macro", "F1 macro", True),
    ("f1_micro", "F1 micro", True),
    ("f1_weighted", "F1 weighted", True),
    ("precision_macro", "precision macro", True),
    ("recall_macro", "recall macro", True),
    ("auroc", "AUROC", True),
    ("auroc_macro_ovr", "AUROC macro (one-vs-rest)", True),
    ("auroc_macro", "AUROC macro", True),
    ("subset_accuracy", "subset accuracy", True),
    ("hamming_loss", "Hamming loss", False),
    ("loss", "loss (per target token)", False),
    ("perplexity", "perplexity", False),
    ("token_accuracy", "mean token accuracy", True),
    ("exact_match", "exact match", True),
    ("n_unparsed", "unparseable answers", False),
]
ANSWERS = "answer_classification"  # LM metrics: generated answers scored as labels


@dataclass
class EvaluationReport:
    """Metrics of a model on a data file, optionally with a baseline's on the same data."""

    model: str
    task: str
    data: str
    n_examples: int
    metrics: dict[str, Any]
    baseline: str | None = None
    baseline_metrics: dict[str, Any] | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)  # input/reference/prediction
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and infinity become None, which JSON lacks)."""
        return _json_safe(asdict(self))

    def to_rich_table(self) -> Table:
        """Metric | baseline | fine-tuned | change."""
        table = Table(title=f"{self.task} evaluation on {self.data} ({self.n_examples} examples)")
        table.add_column("metric")
        if self.baseline_metrics is not None:
            table.add_column(f"baseline\n{self.baseline}", justify="right")
        table.add_column(self.model, justify="right")
        if self.baseline_metrics is not None:
            table.add_column("change", justify="right")
        for prefix, mine, theirs in self._metric_sets():
            for key, label, higher_better in METRIC_ROWS:
                if key not in mine or (key == "n_unparsed" and not prefix):
                    continue  # unparseable answers exist only where answers are generated
                row = [f"{prefix}{label}"]
                if theirs is not None:
                    row.append(_fmt(theirs.get(key)))
                row.append(_fmt(mine[key]))
                if theirs is not None:
                    row.append(_change(theirs.get(key), mine[key], higher_better))
                table.add_row(*row)
        return table

    def confusion_tables(self) -> list[Table]:
        """One table per confusion matrix found (the model's, then the baseline's)."""
        tables = []
        for who, metrics in ((self.model, self.metrics), (self.baseline, self.baseline_metrics)):
            if not metrics:
                continue
            matrix = metrics.get("confusion_matrix") or (metrics.get(ANSWERS) or {}).get(
                "confusion_matrix"
            )
            if matrix:
                tables.append(_confusion_table(f"confusion matrix: {who}", matrix))
        return tables

    def examples_table(self) -> Table:
        """A few examples: input, reference and each model's prediction."""
        table = Table(title="examples", show_lines=True)
        for column in ("input", "reference", "prediction"):
            table.add_column(column, overflow="fold")
        if self.baseline_metrics is not None:
            table.add_column("baseline prediction", overflow="fold")
        for row in self.examples:
            cells = [
                _short(row.get("input")),
                _short(row.get("reference")),
                _short(row.get("prediction")),
            ]
            if self.baseline_metrics is not None:
                cells.append(_short(row.get("baseline_prediction")))
            table.add_row(*cells)
        return table

    def render_table(self, console: Console) -> None:
        """Print everything: metrics, confusion matrices, examples, notes."""
        console.print(self.to_rich_table())
        for table in self.confusion_tables():
            console.print(table)
        if self.examples:
            console.print(self.examples_table())
        for note in self.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False)

    def _metric_sets(self) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
        """The top-level metrics, then those of generated answers read as labels."""
        sets = [("", self.metrics, self.baseline_metrics)]
        if ANSWERS in self.metrics:
            theirs = (self.baseline_metrics or {}).get(ANSWERS)
            sets.append(
                ("answers: ", self.metrics[ANSWERS], theirs if self.baseline_metrics else None)
            )
        return sets


def _confusion_table(title: str, confusion: dict[str, Any]) -> Table:
    labels = confusion["labels"]
    caption = "rows: true label, columns: predicted"
    table = Table(title=title, caption=caption, min_width=max(len(title), len(caption)) + 4)
    table.add_column("true \\ predicted")
    for label in labels:
        table.add_column(str(label), justify="right")
    for label, row in zip(labels, confusion["matrix"], strict=False):
        table.add_row(str(label), *(str(v) for v in row))
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _change(before: Any, after: Any, higher_better: bool) -> str:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return "-"
    delta = after - before
    if math.isnan(delta) or math.isinf(delta):
        return "-"
    if delta == 0:
        return "0"
    better = (delta > 0) == higher_better
    shown = f"{delta:+d}" if isinstance(delta, int) else f"{delta:+.4f}"
    return f"[{'green' if better else 'red'}]{shown}[/]"


def _short(value: Any, limit: int = 200) -> str:
    # whitespace collapsed: a generated reply full of newlines would make rows pages tall
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value
