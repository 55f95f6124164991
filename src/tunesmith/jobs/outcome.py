"""Recording how a job ended, and describing bad data in a job's ``error``."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tunesmith.errors import DataIssue
from tunesmith.jobs.files import add_file, new_file_path
from tunesmith.jobs.models import Job, JobStatus
from tunesmith.jobs.queue import fenced_update
from tunesmith.jobs.service import add_event, fine_tuned_model_name
from tunesmith.settings import Settings

SHOWN_ISSUES = 10
RESULTS_FILENAME = "step_metrics.csv"


def describe_issues(issues: Sequence[DataIssue], names: dict[str, str]) -> str:
    """One message naming file, line, field and problem of the first issues.

    ``names`` maps a path on disk to how the user knows the file (``file-abc (train.jsonl)``).
    """
    shown = []
    for issue in issues[:SHOWN_ISSUES]:
        where = names.get(issue.file, Path(issue.file).name)
        if issue.line is not None:
            where += f", line {issue.line}"
        if issue.field:
            where += f", field {issue.field!r}"
        shown.append(f"{where}: {issue.message}")
    more = len(issues) - SHOWN_ISSUES
    tail = f"; and {more} more" if more > 0 else ""
    return f"{len(issues)} problem(s) in the data: " + "; ".join(shown) + tail


class _LostJob(Exception):
    """The worker no longer holds the job; undo what this transaction did."""


def record_success(
    sessions: sessionmaker[Session],
    settings: Settings,
    job: Job,
    project_name: str,
    worker_id: str,
    result: Any,
) -> bool:
    """Mark the job succeeded with its model name, tokens and a ``fine-tune-results`` file."""
    name = fine_tuned_model_name(job.model, project_name, job.suffix, job.id)
    metrics_csv = Path(result.output_dir) / "metrics.csv"
    file_id, dest = new_file_path(settings, RESULTS_FILENAME)
    if metrics_csv.exists():
        shutil.copyfile(metrics_csv, dest)
    try:
        with sessions.begin() as session:
            result_files = []
            if dest.exists():
                add_file(
                    session,
                    file_id=file_id,
                    project_id=job.project_id,
                    filename=RESULTS_FILENAME,
                    purpose="fine-tune-results",
                    path=dest,
                    size=dest.stat().st_size,
                )
                result_files.append(file_id)
            if not fenced_update(
                session,
                worker_id,
                job.id,
                JobStatus.RUNNING,
                JobStatus.SUCCEEDED,
                fine_tuned_model=name,
                trained_tokens=int(result.trained_tokens),
                result_files=result_files,
            ):
                raise _LostJob
            add_event(session, job.id, f"New fine-tuned model created: {name}")
            add_event(
                session,
                job.id,
                "The job has successfully completed.",
                data={"steps": result.steps, "metrics": dict(result.metrics)},
            )
    except _LostJob:
        dest.unlink(missing_ok=True)
        return False
    return True
