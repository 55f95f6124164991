"""``/v1/fine_tuning/jobs/{id}/evaluation`` (a tunesmith extension): evaluate a succeeded job
on its validation file — against its base model for chat and completion — and read the
cached report. ``POST`` starts it in the background; ``GET`` says where it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from tunesmith.jobs import files as store
from tunesmith.jobs import service
from tunesmith.jobs.errors import InvalidStateError, NotFoundError
from tunesmith.jobs.models import JobStatus
from tunesmith.server.deps import CurrentProject, ReadSessionDep, SessionDep
from tunesmith.server.evaluations import EvaluationRequest, Evaluations

router = APIRouter(prefix="/fine_tuning/jobs", tags=["fine-tuning (tunesmith extensions)"])


def _evaluations(request: Request) -> Evaluations:
    return request.app.state.evaluations  # type: ignore[no-any-return]


@router.get("/{fine_tuning_job_id}/evaluation")
def get_evaluation(
    request: Request, fine_tuning_job_id: str, project: CurrentProject, session: ReadSessionDep
) -> dict[str, Any]:
    """``status``: ``not_started``, ``running``, ``succeeded`` (with ``report``) or ``failed``."""
    job = service.get_job(session, project.id, fine_tuning_job_id)
    return _evaluations(request).status(job.id, Path(job.output_dir))


@router.post("/{fine_tuning_job_id}/evaluation")
def start_evaluation(
    request: Request, fine_tuning_job_id: str, project: CurrentProject, session: SessionDep
) -> dict[str, Any]:
    """Start evaluating the job's model on its validation file (once; the report is cached)."""
    job = service.get_job(session, project.id, fine_tuning_job_id)
    if job.status != JobStatus.SUCCEEDED or not job.fine_tuned_model:
        raise InvalidStateError(f"Job {job.id} is {job.status}; only a succeeded job is evaluated.")
    if not job.validation_file:
        raise InvalidStateError(
            f"Job {job.id} has no validation file: evaluation needs held-out examples. "
            "Give a validation_file when creating the job."
        )
    data = store.get_file(session, project.id, job.validation_file)
    if data is None:
        raise NotFoundError("file", job.validation_file, param="validation_file")
    classification = (job.method or {}).get("type") == "classification"
    evaluation = EvaluationRequest(
        job_id=job.id,
        run_dir=Path(job.output_dir),
        data=Path(data.path),
        data_name=data.id,
        model_name=job.fine_tuned_model,
        baseline=None if classification else job.model,
    )
    return _evaluations(request).start(evaluation)
