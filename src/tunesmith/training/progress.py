"""A rich progress bar with ETA for the terminal, as a training callback."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tunesmith.training.callbacks import (
    BaseCallback,
    CheckpointInfo,
    EvalMetrics,
    StepMetrics,
    TrainingPlan,
)


class RichProgress(BaseCallback):
    """Shows step progress, loss, accuracy and the ETA; prints evaluations and messages."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task_id: Any = None

    def on_train_begin(self, plan: TrainingPlan) -> None:
        self.console.print(
            f"training {plan.trainable_params:,} of {plan.total_params:,} parameters on "
            f"{plan.n_train_examples} examples ({plan.n_validation_examples} validation): "
            f"{plan.n_epochs} epoch(s) x {plan.steps_per_epoch} steps, batch {plan.batch_size}"
        )
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.start()
        self.task_id = self.progress.add_task(
            "train", total=plan.total_steps, completed=plan.resumed_from_step, stats=""
        )

    def on_step_end(self, metrics: StepMetrics) -> None:
        if self.progress is None:
            return
        stats = f"loss {metrics.train_loss:.4f} acc {metrics.train_accuracy:.3f}"
        if metrics.valid_loss is not None:
            stats += f" | valid {metrics.valid_loss:.4f}"
        self.progress.update(self.task_id, completed=metrics.step, stats=stats)

    def on_evaluate(self, metrics: EvalMetrics) -> None:
        best = " (best)" if metrics.is_best else ""
        self._print(
            f"step {metrics.step}: valid_loss {metrics.valid_loss:.4f} "
            f"valid_accuracy {metrics.valid_accuracy:.3f}{best}"
        )

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        self._print(f"[dim]checkpoint {info.path}[/]")

    def on_message(self, level: str, message: str) -> None:
        style = {"warning": "yellow", "error": "red"}.get(level, "cyan")
        self._print(f"[{style}]{level}:[/] {message}")

    def on_train_end(self, summary: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _print(self, text: str) -> None:
        target = self.progress.console if self.progress else self.console
        target.print(text, highlight=False)
