"""Fakes for tests and dry runs: an in-memory job queue, and a fake engine.

The fake engine (``TUNESMITH_JOB_ENGINE=tunesmith.jobs.fakes``) has the real engine's
``finetune`` and ``validate_file`` signatures and behaviour that matters to the jobs layer —
callbacks, checkpoints in the output folder, resume from the newest one, ``TrainingInterrupted``
— without loading a model. Each step sleeps ``TUNESMITH_FAKE_STEP_SECONDS`` (default 0.02) and
its loss depends only on the step, so a resumed run reports what an uninterrupted one would.
A model named ``missing-...`` raises ``ModelNotFoundError``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.errors import CheckpointError, DataIssue, ModelNotFoundError, TrainingInterrupted
from tunesmith.jobs.models import JobStatus, RequestedAction
from tunesmith.jobs.queue import CLAIMABLE, LEASED, Claim
from tunesmith.settings import Settings
from tunesmith.training.callbacks import (
    CheckpointInfo,
    StepMetrics,
    TrainingCallback,
    TrainingPlan,
)
from tunesmith.training.spec import FinetuneSpec

KEEP_CHECKPOINTS = 3  # as training/checkpoint.py, which imports torch (the fakes must not)

# --- the in-memory queue ---------------------------------------------------------------------


@dataclass
class FakeJob:
    id: str
    status: JobStatus = JobStatus.QUEUED
    priority: int = 0
    worker_id: str | None = None
    lease_expires_at: float | None = None
    attempts: int = 0
    requested_action: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


class InMemoryQueue:
    """``JobQueue`` in a dict, with the same semantics as ``SqlQueue`` (a contract test
    checks both). ``add`` puts a job in; ``jobs`` shows them."""

    def __init__(
        self, *, lease_seconds: float, max_attempts: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.clock = clock
        self._lock = threading.Lock()

    def add(self, job_id: str, *, status: JobStatus = JobStatus.QUEUED, priority: int = 0) -> None:
        self.jobs[job_id] = FakeJob(job_id, status=status, priority=priority)

    def claim(self, worker_id: str) -> Claim | None:
        with self._lock:
            ready = [j for j in self.jobs.values() if j.status in CLAIMABLE and j.worker_id is None]
            if not ready:
                return None
            job = min(ready, key=lambda j: (-j.priority, j.id))
            job.worker_id = worker_id
            job.lease_expires_at = self.clock() + self.lease_seconds
            if job.status is JobStatus.QUEUED:
                job.status = JobStatus.RUNNING
                job.attempts += 1
            return Claim(job.id, job.status, job.attempts)

    def heartbeat(self, worker_id: str, job_id: str) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.worker_id != worker_id or job.status not in LEASED:
                return False
            job.lease_expires_at = self.clock() + self.lease_seconds
            return True

    def requeue_expired(self) -> list[str]:
        now = self.clock()
        done = []
        with self._lock:
            for job in self.jobs.values():
                expired = job.lease_expires_at is not None and job.lease_expires_at < now
                if job.status not in LEASED or job.worker_id is None or not expired:
                    continue
                if job.status is JobStatus.RUNNING:
                    if job.requested_action == RequestedAction.PAUSE:
                        job.status = JobStatus.PAUSED
                    elif job.attempts >= self.max_attempts:
                        job.status = JobStatus.FAILED
                    else:
                        job.status = JobStatus.QUEUED
                    job.requested_action = None
                job.worker_id, job.lease_expires_at = None, None
                done.append(job.id)
        return done

    def release(self, worker_id: str, job_id: str) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.worker_id != worker_id or job.status is not JobStatus.RUNNING:
                return False
            pausing = job.requested_action == RequestedAction.PAUSE
            job.status = JobStatus.PAUSED if pausing else JobStatus.QUEUED
            job.worker_id, job.lease_expires_at, job.requested_action = None, None, None
            job.attempts = max(0, job.attempts - 1)
            return True

    def transition(
        self, worker_id: str, job_id: str, old: JobStatus, new: JobStatus, **values: Any
    ) -> bool:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.worker_id != worker_id or job.status is not old:
                return False
            job.status = new
            if new.is_final or new in (JobStatus.QUEUED, JobStatus.PAUSED):
                job.worker_id, job.lease_expires_at = None, None
            job.values.update(values)
            return True


# --- the fake engine ---------------------------------------------------------------------------


@dataclass
class FakeFinetuneResult:
    output_dir: Path
    metrics: dict[str, float]
    trained_tokens: int
    steps: int
    manifest: dict[str, Any]


@dataclass
class FakeReport:
    errors: list[DataIssue]
    warnings: list[DataIssue] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": [i.to_dict() for i in self.errors],
            "warnings": [i.to_dict() for i in self.warnings],
            "stats": self.stats,
        }


TOKENS_PER_STEP = 100


def validate_file(path: Path, *, validation_path: Path | None = None) -> FakeReport:
    """Each line must be a JSON object with ``messages``, ``prompt``+``completion`` or ``text``."""
    errors: list[DataIssue] = []
    n = 0
    for file in [path] + ([validation_path] if validation_path else []):
        for line_no, line in enumerate(Path(file).read_text(errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            n += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(DataIssue(str(file), line_no, None, f"invalid JSON: {exc.msg}"))
                continue
            if not isinstance(row, dict) or not ({"messages", "prompt", "text"} & row.keys()):
                errors.append(
                    DataIssue(str(file), line_no, "messages", "expected a 'messages' list")
                )
    if n == 0:
        errors.append(DataIssue(str(path), None, None, "the file has no examples"))
    return FakeReport(errors=errors, stats={"n_examples": n})


def _latest_checkpoint(output_dir: Path) -> int:
    steps = [
        int(p.parent.name.split("-")[1]) for p in output_dir.glob("checkpoints/step-*/state.json")
    ]
    return max(steps, default=0)


def _save_checkpoint(output_dir: Path, step: int) -> Path:
    folder = output_dir / "checkpoints" / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.json").write_text(json.dumps({"step": step}))
    # like the engine (training/checkpoint.py): only the newest few are kept
    saved = sorted(folder.parent.glob("step-*"))
    for old in saved[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _loss(step: int) -> float:
    return round(2.0 * 0.97**step, 6)


def _plan(spec: FinetuneSpec, start: int) -> TrainingPlan:
    hp = spec.hyperparameters
    lines = [x for x in Path(spec.train_file).read_text().splitlines() if x.strip()]
    n_epochs = hp.n_epochs if hp.n_epochs != "auto" else 2
    batch_size = hp.batch_size if hp.batch_size != "auto" else 2
    per_epoch = max(1, math.ceil(len(lines) / batch_size))
    return TrainingPlan(
        total_steps=per_epoch * n_epochs,
        steps_per_epoch=per_epoch,
        n_epochs=n_epochs,
        batch_size=batch_size,
        n_train_examples=len(lines),
        n_validation_examples=0,
        trainable_params=1000,
        total_params=100_000,
        resumed_from_step=start,
        hyperparameters={
            "n_epochs": n_epochs,
            "batch_size": batch_size,
            "learning_rate_multiplier": 1.0,
        },
    )


def _checkpoint_every(spec: FinetuneSpec, total: int) -> int:
    every = spec.hyperparameters.checkpoint_every
    return every if every != "auto" else max(1, total // 4)


def finetune(
    spec: FinetuneSpec,
    *,
    settings: Settings,
    callbacks: Sequence[TrainingCallback] = (),
    resume: str = "auto",
) -> FakeFinetuneResult:
    if spec.model.startswith("missing-"):
        raise ModelNotFoundError(f"no model named {spec.model!r}")
    output_dir = Path(spec.output_dir or settings.runs_dir / "fake")
    output_dir.mkdir(parents=True, exist_ok=True)
    start = 0 if resume == "never" else _latest_checkpoint(output_dir)
    if resume == "must" and start == 0:
        raise CheckpointError(f"no checkpoint to resume from in {output_dir}")
    plan = _plan(spec, start)
    step_s = float(os.environ.get("TUNESMITH_FAKE_STEP_SECONDS", "0.02"))
    every = _checkpoint_every(spec, plan.total_steps)
    for cb in callbacks:
        cb.on_train_begin(plan)
        if start:
            cb.on_message("info", f"Resuming from the checkpoint at step {start}.")
    last_saved = start
    for step in range(start + 1, plan.total_steps + 1):
        for cb in callbacks:
            reason = cb.should_stop()
            if reason:
                folder = output_dir / "checkpoints" / f"step-{last_saved:06d}"
                if step - 1 > last_saved:  # like the engine: checkpoint, then stop
                    folder = _save_checkpoint(output_dir, step - 1)
                    info = CheckpointInfo(step - 1, (step - 1) / plan.steps_per_epoch, folder, {})
                    for each in callbacks:
                        each.on_checkpoint(info)
                raise TrainingInterrupted(reason, str(folder))
        time.sleep(step_s)
        metrics = StepMetrics(
            step=step,
            epoch=step / plan.steps_per_epoch,
            train_loss=_loss(step),
            train_accuracy=round(1 - _loss(step) / 2, 6),
            learning_rate=1e-4,
            tokens=TOKENS_PER_STEP,
            total_tokens=TOKENS_PER_STEP * step,
            elapsed_s=step * step_s,
            eta_s=(plan.total_steps - step) * step_s,
        )
        with (output_dir / "metrics.csv").open("a", newline="") as fh:
            writer = csv.writer(fh)
            if fh.tell() == 0:
                writer.writerow(["step", "train_loss", "train_accuracy"])
            writer.writerow([step, metrics.train_loss, metrics.train_accuracy])
        for cb in callbacks:
            cb.on_step_end(metrics)
        if step % every == 0 or step == plan.total_steps:
            folder = _save_checkpoint(output_dir, step)
            last_saved = step
            info = CheckpointInfo(step, metrics.epoch, folder, {"train_loss": metrics.train_loss})
            for cb in callbacks:
                cb.on_checkpoint(info)
    final = {"train_loss": _loss(plan.total_steps)}
    manifest = {"spec": spec.model_dump(mode="json"), "metrics": final, "fake": True}
    (output_dir / "tunesmith.json").write_text(json.dumps(manifest))
    for cb in callbacks:
        cb.on_train_end(final)
    return FakeFinetuneResult(
        output_dir, final, TOKENS_PER_STEP * plan.total_steps, plan.total_steps, manifest
    )
