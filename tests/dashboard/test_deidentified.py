"""A de-identified upload and a job that trains only on such files, as the dashboard shows them
(the EHR example's path: `examples/ehr-readmission/api.py`)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import CLI, Server, sign_in

NOTES = [
    {
        "text": f"Seen by Dr. Maria Keller on 03/14/2025, call 415-555-01{i:02d}.",
        "label": str(i % 2),
    }
    for i in range(12)
]


def _upload_deidentified(server: Server, path: Path) -> dict[str, Any]:
    with server.http() as http, path.open("rb") as handle:
        response = http.post(
            "/files",
            data={"purpose": "fine-tune", "deidentify": "true"},
            files={"file": handle},
        )
    response.raise_for_status()
    return dict(response.json())


def _own_project(server: Server) -> Server:
    """The same server under a key of another project: its job stays out of the other
    tests' job lists."""
    env = dict(os.environ) | {"TUNESMITH_DATA_DIR": str(server.data_dir)}
    out = subprocess.run(
        [*CLI, "keys", "create", "--project", "clinic"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return dataclasses.replace(server, key=out.stdout.strip().splitlines()[-1])


def test_deidentified_files_and_jobs_say_so(page: Any, server: Server, tmp_path: Path) -> None:
    server = _own_project(server)
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps(row) + "\n" for row in NOTES), encoding="utf-8")
    stored = _upload_deidentified(server, notes)
    replaced = stored["deidentification"]["total"]
    assert replaced >= 3 * len(NOTES)  # a name, a date and a phone number in every note
    with server.http() as http:
        job = http.post(
            "/fine_tuning/jobs",
            json={
                "model": server.model,
                "training_file": stored["id"],
                "method": {"type": "classification", "classification": {"deidentify": True}},
            },
        )
    job.raise_for_status()

    sign_in(page, server.key)
    page.get_by_role("link", name="Datasets").click()
    row = page.locator("tr", has_text=stored["id"])
    expect(row).to_contain_text(f"de-identified ({replaced} replaced)")

    page.goto(f"{server.url}/#/jobs/{job.json()['id']}")
    expect(page.locator("dl")).to_contain_text("trains only on files de-identified")
    with server.http() as http:  # the package's one worker is the next test's
        http.post(f"/fine_tuning/jobs/{job.json()['id']}/cancel").raise_for_status()
