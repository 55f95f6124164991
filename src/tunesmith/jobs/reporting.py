"""``JobReporter``: the training callback that turns the engine's progress into job events.

It runs inside the training process (``run_job.py``) and writes straight to the job database:
``metrics`` events (throttled: every step for the first 10, then about 100 in all, plus every
step with a validation loss and the last), checkpoint rows, messages, the job's
``estimated_finish``, and the resolved hyperparameters. ``should_stop`` polls the job's row
(at most once a second) for a cancel or pause request, or a lease this worker lost.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.jobs.models import Job, JobStatus, RequestedAction
from tunesmith.jobs.service import add_checkpoint, add_event
from tunesmith.training.callbacks import (
    BaseCallback,
    CheckpointInfo,
    EvalMetrics,
    StepMetrics,
    TrainingPlan,
)

EVERY_STEP_UNTIL = 10
TARGET_METRIC_EVENTS = 100
LEVELS = {"warning": "warn", "warn": "warn", "error": "error", "critical": "error"}
SHOWN_HYPERPARAMETERS = ("n_epochs", "batch_size", "learning_rate_multiplier")


class JobReporter(BaseCallback):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        job_id: str,
        worker_id: str,
        project_name: str,
        poll_seconds: float = 1.0,
        shutdown: threading.Event | None = None,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.worker_id = worker_id
        self.project_name = project_name
        self.poll_seconds = poll_seconds
        self.shutdown = shutdown or threading.Event()
        self.total_steps: int | None = None
        self.every = 10
        self.last_step = 0
        self.last_metrics: dict[str, Any] = {}
        self._last_poll = 0.0
        self._stop_reason: str | None = None

    # --- progress -----------------------------------------------------------------------

    def on_train_begin(self, plan: TrainingPlan) -> None:
        self.total_steps = plan.total_steps
        self.every = max(1, math.ceil(plan.total_steps / TARGET_METRIC_EVENTS))
        resolved = {
            k: plan.hyperparameters[k] for k in SHOWN_HYPERPARAMETERS if k in plan.hyperparameters
        }
        with self.sessions.begin() as session:
            job = session.get(Job, self.job_id)
            if job is not None and resolved:
                job.hyperparameters = {**job.hyperparameters, **resolved}
                method = dict(job.method)
                kind = method.get("type", "supervised")
                inner = dict(method.get(kind) or {})
                inner["hyperparameters"] = {**inner.get("hyperparameters", {}), **resolved}
                method[kind] = inner
                job.method = method
            if plan.resumed_from_step:
                message = (
                    f"Fine-tuning resumed at step {plan.resumed_from_step} of {plan.total_steps}."
                )
            else:
                message = f"Fine-tuning job started: {plan.total_steps} steps."
            add_event(session, self.job_id, message, data=plan.to_dict())

    def on_step_end(self, metrics: StepMetrics) -> None:
        self.last_step = metrics.step
        self.last_metrics = {
            "step": metrics.step,
            "train_loss": metrics.train_loss,
            "train_mean_token_accuracy": metrics.train_accuracy,
        }
        if metrics.valid_loss is not None:
            self.last_metrics["valid_loss"] = metrics.valid_loss
            self.last_metrics["valid_mean_token_accuracy"] = metrics.valid_accuracy
        if not self._report(metrics):
            return
        data = {
            **self.last_metrics,
            "total_steps": self.total_steps,
            "epoch": metrics.epoch,
            "learning_rate": metrics.learning_rate,
            "total_tokens": metrics.total_tokens,
        }
        total = f"/{self.total_steps}" if self.total_steps else ""
        message = f"Step {metrics.step}{total}: training loss={metrics.train_loss:.4f}"
        if metrics.valid_loss is not None:
            message += f", validation loss={metrics.valid_loss:.4f}"
        with self.sessions.begin() as session:
            add_event(session, self.job_id, message, type="metrics", data=data)
            if metrics.eta_s is not None:
                job = session.get(Job, self.job_id)
                if job is not None and job.status == JobStatus.RUNNING:
                    job.estimated_finish = int(time.time() + metrics.eta_s)

    def _report(self, metrics: StepMetrics) -> bool:
        return (
            metrics.step <= EVERY_STEP_UNTIL
            or metrics.step % self.every == 0
            or metrics.step == self.total_steps
            or metrics.valid_loss is not None
        )

    def on_evaluate(self, metrics: EvalMetrics) -> None:
        self.last_metrics["valid_loss"] = metrics.valid_loss
        self.last_metrics["valid_mean_token_accuracy"] = metrics.valid_accuracy
        self.last_metrics["full_valid_loss"] = metrics.valid_loss
        self.last_metrics["full_valid_mean_token_accuracy"] = metrics.valid_accuracy
        best = " (best so far)" if metrics.is_best else ""
        self._message(
            "info", f"Step {metrics.step}: validation loss={metrics.valid_loss:.4f}{best}"
        )

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        metrics = {**self.last_metrics, **info.metrics, "step": info.step}
        with self.sessions.begin() as session:
            job = session.get(Job, self.job_id)
            if job is None:
                return
            checkpoint = add_checkpoint(
                session,
                job,
                self.project_name,
                step=info.step,
                metrics=metrics,
                path=str(info.path),
            )
            if checkpoint is not None:
                add_event(
                    session,
                    self.job_id,
                    f"Checkpoint created at step {info.step}: "
                    f"{checkpoint.fine_tuned_model_checkpoint}",
                    data={"step": info.step},
                )

    def on_message(self, level: str, message: str) -> None:
        self._message(LEVELS.get(level.lower(), "info"), message)

    def _message(self, level: str, message: str) -> None:
        with self.sessions.begin() as session:
            add_event(session, self.job_id, message, level=level)

    # --- control --------------------------------------------------------------------------

    def should_stop(self) -> str | None:
        if self.shutdown.is_set():
            return "shutdown"
        if self._stop_reason is not None:
            return self._stop_reason
        current = time.monotonic()
        if current - self._last_poll < self.poll_seconds:
            return None
        self._last_poll = current
        self._stop_reason = self.poll()
        return self._stop_reason

    def poll(self) -> str | None:
        """Read the job's row: ``cancel``, ``pause``, ``lease lost`` or None to go on."""
        with self.sessions() as session:
            row = session.execute(
                select(Job.status, Job.requested_action, Job.worker_id).where(Job.id == self.job_id)
            ).first()
        if row is None:
            return "cancel"
        status, action, worker_id = row
        if status == JobStatus.CANCELLED or action == RequestedAction.CANCEL:
            return "cancel"
        if worker_id != self.worker_id or status != JobStatus.RUNNING:
            return "lease lost"
        if action == RequestedAction.PAUSE:
            return "pause"
        return None
