"""OpenAI's fine-tuning request -> tunesmith's ``FinetuneSpec``.

- ``method.type``: ``supervised`` -> the task is inferred from the data (chat or completion);
  ``classification`` (tunesmith's extension) -> ``Task.CLASSIFICATION``; ``dpo`` and
  ``reinforcement`` are refused for now.
- Hyperparameters: the deprecated top-level ``hyperparameters`` and
  ``method.<type>.hyperparameters`` are merged (the method's win); OpenAI's ``n_epochs``,
  ``batch_size`` and ``learning_rate_multiplier`` are tunesmith's fields of the same names,
  ``"auto"`` included; any other ``Hyperparameters`` field is accepted too.
- ``seed`` becomes ``hyperparameters.seed`` (see ``create_job``); ``suffix`` the run's suffix.
- ``method.<type>.training_method`` (extension): ``lora`` (default), ``full`` or ``head``.
- ``method.<type>.distributed`` (extension): ``{"nproc_per_node": N, "fsdp": bool}``, kept in
  the job's ``method`` for the worker (``jobs/worker.py``), not in the spec: how many processes
  train a job does not change what it learns.
- ``method.<type>.deidentify`` (extension): ``true`` sets the spec's ``deidentify`` (the run
  de-identifies its own copy of the data, in the uploads' mode) and requires every file of
  the job to have been de-identified at upload, so the server never held its identifiers
  (decision 006); a file stored as it was sent is refused with ``file_not_deidentified``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from tunesmith.jobs.errors import InvalidRequestError, NotFoundError
from tunesmith.jobs.files import get_file
from tunesmith.jobs.models import FileRecord
from tunesmith.jobs.service import NewJob
from tunesmith.server.schemas import JobCreate
from tunesmith.tasks import Method, Task
from tunesmith.training.spec import FinetuneSpec, Hyperparameters

SHOWN = ("n_epochs", "batch_size", "learning_rate_multiplier")
SUFFIX = re.compile(r"^[A-Za-z0-9._-]*$")
TASKS: dict[str, Task | None] = {"supervised": None, "classification": Task.CLASSIFICATION}


def _file(session: Session, project_id: str, file_id: str, param: str) -> FileRecord:
    record = get_file(session, project_id, file_id)
    if record is None:
        raise NotFoundError("file", file_id, param=param)
    if record.purpose != "fine-tune":
        raise InvalidRequestError(
            f"File {file_id} has purpose {record.purpose!r}; upload it with purpose 'fine-tune'.",
            param=param,
            code="invalid_file_purpose",
        )
    return record


def _hyperparameters(request: JobCreate, kind: str) -> tuple[Hyperparameters, dict[str, Any]]:
    values = dict(request.hyperparameters or {})
    config = getattr(request.method, kind, None) if request.method else None
    if config is not None and config.hyperparameters:
        values.update(config.hyperparameters)
    values = {k: v for k, v in values.items() if v is not None}
    try:
        hp = Hyperparameters(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        param = f"hyperparameters.{loc}" if loc else "hyperparameters"
        raise InvalidRequestError(f"Invalid hyperparameters: {first['msg']}", param=param) from None
    return hp, {k: getattr(hp, k) for k in SHOWN}


def _training_method(request: JobCreate, kind: str) -> Method:
    config = getattr(request.method, kind, None) if request.method else None
    if config is not None and config.training_method:
        return Method(config.training_method)
    return Method.LORA


def _deidentification(config: Any, files: dict[str, FileRecord | None]) -> dict[str, Any]:
    """The spec's de-identification fields for ``method.<type>.deidentify`` (or none).

    Refuses files stored as they were sent: their identifiers are already on the server's
    disk, which de-identifying the run's copy would not undo.
    """
    if config is None or not config.deidentify:
        return {}
    summaries = []
    for param, record in files.items():
        if record is None:
            continue
        if record.deidentification is None:
            raise InvalidRequestError(
                f"File {record.id} was stored as it was sent, identifiers included; a job with "
                "deidentify needs files uploaded with deidentify=true (de-identified before "
                "they are stored). Upload it again that way and delete this one.",
                param=param,
                code="file_not_deidentified",
            )
        summaries.append(record.deidentification)
    modes = {s.get("mode") for s in summaries}
    keys = {s.get("record_key_field") for s in summaries}
    return {
        "deidentify": True,
        "deidentify_mode": modes.pop() if len(modes) == 1 else "placeholder",
        "deidentify_record_key": keys.pop() if len(keys) == 1 else None,
    }


def new_job_from_request(session: Session, project_id: str, request: JobCreate) -> NewJob:
    """Check the request against this project's files and build the job to insert."""
    kind = request.method.type if request.method else "supervised"
    if kind not in TASKS:
        raise InvalidRequestError(
            f"method.type {kind!r} is not supported by tunesmith yet; use 'supervised' or "
            "'classification'.",
            param="method.type",
        )
    if request.suffix and not SUFFIX.match(request.suffix):
        raise InvalidRequestError(
            "suffix may contain only letters, digits, '.', '_' and '-'.", param="suffix"
        )
    if request.integrations:
        raise InvalidRequestError("integrations are not supported.", param="integrations")
    train = _file(session, project_id, request.training_file, "training_file")
    valid = (
        _file(session, project_id, request.validation_file, "validation_file")
        if request.validation_file
        else None
    )
    hp, shown = _hyperparameters(request, kind)
    method_obj: dict[str, Any] = {"type": kind, kind: {"hyperparameters": shown}}
    training_method = _training_method(request, kind)
    config = getattr(request.method, kind, None) if request.method else None
    if config is not None:
        method_obj[kind]["training_method"] = training_method.value
        if config.distributed is not None:
            method_obj[kind]["distributed"] = config.distributed.model_dump(exclude_none=True)
    deid = _deidentification(config, {"training_file": train, "validation_file": valid})
    if deid:
        method_obj[kind]["deidentify"] = True
    try:
        spec = FinetuneSpec.model_validate(
            {
                "model": request.model,
                "train_file": Path(train.path),
                "validation_file": Path(valid.path) if valid else None,
                "task": TASKS[kind],
                "method": training_method,
                "hyperparameters": hp,
                "suffix": request.suffix,
                **deid,
            }
        )
    except ValidationError as exc:
        raise InvalidRequestError(f"Invalid job: {exc.errors()[0]['msg']}") from None
    return NewJob(
        model=request.model,
        training_file=train,
        validation_file=valid,
        spec=spec,
        method=method_obj,
        hyperparameters=shown,
        suffix=request.suffix,
        seed=request.seed,
        metadata=request.metadata,
    )
