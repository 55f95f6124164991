"""De-identified training through the API, on a real ``tunesmith serve`` with the real engine:
uploads with ``deidentify=true`` are de-identified as they stream in, a job with
``method.classification.deidentify`` trains on them, and afterwards no original identifier is
in any file under the data directory (database, uploads, run folder, logs). The notes are
invented (tests/phi.py); the model is a tiny BERT.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.helpers import save_tiny_model
from tests.phi import VALUES, find_values, note_rows
from tests.server.conftest import Server, finished, running_server, server_env, wait_job

DEID = {"deidentify": "true", "deidentify_mode": "surrogate", "record_key_field": "patient_id"}


def _jsonl(rows: list[dict[str, str]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _with_patients(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Patient ids that are themselves identifiers (MRNs): they must become pseudonyms."""
    return [{"patient_id": f"MRN-7{i % 4}51{i % 4}9", **row} for i, row in enumerate(rows)]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SQLite inside the data directory, so the scan reads the database too."""
    data_dir = tmp_path_factory.mktemp("home")
    env = server_env(data_dir, f"sqlite:///{data_dir / 'tunesmith.db'}")
    with running_server(env) as server:
        yield server


def test_a_deidentified_job_leaves_no_identifier_under_the_data_dir(
    real_server: Server, tmp_path: Path
) -> None:
    model = save_tiny_model(tmp_path / "tiny-bert", "encoder")  # outside the data directory
    client = real_server.client(timeout=300)
    train_rows, valid_rows = _with_patients(note_rows(34)), _with_patients(note_rows(10, 100))
    train = client.files.create(
        file=("train.jsonl", _jsonl(train_rows)), purpose="fine-tune", extra_body=DEID
    )
    valid = client.files.create(
        file=("valid.jsonl", _jsonl(valid_rows)), purpose="fine-tune", extra_body=DEID
    )
    summary = (train.model_extra or {})["deidentification"]
    assert summary["mode"] == "surrogate" and summary["records"] == 34
    assert summary["replacements"]["NAME"] > 0 and summary["replacements"]["PHONE"] > 0
    stored = client.files.content(train.id).read()
    assert not [v for v in VALUES if v.encode() in stored]
    assert not [r["patient_id"] for r in train_rows if r["patient_id"].encode() in stored]

    job = client.fine_tuning.jobs.create(
        model=str(model),
        training_file=train.id,
        validation_file=valid.id,
        method={
            "type": "classification",  # type: ignore[typeddict-item]
            "classification": {
                "hyperparameters": {"n_epochs": 1, "batch_size": 8, "learning_rate": 1e-3},
                "training_method": "full",
                "deidentify": True,
            },
        },
    )
    assert job.method is not None
    assert (job.method.model_extra or {})["classification"]["deidentify"] is True
    job = wait_job(client, job.id, finished, timeout=600)
    assert job.status == "succeeded", job.error

    runs = [p.parent for p in (real_server.data_dir / "runs").rglob("deid-report.json")]
    (copies,) = runs
    report = json.loads((copies / "deid-report.json").read_text())
    assert report["mode"] == "surrogate" and report["record_key_field"] == "patient_id"
    everything = [*VALUES, *{r["patient_id"] for r in train_rows + valid_rows}]
    assert find_values(everything, [real_server.data_dir]) == {}


def test_a_deidentified_job_refuses_files_stored_as_sent(real_server: Server) -> None:
    client = real_server.client()
    rows = [{"text": f"no identifiers {i}", "label": "a"} for i in range(12)]
    plain = client.files.create(file=("plain.jsonl", _jsonl(rows)), purpose="fine-tune")
    assert (plain.model_extra or {}).get("deidentification") is None
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(
            model="all-minilm-l6-v2",
            training_file=plain.id,
            method={
                "type": "classification",  # type: ignore[typeddict-item]
                "classification": {"deidentify": True},
            },
        )
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "file_not_deidentified"
    assert error["param"] == "training_file"
    client.files.delete(plain.id)


def test_deidentify_sent_after_the_file_is_refused_and_nothing_stored(real_server: Server) -> None:
    before = {p.name for p in (real_server.data_dir / "files").iterdir()}
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="late.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        b'{"text": "no identifiers here", "label": "a"}\n\r\n'
        b'--b\r\nContent-Disposition: form-data; name="deidentify"\r\n\r\ntrue\r\n--b--\r\n'
    )
    with real_server.http() as http:
        response = http.post(
            "/files", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "deidentify"
    assert {p.name for p in (real_server.data_dir / "files").iterdir()} == before


def test_a_malformed_line_fails_the_upload_and_stores_nothing(real_server: Server) -> None:
    before = {p.name for p in (real_server.data_dir / "files").iterdir()}
    client = real_server.client()
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(
            file=("bad.jsonl", b'{"text": "fine", "label": "a"}\n{not json\n'),
            purpose="fine-tune",
            extra_body={"deidentify": "true"},
        )
    assert "bad.jsonl:2" in str(refused.value) or "line 2" in str(refused.value)
    assert {p.name for p in (real_server.data_dir / "files").iterdir()} == before


def test_the_openapi_document_describes_the_extension(real_server: Server) -> None:
    document = httpx.get(real_server.base_url.removesuffix("/v1") + "/openapi.json").json()
    assert "deidentify" in document["info"]["description"]
    upload = document["paths"]["/v1/files"]["post"]["requestBody"]["content"]
    assert "deidentify" in upload["multipart/form-data"]["schema"]["properties"]
