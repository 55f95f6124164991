"""A real ``tunesmith serve`` (real engine, a tiny Llama) driven by Playwright in Debian's
Chromium. Skipped, saying why, when Chromium, Playwright or the built dashboard is missing
(``make install`` provides all three).

Screenshots go to ``TUNESMITH_SCREENSHOT_DIR`` when it is set (the README's come from
``TUNESMITH_SCREENSHOT_DIR=docs/screenshots``), else to a temporary folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import save_tiny_model, write_jsonl
from tunesmith.server.dashboard import DIST

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
LAPTOP = {"width": 1366, "height": 860}
CLI = [sys.executable, "-c", "from tunesmith.cli import main; main()"]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
playwright_api.expect.set_options(timeout=60_000)  # the first report imports the engine
if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)
if not (DIST / "index.html").exists():
    pytest.skip("the dashboard is not built (make install)", allow_module_level=True)


@dataclass
class Server:
    url: str
    key: str
    data_dir: Path
    model: str  # the tiny base model's folder, usable as a model name

    def http(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.url + "/v1", headers=headers, timeout=60)


def chat_rows(start: int, n: int) -> list[dict[str, Any]]:
    """Spam-or-ham chat examples; rows from different ``start`` never repeat each other."""
    words = ["win a prize", "free money", "lunch at noon", "see you soon"]
    return [
        {
            "messages": [
                {"role": "system", "content": "Answer spam or ham."},
                {"role": "user", "content": f"{words[i % 4]} {i}"},
                {"role": "assistant", "content": "spam" if i % 4 < 2 else "ham"},
            ]
        }
        for i in range(start, start + n)
    ]


@pytest.fixture(scope="package")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("files")
    broken = [*chat_rows(0, 3), "{not json", {"messages": [{"role": "user", "content": "hi"}]}]
    return {
        "train": write_jsonl(folder / "spam-train.jsonl", chat_rows(0, 48)),
        "valid": write_jsonl(folder / "spam-valid.jsonl", chat_rows(1000, 12)),
        "broken": write_jsonl(folder / "broken.jsonl", broken),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tunesmith serve exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"tunesmith serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("data")
    model = save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", "causal")
    env = dict(os.environ) | {
        "HF_HUB_OFFLINE": "1",
        "TUNESMITH_DATA_DIR": str(data_dir),
        "TUNESMITH_WORKER_POLL_SECONDS": "0.2",
        "TUNESMITH_LEASE_SECONDS": "30",
    }
    out = subprocess.run(
        [*CLI, "keys", "create", "--project", "dashboard"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    key = out.stdout.strip().splitlines()[-1]
    port = _free_port()
    log = data_dir / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--workers", "1", "--log-level", "warning"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield Server(url, key, data_dir, str(model))
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh tab (laptop-sized), not signed in; fails the test on any page error."""
    context = browser.new_context(viewport=LAPTOP)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.set_default_timeout(20_000)
    log = server.data_dir / "serve.log"
    seen = log.stat().st_size
    tab.goto(server.url + "/")
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
    with log.open(encoding="utf-8", errors="replace") as handle:
        handle.seek(seen)
        new_lines = handle.read()
    assert "Traceback" not in new_lines, f"the server failed while this test ran:\n{new_lines}"


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("TUNESMITH_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: Any, key: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").wait_for()
