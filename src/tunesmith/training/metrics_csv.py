"""``metrics.csv``: one row per optimizer step, written as training goes.

A resumed run first drops rows past its checkpoint's step (they belong to progress that was
lost), so the file always describes the weights that exist.
"""

from __future__ import annotations

import csv
from pathlib import Path

from tunesmith.training.callbacks import BaseCallback, StepMetrics, TrainingPlan

COLUMNS = [
    "step",
    "epoch",
    "train_loss",
    "train_accuracy",
    "valid_loss",
    "valid_accuracy",
    "learning_rate",
    "tokens",
    "total_tokens",
    "elapsed_s",
]


class MetricsCSVWriter(BaseCallback):
    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_begin(self, plan: TrainingPlan) -> None:
        kept: list[dict[str, str]] = []
        if plan.resumed_from_step and self.path.exists():
            with self.path.open(newline="") as handle:
                kept = [
                    r for r in csv.DictReader(handle) if int(r["step"]) <= plan.resumed_from_step
                ]
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(kept)

    def on_step_end(self, metrics: StepMetrics) -> None:
        row = {k: v for k, v in metrics.to_dict().items() if k in COLUMNS}
        with self.path.open("a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=COLUMNS).writerow(row)


def read_metrics(path: Path) -> list[dict[str, float | None]]:
    """Rows of a metrics.csv as numbers (None where a value is empty)."""
    with path.open(newline="") as handle:
        return [
            {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]
