"""``/v1/models`` through the official SDK on the fake engine (SQLite and PostgreSQL): base
models, the project's fine-tuned models and checkpoints, project isolation, deletion; and the
inference endpoints' request checks, which answer before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from .conftest import Server, finished, upload, wait_job
from .test_errors_api import assert_envelope

PACKAGED = {"smollm2-135m-instruct", "all-minilm-l6-v2"}


@dataclass
class FineTuned:
    model: str
    checkpoints: list[str]  # newest first
    run_dir: Path
    job_id: str


def fine_tune(server: Server, suffix: str) -> FineTuned:
    """A succeeded job on the fake engine, with four checkpoints."""
    client = server.client()
    hyper = {"n_epochs": 1, "batch_size": 2, "checkpoint_every": 1}
    job = client.fine_tuning.jobs.create(
        model="tiny-model",
        training_file=upload(client),
        method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
        suffix=suffix,
    )
    job = wait_job(client, job.id, finished)
    assert job.status == "succeeded" and job.fine_tuned_model, job.error
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id)
    names = [c.fine_tuned_model_checkpoint for c in checkpoints]
    return FineTuned(job.fine_tuned_model, names, server.data_dir / "runs" / job.id, job.id)


def test_models_lists_base_models_and_the_projects_fine_tunes(server: Server) -> None:
    acme, globex = server.client("acme"), server.client("globex")
    tuned = fine_tune(server, "listed")
    models = {m.id: m for m in acme.models.list()}
    assert set(models) >= PACKAGED and {models[m].owned_by for m in PACKAGED} == {"tunesmith"}
    assert tuned.model in models and set(tuned.checkpoints) <= set(models)
    ids = list(models)
    assert ids.index(tuned.model) + 1 == ids.index(tuned.checkpoints[0])  # then its checkpoints
    job = acme.fine_tuning.jobs.retrieve(tuned.job_id)
    assert models[tuned.model].owned_by == job.organization_id
    assert models[tuned.model].object == "model" and models[tuned.model].created > 0

    retrieved = acme.models.retrieve(tuned.checkpoints[-1])
    assert retrieved.id == tuned.checkpoints[-1] and retrieved.owned_by == job.organization_id
    assert acme.models.retrieve("all-minilm-l6-v2").owned_by == "tunesmith"

    assert tuned.model not in {m.id for m in globex.models.list()}
    for call in (
        lambda: globex.models.retrieve(tuned.model),
        lambda: globex.models.retrieve(tuned.checkpoints[0]),
        lambda: globex.models.delete(tuned.model),
        lambda: globex.chat.completions.create(
            model=tuned.model, messages=[{"role": "user", "content": "hi"}]
        ),
        lambda: acme.models.retrieve(tuned.model + "x"),  # a forged name of a real job
        lambda: acme.models.retrieve("no-such-model"),
    ):
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.code == "model_not_found" and caught.value.param == "model"


def test_deleting_models(server: Server) -> None:
    acme = server.client()
    tuned = fine_tune(server, "doomed")
    with pytest.raises(openai.PermissionDeniedError) as caught:
        acme.models.delete("all-minilm-l6-v2")
    assert caught.value.status_code == 403 and caught.value.param == "model"

    oldest = tuned.checkpoints[-1]
    step = int(oldest.rsplit("-", 1)[1])  # the oldest checkpoint kept (older ones are pruned)
    folder = server.data_dir / "runs" / tuned.job_id / "checkpoints" / f"step-{step:06d}"
    assert folder.is_dir()
    deleted = acme.models.delete(oldest)
    assert deleted.deleted and deleted.id == oldest and deleted.object == "model"
    assert not folder.exists() and oldest not in {m.id for m in acme.models.list()}

    assert acme.models.delete(tuned.model).deleted
    assert not tuned.run_dir.exists()
    listed = {m.id for m in acme.models.list()}
    assert tuned.model not in listed and not set(tuned.checkpoints) & listed
    for call in (
        lambda: acme.models.retrieve(tuned.model),
        lambda: acme.models.delete(tuned.model),
        lambda: acme.chat.completions.create(
            model=tuned.checkpoints[0], messages=[{"role": "user", "content": "hi"}]
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    job = acme.fine_tuning.jobs.retrieve(tuned.job_id)
    assert job.fine_tuned_model == tuned.model  # the job keeps its history
    messages = [e.message for e in acme.fine_tuning.jobs.list_events(tuned.job_id, limit=5)]
    assert f"Fine-tuned model deleted: {tuned.model}" in messages


def test_a_running_jobs_checkpoints_cannot_be_deleted(server: Server) -> None:
    acme = server.client()
    hyper = {"n_epochs": 50, "batch_size": 2, "checkpoint_every": 2}
    job = acme.fine_tuning.jobs.create(
        model="tiny-model",
        training_file=upload(acme),
        method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
    )
    wait_job(acme, job.id, lambda j: bool(acme.fine_tuning.jobs.checkpoints.list(j.id).data))
    checkpoint = acme.fine_tuning.jobs.checkpoints.list(job.id).data[0]
    assert checkpoint.fine_tuned_model_checkpoint in {m.id for m in acme.models.list()}
    with pytest.raises(openai.BadRequestError) as caught:
        acme.models.delete(checkpoint.fine_tuned_model_checkpoint)
    assert caught.value.code == "invalid_state"
    acme.fine_tuning.jobs.cancel(job.id)


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat/completions", {**CHAT, "temperature": 3}, "temperature"),
        ("/chat/completions", {**CHAT, "top_p": 1.5}, "top_p"),
        ("/chat/completions", {**CHAT, "n": 0}, "n"),
        ("/chat/completions", {**CHAT, "n": 17}, "n"),
        ("/chat/completions", {**CHAT, "max_tokens": 0}, "max_tokens"),
        ("/chat/completions", {**CHAT, "max_completion_tokens": -1}, "max_completion_tokens"),
        ("/chat/completions", {**CHAT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ("/chat/completions", {**CHAT, "messages": []}, "messages"),
        ("/chat/completions", {**CHAT, "messages": [{"role": "robot"}]}, "messages.0.role"),
        ("/chat/completions", {**CHAT, "logprobs": True}, "logprobs"),
        ("/chat/completions", {**CHAT, "tools": [{"type": "function"}]}, "tools"),
        ("/chat/completions", {**CHAT, "presence_penalty": 1}, "presence_penalty"),
        (
            "/chat/completions",
            {**CHAT, "response_format": {"type": "json_object"}},
            "response_format",
        ),
        ("/chat/completions", {**CHAT, "bogus": 1}, "bogus"),
        (
            "/chat/completions",
            {**CHAT, "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        ("/chat/completions", {"messages": CHAT["messages"]}, "model"),
        ("/completions", {"model": "m", "prompt": [1, 2, 3]}, "prompt"),
        ("/completions", {"model": "m", "prompt": "a", "suffix": "z"}, "suffix"),
        ("/completions", {"model": "m", "prompt": "a", "best_of": 3}, "best_of"),
        ("/completions", {"model": "m", "prompt": []}, "prompt"),
        ("/classifications", {"model": "m", "input": []}, "input"),
        ("/classifications", {"model": "m"}, "input"),
    ],
)
def test_bad_inference_requests_are_400_naming_the_param(
    server: Server, path: str, body: dict[str, object], param: str
) -> None:
    with server.http() as http:
        response = http.post(path, json=body)
    assert response.status_code == 400, response.text
    assert_envelope(response.json(), param=param)


def test_an_unknown_model_is_404_model_not_found(server: Server) -> None:
    client = server.client()
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    with pytest.raises(openai.NotFoundError) as caught:
        client.completions.create(model="ft:tiny-model:acme::0123456789abcdef", prompt="hi")
    assert caught.value.code == "model_not_found"
    with server.http(project=None) as http:
        assert http.post("/chat/completions", json=CHAT).status_code == 401


def test_the_openapi_document_describes_models_inference_and_the_extensions(
    server: Server,
) -> None:
    with server.http(project=None) as http:
        spec = http.get(server.base_url.removesuffix("/v1") + "/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/models", "/v1/models/{model}", "/v1/chat/completions", "/v1/completions"):
        assert path in paths
    classifications = paths["/v1/classifications"]["post"]
    assert "tunesmith extension" in classifications["description"]
    assert "extension" in classifications["tags"][0]
    chat = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in chat and "ChatCompletionChunk" in spec["components"]["schemas"]
    assert "/v1/classifications" in spec["info"]["description"]
