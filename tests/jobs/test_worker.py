"""The worker with the fake engine: validate, train in a child process, report, stop, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tunesmith.jobs import service
from tunesmith.jobs.models import Checkpoint, FileRecord, Job, JobEvent, JobStatus
from tunesmith.jobs.store import session_factory
from tunesmith.jobs.worker import Worker, child_env
from tunesmith.settings import Settings

MakeJob = Callable[..., str]


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


class Db:
    def __init__(self, engine: Engine) -> None:
        self.sessions = session_factory(engine)

    def job(self, job_id: str) -> Job:
        with self.sessions() as session:
            return session.get(Job, job_id)

    def events(self, job_id: str) -> list[JobEvent]:
        with self.sessions() as session:
            stmt = select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            return list(session.scalars(stmt))

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        with self.sessions() as session:
            stmt = select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)
            return list(session.scalars(stmt))

    def act(self, job_id: str, action: Callable[..., object]) -> None:
        with self.sessions.begin() as session:
            action(session, session.get(Job, job_id))


@pytest.fixture
def db(engine: Engine) -> Db:
    return Db(engine)


def metric_steps(output_dir: str) -> list[int]:
    rows = (Path(output_dir) / "metrics.csv").read_text().splitlines()[1:]
    return [int(r.split(",")[0]) for r in rows]


def test_a_job_validates_trains_and_succeeds(
    settings: Settings, engine: Engine, db: Db, make_job: MakeJob
) -> None:
    job_id = make_job(checkpoint_every=2)
    Worker(settings, engine).run(until_idle=True)
    job = db.job(job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.fine_tuned_model == f"ft:tiny:acme::{job_id.removeprefix('ftjob-')}"
    assert job.trained_tokens == 800 and job.finished_at and job.estimated_finish is None
    assert job.hyperparameters == {"n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": 1.0}
    # checkpoints at steps 2, 4, 6, 8: the records of those pruned (all but the newest 3) go
    assert [c.step for c in db.checkpoints(job_id)] == [4, 6, 8]
    assert db.checkpoints(job_id)[0].fine_tuned_model_checkpoint.endswith(":ckpt-step-4")
    metrics = [e for e in db.events(job_id) if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == list(range(1, 9))
    assert {"train_loss", "train_mean_token_accuracy", "total_steps"} <= metrics[0].data.keys()
    with db.sessions() as session:
        (result,) = [session.get(FileRecord, f) for f in job.result_files]
    assert result.purpose == "fine-tune-results"
    assert Path(result.path).read_text().startswith("step,train_loss")
    assert metric_steps(job.output_dir) == list(range(1, 9))


def test_a_bad_file_fails_the_job_naming_file_and_line(
    settings: Settings, engine: Engine, db: Db, make_job: MakeJob
) -> None:
    job_id = make_job(['{"messages": []}', "{not json", '["a list"]'])
    Worker(settings, engine).run(until_idle=True)
    job = db.job(job_id)
    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "invalid_training_file"
    assert job.error["param"] == "training_file"
    assert job.training_file in job.error["message"] and "train.jsonl" in job.error["message"]
    assert "line 2: invalid JSON" in job.error["message"]
    assert "line 3, field 'messages'" in job.error["message"]
    with db.sessions() as session:
        record = session.get(FileRecord, job.training_file)
    assert record.status == "error" and "line 2" in record.status_details
    assert record.validation["ok"] is False


def test_an_engine_error_fails_the_job_with_its_code(
    settings: Settings, engine: Engine, db: Db, make_job: MakeJob
) -> None:
    job_id = make_job(model="missing-model")
    Worker(settings, engine).run(until_idle=True)
    job = db.job(job_id)
    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "invalid_model" and job.error["param"] == "model"


def run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def slow_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNESMITH_FAKE_STEP_SECONDS", "0.1")


@pytest.mark.usefixtures("slow_steps")
def test_cancel_stops_a_running_job_within_seconds(
    settings: Settings, engine: Engine, db: Db, make_job: MakeJob
) -> None:
    job_id = make_job(n_epochs=20)  # 80 steps of 0.1 s
    worker = Worker(settings, engine)
    thread = run_in_thread(worker)
    try:
        wait_for(lambda: any(e.type == "metrics" for e in db.events(job_id)))
        db.act(job_id, service.cancel_job)
        cancelled = time.monotonic()
        wait_for(lambda: any("Training stopped" in e.message for e in db.events(job_id)), 10)
        assert time.monotonic() - cancelled < 5
    finally:
        worker.stop()
        thread.join(10)
    job = db.job(job_id)
    assert job.status == JobStatus.CANCELLED and job.fine_tuned_model is None
    assert max(metric_steps(job.output_dir)) < 80


@pytest.mark.usefixtures("slow_steps")
def test_pause_then_resume_continues_from_the_checkpoint(
    settings: Settings, engine: Engine, db: Db, make_job: MakeJob
) -> None:
    job_id = make_job(n_epochs=5, checkpoint_every=3)  # 20 steps
    worker = Worker(settings, engine)
    thread = run_in_thread(worker)
    try:
        wait_for(lambda: db.checkpoints(job_id))
        db.act(job_id, service.pause_job)
        wait_for(lambda: db.job(job_id).status == JobStatus.PAUSED, 10)
        paused_at = max(metric_steps(db.job(job_id).output_dir))
        assert paused_at < 20
        db.act(job_id, service.resume_job)
        wait_for(lambda: db.job(job_id).status == JobStatus.SUCCEEDED, 30)
    finally:
        worker.stop()
        thread.join(10)
    assert metric_steps(db.job(job_id).output_dir) == list(range(1, 21))
    assert any(f"resumed at step {paused_at}" in e.message for e in db.events(job_id))


@pytest.mark.usefixtures("slow_steps")
def test_a_stopping_worker_hands_its_job_back(
    settings: Settings, engine: Engine, db: Db, make_job: MakeJob
) -> None:
    job_id = make_job(n_epochs=20)
    worker = Worker(settings, engine)
    thread = run_in_thread(worker)
    wait_for(lambda: any(e.type == "metrics" for e in db.events(job_id)))
    worker.stop()
    thread.join(15)
    job = db.job(job_id)
    assert job.status == JobStatus.QUEUED and job.worker_id is None and job.attempts == 0


def start_worker_process(settings: Settings) -> subprocess.Popen[bytes]:
    code = "from tunesmith.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "worker"],
        env=child_env(settings) | {"TUNESMITH_FAKE_STEP_SECONDS": "0.1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def pids_of_training_processes(job_id: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"run_job {job_id}"], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_a_job_survives_its_worker_being_killed(
    settings: Settings, engine: Engine, db: Db, make_job: MakeJob
) -> None:
    job_id = make_job(n_epochs=6, checkpoint_every=4)  # 24 steps of 0.1 s
    first = start_worker_process(settings)
    try:
        wait_for(lambda: db.checkpoints(job_id), 30)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        wait_for(lambda: not pids_of_training_processes(job_id), 5)  # the child died with it
        killed_at = max(metric_steps(db.job(job_id).output_dir))
        assert db.job(job_id).status == JobStatus.RUNNING
    finally:
        first.kill()
    second = start_worker_process(settings)
    try:
        wait_for(lambda: db.job(job_id).status == JobStatus.SUCCEEDED, 40)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(15)
    job = db.job(job_id)
    assert job.attempts == 2
    messages = [e.message for e in db.events(job_id)]
    assert any("stopped responding; job requeued" in m for m in messages)
    resumed = [m for m in messages if "resumed at step" in m]
    assert resumed and int(resumed[0].split("step ")[1].split(" ")[0]) <= killed_at
    steps = metric_steps(job.output_dir)
    assert steps[-1] == 24 and sorted(set(steps)) == list(range(1, 25))
    assert os.path.exists(Path(job.output_dir) / "tunesmith.json")
