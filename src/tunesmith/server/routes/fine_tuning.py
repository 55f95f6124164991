"""``/v1/fine_tuning/jobs``: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from tunesmith.jobs import service
from tunesmith.jobs.models import Job
from tunesmith.server.deps import CurrentProject, ReaderDep, SessionDep, SettingsDep
from tunesmith.server.mapping import new_job_from_request
from tunesmith.server.schemas import (
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobCreate,
    ListResponse,
    from_checkpoint,
    from_event,
    from_job,
    list_response,
)

router = APIRouter(prefix="/fine_tuning/jobs", tags=["fine-tuning"])

Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post("", response_model=FineTuningJob)
def create_job(
    body: JobCreate, project: CurrentProject, session: SessionDep, settings: SettingsDep
) -> FineTuningJob:
    """Create a job. Its files are validated first (``validating_files``), then it is queued
    and a worker trains it. ``method.type`` may be ``supervised`` or, as tunesmith's extension,
    ``classification`` (``{"text", "label"}`` data)."""
    new = new_job_from_request(session, project.id, body)
    job = service.create_job(session, settings, project, new)
    session.commit()
    return from_job(job)


def _metadata_filter(request: Request) -> dict[str, str]:
    """``metadata[key]=value`` query parameters, as the OpenAI SDK sends them."""
    found = {}
    for name, value in request.query_params.items():
        if name.startswith("metadata[") and name.endswith("]"):
            found[name[len("metadata[") : -1]] = value
    return found


@router.get("", response_model=ListResponse[FineTuningJob])
async def list_jobs(
    request: Request,
    project: CurrentProject,
    read: ReaderDep,
    after: str | None = None,
    limit: Limit = 20,
) -> dict[str, Any]:
    """This project's jobs, newest first; filter with ``metadata[key]=value``."""
    metadata = _metadata_filter(request)

    def work(session: Session) -> dict[str, Any]:
        page = service.list_jobs(session, project.id, limit=limit, after=after, metadata=metadata)
        return list_response(page, from_job)

    return await read(work)


@router.get("/{fine_tuning_job_id}", response_model=FineTuningJob)
async def retrieve_job(
    fine_tuning_job_id: str, project: CurrentProject, read: ReaderDep
) -> FineTuningJob:
    return await read(
        lambda session: from_job(service.get_job(session, project.id, fine_tuning_job_id))
    )


def _act(
    session: Session, project_id: str, job_id: str, action: Callable[[Session, Job], Job]
) -> FineTuningJob:
    job = service.get_job(session, project_id, job_id)
    action(session, job)
    session.commit()
    return from_job(job)


@router.post("/{fine_tuning_job_id}/cancel", response_model=FineTuningJob)
def cancel_job(
    fine_tuning_job_id: str, project: CurrentProject, session: SessionDep
) -> FineTuningJob:
    """Cancel at once; a running training process stops within a few seconds."""
    return _act(session, project.id, fine_tuning_job_id, service.cancel_job)


@router.post("/{fine_tuning_job_id}/pause", response_model=FineTuningJob)
def pause_job(
    fine_tuning_job_id: str, project: CurrentProject, session: SessionDep
) -> FineTuningJob:
    """Pause: a running job saves a checkpoint and becomes ``paused``."""
    return _act(session, project.id, fine_tuning_job_id, service.pause_job)


@router.post("/{fine_tuning_job_id}/resume", response_model=FineTuningJob)
def resume_job(
    fine_tuning_job_id: str, project: CurrentProject, session: SessionDep
) -> FineTuningJob:
    """Resume a paused job: queued again, it continues from its last checkpoint."""
    return _act(session, project.id, fine_tuning_job_id, service.resume_job)


@router.get("/{fine_tuning_job_id}/events", response_model=ListResponse[FineTuningJobEvent])
async def list_events(
    fine_tuning_job_id: str,
    project: CurrentProject,
    read: ReaderDep,
    after: str | None = None,
    limit: Limit = 20,
) -> dict[str, Any]:
    """Messages and ``metrics`` events (``data``: step, train_loss, valid_loss, ...), newest
    first."""

    def work(session: Session) -> dict[str, Any]:
        job = service.get_job(session, project.id, fine_tuning_job_id)
        page = service.list_events(session, job, limit=limit, after=after)
        return list_response(page, from_event)

    return await read(work)


@router.get(
    "/{fine_tuning_job_id}/checkpoints", response_model=ListResponse[FineTuningJobCheckpoint]
)
async def list_checkpoints(
    fine_tuning_job_id: str,
    project: CurrentProject,
    read: ReaderDep,
    after: str | None = None,
    limit: Limit = 10,
) -> dict[str, Any]:
    """Saved checkpoints, newest first; each ``fine_tuned_model_checkpoint`` names a model."""

    def work(session: Session) -> dict[str, Any]:
        job = service.get_job(session, project.id, fine_tuning_job_id)
        page = service.list_checkpoints(session, job, limit=limit, after=after)
        return list_response(page, from_checkpoint)

    return await read(work)
