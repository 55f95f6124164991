"""The job queue: workers claim jobs atomically, hold them with a lease, and lose them when
they stop heart-beating. See ``docs/decisions/003-job-queue.md`` for why it works this way.

A claim takes the oldest job of the highest priority that is ``queued`` (to train: it becomes
``running``) or ``validating_files`` and unclaimed (to check its files: the status stays).

- PostgreSQL: ``SELECT ... ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED``, then
  an ``UPDATE`` of status, worker and lease in the same transaction: concurrent workers each
  get a different job and never wait on each other's row.
- SQLite: no ``SKIP LOCKED``; the transaction starts with ``BEGIN IMMEDIATE`` (see
  ``store.py``), so claims are serialised, and the ``UPDATE ... WHERE id = ? AND status = ?
  AND worker_id IS NULL`` is checked by its row count anyway.

Every later write by the worker is fenced the same way (``WHERE id = ? AND worker_id = ?``):
a worker whose lease expired and whose job was requeued can no longer change it.

``InMemoryQueue`` (in ``fakes.py``) implements the same ``JobQueue`` protocol for unit tests;
one contract test runs against both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Engine, select, update
from sqlalchemy.orm import Session

from tunesmith.jobs.models import Job, JobStatus, RequestedAction, Worker
from tunesmith.jobs.service import add_event
from tunesmith.jobs.store import now, session_factory

CLAIMABLE = (JobStatus.VALIDATING_FILES, JobStatus.QUEUED)
LEASED = (JobStatus.VALIDATING_FILES, JobStatus.RUNNING)


@dataclass(frozen=True)
class Claim:
    """A job a worker now holds. ``status`` says what to do: validate files, or train."""

    job_id: str
    status: JobStatus
    attempts: int


class JobQueue(Protocol):
    def claim(self, worker_id: str) -> Claim | None:
        """Take the next job, or None when there is none."""
        ...

    def heartbeat(self, worker_id: str, job_id: str) -> bool:
        """Extend the lease; False when the job is no longer this worker's (requeued,
        cancelled, finished), and the worker should stop working on it."""
        ...

    def requeue_expired(self) -> list[str]:
        """Give the jobs of lost workers back: queued again (or failed after too many runs)."""
        ...

    def release(self, worker_id: str, job_id: str) -> bool:
        """Put a running job back in the queue without counting the run (worker shutdown)."""
        ...

    def transition(
        self, worker_id: str, job_id: str, old: JobStatus, new: JobStatus, **values: Any
    ) -> bool:
        """Move a job this worker holds from ``old`` to ``new``; False if it no longer holds it."""
        ...


def _rowcount(result: object) -> int:
    return cast(CursorResult[Any], result).rowcount


def fenced_update(
    session: Session, worker_id: str, job_id: str, old: JobStatus, new: JobStatus, **values: Any
) -> bool:
    """``UPDATE`` a job only if this worker still holds it in status ``old``; True if it did.
    Leaving the worker's hands (queued, paused, final) clears the lease."""
    if new.is_final or new in (JobStatus.QUEUED, JobStatus.PAUSED):
        values = {"worker_id": None, "lease_expires_at": None, **values}
        values.setdefault("estimated_finish", None)
    if new.is_final:
        values.setdefault("finished_at", now())
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.worker_id == worker_id, Job.status == old)
        .values(status=new, **values)
    )
    return _rowcount(result) == 1


class SqlQueue:
    """The queue in the job database (SQLite or PostgreSQL)."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease_seconds: float,
        max_attempts: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.clock = clock

    def claim(self, worker_id: str) -> Claim | None:
        for _ in range(3):  # lost a race for the row (another worker took it): try again
            with self.sessions.begin() as session:
                row = session.execute(
                    select(Job.id, Job.status, Job.attempts)
                    .where(Job.status.in_(CLAIMABLE), Job.worker_id.is_(None))
                    .order_by(Job.priority.desc(), Job.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                job_id, status, attempts = row
                values: dict[str, Any] = {
                    "worker_id": worker_id,
                    "lease_expires_at": self.clock() + self.lease_seconds,
                }
                if status == JobStatus.QUEUED:
                    attempts += 1
                    values.update(
                        status=JobStatus.RUNNING, attempts=attempts, estimated_finish=None
                    )
                claimed = _rowcount(
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.status == status, Job.worker_id.is_(None))
                        .values(**values)
                    )
                )
                if claimed == 1:
                    new_status = JobStatus(values.get("status", status))
                    if new_status is JobStatus.RUNNING:
                        session.execute(
                            update(Job)
                            .where(Job.id == job_id, Job.started_at.is_(None))
                            .values(started_at=now())
                        )
                    return Claim(job_id, new_status, attempts)
        return None

    def heartbeat(self, worker_id: str, job_id: str) -> bool:
        with self.sessions.begin() as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.worker_id == worker_id, Job.status.in_(LEASED))
                .values(lease_expires_at=self.clock() + self.lease_seconds)
            )
            return _rowcount(result) == 1

    def requeue_expired(self) -> list[str]:
        current = self.clock()
        with self.sessions.begin() as session:
            rows = (
                session.execute(
                    select(Job)
                    .where(
                        Job.status.in_(LEASED),
                        Job.worker_id.is_not(None),
                        Job.lease_expires_at < current,
                    )
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            return [job.id for job in rows if self._give_back(session, job)]

    def _give_back(self, session: Session, job: Job) -> bool:
        lost = job.worker_id
        if job.status == JobStatus.VALIDATING_FILES:
            job.worker_id, job.lease_expires_at = None, None
            add_event(session, job.id, f"Worker {lost} stopped responding; validating again.")
            return True
        if job.requested_action == RequestedAction.PAUSE:
            new, message = JobStatus.PAUSED, "paused at its last checkpoint"
        elif job.attempts >= self.max_attempts:
            job.status = JobStatus.FAILED
            job.finished_at = now()
            job.error = {
                "code": "worker_lost",
                "message": f"The job's worker stopped responding {job.attempts} times; giving up.",
                "param": None,
            }
            add_event(session, job.id, job.error["message"], level="error")
            job.worker_id, job.lease_expires_at, job.estimated_finish = None, None, None
            return True
        else:
            new, message = JobStatus.QUEUED, "requeued; it resumes from its last checkpoint"
        job.status = new
        job.worker_id, job.lease_expires_at, job.estimated_finish = None, None, None
        job.requested_action = None
        add_event(
            session, job.id, f"Worker {lost} stopped responding; job {message}.", level="warn"
        )
        return True

    def release(self, worker_id: str, job_id: str) -> bool:
        with self.sessions.begin() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.worker_id != worker_id or job.status != JobStatus.RUNNING:
                return False
            pausing = job.requested_action == RequestedAction.PAUSE
            job.status = JobStatus.PAUSED if pausing else JobStatus.QUEUED
            job.worker_id, job.lease_expires_at, job.estimated_finish = None, None, None
            job.requested_action = None
            job.attempts = max(0, job.attempts - 1)
            add_event(session, job_id, f"Worker {worker_id} shut down; job {job.status}.")
            return True

    def transition(
        self, worker_id: str, job_id: str, old: JobStatus, new: JobStatus, **values: Any
    ) -> bool:
        with self.sessions.begin() as session:
            return fenced_update(session, worker_id, job_id, old, new, **values)

    # --- the workers table: who is alive, for operators (leases decide, not this) ---------

    def register_worker(self, worker_id: str, hostname: str, pid: int) -> None:
        with self.sessions.begin() as session:
            t = self.clock()
            session.merge(
                Worker(id=worker_id, hostname=hostname, pid=pid, started_at=t, heartbeat_at=t)
            )

    def worker_heartbeat(self, worker_id: str, job_id: str | None) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(Worker)
                .where(Worker.id == worker_id)
                .values(heartbeat_at=self.clock(), current_job_id=job_id)
            )

    def worker_stopped(self, worker_id: str) -> None:
        with self.sessions.begin() as session:
            session.execute(
                update(Worker)
                .where(Worker.id == worker_id)
                .values(stopped_at=self.clock(), current_job_id=None)
            )
