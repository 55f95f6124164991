"""The ``validating_files`` stage: check a job's files with the engine's validator.

A worker that claims a job in ``validating_files`` runs this in its own process (validation
reads the files; it trains nothing). Good files queue the job for training; bad ones fail it
with an ``error`` naming the file, the line and the problem. The report is kept on each file
(``files.validation``), and a bad file gets status ``error`` with the problems as its
``status_details``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tunesmith.jobs.engine import JobEngine
from tunesmith.jobs.models import FileRecord, Job, JobStatus
from tunesmith.jobs.outcome import describe_issues
from tunesmith.jobs.queue import fenced_update
from tunesmith.jobs.service import add_event

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def validate_job_files(
    sessions: sessionmaker[Session], engine: JobEngine, worker_id: str, job_id: str
) -> bool:
    """Validate, then move the job to ``queued`` or ``failed``; True if the files are good."""
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            return False
        wanted = {"training_file": job.training_file, "validation_file": job.validation_file}
        files = {p: session.get(FileRecord, fid) for p, fid in wanted.items() if fid}
    missing = [p for p, record in files.items() if record is None]
    if missing:
        param = missing[0]
        return _fail(
            sessions, worker_id, job_id, param, f"The {param} {wanted[param]} was deleted."
        )
    train, valid = files["training_file"], files.get("validation_file")
    assert train is not None
    try:
        report = engine.validate_file(
            Path(train.path), validation_path=Path(valid.path) if valid else None
        )
    except Exception as exc:
        log.exception("validating %s failed", train.id)
        message = f"Could not validate {train.id} ({train.filename}): {type(exc).__name__}: {exc}"
        return _fail(sessions, worker_id, job_id, "training_file", message)
    names = {r.path: f"{r.id} ({r.filename})" for r in files.values() if r is not None}
    return _record(sessions, worker_id, job_id, files, report, names)


def _record(
    sessions: sessionmaker[Session],
    worker_id: str,
    job_id: str,
    files: dict[str, FileRecord | None],
    report: Any,
    names: dict[str, str],
) -> bool:
    errors = list(report.errors)
    report_dict = _jsonable(report.to_dict())
    with sessions.begin() as session:
        for record in files.values():
            if record is None:
                continue
            row = session.get(FileRecord, record.id)
            if row is None:
                continue
            own = [e for e in errors if e.file == record.path]
            row.validation = report_dict
            row.status = "error" if own else "processed"
            row.status_details = describe_issues(own, names) if own else None
        if report.ok:
            if fenced_update(
                session, worker_id, job_id, JobStatus.VALIDATING_FILES, JobStatus.QUEUED
            ):
                add_event(session, job_id, "Files validated; the job is queued.")
            return True
    valid = files.get("validation_file")
    in_valid = valid is not None and any(e.file == valid.path for e in errors)
    param = "validation_file" if in_valid else "training_file"
    return _fail(sessions, worker_id, job_id, param, describe_issues(errors, names))


def _fail(
    sessions: sessionmaker[Session], worker_id: str, job_id: str, param: str, message: str
) -> bool:
    error = {"code": f"invalid_{param}", "message": message, "param": param}
    with sessions.begin() as session:
        if fenced_update(
            session, worker_id, job_id, JobStatus.VALIDATING_FILES, JobStatus.FAILED, error=error
        ):
            add_event(session, job_id, f"File validation failed: {message}", level="error")
    return False
