"""The queue contract, checked on the in-memory fake and on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, update

from tunesmith.jobs.fakes import InMemoryQueue
from tunesmith.jobs.ids import new_id
from tunesmith.jobs.models import Job, JobStatus, RequestedAction
from tunesmith.jobs.queue import JobQueue, SqlQueue
from tunesmith.jobs.store import session_factory

LEASE = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    queue: JobQueue
    add: Callable[..., str]
    status: Callable[[str], JobStatus]
    set_action: Callable[[str, str], None]
    clock: Clock


@pytest.fixture(params=["memory", "sql"])
def harness(
    request: pytest.FixtureRequest, database_url: str, make_job: Callable[..., str], engine: Engine
) -> Harness:
    clock = Clock()
    if request.param == "memory":
        if not database_url.startswith("sqlite"):
            pytest.skip("the in-memory queue runs once")
        mem = InMemoryQueue(lease_seconds=LEASE, max_attempts=2, clock=clock)

        def add_mem(status: JobStatus = JobStatus.QUEUED, priority: int = 0) -> str:
            job_id = new_id("ftjob")
            mem.add(job_id, status=status, priority=priority)
            return job_id

        def set_mem(job_id: str, action: str) -> None:
            mem.jobs[job_id].requested_action = action

        return Harness(mem, add_mem, lambda j: mem.jobs[j].status, set_mem, clock)

    sql = SqlQueue(engine, lease_seconds=LEASE, max_attempts=2, clock=clock)
    sessions = session_factory(engine)

    def add_sql(status: JobStatus = JobStatus.QUEUED, priority: int = 0) -> str:
        job_id = make_job(priority=priority)
        with sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(status=status))
        return job_id

    def status_sql(job_id: str) -> JobStatus:
        with sessions() as session:
            return JobStatus(session.get(Job, job_id).status)

    def set_sql(job_id: str, action: str) -> None:
        with sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(requested_action=action))

    return Harness(sql, add_sql, status_sql, set_sql, clock)


def test_claims_highest_priority_then_oldest(harness: Harness) -> None:
    first, second = harness.add(), harness.add()
    urgent = harness.add(priority=5)
    harness.add(status=JobStatus.PAUSED)
    claims = [harness.queue.claim("w1") for _ in range(4)]
    assert [c.job_id if c else None for c in claims] == [urgent, first, second, None]
    assert all(c.status is JobStatus.RUNNING and c.attempts == 1 for c in claims if c)
    assert harness.status(first) is JobStatus.RUNNING


def test_a_validating_job_is_claimed_once_and_keeps_its_status(harness: Harness) -> None:
    job = harness.add(status=JobStatus.VALIDATING_FILES)
    claim = harness.queue.claim("w1")
    assert claim and claim.job_id == job and claim.status is JobStatus.VALIDATING_FILES
    assert harness.queue.claim("w2") is None
    assert harness.queue.transition("w1", job, JobStatus.VALIDATING_FILES, JobStatus.QUEUED)
    again = harness.queue.claim("w2")
    assert again and again.job_id == job and again.status is JobStatus.RUNNING


def test_heartbeat_keeps_the_lease_and_expiry_requeues(harness: Harness) -> None:
    job = harness.add()
    harness.queue.claim("w1")
    harness.clock.now += LEASE * 0.9
    assert harness.queue.heartbeat("w1", job)
    harness.clock.now += LEASE * 0.9
    assert harness.queue.requeue_expired() == []
    harness.clock.now += LEASE * 1.1
    assert harness.queue.requeue_expired() == [job]
    assert harness.status(job) is JobStatus.QUEUED
    assert not harness.queue.heartbeat("w1", job)  # the lost worker is fenced out
    assert not harness.queue.transition("w1", job, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    claim = harness.queue.claim("w2")
    assert claim and claim.job_id == job and claim.attempts == 2


def test_too_many_lost_runs_fail_the_job(harness: Harness) -> None:
    job = harness.add()
    for _ in range(2):
        harness.queue.claim("w")
        harness.clock.now += LEASE * 2
        harness.queue.requeue_expired()
    assert harness.status(job) is JobStatus.FAILED


def test_a_lost_job_with_a_pause_request_is_paused(harness: Harness) -> None:
    job = harness.add()
    harness.queue.claim("w1")
    harness.set_action(job, RequestedAction.PAUSE)
    harness.clock.now += LEASE * 2
    harness.queue.requeue_expired()
    assert harness.status(job) is JobStatus.PAUSED


def test_release_returns_the_job_without_counting_the_run(harness: Harness) -> None:
    job = harness.add()
    harness.queue.claim("w1")
    assert not harness.queue.release("w2", job)
    assert harness.queue.release("w1", job)
    assert harness.status(job) is JobStatus.QUEUED
    claim = harness.queue.claim("w2")
    assert claim and claim.attempts == 1


def test_concurrent_workers_never_claim_the_same_job(harness: Harness) -> None:
    jobs = {harness.add() for _ in range(6)}
    claimed: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (claim := harness.queue.claim(name)) is not None:
            with lock:
                claimed.append(claim.job_id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(jobs)
