"""``POST /v1/classifications``: tunesmith's extension for classification fine-tunes.

OpenAI has no such endpoint; it serves the models that ``method: {"type": "classification"}``
jobs train on ``{"text", "label"}`` data. Each input gets its label and every label's
probability, read from the model's head as training defined it (binary: one sigmoid output;
multi-class: softmax; multi-label: a sigmoid per label, labels at 0.5 or more predicted).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import APIRouter, Request

from tunesmith.inference.cache import ModelHandle
from tunesmith.server.deps import CurrentProject, ReadSessionsDep
from tunesmith.server.errors import WrongEndpointError
from tunesmith.server.inference import Inference
from tunesmith.server.inference_schemas import (
    Classification,
    ClassificationCreate,
    ClassificationList,
)
from tunesmith.tasks import Task

router = APIRouter(tags=["inference (tunesmith extension)"])

NOT_A_CLASSIFIER = (
    "`{model}` is not a classification model and is not served by the v1/classifications "
    'endpoint, which serves models fine-tuned with method {{"type": "classification"}} and '
    "their checkpoints. Chat and completion models answer on v1/chat/completions and "
    "v1/completions."
)


@router.post("/classifications", response_model=ClassificationList)
async def create_classification(
    body: ClassificationCreate, request: Request, project: CurrentProject, sessions: ReadSessionsDep
) -> ClassificationList:
    """**tunesmith extension.** Classify one text or a list of texts with a model fine-tuned
    for classification: ``{"model": "ft:...", "input": "text" | ["text", ...]}`` answers
    ``{"object": "list", "data": [{"index", "label", "probabilities": {label: p}}], "model"}``.
    With the SDK: ``client.post("/classifications", body=..., cast_to=object)``."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    inference: Inference = request.app.state.inference
    model = await inference.target(sessions, project, body.model, Task.CLASSIFICATION)
    if model.source == "base":  # a base model has no trained head to read
        raise WrongEndpointError(NOT_A_CLASSIFIER.format(model=body.model))
    results = await inference.run(model, partial(_classify, texts, body.model))
    return ClassificationList(
        data=[
            Classification(index=i, label=label, probabilities=probabilities)
            for i, (label, probabilities) in enumerate(results)
        ],
        model=body.model,
    )


def _classify(texts: list[str], name: str, handle: ModelHandle) -> list[tuple[Any, Any]]:
    """On the inference thread: ``(label, probabilities)`` per text."""
    from tunesmith.inference.classification import classify, predicted_labels

    if handle.task != Task.CLASSIFICATION or handle.label_space is None:
        raise WrongEndpointError(NOT_A_CLASSIFIER.format(model=name))
    probabilities = classify(handle.model, handle.tokenizer, texts, handle.label_space)
    labels = predicted_labels(probabilities, handle.label_space)
    return list(zip(labels, probabilities, strict=True))
