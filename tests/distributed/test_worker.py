"""The job worker training jobs on two gloo processes with the real engine and a tiny model.

A job asks for it through the API's extension (``method.supervised.distributed``); cancel,
pause, a lost lease and a killed worker must each stop every rank and leave nothing running.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.distributed.conftest import wait_for
from tests.helpers import write_jsonl
from tests.training.conftest import chat_rows
from tunesmith.jobs import files, projects, service
from tunesmith.jobs.models import Checkpoint, Job, JobEvent, JobStatus
from tunesmith.jobs.queue import SqlQueue
from tunesmith.jobs.store import create_engine_for, migrate, session_factory
from tunesmith.jobs.worker import Worker, child_env
from tunesmith.server.mapping import new_job_from_request
from tunesmith.server.schemas import JobCreate
from tunesmith.settings import Settings

# real-engine jobs over torchrun: a minute or more each on 2 cores (CI runs them too)
pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        lease_seconds=30.0,
        worker_poll_seconds=0.1,
        cancel_grace_seconds=30.0,
        job_engine="tunesmith.jobs.engine",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = create_engine_for(settings)
    migrate(eng)
    yield eng
    eng.dispose()


class Jobs:
    def __init__(self, settings: Settings, engine: Engine, model: Path, tmp: Path) -> None:
        self.settings, self.sessions, self.model, self.tmp = (
            settings,
            session_factory(engine),
            model,
            tmp,
        )

    def create(self, n_examples: int, distributed: dict | None, **hp: object) -> str:
        """A job made the way the API makes it, with ``distributed`` as the extension."""
        data = write_jsonl(self.tmp / "train.jsonl", chat_rows(n_examples, seed=5)).read_text()
        config: dict = {"hyperparameters": {"learning_rate": 3e-2, "lora_dropout": 0.0} | hp}
        if distributed is not None:
            config["distributed"] = distributed
        with self.sessions.begin() as session:
            project = projects.get_or_create_project(session, "acme")
            file_id, path = files.new_file_path(self.settings, "train.jsonl")
            path.write_text(data)
            record = files.add_file(
                session,
                file_id=file_id,
                project_id=project.id,
                filename="train.jsonl",
                purpose="fine-tune",
                path=path,
                size=path.stat().st_size,
            )
            request = JobCreate(
                model=str(self.model),
                training_file=record.id,
                method={"type": "supervised", "supervised": config},
                seed=7,
            )
            new = new_job_from_request(session, project.id, request)
            return service.create_job(session, self.settings, project, new).id

    def job(self, job_id: str) -> Job:
        with self.sessions() as session:
            return session.get(Job, job_id)

    def events(self, job_id: str) -> list[JobEvent]:
        with self.sessions() as session:
            stmt = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            return list(session.scalars(stmt))

    def messages(self, job_id: str) -> list[str]:
        return [e.message for e in self.events(job_id)]

    def act(self, job_id: str, action: object) -> None:
        with self.sessions.begin() as session:
            action(session, session.get(Job, job_id))  # type: ignore[operator]

    def training(self, job_id: str) -> bool:
        return any(e.type == "metrics" for e in self.events(job_id))


@pytest.fixture
def jobs(settings: Settings, engine: Engine, causal_dir: Path, tmp_path: Path) -> Jobs:
    return Jobs(settings, engine, causal_dir, tmp_path)


def training_processes(job_id: str) -> list[int]:
    """torchrun and its ranks: every process whose command line runs this job."""
    out = subprocess.run(["pgrep", "-f", f"run_job {job_id}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def in_thread(target: object) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_a_job_asks_for_two_processes_and_rank_0_alone_reports(
    settings: Settings, engine: Engine, jobs: Jobs
) -> None:
    job_id = jobs.create(16, {"nproc_per_node": 2}, n_epochs=2, batch_size=4, checkpoint_every=2)
    with session_factory(engine)() as session:
        method = session.get(Job, job_id).method
    assert method["supervised"]["distributed"] == {"nproc_per_node": 2, "fsdp": False}
    Worker(settings, engine, nproc_per_node=2).run(until_idle=True)
    job = jobs.job(job_id)
    log = Path(job.output_dir) / "worker.log"
    assert job.status == JobStatus.SUCCEEDED, (job.error, log.read_text())
    assert "Training on 2 processes (torchrun)." in jobs.messages(job_id)
    meta = json.loads((Path(job.output_dir) / "tunesmith.json").read_text())
    assert meta["environment"]["processes"] == 2 and meta["environment"]["backend"] == "gloo"
    steps = [e.data["step"] for e in jobs.events(job_id) if e.type == "metrics"]
    assert steps == list(range(1, 9))  # once each: only rank 0 reports
    with jobs.sessions() as session:
        rows = session.scalars(select(Checkpoint.step).where(Checkpoint.job_id == job_id))
        assert sorted(rows) == [4, 6, 8]  # saved at 2, 4, 6, 8; the engine keeps the newest 3
    assert not training_processes(job_id)


def test_a_worker_gives_a_job_no_more_processes_than_it_has(
    settings: Settings, engine: Engine, jobs: Jobs
) -> None:
    job_id = jobs.create(8, {"nproc_per_node": 4}, n_epochs=1, batch_size=4)
    Worker(settings, engine, nproc_per_node=2).run(until_idle=True)
    assert jobs.job(job_id).status == JobStatus.SUCCEEDED
    messages = jobs.messages(job_id)
    assert any("asked for 4 training processes" in m for m in messages)
    assert "Training on 2 processes (torchrun)." in messages


def test_cancel_stops_every_rank(settings: Settings, engine: Engine, jobs: Jobs) -> None:
    job_id = jobs.create(24, None, n_epochs=40, batch_size=2)  # the worker's 2 processes
    worker = Worker(settings, engine, nproc_per_node=2)
    thread = in_thread(worker.run)
    try:
        wait_for(lambda: jobs.training(job_id), 120, "training")
        assert len(training_processes(job_id)) == 3  # torchrun and two ranks
        jobs.act(job_id, service.cancel_job)
        cancelled = time.monotonic()
        wait_for(lambda: not training_processes(job_id), 60, "every rank to stop")
        assert time.monotonic() - cancelled < 30  # before the worker's 30 s grace kill
    finally:
        worker.stop()
        thread.join(30)
    assert jobs.job(job_id).status == JobStatus.CANCELLED
    assert any("Training stopped after step" in m for m in jobs.messages(job_id))


def test_pause_stops_every_rank_and_one_process_finishes_the_job(
    settings: Settings, engine: Engine, jobs: Jobs
) -> None:
    # 240 steps: enough that the job is still training when the pause lands (on an idle
    # machine the tiny model runs 36 steps in about a second, faster than the pause poll)
    steps = 240
    job_id = jobs.create(24, {"nproc_per_node": 2}, n_epochs=20, batch_size=2, checkpoint_every=4)
    worker = Worker(settings, engine, nproc_per_node=2)
    thread = in_thread(worker.run)
    try:
        wait_for(lambda: any("Checkpoint created" in m for m in jobs.messages(job_id)), 120)
        jobs.act(job_id, service.pause_job)
        wait_for(lambda: jobs.job(job_id).status == JobStatus.PAUSED, 120, "paused")
        wait_for(lambda: not training_processes(job_id), 30, "every rank to stop")
    finally:
        worker.stop()
        thread.join(30)
    paused = [m for m in jobs.messages(job_id) if m.startswith("Job paused after step")]
    assert paused
    paused_at = int(paused[0].split("step ")[1].split(";")[0])
    assert paused_at < steps

    jobs.act(job_id, service.resume_job)
    Worker(settings, engine).run(until_idle=True)  # one process this time
    job = jobs.job(job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert any(f"resumed at step {paused_at} of {steps}" in m for m in jobs.messages(job_id))
    rows = (Path(job.output_dir) / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, steps + 1))


def test_a_lost_lease_stops_every_rank(settings: Settings, engine: Engine, jobs: Jobs) -> None:
    job_id = jobs.create(24, None, n_epochs=40, batch_size=2)
    worker = Worker(settings, engine, nproc_per_node=2)
    thread = in_thread(lambda: worker.run_once() and worker.run_once())  # validate, train
    wait_for(lambda: jobs.training(job_id), 120, "training")
    # Another worker, whose clock says the lease ran out, requeues the job.
    later = SqlQueue(engine, lease_seconds=30, max_attempts=3, clock=lambda: time.time() + 3600)
    assert later.requeue_expired() == [job_id]
    wait_for(lambda: not training_processes(job_id), 60, "every rank to stop")
    thread.join(60)
    job = jobs.job(job_id)
    assert job.status == JobStatus.QUEUED and job.worker_id is None


def test_a_killed_worker_takes_every_rank_with_it(
    settings: Settings, engine: Engine, jobs: Jobs
) -> None:
    job_id = jobs.create(24, None, n_epochs=40, batch_size=2)
    code = "from tunesmith.cli import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "worker", "--nproc-per-node", "2"],
        env=child_env(settings) | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: jobs.training(job_id), 120, "training")
        assert len(training_processes(job_id)) == 3
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        wait_for(lambda: not training_processes(job_id), 20, "every rank to die")
    finally:
        process.kill()
        for pid in training_processes(job_id):
            subprocess.run(["kill", "-9", str(pid)], check=False)
    assert jobs.job(job_id).status == JobStatus.RUNNING  # until its lease runs out
