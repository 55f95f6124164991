"""Train one claimed job in this process; a worker starts it as::

    python -m tunesmith.jobs.run_job JOB_ID --worker-id WORKER --parent-pid PID

Settings come from the environment (the worker passes its own as ``TUNESMITH_*``). The process
dies with its worker (``PR_SET_PDEATHSIG`` on Linux, and a watchdog on the parent's pid
everywhere), so a worker killed with SIGKILL leaves no training behind to race the worker
that picks the job up after its lease expires. SIGTERM asks for a clean stop: checkpoint,
then hand the job back to the queue.

It calls the engine's ``finetune(spec, settings=..., callbacks=[JobReporter], resume="auto")``:
a job that ran before (requeued, or paused and resumed) has checkpoints in its output folder,
and training continues from the newest. Whatever happens, it records the outcome on the job,
fenced by the worker id so a job this worker no longer holds is left alone.

A distributed job runs this module once per rank under ``torchrun`` (the worker starts
``python -m tunesmith.training.distributed torchrun --parent-pid PID -- ... -m
tunesmith.jobs.run_job JOB_ID --worker-id WORKER [--fsdp]``). Every rank trains; rank 0 alone
reports: its ``JobReporter`` writes the events and decides when every rank stops (cancel, pause,
a lost lease, SIGTERM), and it records the outcome. Each rank dies with its ``torchrun``, which
dies with the worker.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tunesmith.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    ModelError,
    TrainingInterrupted,
    TunesmithError,
)
from tunesmith.jobs.engine import load_engine
from tunesmith.jobs.models import Job, JobStatus, Project
from tunesmith.jobs.outcome import describe_issues, record_success
from tunesmith.jobs.queue import fenced_update
from tunesmith.jobs.service import add_event
from tunesmith.jobs.store import create_engine_for, session_factory
from tunesmith.settings import Settings, load_settings
from tunesmith.training.distributed import die_with_parent, leave_process_group
from tunesmith.training.spec import FinetuneSpec

log = logging.getLogger("tunesmith.jobs.run_job")
EXIT_NOT_OURS = 3
__all__ = ["die_with_parent", "main", "run"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tunesmith.jobs.run_job")
    parser.add_argument("job_id")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--fsdp", action="store_true", help="shard the model (distributed)")
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    elif "TORCHELASTIC_RUN_ID" in os.environ:  # a rank: die with torchrun, our parent
        die_with_parent(os.getppid())
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    shutdown = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: shutdown.set())
    settings = load_settings()
    engine = create_engine_for(settings)
    try:
        return run(
            settings,
            session_factory(engine),
            args.job_id,
            args.worker_id,
            shutdown,
            rank=rank,
            fsdp=args.fsdp,
        )
    finally:
        leave_process_group(clean=False)
        engine.dispose()


def run(
    settings: Settings,
    sessions: sessionmaker[Session],
    job_id: str,
    worker_id: str,
    shutdown: threading.Event,
    *,
    rank: int = 0,
    fsdp: bool = False,
) -> int:
    from tunesmith.jobs.reporting import JobReporter

    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None or job.worker_id != worker_id or job.status != JobStatus.RUNNING:
            log.warning("job %s is not held by worker %s; nothing to do", job_id, worker_id)
            return EXIT_NOT_OURS
        project = session.get(Project, job.project_id)
        project_name = project.name if project else job.project_id
    options = {"fsdp": True} if fsdp else {}
    if rank != 0:  # rank 0 reports, decides when every rank stops, and records the outcome
        with contextlib.suppress(TrainingInterrupted):
            load_engine(settings).finetune(
                FinetuneSpec.model_validate(job.spec),
                settings=settings,
                callbacks=[],
                resume="auto",
                **options,
            )
        return 0
    reporter = JobReporter(
        sessions, job_id=job_id, worker_id=worker_id, project_name=project_name, shutdown=shutdown
    )
    try:
        spec = FinetuneSpec.model_validate(job.spec)
        result = load_engine(settings).finetune(
            spec, settings=settings, callbacks=[reporter], resume="auto", **options
        )
    except TrainingInterrupted as exc:
        _interrupted(sessions, job_id, worker_id, exc, reporter.last_step)
    except Exception as exc:
        _failed(sessions, job_id, worker_id, exc)
    else:
        record_success(sessions, settings, job, project_name, worker_id, result)
    return 0


def _interrupted(
    sessions: sessionmaker[Session],
    job_id: str,
    worker_id: str,
    exc: TrainingInterrupted,
    step: int,
) -> None:
    with sessions.begin() as session:
        if exc.reason == "pause":
            if fenced_update(
                session,
                worker_id,
                job_id,
                JobStatus.RUNNING,
                JobStatus.PAUSED,
                requested_action=None,
            ):
                add_event(session, job_id, f"Job paused after step {step}; resume continues it.")
        elif exc.reason == "shutdown":
            job = session.get(Job, job_id, with_for_update=True)
            if job is not None and job.worker_id == worker_id and job.status == JobStatus.RUNNING:
                fenced_update(
                    session,
                    worker_id,
                    job_id,
                    JobStatus.RUNNING,
                    JobStatus.QUEUED,
                    attempts=max(0, job.attempts - 1),
                )
                add_event(session, job_id, f"Worker shut down after step {step}; job requeued.")
        elif exc.reason == "cancel":
            add_event(session, job_id, f"Training stopped after step {step}.")


ERROR_CODES: list[tuple[type[BaseException], str, str | None]] = [
    (DataError, "invalid_training_file", "training_file"),
    (ConfigError, "invalid_hyperparameters", "hyperparameters"),
    (ModelError, "invalid_model", "model"),
    (CheckpointError, "checkpoint_error", None),
    (TunesmithError, "training_error", None),
]


def error_for(exc: BaseException) -> dict[str, Any]:
    """The job's ``error`` object for an exception raised by the engine."""
    for kind, code, param in ERROR_CODES:
        if isinstance(exc, kind):
            message = str(exc)
            if isinstance(exc, DataError):
                message = describe_issues(exc.issues, {})
            return {"code": code, "message": message, "param": param}
    return {
        "code": "server_error",
        "message": f"Training crashed: {type(exc).__name__}: {exc}",
        "param": None,
    }


def _failed(sessions: sessionmaker[Session], job_id: str, worker_id: str, exc: Exception) -> None:
    if not isinstance(exc, TunesmithError):
        traceback.print_exc()  # the worker keeps this process's output in <run>/worker.log
    error = error_for(exc)
    with sessions.begin() as session:
        if fenced_update(
            session, worker_id, job_id, JobStatus.RUNNING, JobStatus.FAILED, error=error
        ):
            add_event(session, job_id, f"Fine-tuning failed: {error['message']}", level="error")


if __name__ == "__main__":
    sys.exit(main())
