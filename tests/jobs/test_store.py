"""The job database: migrations, SQLite settings, URLs, projects and keys."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import DBAPIError

from tunesmith.jobs import projects
from tunesmith.jobs.models import Base, JobStatus, Project, can_transition
from tunesmith.jobs.store import (
    create_engine_for,
    migrate,
    normalise_url,
    read_session_factory,
    session_factory,
)
from tunesmith.settings import Settings


def test_migrations_create_every_table_and_match_the_models(engine: Engine) -> None:
    migrate(engine)  # a second run is a no-op
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_default_database_is_sqlite_in_wal_mode_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'tunesmith.db'}"
    engine = create_engine_for(settings)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_bare_postgresql_urls_get_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"


def test_status_transitions() -> None:
    assert can_transition("validating_files", "queued")
    assert can_transition("running", "queued")  # lease expired
    assert can_transition("paused", "queued")
    assert not can_transition("succeeded", "running")
    assert not can_transition("queued", "succeeded")
    assert JobStatus.CANCELLED.is_final and not JobStatus.PAUSED.is_final


def test_keys_are_stored_hashed_and_authenticate_their_project(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as session:
        created = projects.create_key(session, "acme")
        other = projects.create_key(session, "globex")
    assert created.key.startswith("ts-") and len(created.key) > 40
    with sessions() as session:
        assert projects.authenticate(session, created.key).name == "acme"
        assert projects.authenticate(session, other.key).name == "globex"
        assert projects.authenticate(session, created.key + "x") is None
        listed = projects.list_keys(session)
    assert [k.project for k in listed] == ["acme", "globex"]
    assert all(created.key not in str(k) for k in listed)
    assert listed[0].prefix == created.key[:10]


def test_read_sessions_read_but_refuse_to_write(engine: Engine) -> None:
    with session_factory(engine).begin() as session:
        projects.create_key(session, "acme")
    reads = read_session_factory(engine)
    with reads() as session:
        assert [p.name for p in session.scalars(select(Project))] == ["acme"]
    with reads() as session, pytest.raises(DBAPIError, match=r"(?i)read.only|readonly"):
        session.add(Project(id="proj-globex", name="globex", created_at=0))
        session.flush()
    with session_factory(engine)() as session:  # the write session after it still writes
        session.add(Project(id="proj-initech", name="initech", created_at=0))
        session.commit()
        assert session.scalar(select(func.count()).select_from(Project)) == 2


def test_one_pooled_sqlite_connection_switches_between_reading_and_writing(
    tmp_path: Path,
) -> None:
    """query_only is set on a connection only when it changes hands between the two kinds of
    session: with one pooled connection, each kind must still get its own behaviour."""
    engine = create_engine_for(Settings(data_dir=tmp_path), pool_size=1, max_overflow=0)
    migrate(engine)
    reads, writes = read_session_factory(engine), session_factory(engine)
    for turn in range(3):
        with reads() as session:  # twice in a row: the flag is already set the second time
            session.scalars(select(Project)).all()
        with reads() as session, pytest.raises(DBAPIError, match=r"(?i)read.only|readonly"):
            session.add(Project(id=f"proj-refused-{turn}", name="refused", created_at=0))
            session.flush()
        with writes() as session:
            session.add(Project(id=f"proj-{turn}", name=f"p{turn}", created_at=0))
            session.commit()
    with reads() as session:
        assert session.scalar(select(func.count()).select_from(Project)) == 3
    assert engine.pool.size() == 1
    engine.dispose()


def test_a_sqlite_read_does_not_wait_for_the_write_lock(tmp_path: Path) -> None:
    """A GET must not queue behind a writer (a worker's transaction, a POST): readers see the
    last committed state at once. Before read sessions, every request took the write lock."""
    engine = create_engine_for(Settings(data_dir=tmp_path))
    migrate(engine)
    with session_factory(engine).begin() as session:
        projects.create_key(session, "acme")
    with session_factory(engine)() as writer:
        writer.add(Project(id="proj-globex", name="globex", created_at=0))
        writer.flush()  # BEGIN IMMEDIATE: this connection holds the write lock until commit
        started = time.perf_counter()
        with read_session_factory(engine)() as reader:
            names = [p.name for p in reader.scalars(select(Project))]
        waited = time.perf_counter() - started
        writer.commit()
    assert names == ["acme"]  # the committed snapshot, not the writer's pending row
    assert waited < 5  # a queued read would wait for the commit, or the 30 s busy timeout
    engine.dispose()


def test_the_key_cache_forgets_keys_after_its_ttl_and_past_its_size(monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(projects.time, "monotonic", lambda: clock[0])
    cache = projects.KeyCache(ttl_seconds=60, max_keys=2)
    acme, globex = projects.ProjectRef("p1", "acme"), projects.ProjectRef("p2", "globex")
    cache.put("h1", acme)
    clock[0] += 59
    assert cache.get("h1") == acme and cache.get("unknown") is None
    clock[0] += 2  # 61 s after it was put
    assert cache.get("h1") is None
    cache.put("h1", acme)
    cache.put("h2", globex)
    cache.put("h3", acme)  # a third key pushes out the oldest
    assert cache.get("h1") is None and cache.get("h2") == globex and cache.get("h3") == acme
    cache.clear()
    assert cache.get("h3") is None
