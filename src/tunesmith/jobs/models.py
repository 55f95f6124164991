"""The job database's tables (SQLAlchemy 2 declarative models) and the job status machine.

Tables::

    projects ─┬─ api_keys                  keys are stored as sha256 hashes; prefix shown
              ├─ files                     uploaded bytes live on disk, ``path`` points there
              └─ fine_tuning_jobs ─┬─ fine_tuning_job_events       append-only
                                   └─ fine_tuning_job_checkpoints  one per saved step
    workers                                one row per worker process, with its heartbeat

Timestamps shown by the API (``created_at``, ``finished_at``, ...) are integer Unix seconds,
as in OpenAI's API. Lease expiry and heartbeats are float Unix seconds: workers on several
machines must have synchronised clocks (NTP), since a lease is compared with the local time.

The schema is created by Alembic (``tunesmith/migrations``); a test checks that the
migrations and these models agree.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class JobStatus(StrEnum):
    """Where a fine-tuning job is. Transitions (anything else is refused)::

        validating_files ──> queued ──> running ──> succeeded | failed | cancelled
                              ▲  │ ▲      │  │
                              │  │ └──────┘  │   lease expired (worker lost): back to queued
                              │  ▼           │
                              └─ paused <────┘   pause at a checkpoint; resume queues it

    Every status that is not final may also go to ``cancelled``, and ``validating_files`` to
    ``failed`` (a bad file).

    ``validating_files``: a worker checks the uploaded files with the engine's validator.
    ``queued``: waiting for a worker. ``running``: a worker holds its lease and trains.
    ``paused``: stopped at a checkpoint on request; ``resume`` queues it again and it continues
    from that checkpoint. ``succeeded``, ``failed`` and ``cancelled`` are final.
    """

    VALIDATING_FILES = "validating_files"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.VALIDATING_FILES: frozenset(
        {JobStatus.QUEUED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.PAUSED,
            JobStatus.QUEUED,
        }
    ),
    JobStatus.PAUSED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(old: JobStatus | str, new: JobStatus | str) -> bool:
    """Whether the status machine above allows ``old -> new``."""
    return JobStatus(new) in TRANSITIONS[JobStatus(old)]


class RequestedAction(StrEnum):
    """What the API asked a running job to do; the training process polls for it."""

    CANCEL = "cancel"
    PAUSE = "pause"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[int] = mapped_column(Integer)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(Integer)


class FileRecord(Base):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_project_purpose", "project_id", "purpose"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default="processed")
    status_details: Mapped[str | None] = mapped_column(Text, default=None)
    path: Mapped[str] = mapped_column(Text)
    validation: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # set when the upload was de-identified as it streamed in (server/deid_upload.py): the mode
    # and counts by type, never a value; null means the bytes are stored as they were sent
    deidentification: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class Job(Base):
    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "priority", "id"),
        Index("ix_jobs_project", "project_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(Text)
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(32), default=JobStatus.VALIDATING_FILES)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requested_action: Mapped[str | None] = mapped_column(String(16), default=None)
    method: Mapped[dict[str, Any]] = mapped_column()
    hyperparameters: Mapped[dict[str, Any]] = mapped_column()
    spec: Mapped[dict[str, Any]] = mapped_column()
    suffix: Mapped[str | None] = mapped_column(String(64), default=None)
    seed: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    result_files: Mapped[list[Any]] = mapped_column(default=list)
    trained_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    estimated_finish: Mapped[int | None] = mapped_column(Integer, default=None)
    fine_tuned_model: Mapped[str | None] = mapped_column(Text, default=None)
    # set when the fine-tuned model was deleted (DELETE /v1/models/{id}); its files are gone
    model_deleted_at: Mapped[int | None] = mapped_column(Integer, default=None)
    output_dir: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[int | None] = mapped_column(Integer, default=None)
    finished_at: Mapped[int | None] = mapped_column(Integer, default=None)


class JobEvent(Base):
    __tablename__ = "fine_tuning_job_events"
    __table_args__ = (Index("ix_events_job", "job_id", "id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8), default="info")
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), default="message")
    data: Mapped[dict[str, Any] | None] = mapped_column(default=None)


class Checkpoint(Base):
    __tablename__ = "fine_tuning_job_checkpoints"
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_checkpoints_job_step"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column()
    fine_tuned_model_checkpoint: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(Integer)


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[float] = mapped_column(Float)
    current_job_id: Mapped[str | None] = mapped_column(String(64), default=None)
    stopped_at: Mapped[float | None] = mapped_column(Float, default=None)
