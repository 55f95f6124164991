"""The worker: claim a job, hold its lease, run it, repeat.

One worker runs one job at a time. Validating files happens in the worker's own process;
training happens in a child process (``python -m tunesmith.jobs.run_job``) so that a crash, a
leak or a kill there cannot take the worker down, and so that the worker can always heartbeat
and always stop it. While the child trains, a heartbeat thread extends the lease every third of
``lease_seconds``; when the heartbeat finds the job is no longer this worker's (cancelled, or
requeued after the lease ran out) the child notices on its own within a second, and is killed
if it has not exited ``cancel_grace_seconds`` later.

Run one with ``tunesmith worker``; ``tunesmith serve --workers N`` runs N in threads.

A worker started with ``nproc_per_node`` N > 1 (``tunesmith worker --nproc-per-node N``) trains
each job on N processes under ``torchrun`` (one per GPU; gloo on CPU). A job may ask for fewer,
or for FSDP, in its method's ``distributed`` extension (``requested_processes``). The child is
then ``torchrun`` (``training/distributed.py``), which dies with this worker and takes its ranks
with it; rank 0 reports and stops them all on cancel, pause, SIGTERM or a lost lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine

from tunesmith.jobs.engine import load_engine
from tunesmith.jobs.models import Job, JobStatus
from tunesmith.jobs.queue import Claim, SqlQueue, fenced_update
from tunesmith.jobs.service import add_event
from tunesmith.jobs.store import create_engine_for, session_factory
from tunesmith.jobs.validation import validate_job_files
from tunesmith.settings import Settings

log = logging.getLogger(__name__)

DISTRIBUTED_KEY = "distributed"  # method.<type>.distributed = {"nproc_per_node": N, "fsdp": b}


def requested_processes(method: dict[str, Any]) -> tuple[int | None, bool]:
    """What a job's ``method.<type>.distributed`` asks for: (processes or None, fsdp)."""
    config = method.get(method.get("type", "supervised")) or {}
    asked = config.get(DISTRIBUTED_KEY) or {}
    nproc = asked.get("nproc_per_node")
    return (int(nproc) if nproc else None), bool(asked.get("fsdp", False))


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of a training process: ours, plus every setting as ``TUNESMITH_*``."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        env[f"TUNESMITH_{name.upper()}"] = str(value)
    return env


class Heartbeat:
    """Extends a job's lease in a thread; ``lost`` is set once the job is no longer ours."""

    def __init__(self, queue: SqlQueue, worker_id: str, job_id: str, interval: float) -> None:
        self.queue, self.worker_id, self.job_id = queue, worker_id, job_id
        self.interval = interval
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{job_id}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            try:
                held = self.queue.heartbeat(self.worker_id, self.job_id)
                self.queue.worker_heartbeat(self.worker_id, self.job_id)
            except Exception:  # the database may be briefly away; the lease has slack
                log.exception("heartbeat for %s failed", self.job_id)
                continue
            if not held:
                self.lost.set()
                return


class Worker:
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        *,
        worker_id: str | None = None,
        nproc_per_node: int = 1,
    ) -> None:
        if nproc_per_node < 1:
            raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
        self.settings = settings
        self.nproc_per_node = nproc_per_node
        self.engine = engine if engine is not None else create_engine_for(settings)
        self.sessions = session_factory(self.engine)
        self.queue = SqlQueue(
            self.engine,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.job_max_attempts,
        )
        host = socket.gethostname()
        self.worker_id = worker_id or f"{host}-{os.getpid()}-{secrets.token_hex(3)}"
        self.stop_event = threading.Event()

    def stop(self) -> None:
        """Finish soon: a running job is checkpointed and handed back to the queue."""
        self.stop_event.set()

    def run(self, *, until_idle: bool = False) -> None:
        """Work until ``stop()`` (or, with ``until_idle``, until no job is waiting)."""
        self.queue.register_worker(self.worker_id, socket.gethostname(), os.getpid())
        log.info("worker %s started", self.worker_id)
        try:
            while not self.stop_event.is_set():
                try:
                    worked = self.run_once()
                except Exception:  # keep serving: a bad job or a database hiccup is logged
                    log.exception("worker %s: error while working", self.worker_id)
                    worked = False
                if not worked:
                    if until_idle:
                        break
                    self.stop_event.wait(self.settings.worker_poll_seconds)
        finally:
            self.queue.worker_stopped(self.worker_id)
            log.info("worker %s stopped", self.worker_id)

    def run_once(self) -> bool:
        """Requeue lost jobs, then claim and run one job; False if there was none."""
        for job_id in self.queue.requeue_expired():
            log.warning("requeued job %s: its worker stopped responding", job_id)
        claim = self.queue.claim(self.worker_id)
        if claim is None:
            self.queue.worker_heartbeat(self.worker_id, None)
            return False
        log.info("worker %s claimed %s (%s)", self.worker_id, claim.job_id, claim.status)
        interval = self.settings.lease_seconds / 3
        with Heartbeat(self.queue, self.worker_id, claim.job_id, interval) as heartbeat:
            if claim.status is JobStatus.VALIDATING_FILES:
                engine = load_engine(self.settings)
                validate_job_files(self.sessions, engine, self.worker_id, claim.job_id)
            else:
                self._train(claim, heartbeat)
        return True

    # --- training in a child process -------------------------------------------------------

    def _train(self, claim: Claim, heartbeat: Heartbeat) -> None:
        with self.sessions() as session:
            job = session.get(Job, claim.job_id)
            output_dir = Path(job.output_dir) if job else self.settings.runs_dir / claim.job_id
            method = dict(job.method) if job else {}
        output_dir.mkdir(parents=True, exist_ok=True)
        command = self._command(claim.job_id, method)
        log_path = output_dir / "worker.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                command,
                env=child_env(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the worker is not sent to it too
            )
            code = self._supervise(process, heartbeat)
        self._after_exit(claim.job_id, code, log_path)

    def _command(self, job_id: str, method: dict[str, Any]) -> list[str]:
        """The training process: ``run_job`` itself, or ``torchrun`` running it on each rank."""
        job_args = ["-m", "tunesmith.jobs.run_job", job_id, "--worker-id", self.worker_id]
        asked, fsdp = requested_processes(method)
        nproc = min(asked, self.nproc_per_node) if asked else self.nproc_per_node
        fsdp = fsdp and nproc > 1  # sharding over one process is that process
        if asked and asked > self.nproc_per_node:
            self._event(
                job_id,
                f"The job asked for {asked} training processes; this worker runs at most "
                f"{self.nproc_per_node}.",
                level="warn",
            )
        if nproc == 1:
            return [sys.executable, *job_args, "--parent-pid", str(os.getpid())]
        from tunesmith.training.distributed import ENTRY_MODULE, DistributedOptions

        torchrun = DistributedOptions(nproc_per_node=nproc).torchrun_args()
        self._event(job_id, f"Training on {nproc} processes (torchrun){' with FSDP' * fsdp}.")
        return [
            sys.executable, "-m", ENTRY_MODULE, "torchrun", "--parent-pid", str(os.getpid()),
            "--", *torchrun, *job_args, *(["--fsdp"] if fsdp else []),
        ]  # fmt: skip

    def _event(self, job_id: str, message: str, level: str = "info") -> None:
        with self.sessions.begin() as session:
            add_event(session, job_id, message, level=level)

    def _supervise(self, process: subprocess.Popen[bytes], heartbeat: Heartbeat) -> int:
        deadline: float | None = None
        while True:
            try:
                return process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            if deadline is None:
                if self.stop_event.is_set():
                    process.send_signal(signal.SIGTERM)  # checkpoint, then hand the job back
                    deadline = time.monotonic() + self.settings.cancel_grace_seconds
                elif heartbeat.lost.is_set():  # cancelled or requeued: it stops on its own
                    deadline = time.monotonic() + self.settings.cancel_grace_seconds
            elif time.monotonic() > deadline:
                log.warning("training process %s did not stop in time; killing it", process.pid)
                process.kill()

    def _after_exit(self, job_id: str, code: int, log_path: Path) -> None:
        """The child records every outcome it sees; this covers a child that died first."""
        if self.stop_event.is_set():
            self.queue.release(self.worker_id, job_id)
            return
        message = (
            f"The training process exited with code {code} before finishing; "
            f"its output is in {log_path}."
        )
        error = {"code": "server_error", "message": message, "param": None}
        with self.sessions.begin() as session:
            if fenced_update(
                session, self.worker_id, job_id, JobStatus.RUNNING, JobStatus.FAILED, error=error
            ):
                add_event(session, job_id, message, level="error")


class WorkerPool:
    """``n`` workers in threads of this process (``tunesmith serve --workers N``)."""

    def __init__(self, settings: Settings, engine: Engine, n: int) -> None:
        self.workers = [Worker(settings, engine) for _ in range(n)]
        self.threads = [
            threading.Thread(target=w.run, daemon=True, name=f"worker-{i}")
            for i, w in enumerate(self.workers)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        for worker in self.workers:
            worker.stop()
        for thread in self.threads:
            thread.join(timeout)
