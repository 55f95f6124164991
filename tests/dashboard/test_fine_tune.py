"""Starting a fine-tune of a tiny model from the form and watching it to completion: the
charts fill in while it runs; then checkpoints, events, results and the evaluation."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import Server, sign_in

TRAINING_TIMEOUT_S = 300
LATEST_STEP = re.compile(r"training loss \S+ at step (\d+)")


def upload(server: Server, path: Path) -> str:
    with server.http() as http, path.open("rb") as handle:
        response = http.post("/files", files={"file": handle}, data={"purpose": "fine-tune"})
    response.raise_for_status()
    return str(response.json()["id"])


def chart_step(page: Any) -> int | None:
    label = page.locator("#loss-chart canvas").get_attribute("aria-label") or ""
    found = LATEST_STEP.search(label)
    return int(found.group(1)) if found else None


def watch_until_final(page: Any) -> tuple[set[int], str]:
    """Steps the loss chart showed while the job was running, and the final status."""
    seen: set[int] = set()
    status = page.locator(".status-line .status")
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while time.monotonic() < deadline:
        text = status.inner_text().strip().lower()
        if text in ("succeeded", "failed", "cancelled"):
            return seen, text
        step = chart_step(page)
        if text == "running" and step is not None:
            seen.add(step)
        page.wait_for_timeout(250)
    raise AssertionError(f"the job did not finish in {TRAINING_TIMEOUT_S}s; saw steps {seen}")


def test_a_fine_tune_from_the_form_is_watched_to_completion(
    page: Any, server: Server, data_files: dict[str, Path], screenshots: Path
) -> None:
    train = upload(server, data_files["train"])
    valid = upload(server, data_files["valid"])
    answers: list[tuple[int, str]] = []  # the form's report requests, for a failure message
    page.on(
        "response",
        lambda r: answers.append((r.status, r.url)) if "/validation" in r.url else None,
    )
    sign_in(page, server.key)
    page.get_by_role("link", name="New fine-tune").click()
    # the catalog fills in a default model when it loads: replace that, as a user would (typing
    # while it loads raced with it: Playwright's fill cleared the field, the default came in,
    # and the path was appended to it)
    expect(page.get_by_label("Base model")).not_to_have_value("")
    page.get_by_label("Base model").fill(server.model)
    page.get_by_label("Training file").select_option(train)
    page.get_by_label("Validation file (optional)").select_option(valid)
    page.get_by_label("Batch size").fill("1")
    # "auto" is shown as what it resolves to: 48 examples -> 3 epochs
    try:
        expect(page.locator("#hp-n_epochs-hint")).to_have_text("auto → 3")
    except AssertionError as failed:
        reports = "\n".join(f"{status} {url}" for status, url in answers)
        estimate = page.locator("#estimate").inner_text()
        log = (server.data_dir / "serve.log").read_text()
        raise AssertionError(
            f"{failed}\nreports:\n{reports}\nestimate: {estimate}\n{log}"
        ) from None
    estimate = page.locator("#estimate")
    expect(estimate).to_contain_text("144")  # steps: 48 examples x 3 epochs / batch 1
    expect(estimate).to_contain_text("Estimated time")
    page.screenshot(path=screenshots / "new-fine-tune.png", full_page=True)
    # 10 epochs (480 steps) instead: the tiny model trains 144 in about as long as the page
    # takes to refresh the chart twice, and the chart is to be seen moving
    page.get_by_label("Epochs", exact=True).fill("10")
    expect(estimate).to_contain_text("480")

    page.get_by_role("button", name="Start fine-tune").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Job ftjob-"), level=1)).to_be_visible()
    seen, status = watch_until_final(page)
    assert status == "succeeded", page.locator("#events").inner_text()
    assert len(seen) >= 2, f"the chart never updated while the job ran (steps seen: {seen})"
    expect(page.locator("#loss-chart canvas")).to_have_attribute(
        "aria-label", re.compile(r"at step 480")
    )
    expect(page.locator("#accuracy-chart canvas")).to_have_attribute(
        "aria-label", re.compile(r"validation token accuracy")
    )
    expect(page.locator("#checkpoints-table tbody tr").first).to_be_visible()
    expect(page.locator("#events")).to_contain_text("Fine-tuning job started")
    expect(page.locator("#results")).to_contain_text("Download step_metrics.csv")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download step_metrics.csv").click()
    assert download.value.suggested_filename == "step_metrics.csv"
    page.screenshot(path=screenshots / "job.png", full_page=True)

    page.get_by_role("button", name="Evaluate").click()
    metrics = page.locator("#evaluation-metrics")
    expect(metrics).to_be_visible(timeout=TRAINING_TIMEOUT_S * 1000)
    expect(metrics).to_contain_text("loss (per target token)")
    expect(metrics.locator("thead")).to_contain_text("Base")
    page.locator("#evaluation").screenshot(path=screenshots / "evaluation.png")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Fine-tuning").click()
    expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    expect(page.locator("#jobs-table tbody tr").first).to_contain_text("succeeded")
    page.screenshot(path=screenshots / "jobs.png")
