"""The playground streams a fine-tuned model's reply beside its base's; the models page lists
and deletes models. Uses a succeeded job (the form test's, or one trained here by the API)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Server, sign_in
from tests.dashboard.test_fine_tune import upload

TRAINING_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def inference(server: Server) -> None:
    with server.http() as http:
        paths = http.get("/../openapi.json").json()["paths"]
    if "/v1/chat/completions" not in paths or "/v1/models" not in paths:
        pytest.skip("this server has no /v1/chat/completions or /v1/models yet")


@pytest.fixture(scope="module")
def fine_tuned(server: Server, data_files: dict[str, Path], inference: None) -> str:
    """A fine-tuned model's name: an existing succeeded job's, else one trained now."""
    with server.http() as http:
        jobs = http.get("/fine_tuning/jobs").json()["data"]
        done = [j for j in jobs if j["status"] == "succeeded" and j["fine_tuned_model"]]
        if done:
            return str(done[0]["fine_tuned_model"])
        settings = {"hyperparameters": {"n_epochs": 1, "batch_size": 8}}
        job = http.post(
            "/fine_tuning/jobs",
            json={
                "model": server.model,
                "training_file": upload(server, data_files["train"]),
                "method": {"type": "supervised", "supervised": settings},
            },
        ).json()
        deadline = time.monotonic() + TRAINING_TIMEOUT_S
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(1)
            job = http.get(f"/fine_tuning/jobs/{job['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    return str(job["fine_tuned_model"])


def test_the_playground_streams_both_replies_side_by_side(
    page: Any, server: Server, fine_tuned: str, screenshots: Path
) -> None:
    sign_in(page, server.key)
    page.goto(f"{server.url}/#/playground?model={quote(fine_tuned)}")
    expect(page.get_by_label("Model", exact=True)).to_have_value(fine_tuned)
    expect(page.get_by_label("Compare with")).to_have_value(server.model)
    page.get_by_text("Settings").click()
    page.get_by_label("Max tokens").fill("12")
    page.get_by_label("Message").fill("win a prize 7")
    with page.expect_response("**/v1/chat/completions") as response:
        page.get_by_label("Message").press("Control+Enter")
    assert response.value.headers["content-type"].startswith("text/event-stream")
    for side in ("#chat-left", "#chat-right"):
        expect(page.locator(f"{side} .chat")).to_have_attribute("aria-busy", "false")
        expect(page.locator(f"{side} .bubble.user")).to_contain_text("win a prize 7")
        expect(page.locator(f"{side} .bubble.assistant")).to_have_count(1)
        expect(page.locator(f"{side} .error-note")).to_have_count(0)
    page.screenshot(path=screenshots / "playground.png")


def test_the_models_page_lists_and_deletes_a_fine_tuned_model(
    page: Any, server: Server, fine_tuned: str, screenshots: Path
) -> None:
    sign_in(page, server.key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    row = page.locator("#models-table tbody tr", has_text=fine_tuned).filter(
        has_not_text="ckpt-step"
    )
    expect(row).to_have_count(1)
    page.screenshot(path=screenshots / "models.png")
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Yes").click()
    expect(row).to_have_count(0)
