"""The job database: migrations, SQLite settings, URLs, projects and keys."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from tunesmith.jobs import projects
from tunesmith.jobs.models import Base, JobStatus, can_transition
from tunesmith.jobs.store import create_engine_for, migrate, normalise_url, session_factory
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
