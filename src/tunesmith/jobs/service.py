"""Fine-tuning jobs: create, look up, list, cancel, pause, resume; events and checkpoints.

Each function takes an open ``Session`` and leaves committing to the caller, so one request
or one worker step is one transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.jobs.errors import InvalidStateError, NotFoundError
from tunesmith.jobs.ids import new_id, short
from tunesmith.jobs.models import (
    Checkpoint,
    FileRecord,
    Job,
    JobEvent,
    JobStatus,
    RequestedAction,
)
from tunesmith.jobs.paging import Page, paginate
from tunesmith.jobs.projects import ProjectRef
from tunesmith.jobs.store import now
from tunesmith.settings import Settings
from tunesmith.training.spec import FinetuneSpec

JOB_ID_PREFIX = "ftjob"  # a job's id is ``ftjob-<hex>``; fine-tuned model names end with <hex>


@dataclass
class NewJob:
    """What the API asks for, already mapped onto tunesmith's spec."""

    model: str
    training_file: FileRecord
    validation_file: FileRecord | None
    spec: FinetuneSpec
    method: dict[str, Any]  # OpenAI's ``method`` object, as shown back
    hyperparameters: dict[str, Any]  # OpenAI's ``hyperparameters`` object, as shown back
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None
    priority: int = 0


def random_seed() -> int:
    return secrets.randbelow(2**31)


def fine_tuned_model_name(base: str, project: str, suffix: str | None, job_id: str) -> str:
    """OpenAI's scheme: ``ft:{base}:{project}:{suffix}:{job}`` (an empty suffix stays empty)."""
    return f"ft:{base}:{project}:{suffix or ''}:{short(job_id)}"


def checkpoint_model_name(fine_tuned_model: str, step: int) -> str:
    return f"{fine_tuned_model}:ckpt-step-{step}"


def create_job(session: Session, settings: Settings, project: ProjectRef, new: NewJob) -> Job:
    """Insert a job in ``validating_files``; a worker validates its files, then trains it."""
    job_id = new_id(JOB_ID_PREFIX)
    seed = new.seed if new.seed is not None else random_seed()
    output_dir = settings.runs_dir / job_id
    hp = new.spec.hyperparameters.model_copy(update={"seed": seed})
    spec = new.spec.model_copy(update={"output_dir": output_dir, "hyperparameters": hp})
    job = Job(
        id=job_id,
        project_id=project.id,
        model=new.model,
        training_file=new.training_file.id,
        validation_file=new.validation_file.id if new.validation_file else None,
        status=JobStatus.VALIDATING_FILES,
        priority=new.priority,
        method=new.method,
        hyperparameters=new.hyperparameters,
        spec=spec.model_dump(mode="json"),
        suffix=new.suffix,
        seed=seed,
        meta=new.metadata,
        result_files=[],
        output_dir=str(output_dir),
        created_at=now(),
    )
    session.add(job)
    session.flush()
    add_event(session, job_id, f"Created fine-tuning job: {job_id}")
    add_event(session, job_id, "Validating training file: " + new.training_file.id)
    return job


def get_job(session: Session, project_id: str, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.project_id != project_id:
        raise NotFoundError("fine-tuning job", job_id, param="fine_tuning_job_id")
    return job


def list_jobs(
    session: Session,
    project_id: str,
    *,
    limit: int,
    after: str | None,
    metadata: dict[str, str] | None = None,
) -> Page[Job]:
    """Newest first, as OpenAI lists them; ``metadata`` keeps jobs whose metadata match all."""
    stmt = select(Job).where(Job.project_id == project_id)
    for key, value in (metadata or {}).items():
        stmt = stmt.where(Job.meta[key].as_string() == value)
    return paginate(session, stmt, Job.id, limit=limit, after=after, descending=True)


def cancel_job(session: Session, job: Job) -> Job:
    """Cancel at once; a running training process sees it within a second or two and stops."""
    status = JobStatus(job.status)
    if status.is_final:
        raise InvalidStateError(f"Job {job.id} has already {status.value}; it cannot be cancelled.")
    if status is JobStatus.RUNNING:
        job.requested_action = RequestedAction.CANCEL
    job.status = JobStatus.CANCELLED
    job.finished_at = now()
    job.estimated_finish = None
    add_event(session, job.id, "Job cancelled.")
    return job


def pause_job(session: Session, job: Job) -> Job:
    """Queued: paused at once. Running: asked to stop at a checkpoint, then paused."""
    status = JobStatus(job.status)
    if status is JobStatus.QUEUED:
        job.status = JobStatus.PAUSED
        add_event(session, job.id, "Job paused.")
    elif status is JobStatus.RUNNING:
        job.requested_action = RequestedAction.PAUSE
        add_event(session, job.id, "Pause requested; the job stops after saving a checkpoint.")
    else:
        raise InvalidStateError(
            f"Job {job.id} is {status.value}; only queued or running jobs pause."
        )
    return job


def resume_job(session: Session, job: Job) -> Job:
    """Paused: queued again, to continue from its checkpoint. Pausing: the pause is withdrawn."""
    status = JobStatus(job.status)
    if status is JobStatus.PAUSED:
        job.status = JobStatus.QUEUED
        job.worker_id = None
        job.lease_expires_at = None
        job.requested_action = None
        add_event(session, job.id, "Job resumed; queued to continue from its last checkpoint.")
    elif status is JobStatus.RUNNING and job.requested_action == RequestedAction.PAUSE:
        job.requested_action = None
        add_event(session, job.id, "Pause withdrawn; the job keeps running.")
    else:
        raise InvalidStateError(f"Job {job.id} is {status.value}; only paused jobs resume.")
    return job


def add_event(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> JobEvent:
    event = JobEvent(
        id=new_id("ftevent"),
        job_id=job_id,
        created_at=now(),
        level=level,
        message=message,
        type=type,
        data=data,
    )
    session.add(event)
    return event


def list_events(session: Session, job: Job, *, limit: int, after: str | None) -> Page[JobEvent]:
    """Newest first, as OpenAI lists them."""
    stmt = select(JobEvent).where(JobEvent.job_id == job.id)
    return paginate(session, stmt, JobEvent.id, limit=limit, after=after, descending=True)


def add_checkpoint(
    session: Session, job: Job, project_name: str, *, step: int, metrics: dict[str, Any], path: str
) -> Checkpoint | None:
    """Record a checkpoint; a step already recorded (a resumed run saving it again) is kept."""
    existing = session.scalar(
        select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.step == step)
    )
    if existing is not None:
        return None
    base = fine_tuned_model_name(job.model, project_name, job.suffix, job.id)
    checkpoint = Checkpoint(
        id=new_id("ftckpt"),
        job_id=job.id,
        step=step,
        metrics=metrics,
        fine_tuned_model_checkpoint=checkpoint_model_name(base, step),
        path=path,
        created_at=now(),
    )
    session.add(checkpoint)
    _forget_pruned_checkpoints(session, job)
    return checkpoint


def _forget_pruned_checkpoints(session: Session, job: Job) -> None:
    """Drop the records of checkpoints whose folders the engine has pruned (it keeps the
    newest few), so the job lists only checkpoints that can still be used as models."""
    for old in session.scalars(select(Checkpoint).where(Checkpoint.job_id == job.id)):
        if old.path and not Path(old.path).is_dir():
            session.delete(old)


def list_checkpoints(
    session: Session, job: Job, *, limit: int, after: str | None
) -> Page[Checkpoint]:
    """Newest first, as OpenAI lists them."""
    stmt = select(Checkpoint).where(Checkpoint.job_id == job.id)
    return paginate(session, stmt, Checkpoint.id, limit=limit, after=after, descending=True)
