"""Request and response bodies, shaped exactly as OpenAI's (nullable fields present as null).

Responses are built from database rows by the ``from_*`` functions; lists share the cursor
envelope ``{"object": "list", "data", "has_more", "first_id", "last_id"}``.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from tunesmith.jobs.models import Checkpoint, FileRecord, Job, JobEvent
from tunesmith.jobs.paging import Page

T = TypeVar("T")
Auto = Literal["auto"]


class ListResponse(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    first_id: str | None
    last_id: str | None


def list_response(page: Page[Any], convert: Any) -> dict[str, Any]:
    data = [convert(item) for item in page.items]
    return {
        "object": "list",
        "data": data,
        "has_more": page.has_more,
        "first_id": data[0].id if data else None,
        "last_id": data[-1].id if data else None,
    }


# --- files ---------------------------------------------------------------------------------


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"]
    status_details: str | None = None
    expires_at: int | None = None
    deidentification: dict[str, Any] | None = Field(
        None,
        description="tunesmith's extension: set when the file was uploaded with "
        "deidentify=true (or under the server's policy) and de-identified as it streamed in: "
        "the mode and the counts of identifiers replaced, by type. Null: stored as sent.",
    )


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


def from_file(record: FileRecord) -> FileObject:
    return FileObject(
        id=record.id,
        bytes=record.bytes,
        created_at=record.created_at,
        filename=record.filename,
        purpose=record.purpose,
        status=record.status,  # type: ignore[arg-type]
        status_details=record.status_details,
        deidentification=record.deidentification,
    )


# --- fine-tuning jobs -------------------------------------------------------------------------


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobHyperparameters(BaseModel):
    batch_size: int | Auto | None = None
    learning_rate_multiplier: float | Auto | None = None
    n_epochs: int | Auto | None = None


class DistributedConfig(BaseModel):
    """tunesmith's extension: train on several processes (a worker's GPUs) with torchrun."""

    model_config = ConfigDict(extra="forbid")

    nproc_per_node: int | None = Field(
        None, ge=1, description="Processes to train on; at most the worker's --nproc-per-node."
    )
    fsdp: bool = Field(False, description="Shard a full fine-tune over them (GPU workers).")


class MethodConfig(BaseModel):
    """One method's settings. ``hyperparameters`` takes OpenAI's names (``n_epochs``,
    ``batch_size``, ``learning_rate_multiplier``) and, as tunesmith's extension, any field of
    tunesmith's ``Hyperparameters`` (``lora_r``, ``max_seq_length``, ``warmup_ratio``, ...).
    ``training_method`` (extension): ``lora`` (default), ``full`` or ``head``.
    ``distributed`` (extension): ``{"nproc_per_node": N, "fsdp": false}``.
    ``deidentify`` (extension): ``true`` trains on de-identified text only (decision 006)."""

    model_config = ConfigDict(extra="forbid")

    hyperparameters: dict[str, Any] | None = None
    training_method: Literal["lora", "full", "head"] | None = None
    distributed: DistributedConfig | None = None
    deidentify: bool | None = Field(
        None,
        description="tunesmith's extension: train only on de-identified text. Every file of "
        "the job must have been uploaded with deidentify=true (so the server never stored its "
        "identifiers); the run de-identifies its own copy again, in the uploads' mode, and "
        "keeps the counts in <run>/data/deid-report.json.",
    )


class MethodIn(BaseModel):
    """OpenAI's ``method``. ``classification`` is tunesmith's extension: ``{"text", "label"}``
    data trains a classifier head (binary, multi-class or multi-label)."""

    type: Literal["supervised", "dpo", "reinforcement", "classification"]
    supervised: MethodConfig | None = None
    dpo: MethodConfig | None = None
    reinforcement: dict[str, Any] | None = None
    classification: MethodConfig | None = None


class JobCreate(BaseModel):
    model: str = Field(min_length=1)
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = Field(
        None, description="Deprecated by OpenAI in favour of method.<type>.hyperparameters."
    )
    method: MethodIn | None = None
    suffix: str | None = Field(None, max_length=64)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = Field(None, max_length=16)
    integrations: list[dict[str, Any]] | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: JobHyperparameters
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: Literal[
        "validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused"
    ]
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None
    method: dict[str, Any] | None
    user_provided_suffix: str | None = None


def from_job(job: Job) -> FineTuningJob:
    shown = {
        k: job.hyperparameters.get(k)
        for k in ("batch_size", "learning_rate_multiplier", "n_epochs")
    }
    return FineTuningJob(
        id=job.id,
        created_at=job.created_at,
        error=JobError(**job.error) if job.error else None,
        fine_tuned_model=job.fine_tuned_model,
        finished_at=job.finished_at,
        hyperparameters=JobHyperparameters(**shown),
        model=job.model,
        organization_id=job.project_id,
        result_files=list(job.result_files or []),
        seed=job.seed,
        status=job.status,  # type: ignore[arg-type]
        trained_tokens=job.trained_tokens,
        training_file=job.training_file,
        validation_file=job.validation_file,
        estimated_finish=job.estimated_finish,
        metadata=job.meta,
        method=job.method,
        user_provided_suffix=job.suffix,
    )


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    data: dict[str, Any] | None
    type: Literal["message", "metrics"]


def from_event(event: JobEvent) -> FineTuningJobEvent:
    return FineTuningJobEvent(
        id=event.id,
        created_at=event.created_at,
        level=event.level,  # type: ignore[arg-type]
        message=event.message,
        data=event.data,
        type=event.type,  # type: ignore[arg-type]
    )


class CheckpointMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int


def from_checkpoint(checkpoint: Checkpoint) -> FineTuningJobCheckpoint:
    return FineTuningJobCheckpoint(
        id=checkpoint.id,
        created_at=checkpoint.created_at,
        fine_tuned_model_checkpoint=checkpoint.fine_tuned_model_checkpoint,
        fine_tuning_job_id=checkpoint.job_id,
        metrics=CheckpointMetrics(**checkpoint.metrics),
        step_number=checkpoint.step,
    )
