"""tunesmith's extensions for the dashboard: a file's validation report and examples, the
evaluation endpoint's refusals, and the dashboard (or the note saying it is not built) at /."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tunesmith.server.dashboard import mount_dashboard

from .conftest import Server

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


def _upload(server: Server, name: str, lines: list[str]) -> str:
    body = ("\n".join(lines) + "\n").encode()
    with server.http() as http:
        response = http.post("/files", files={"file": (name, body)}, data={"purpose": "fine-tune"})
    response.raise_for_status()
    return str(response.json()["id"])


def test_the_validation_report_names_lines_and_resolves_auto_epochs(server: Server) -> None:
    lines = [json.dumps(GOOD)] * 3 + ["{broken", json.dumps({"messages": []})]
    file_id = _upload(server, "mixed.jsonl", lines)
    with server.http() as http:
        body = http.get(f"/files/{file_id}/validation", params={"n_epochs": "auto"}).json()
    report = body["report"]
    assert body["file_id"] == file_id and report["ok"] is False
    assert [(e["file"], e["line"]) for e in report["errors"]] == [(file_id, 4), (file_id, 5)]
    assert report["stats"]["n_examples"] == 3
    assert "files" not in json.dumps(report)  # never the server's paths
    assert body["estimate"]["n_epochs"] == 25  # "auto": as many as allowed for 3 examples
    assert body["resolved"] is None  # no model: nothing else to resolve


def test_the_report_refuses_bad_hyperparameters_and_unknown_files(server: Server) -> None:
    file_id = _upload(server, "ok.jsonl", [json.dumps(GOOD)])
    with server.http() as http:
        bad = http.get(f"/files/{file_id}/validation", params={"n_epochs": "many"})
        missing = http.get("/files/file-nope/validation")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "n_epochs"
    assert missing.status_code == 404


def test_examples_come_a_page_at_a_time_with_their_line_numbers(server: Server) -> None:
    lines = [json.dumps({"text": f"t{i}", "label": "a"}) for i in range(7)]
    lines.insert(2, "")  # a blank line keeps the numbering of the file
    file_id = _upload(server, "rows.jsonl", [*lines, "not json"])
    with server.http() as http:
        first = http.get(f"/files/{file_id}/examples", params={"limit": 3}).json()
        last = http.get(f"/files/{file_id}/examples", params={"offset": 6, "limit": 3}).json()
    assert [r["line"] for r in first["data"]] == [1, 2, 4] and first["has_more"] is True
    assert first["data"][2]["record"] == {"text": "t2", "label": "a"}
    assert [r["line"] for r in last["data"]] == [8, 9] and last["has_more"] is False
    assert last["data"][1]["record"] == "not json" and "JSON" in last["data"][1]["error"]


def test_csv_examples_are_rows_of_columns(server: Server) -> None:
    file_id = _upload(server, "rows.csv", ["text,label", '"hello, you",greeting', "bye,farewell"])
    with server.http() as http:
        rows = http.get(f"/files/{file_id}/examples").json()["data"]
    assert rows[0] == {
        "line": 2,
        "record": {"text": "hello, you", "label": "greeting"},
        "error": None,
    }
    assert rows[1]["line"] == 3


def test_only_a_succeeded_job_is_evaluated(server: Server) -> None:
    file_id = _upload(server, "train.jsonl", [json.dumps(GOOD)] * 10)
    job = server.client().fine_tuning.jobs.create(model="tiny", training_file=file_id)
    with server.http() as http:
        started = http.post(f"/fine_tuning/jobs/{job.id}/evaluation")
        status = http.get(f"/fine_tuning/jobs/{job.id}/evaluation").json()
    assert started.status_code == 400 and "only a succeeded job" in started.text
    assert status["status"] == "not_started" and status["report"] is None
    assert {"key": "accuracy", "label": "accuracy", "higher_is_better": True} in status[
        "metric_rows"
    ]


def test_the_dashboard_is_served_at_the_root(server: Server) -> None:
    root = server.base_url.removesuffix("/v1")
    page = httpx.get(root + "/")
    assert page.status_code == 200 and "tunesmith" in page.text
    if "not built" not in page.text:
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(root + "/assets/app.js").status_code == 200


def test_without_a_build_the_root_says_how_to_build_it(tmp_path: Path) -> None:
    app = FastAPI()
    mount_dashboard(app, dist=tmp_path / "dist")
    with TestClient(app) as client:
        page = client.get("/")
        asset = client.get("/assets/app.js")
    assert page.status_code == 200
    assert "The web dashboard is not built" in page.text and "make install" in page.text
    assert asset.status_code == 404
