"""Two ``tunesmith worker`` processes sharing one PostgreSQL queue, with the fake engine.

``tests/jobs`` checks the claim on threads (never the same job twice) and a killed worker's job
finished by a worker started after it. Here two worker *processes* run side by side, as on two
machines: together they drain the queue, no job runs on both, and when one dies the other takes
its job over once the lease runs out, and finishes it from its checkpoint.
"""

from __future__ import annotations

import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, text

from tests.distributed.conftest import wait_for
from tests.jobs.conftest import GOOD_LINES, POSTGRES, POSTGRES_UP
from tunesmith.jobs import files, projects, service
from tunesmith.jobs.models import Job, JobEvent, JobStatus
from tunesmith.jobs.store import create_engine_for, migrate, session_factory
from tunesmith.jobs.worker import child_env
from tunesmith.settings import Settings
from tunesmith.training.spec import FinetuneSpec, Hyperparameters

pytestmark = pytest.mark.skipif(not POSTGRES_UP, reason=f"PostgreSQL not reachable at {POSTGRES}")
CLAIM = re.compile(r"worker (\S+) claimed (ftjob-\w+) \(running\)")


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    schema = f"ts_test_{secrets.token_hex(6)}"
    admin = create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield Settings(
            data_dir=tmp_path / "data",
            database_url=f"{POSTGRES}?options=-csearch_path%3D{schema}",
            lease_seconds=2.0,
            worker_poll_seconds=0.1,
            cancel_grace_seconds=5.0,
            job_engine="tunesmith.jobs.fakes",
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = create_engine_for(settings)
    migrate(eng)
    yield eng
    eng.dispose()


def make_jobs(settings: Settings, engine: Engine, n: int, n_epochs: int) -> list[str]:
    """``n`` jobs of ``n_epochs`` x 4 fake steps, checkpointed every 2 steps."""
    ids = []
    with session_factory(engine).begin() as session:
        project = projects.get_or_create_project(session, "acme")
        for _ in range(n):
            file_id, path = files.new_file_path(settings, "train.jsonl")
            path.write_text("\n".join(GOOD_LINES) + "\n")
            record = files.add_file(
                session,
                file_id=file_id,
                project_id=project.id,
                filename="train.jsonl",
                purpose="fine-tune",
                path=path,
                size=path.stat().st_size,
            )
            hp = Hyperparameters(n_epochs=n_epochs, batch_size=2, checkpoint_every=2)
            new = service.NewJob(
                model="tiny",
                training_file=record,
                validation_file=None,
                spec=FinetuneSpec(model="tiny", train_file=path, hyperparameters=hp),
                method={"type": "supervised", "supervised": {"hyperparameters": {}}},
                hyperparameters={"n_epochs": n_epochs},
            )
            ids.append(service.create_job(session, settings, project, new).id)
    return ids


class WorkerProcess:
    """``tunesmith worker`` in its own process, its log in a file."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tunesmith", "worker"],
                env=child_env(settings) | {"TUNESMITH_FAKE_STEP_SECONDS": "0.05"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def claims(self) -> list[str]:
        """The jobs this worker started training, in order."""
        return [m.group(2) for m in CLAIM.finditer(self.log.read_text(errors="replace"))]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def two_workers(settings: Settings, tmp_path: Path) -> Iterator[tuple[WorkerProcess, ...]]:
    workers = (
        WorkerProcess(settings, tmp_path / "a.log"),
        WorkerProcess(settings, tmp_path / "b.log"),
    )
    yield workers
    for worker in workers:
        worker.stop()


def statuses(engine: Engine, ids: list[str]) -> dict[str, str]:
    with session_factory(engine)() as session:
        rows = session.execute(select(Job.id, Job.status).where(Job.id.in_(ids)))
        return {job_id: status for job_id, status in rows}


def started_events(engine: Engine, job_id: str) -> int:
    with session_factory(engine)() as session:
        rows = session.scalars(select(JobEvent.message).where(JobEvent.job_id == job_id))
        return sum("Fine-tuning job started" in m or "resumed at step" in m for m in rows)


def checkpointed(engine: Engine, job_id: str) -> list[Path]:
    with session_factory(engine)() as session:
        output_dir = session.get(Job, job_id).output_dir
    return list(Path(output_dir).glob("checkpoints/step-*"))


def metric_steps(engine: Engine, job_id: str) -> list[int]:
    with session_factory(engine)() as session:
        output_dir = session.get(Job, job_id).output_dir
    rows = (Path(output_dir) / "metrics.csv").read_text().splitlines()[1:]
    return [int(r.split(",")[0]) for r in rows]


def test_two_workers_drain_a_queue_and_never_run_the_same_job(
    settings: Settings, engine: Engine, two_workers: tuple[WorkerProcess, ...]
) -> None:
    ids = make_jobs(settings, engine, 10, n_epochs=3)  # 12 steps of 0.05 s each
    done = {JobStatus.SUCCEEDED.value}
    wait_for(lambda: set(statuses(engine, ids).values()) <= done, 120, "the queue to drain")
    a, b = (w.claims() for w in two_workers)
    assert sorted(a + b) == sorted(ids)  # every job trained once, by one worker
    assert a and b  # both took part
    for job_id in ids:
        assert started_events(engine, job_id) == 1
        assert metric_steps(engine, job_id) == list(range(1, 13))


def test_a_dying_worker_hands_its_job_to_the_other(
    settings: Settings, engine: Engine, two_workers: tuple[WorkerProcess, ...]
) -> None:
    ids = make_jobs(settings, engine, 4, n_epochs=15)  # 60 steps of 0.05 s each
    first, second = two_workers
    wait_for(lambda: first.claims() and second.claims(), 60, "both workers to train")
    victim = first.claims()[-1]
    wait_for(lambda: len(checkpointed(engine, victim)) >= 2, 60, "a checkpoint to resume from")
    first.process.send_signal(signal.SIGKILL)  # no goodbye: only its lease can tell
    first.process.wait(5)
    done = {JobStatus.SUCCEEDED.value}
    wait_for(lambda: set(statuses(engine, ids).values()) <= done, 180, "the queue to drain")
    assert victim in second.claims()  # taken over once its lease ran out
    with session_factory(engine)() as session:
        job = session.get(Job, victim)
        events = list(session.scalars(select(JobEvent.message).where(JobEvent.job_id == victim)))
    assert job.attempts == 2
    assert any("stopped responding; job requeued" in m for m in events)
    assert any("resumed at step" in m for m in events)  # from its checkpoint
    assert sorted(set(metric_steps(engine, victim))) == list(range(1, 61))
    for job_id in set(ids) - {victim}:
        assert started_events(engine, job_id) == 1
