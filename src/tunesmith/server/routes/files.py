"""``/v1/files``: upload (streamed to disk), list, retrieve, content, delete."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from tunesmith.jobs import files as store
from tunesmith.jobs.errors import InvalidRequestError, NotFoundError
from tunesmith.jobs.models import FileRecord
from tunesmith.server import deid_upload
from tunesmith.server.deps import (
    CurrentProject,
    ReaderDep,
    ReadSessionsDep,
    SessionDep,
    SessionsDep,
    SettingsDep,
)
from tunesmith.server.schemas import FileDeleted, FileObject, ListResponse, from_file, list_response
from tunesmith.server.uploads import Upload, receive_upload

router = APIRouter(prefix="/files", tags=["files"])

UPLOAD_PURPOSES = ("fine-tune", "assistants", "batch", "vision", "user_data", "evals")
UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": list(UPLOAD_PURPOSES)},
                        "deidentify": {
                            "type": "boolean",
                            "description": "tunesmith's extension: de-identify the file "
                            "(JSONL or CSV) while it streams in, so its original text is never "
                            "stored. Send it before the file part.",
                        },
                        "deidentify_mode": {
                            "type": "string",
                            "enum": list(deid_upload.MODES),
                            "description": "With deidentify: placeholders (default) or "
                            "consistent surrogates.",
                        },
                        "record_key_field": {
                            "type": "string",
                            "description": "With deidentify: the field naming each line's "
                            "patient; its values become keyed pseudonyms.",
                        },
                    },
                }
            }
        },
    }
}


def _get(session: Session, project_id: str, file_id: str) -> FileRecord:
    record = store.get_file(session, project_id, file_id)
    if record is None:
        raise NotFoundError("file", file_id, param="file_id")
    return record


@router.post("", response_model=FileObject, openapi_extra=UPLOAD_SCHEMA)
async def upload_file(
    request: Request, project: CurrentProject, settings: SettingsDep, sessions: SessionsDep
) -> FileObject:
    """Upload a file (multipart ``file`` and ``purpose``); it is streamed to disk, up to the
    server's ``max_upload_bytes``. A ``fine-tune`` file is validated when a job uses it.
    With ``deidentify=true`` (sent before the file) it is de-identified as it streams in and
    only the de-identified text is stored (``server/deid_upload.py``)."""
    upload = await receive_upload(
        request,
        settings.files_dir,
        settings.max_upload_bytes,
        open_sink=deid_upload.sink_opener(settings),
    )
    try:
        deid_upload.check_field_order(upload, settings)
        return await run_in_threadpool(_save_upload, upload, project.id, settings, sessions)
    finally:
        if upload.temp_path is not None:
            upload.temp_path.unlink(missing_ok=True)


def _save_upload(upload: Upload, project_id: str, settings: Any, sessions: Any) -> FileObject:
    purpose = upload.fields.get("purpose", "")
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequestError(
            f"Invalid purpose {purpose!r}; expected one of {', '.join(UPLOAD_PURPOSES)}.",
            param="purpose",
        )
    assert upload.temp_path is not None and upload.filename is not None
    file_id, path = store.new_file_path(settings, upload.filename)
    upload.temp_path.rename(path)
    try:
        with sessions.begin() as session:
            record = store.add_file(
                session,
                file_id=file_id,
                project_id=project_id,
                filename=upload.filename,
                purpose=purpose,
                path=path,
                size=path.stat().st_size,  # a de-identified file differs from what was sent
                deidentification=upload.sink_result,
            )
            return from_file(record)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@router.get("", response_model=ListResponse[FileObject])
async def list_files(
    project: CurrentProject,
    read: ReaderDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    """This project's files, newest first unless ``order=asc``; page with ``after``."""

    def work(session: Session) -> dict[str, Any]:
        page = store.list_files(
            session, project.id, purpose=purpose, limit=limit, order=order, after=after
        )
        return list_response(page, from_file)

    return await read(work)


@router.get("/{file_id}", response_model=FileObject)
async def retrieve_file(file_id: str, project: CurrentProject, read: ReaderDep) -> FileObject:
    return await read(lambda session: from_file(_get(session, project.id, file_id)))


@router.get("/{file_id}/content", response_class=FileResponse)
def file_content(file_id: str, project: CurrentProject, sessions: ReadSessionsDep) -> FileResponse:
    """The file's bytes."""
    with sessions() as session:  # closed before the bytes stream out
        record = _get(session, project.id, file_id)
    return FileResponse(record.path, media_type="application/octet-stream")


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, project: CurrentProject, session: SessionDep) -> FileDeleted:
    """Delete the file and its bytes."""
    record = _get(session, project.id, file_id)
    path = store.delete_file(session, record)
    session.commit()
    path.unlink(missing_ok=True)
    return FileDeleted(id=file_id, deleted=True)
