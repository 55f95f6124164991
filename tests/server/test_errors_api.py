"""Authentication, project isolation and the error envelope on every kind of failure."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from .conftest import Server

LINE = (
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
)


def assert_envelope(body: dict, *, code: str | None = None, param: str | None = None) -> None:  # type: ignore[type-arg]
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    assert body["error"]["code"] == code
    assert body["error"]["param"] == param


def test_a_missing_or_wrong_key_is_401_invalid_api_key(server: Server) -> None:
    with server.http(project=None) as http:
        missing = http.get("/files")
        wrong = http.get("/files", headers={"Authorization": "Bearer ts-not-a-key-at-all"})
    assert missing.status_code == wrong.status_code == 401
    assert_envelope(missing.json(), code="invalid_api_key")
    assert_envelope(wrong.json(), code="invalid_api_key")
    assert "ts-not-a-key" not in wrong.json()["error"]["message"]  # masked
    bad = OpenAI(base_url=server.base_url, api_key="ts-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.files.list()
    assert caught.value.code == "invalid_api_key"


def test_another_projects_objects_answer_404(server: Server) -> None:
    acme, globex = server.client("acme"), server.client("globex")
    file_id = acme.files.create(file=("a.jsonl", LINE), purpose="fine-tune").id
    job_id = acme.fine_tuning.jobs.create(model="missing-x", training_file=file_id).id
    for call in (
        lambda: globex.files.retrieve(file_id),
        lambda: globex.files.content(file_id),
        lambda: globex.files.delete(file_id),
        lambda: globex.fine_tuning.jobs.retrieve(job_id),
        lambda: globex.fine_tuning.jobs.cancel(job_id),
        lambda: globex.fine_tuning.jobs.list_events(job_id),
        lambda: globex.fine_tuning.jobs.checkpoints.list(job_id),
        lambda: globex.fine_tuning.jobs.create(model="m", training_file=file_id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    assert file_id not in [f.id for f in globex.files.list()]
    assert job_id not in [j.id for j in globex.fine_tuning.jobs.list()]
    assert acme.files.retrieve(file_id).id == file_id


def test_framework_errors_use_the_envelope(server: Server) -> None:
    with server.http() as http:
        unknown = http.get("/no/such/route")
        not_allowed = http.delete("/fine_tuning/jobs")
        invalid = http.post("/fine_tuning/jobs", json={"model": "m"})
        bad_limit = http.get("/files", params={"limit": 0})
        not_json = http.post(
            "/fine_tuning/jobs", content=b"{", headers={"Content-Type": "application/json"}
        )
    assert unknown.status_code == 404
    assert_envelope(unknown.json(), code="unknown_url")
    assert not_allowed.status_code == 405
    assert_envelope(not_allowed.json(), code="method_not_allowed")
    assert invalid.status_code == 400
    assert_envelope(invalid.json(), param="training_file")
    assert bad_limit.status_code == 400
    assert_envelope(bad_limit.json(), param="limit")
    assert not_json.status_code == 400


def test_bad_job_requests_name_the_param(server: Server) -> None:
    client = server.client()
    results = client.files.create(file=("r.csv", b"a,b\n"), purpose="user_data").id
    good = client.files.create(file=("t.jsonl", LINE), purpose="fine-tune").id
    cases = [
        ({"training_file": "file-nope"}, 404, "training_file"),
        ({"training_file": results}, 400, "training_file"),
        ({"training_file": good, "validation_file": "file-nope"}, 404, "validation_file"),
        ({"training_file": good, "method": {"type": "dpo"}}, 400, "method.type"),
        ({"training_file": good, "suffix": "a:b"}, 400, "suffix"),
        ({"training_file": good, "hyperparameters": {"n_epochs": 0}}, 400, "hyperparameters"),
        ({"training_file": good, "hyperparameters": {"bogus": 1}}, 400, "hyperparameters.bogus"),
    ]
    with server.http() as http:
        for body, status, param in cases:
            response = http.post("/fine_tuning/jobs", json={"model": "m", **body})
            assert response.status_code == status, (body, response.text)
            assert response.json()["error"]["param"] == param, body


def test_actions_a_status_does_not_allow_are_400(server: Server) -> None:
    client = server.client()
    file_id = client.files.create(file=("t.jsonl", LINE), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model="m", training_file=file_id)
    client.fine_tuning.jobs.cancel(job.id)
    for action in (client.fine_tuning.jobs.cancel, client.fine_tuning.jobs.resume):
        with pytest.raises(openai.BadRequestError) as caught:
            action(job.id)
        assert caught.value.code == "invalid_state"


def test_openapi_document_and_docs_are_served(server: Server) -> None:
    with server.http(project=None) as http:
        spec = http.get(server.base_url.removesuffix("/v1") + "/openapi.json").json()
        docs = http.get(server.base_url.removesuffix("/v1") + "/docs")
    assert "/v1/fine_tuning/jobs/{fine_tuning_job_id}/pause" in spec["paths"]
    assert "multipart/form-data" in spec["paths"]["/v1/files"]["post"]["requestBody"]["content"]
    assert docs.status_code == 200
