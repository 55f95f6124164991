"""Tunesmith's extensions to ``/v1/files`` for the dashboard: a data file's validation report
(``/validation``) and a page of its records (``/examples``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from tunesmith.jobs import files as store
from tunesmith.jobs.errors import InvalidRequestError, NotFoundError
from tunesmith.jobs.models import FileRecord
from tunesmith.server.dataset_report import DatasetReports
from tunesmith.server.deps import CurrentProject, ReadSessionsDep
from tunesmith.server.file_examples import read_examples
from tunesmith.tasks import Method
from tunesmith.training.spec import Hyperparameters

router = APIRouter(prefix="/files", tags=["files (tunesmith extensions)"])

AutoOrInt = Annotated[str, Query(pattern=r"^(auto|[0-9]+)$")]
AutoOrFloat = Annotated[str, Query(pattern=r"^(auto|[0-9]*\.?[0-9]+(e-?[0-9]+)?)$")]


async def _record(sessions: Any, project_id: str, file_id: str, param: str) -> FileRecord:
    # In a worker thread, never on the event loop: waiting there for the database lock would
    # also stop the request holding it from finishing (SQLite waits out its busy timeout).
    record = await run_in_threadpool(_get_file, sessions, project_id, file_id)
    if record is None:
        raise NotFoundError("file", file_id, param=param)
    return record


def _get_file(sessions: Any, project_id: str, file_id: str) -> FileRecord | None:
    with sessions() as session:
        return store.get_file(session, project_id, file_id)


def _hyperparameters(**values: str) -> Hyperparameters:
    given: dict[str, Any] = {k: v for k, v in values.items() if v != "auto"}
    try:
        return Hyperparameters(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequestError(f"Invalid hyperparameters: {first['msg']}", param=param) from None


@router.get("/{file_id}/validation")
async def file_validation(
    request: Request,
    file_id: str,
    project: CurrentProject,
    sessions: ReadSessionsDep,
    model: str | None = None,
    validation_file: str | None = None,
    method: Literal["lora", "full", "head"] = "lora",
    n_epochs: AutoOrInt = "auto",
    batch_size: AutoOrInt = "auto",
    learning_rate_multiplier: AutoOrFloat = "auto",
    max_seq_length: AutoOrInt = "auto",
) -> dict[str, Any]:
    """The file's validation report: errors and warnings (file, line, field), statistics
    (token counts with ``model``'s tokenizer, label distribution), the training estimate
    (epochs, steps, tokens, seconds) and, with ``model``, every "auto" hyperparameter
    resolved. ``validation_file`` checks the pair (shared examples, unknown labels)."""
    train = await _record(sessions, project.id, file_id, "file_id")
    valid = (
        await _record(sessions, project.id, validation_file, "validation_file")
        if validation_file
        else None
    )
    hp = _hyperparameters(
        n_epochs=n_epochs,
        batch_size=batch_size,
        learning_rate_multiplier=learning_rate_multiplier,
        max_seq_length=max_seq_length,
    )
    reports: DatasetReports = request.app.state.dataset_reports
    names = {r.path: r.id for r in (train, valid) if r is not None}
    body = await run_in_threadpool(
        reports.report,
        Path(train.path),
        validation=Path(valid.path) if valid else None,
        model=model or None,
        method=Method(method),
        hyperparameters=hp,
        names=names,
    )
    return {"file_id": train.id, "validation_file_id": valid.id if valid else None, **body}


@router.get("/{file_id}/examples")
async def file_examples(
    file_id: str,
    project: CurrentProject,
    sessions: ReadSessionsDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 5,
) -> dict[str, Any]:
    """A page of the file's records as written, each with its line number."""
    record = await _record(sessions, project.id, file_id, "file_id")
    return await run_in_threadpool(read_examples, Path(record.path), offset=offset, limit=limit)
