"""``/v1/models``: list, retrieve and delete the models a project can use.

Base models (the packaged ones, owned by ``tunesmith``, and any in the local Hugging Face
cache), then the project's fine-tuned models and their checkpoints (owned by the project).
Another project's fine-tuned model answers 404; deleting a base model 403.
"""

from __future__ import annotations

import shutil

from fastapi import APIRouter

from tunesmith.jobs import catalog
from tunesmith.server.deps import CurrentProject, ReadSessionDep, SessionDep, SettingsDep
from tunesmith.server.inference_schemas import Model, ModelDeleted, ModelList

router = APIRouter(prefix="/models", tags=["models"])


def _public(model: catalog.CatalogModel) -> Model:
    return Model(id=model.id, created=model.created, owned_by=model.owned_by)


@router.get("", response_model=ModelList)
def list_models(
    project: CurrentProject, session: ReadSessionDep, settings: SettingsDep
) -> ModelList:
    """Base models, then this project's fine-tuned models, each followed by its checkpoints
    (``ft:...:ckpt-step-N``, newest first; a run keeps its newest few)."""
    models = catalog.list_models(session, project, settings)
    return ModelList(data=[_public(m) for m in models])


@router.get("/{model:path}", response_model=Model)
def retrieve_model(
    model: str, project: CurrentProject, session: ReadSessionDep, settings: SettingsDep
) -> Model:
    """A base model, or a fine-tuned model or checkpoint of this project."""
    return _public(catalog.find_model(session, project, model, settings))


@router.delete("/{model:path}", response_model=ModelDeleted)
def delete_model(
    model: str, project: CurrentProject, session: SessionDep, settings: SettingsDep
) -> ModelDeleted:
    """Delete a fine-tuned model of this project (its run folder, checkpoints included), or one
    checkpoint of a finished job. The job keeps its history. Base models answer 403."""
    folder = catalog.delete_model(session, project, model, settings)
    session.commit()
    shutil.rmtree(folder, ignore_errors=True)
    return ModelDeleted(id=model, deleted=True)
