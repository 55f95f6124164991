"""A real ``tunesmith serve`` on a free loopback port, driven with the official ``openai`` SDK.

One server per database for the whole package (SQLite, and PostgreSQL in a schema of its own
when reachable), with one embedded worker running the fake engine (``tunesmith.jobs.fakes``),
so jobs finish in about a second. Keys for two projects are made with ``tunesmith keys create``.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob
from sqlalchemy import create_engine, text

POSTGRES = os.environ.get(
    "TUNESMITH_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MAX_UPLOAD = 200_000
CLI = [sys.executable, "-c", "from tunesmith.cli import main; main()"]
GOOD = (
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
)


def _postgres_available() -> bool:
    if POSTGRES == "off":
        return False
    probe = create_engine(POSTGRES)
    try:
        with probe.connect() as conn:
            conn.execute(text("select 1"))
        return True
    except Exception:
        return False
    finally:
        probe.dispose()


@dataclass
class Server:
    base_url: str
    data_dir: Path
    keys: dict[str, str]
    env: dict[str, str]

    def client(self, project: str = "acme", **kwargs: object) -> OpenAI:
        return OpenAI(base_url=self.base_url, api_key=self.keys[project], max_retries=0, **kwargs)

    def http(self, project: str | None = "acme") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[project]}"} if project else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _key(env: dict[str, str], project: str) -> str:
    out = subprocess.run(
        [*CLI, "keys", "create", "--project", project],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tunesmith serve exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"tunesmith serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'tunesmith.db'}"
        return
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES}")
    schema = f"ts_test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def server_env(data_dir: Path, database_url: str, **settings: str) -> dict[str, str]:
    """The environment of a ``tunesmith serve`` (and its CLI calls) on ``data_dir``."""
    return dict(os.environ) | {
        "TUNESMITH_DATA_DIR": str(data_dir),
        "TUNESMITH_DATABASE_URL": database_url,
        "TUNESMITH_LEASE_SECONDS": "5",
        "TUNESMITH_WORKER_POLL_SECONDS": "0.1",
        "TUNESMITH_CANCEL_GRACE_SECONDS": "5",
        "TUNESMITH_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        **settings,
    }


@contextmanager
def running_server(env: dict[str, str], *, workers: int = 1) -> Iterator[Server]:
    """``tunesmith serve`` on a free loopback port with keys for projects acme and globex."""
    data_dir = Path(env["TUNESMITH_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = {project: _key(env, project) for project in ("acme", "globex")}
    port = _free_port()
    log = data_dir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--workers", str(workers),
             "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log)
        yield Server(url + "/v1", data_dir, keys, env)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="package")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server per database with the fake engine: jobs finish in about a second."""
    env = server_env(
        tmp_path_factory.mktemp("data"),
        database_url,
        TUNESMITH_JOB_ENGINE="tunesmith.jobs.fakes",
        TUNESMITH_FAKE_STEP_SECONDS="0.05",
    )
    with running_server(env) as running:
        yield running


# --- helpers for the tests ----------------------------------------------------------------


def upload(client: OpenAI, data: bytes = GOOD * 8, name: str = "train.jsonl") -> str:
    return client.files.create(file=(name, data), purpose="fine-tune").id


def wait_job(
    client: OpenAI, job_id: str, done: Callable[[FineTuningJob], bool], timeout: float = 30
) -> FineTuningJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if done(job):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job stuck in {job.status}: {job.error}")
        time.sleep(0.1)


def finished(job: FineTuningJob) -> bool:
    return job.status in ("succeeded", "failed", "cancelled")
