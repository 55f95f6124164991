"""The models a project can use by name: base models, its fine-tuned models, their checkpoints.

Names, as in OpenAI's API:

* a base model: a registry id (packaged, or in the local Hugging Face cache); inference also
  takes any other name a fine-tuning job takes (a model folder, a cached hub id), so a model
  the server can fine-tune is one it can serve;
* ``ft:{base}:{project}:{suffix}:{job}``: the run folder of a succeeded job;
* ``ft:{base}:{project}:{suffix}:{job}:ckpt-step-{N}``: one of its checkpoint folders (a job
  still running, or one that failed or was cancelled, has usable checkpoints too).

A fine-tuned name ends with its job's id, so finding it is a primary-key read; the whole name
must then match what the job recorded, and the job must belong to the asking project: a name
of another project finds nothing (404), as its files and jobs do.

The engine keeps only the newest checkpoints of a run, so a checkpoint is a model while its
folder exists. Deleting a fine-tuned model marks its job (``model_deleted_at``) and removes
the run folder, checkpoints included; the job keeps its ``fine_tuned_model`` name as history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.errors import ModelError, ModelNotFoundError
from tunesmith.jobs.errors import InvalidStateError, NotOwnedError, UnknownModelError
from tunesmith.jobs.models import Checkpoint, Job, JobStatus
from tunesmith.jobs.projects import ProjectRef
from tunesmith.jobs.service import JOB_ID_PREFIX, add_event
from tunesmith.jobs.store import now
from tunesmith.models import registry
from tunesmith.models.loading import RUN_MANIFEST, read_run_manifest
from tunesmith.settings import Settings
from tunesmith.tasks import Task

FINE_TUNED_PREFIX = "ft:"
CHECKPOINT_NAME = re.compile(r"^(?P<model>ft:.+):ckpt-step-(?P<step>\d+)$")
BASE_OWNERS = {"packaged": "tunesmith", "local": "system"}

Source = Literal["base", "fine-tuned", "checkpoint"]


@dataclass(frozen=True)
class CatalogModel:
    """A model a project may use.

    ``path`` is the folder to load (a run or a checkpoint); a base model has none and loads by
    its name. ``task`` is what a fine-tuned model was trained for (read by ``find_fine_tuned``;
    None for base models, which serve chat and completions alike).
    """

    id: str
    created: int
    owned_by: str
    source: Source
    path: Path | None = None
    task: Task | None = None
    job_id: str | None = None

    @property
    def load_name(self) -> str:
        """What the model cache loads: the folder, or the base model's name."""
        return str(self.path) if self.path is not None else self.id


# --- listing -------------------------------------------------------------------------------


def list_models(session: Session, project: ProjectRef, settings: Settings) -> list[CatalogModel]:
    """Installed base models, then the project's fine-tuned models, each followed by its
    checkpoints, newest step first."""
    return base_models(settings) + project_models(session, project)


def base_models(settings: Settings) -> list[CatalogModel]:
    """Registry models usable offline (a packaged GGUF not yet converted is, on first use)."""
    return [_base(info) for info in registry.list_models(settings) if info.installed]


def project_models(session: Session, project: ProjectRef) -> list[CatalogModel]:
    jobs = session.scalars(
        select(Job)
        .where(Job.project_id == project.id, Job.model_deleted_at.is_(None))
        .order_by(Job.id)
    ).all()
    checkpoints: dict[str, list[Checkpoint]] = {}
    rows = session.scalars(
        select(Checkpoint)
        .join(Job, Checkpoint.job_id == Job.id)
        .where(Job.project_id == project.id, Job.model_deleted_at.is_(None))
        .order_by(Checkpoint.step.desc())
    )
    for checkpoint in rows:
        if Path(checkpoint.path).is_dir():  # older ones are pruned by the engine
            checkpoints.setdefault(checkpoint.job_id, []).append(checkpoint)
    found = []
    for job in jobs:
        if job.fine_tuned_model and (Path(job.output_dir) / RUN_MANIFEST).is_file():
            found.append(_fine_tuned(job, project, Path(job.output_dir)))
        found += [_checkpoint(c, project) for c in checkpoints.get(job.id, [])]
    return found


# --- finding one ----------------------------------------------------------------------------


def find_model(
    session: Session, project: ProjectRef, name: str, settings: Settings
) -> CatalogModel:
    """The model called ``name``; ``UnknownModelError`` (404) when the project has none."""
    if name.startswith(FINE_TUNED_PREFIX):
        return find_fine_tuned(session, project, name)
    return find_base(name, settings)


def find_base(name: str, settings: Settings) -> CatalogModel:
    """A listed base model, or any other name the registry resolves (a folder, a hub id)."""
    for model in base_models(settings):
        if model.id == name:
            return model
    try:
        resolved = registry.resolve_model(name, settings)
    except ModelNotFoundError as exc:
        raise UnknownModelError(name, str(exc)) from exc
    return CatalogModel(name, _created(resolved.path), BASE_OWNERS["local"], "base")


def find_fine_tuned(session: Session, project: ProjectRef, name: str) -> CatalogModel:
    """A fine-tuned model or checkpoint of the project, with its folder and task."""
    match = CHECKPOINT_NAME.match(name)
    job = _job_named(session, project, match["model"] if match else name)
    if job is None or job.model_deleted_at is not None:
        raise UnknownModelError(name)
    if match is None:
        if job.fine_tuned_model != name:
            raise UnknownModelError(name)
        folder = Path(job.output_dir)
        if not (folder / RUN_MANIFEST).is_file():
            raise UnknownModelError(name, "Its files are missing from the server's data folder.")
        return _fine_tuned(job, project, folder, task=_task_of(folder))
    checkpoint = session.scalar(
        select(Checkpoint).where(Checkpoint.job_id == job.id, Checkpoint.step == int(match["step"]))
    )
    if checkpoint is None or checkpoint.fine_tuned_model_checkpoint != name:
        raise UnknownModelError(name)
    if not Path(checkpoint.path).is_dir():
        raise UnknownModelError(
            name, "Only the newest checkpoints of a run are kept; this one has been removed."
        )
    return _checkpoint(checkpoint, project, task=_task_of(Path(checkpoint.path)))


def model_for_inference(session: Session, project: ProjectRef, name: str) -> CatalogModel:
    """What a request's ``model`` loads. A base name is not looked up here: the model cache
    resolves it (and raises ``ModelNotFoundError`` for an unknown one) without listing the
    whole registry on every request."""
    if name.startswith(FINE_TUNED_PREFIX):
        return find_fine_tuned(session, project, name)
    return CatalogModel(name, 0, BASE_OWNERS["local"], "base")


# --- deleting -------------------------------------------------------------------------------


def delete_model(session: Session, project: ProjectRef, name: str, settings: Settings) -> Path:
    """Record the deletion of a fine-tuned model or checkpoint; returns the folder the caller
    removes once the transaction is committed (so a failed commit deletes nothing)."""
    if not name.startswith(FINE_TUNED_PREFIX):
        find_base(name, settings)  # an unknown name is 404, not 403
        raise NotOwnedError(
            f"You cannot delete `{name}`: it is a base model. Only this project's fine-tuned "
            "models (ft:...) and their checkpoints can be deleted."
        )
    model = find_fine_tuned(session, project, name)
    job = session.get(Job, model.job_id)
    assert job is not None and model.path is not None
    if model.source == "checkpoint":
        if not JobStatus(job.status).is_final:
            raise InvalidStateError(
                f"Job {job.id} is {job.status}; its checkpoints can be deleted once it has "
                "finished (a paused or running job resumes from them)."
            )
        add_event(session, job.id, f"Checkpoint model deleted: {name}")
    else:
        job.model_deleted_at = now()
        add_event(session, job.id, f"Fine-tuned model deleted: {name}")
    return model.path


# --- helpers --------------------------------------------------------------------------------


def _job_named(session: Session, project: ProjectRef, model_name: str) -> Job | None:
    """The job whose id ends ``model_name`` (``ft:...:{job}``), if it is this project's."""
    job = session.get(Job, f"{JOB_ID_PREFIX}-{model_name.rsplit(':', 1)[-1]}")
    return job if job is not None and job.project_id == project.id else None


def _fine_tuned(
    job: Job, project: ProjectRef, folder: Path, task: Task | None = None
) -> CatalogModel:
    assert job.fine_tuned_model is not None
    return CatalogModel(
        job.fine_tuned_model,
        job.finished_at or job.created_at,
        project.id,
        "fine-tuned",
        folder,
        task,
        job.id,
    )


def _checkpoint(
    checkpoint: Checkpoint, project: ProjectRef, task: Task | None = None
) -> CatalogModel:
    return CatalogModel(
        checkpoint.fine_tuned_model_checkpoint,
        checkpoint.created_at,
        project.id,
        "checkpoint",
        Path(checkpoint.path),
        task,
        checkpoint.job_id,
    )


def _base(info: registry.ModelInfo) -> CatalogModel:
    if info.source == "hub":  # the hub organisation, as OpenAI names a model's owner
        owner = info.id.split("/")[0] if "/" in info.id else "huggingface"
    else:
        owner = BASE_OWNERS[info.source]
    folder = info.path
    if folder is None and info.id in registry.PACKAGED_MODELS:
        folder = registry.PACKAGED_MODELS[info.id].package_dir()
    return CatalogModel(info.id, _created(folder), owner, "base")


def _created(folder: Path | None) -> int:
    """When the model's files were written: the closest thing a base model has to a date."""
    try:
        return int(folder.stat().st_mtime) if folder is not None else 0
    except OSError:
        return 0


def _task_of(folder: Path) -> Task | None:
    """The task a run or checkpoint was trained for, from its ``tunesmith.json``."""
    try:
        return Task(read_run_manifest(folder)["task"])
    except (ModelError, KeyError, ValueError, TypeError):
        return None
