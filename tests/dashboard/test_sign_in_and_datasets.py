"""Signing in, uploading data files and reading their validation reports in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import Server, sign_in


def test_a_wrong_key_is_refused_and_a_right_one_signs_in(
    page: Any, server: Server, screenshots: Path
) -> None:
    expect(page.get_by_role("heading", name="tunesmith")).to_be_visible()
    page.get_by_label("API key").fill("sk-not-a-real-key-000000")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Incorrect API key")
    page.screenshot(path=screenshots / "sign-in.png")

    sign_in(page, server.key)
    expect(page.get_by_role("heading", name="Fine-tuning jobs", level=1)).to_be_visible()
    # the keyboard: the page's heading has the focus; the page's action comes next, and
    # before it the account, the navigation in reading order and a skip link
    expect(page.get_by_role("heading", name="Fine-tuning jobs", level=1)).to_be_focused()
    page.keyboard.press("Tab")
    focused = [page.evaluate("document.activeElement.textContent.trim()")]
    for _ in range(7):
        page.keyboard.press("Shift+Tab")
        focused.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert focused == [
        "New fine-tune", "Sign out", "Models", "Playground", "Datasets", "Fine-tuning",
        "tunesmith", "Skip to content",
    ]  # fmt: skip
    for _ in range(3):
        page.keyboard.press("Tab")  # to "Datasets"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Datasets", level=1)).to_be_focused()
    # the key stays for this tab only: a reload keeps it, signing out forgets it
    page.reload()
    expect(page.get_by_role("heading", name="Datasets", level=1)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def upload(page: Any, path: Path) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    page.get_by_label("Data file (JSONL or CSV)").set_input_files(path)
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name=path.name, level=1)).to_be_visible()


def test_an_uploaded_file_shows_its_errors_with_line_numbers(
    page: Any, server: Server, data_files: dict[str, Path]
) -> None:
    sign_in(page, server.key)
    upload(page, data_files["broken"])
    validation = page.locator("#validation")
    expect(validation).to_contain_text("2 error(s) to fix before training")
    errors = validation.locator(".issues-error tbody tr")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("4")  # line 4: not JSON
    expect(errors.nth(0)).to_contain_text("not valid JSON")
    expect(errors.nth(1)).to_contain_text("5")  # line 5: nothing for the assistant to learn
    # the bad line is shown as written, with its number
    page.get_by_role("button", name="Next").wait_for()
    expect(page.locator(".example-list")).to_contain_text("line 1")


def test_a_good_file_shows_token_and_training_statistics_and_examples(
    page: Any, server: Server, data_files: dict[str, Path], screenshots: Path
) -> None:
    sign_in(page, server.key)
    upload(page, data_files["train"])
    expect(page.locator("#validation")).to_contain_text("Ready to train")
    page.get_by_label("Count tokens with the tokenizer of").fill(server.model)
    page.get_by_role("button", name="Check").click()
    statistics = page.locator("#statistics")
    expect(statistics).to_contain_text("Tokens per epoch")
    expect(statistics).to_contain_text("48")
    expect(page.locator("#estimate")).to_contain_text("Estimated time")
    examples = page.locator(".example-list > li")
    expect(examples).to_have_count(5)
    expect(examples.first).to_contain_text("win a prize 0")
    page.get_by_role("button", name="Next").click()
    expect(examples.first).to_contain_text("free money 5")
    page.screenshot(path=screenshots / "dataset.png", full_page=True)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(page.locator("#datasets tbody tr").first).to_be_visible()
    page.screenshot(path=screenshots / "datasets.png")
