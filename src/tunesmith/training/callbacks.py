"""How the training loop reports progress, without knowing who listens.

The loop calls these hooks on every object in its ``callbacks`` list. The CLI implements them
with a progress bar, the job worker by writing events to its database; the loop itself never
knows there is a terminal, a database or a server. A callback may ask the loop to stop
(cancel, pause) by returning a reason from ``should_stop``; the loop then writes a checkpoint
and raises ``TrainingInterrupted``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass
class TrainingPlan:
    """What the run will do, known once data and model are set up (before step 1)."""

    total_steps: int
    steps_per_epoch: int
    n_epochs: int
    batch_size: int
    n_train_examples: int
    n_validation_examples: int
    trainable_params: int
    total_params: int
    resumed_from_step: int = 0
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepMetrics:
    """Reported after every optimizer step."""

    step: int
    epoch: float  # fractional: 1.5 means half-way through the second epoch
    train_loss: float
    train_accuracy: float  # mean token accuracy (LM) or accuracy (classification)
    learning_rate: float
    tokens: int  # real (non-padding) tokens in this step
    total_tokens: int  # real tokens trained so far
    elapsed_s: float
    eta_s: float | None
    valid_loss: float | None = None  # filled on steps where an evaluation ran
    valid_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalMetrics:
    """Reported after each evaluation on the validation set."""

    step: int
    epoch: float
    valid_loss: float
    valid_accuracy: float
    is_best: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckpointInfo:
    """Reported after a checkpoint folder is completely written."""

    step: int
    epoch: float
    path: Path
    metrics: dict[str, float]


@runtime_checkable
class TrainingCallback(Protocol):
    """Hooks the training loop calls. Implement the ones you need; see ``BaseCallback``."""

    def on_train_begin(self, plan: TrainingPlan) -> None: ...
    def on_step_end(self, metrics: StepMetrics) -> None: ...
    def on_evaluate(self, metrics: EvalMetrics) -> None: ...
    def on_checkpoint(self, info: CheckpointInfo) -> None: ...
    def on_message(self, level: str, message: str) -> None: ...
    def on_train_end(self, summary: dict[str, Any]) -> None: ...
    def should_stop(self) -> str | None: ...


class BaseCallback:
    """A callback that does nothing; subclass and override what you need."""

    def on_train_begin(self, plan: TrainingPlan) -> None:
        pass

    def on_step_end(self, metrics: StepMetrics) -> None:
        pass

    def on_evaluate(self, metrics: EvalMetrics) -> None:
        pass

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        pass

    def on_message(self, level: str, message: str) -> None:
        pass

    def on_train_end(self, summary: dict[str, Any]) -> None:
        pass

    def should_stop(self) -> str | None:
        return None
