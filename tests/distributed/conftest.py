"""Real multi-process runs on this machine: ``torchrun`` with gloo on CPU, tiny models.

Every process gets one thread (``OMP_NUM_THREADS=1``): the machines that run these tests have
few cores, and several processes each running a thread per core would only fight for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import save_tiny_model

os.environ["OMP_NUM_THREADS"] = "1"  # also for the single-process runs compared with them


@pytest.fixture(scope="session")
def causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("causal"), "causal")


def cli_env(data_dir: Path) -> dict[str, str]:
    return os.environ | {
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "TUNESMITH_DATA_DIR": str(data_dir),
    }


def start_cli(args: list[str], data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    """``python -m tunesmith ARGS`` with its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tunesmith", *args],
            env=cli_env(data_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def run_cli(args: list[str], data_dir: Path, log: Path, timeout: float = 300) -> str:
    process = start_cli(args, data_dir, log)
    code = process.wait(timeout)
    output = log.read_text(errors="replace")
    assert code == 0, output
    return output


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_for(predicate: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.1)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    living = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
        except psutil.NoSuchProcess:
            pass
    return living


@pytest.fixture
def reaper() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started; killed (with their children) whatever the test's outcome."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        for child in descendants(process.pid):
            child.kill()
        process.kill()
        process.wait(10)
