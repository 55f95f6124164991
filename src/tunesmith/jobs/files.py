"""Uploaded files: their rows and their bytes under ``<data_dir>/files``.

The bytes of ``file-abc`` live at ``<data_dir>/files/file-abc<ext>``, keeping the uploaded
name's extension (``.jsonl``, ``.csv``) because the engine's reader goes by it. The uploaded
name itself is only shown, never used as a path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.jobs.ids import new_id
from tunesmith.jobs.models import FileRecord
from tunesmith.jobs.paging import Page, paginate
from tunesmith.jobs.store import now
from tunesmith.settings import Settings

PURPOSES = (
    "fine-tune",
    "fine-tune-results",
    "assistants",
    "assistants_output",
    "batch",
    "batch_output",
    "vision",
    "user_data",
    "evals",
)
_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


def safe_extension(filename: str) -> str:
    ext = Path(filename).suffix.lower()
    return ext if _SAFE_EXT.match(ext) else ""


def new_file_path(settings: Settings, filename: str) -> tuple[str, Path]:
    """A fresh file id and where its bytes go (the folder is created)."""
    file_id = new_id("file")
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    return file_id, settings.files_dir / f"{file_id}{safe_extension(filename)}"


def add_file(
    session: Session,
    *,
    file_id: str,
    project_id: str,
    filename: str,
    purpose: str,
    path: Path,
    size: int,
    status: str = "processed",
    deidentification: dict[str, Any] | None = None,
) -> FileRecord:
    record = FileRecord(
        id=file_id,
        project_id=project_id,
        filename=filename,
        purpose=purpose,
        bytes=size,
        created_at=now(),
        status=status,
        path=str(path),
        deidentification=deidentification,
    )
    session.add(record)
    session.flush()
    return record


def get_file(session: Session, project_id: str, file_id: str) -> FileRecord | None:
    record = session.get(FileRecord, file_id)
    return record if record is not None and record.project_id == project_id else None


def list_files(
    session: Session,
    project_id: str,
    *,
    purpose: str | None,
    limit: int,
    order: str,
    after: str | None,
) -> Page[FileRecord]:
    stmt = select(FileRecord).where(FileRecord.project_id == project_id)
    if purpose:
        stmt = stmt.where(FileRecord.purpose == purpose)
    return paginate(
        session, stmt, FileRecord.id, limit=limit, after=after, descending=order == "desc"
    )


def delete_file(session: Session, record: FileRecord) -> Path:
    """Delete the row; returns the bytes' path, for the caller to remove once committed."""
    session.delete(record)
    session.flush()
    return Path(record.path)
