"""Fixtures: a migrated job database, on SQLite and (when reachable) on PostgreSQL.

Each PostgreSQL test gets its own schema, dropped afterwards, so parallel runs never clash.
Set ``TUNESMITH_TEST_POSTGRES`` to another server's URL, or to ``off`` to skip those tests.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tunesmith.jobs.store import create_engine_for, migrate
from tunesmith.settings import Settings

POSTGRES = os.environ.get(
    "TUNESMITH_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
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


POSTGRES_UP = _postgres_available()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tunesmith.db'}"
        return
    if not POSTGRES_UP:
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


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        lease_seconds=2.0,
        worker_poll_seconds=0.1,
        cancel_grace_seconds=5.0,
        job_engine="tunesmith.jobs.fakes",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = create_engine_for(settings)
    migrate(eng)
    yield eng
    eng.dispose()


GOOD_LINES = [
    '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}'
] * 8


@pytest.fixture
def make_job(engine: Engine, settings: Settings):  # type: ignore[no-untyped-def]
    """Insert a project, a training file and a job; returns the job id."""
    from tunesmith.jobs import files, projects, service
    from tunesmith.jobs.store import session_factory
    from tunesmith.training.spec import FinetuneSpec, Hyperparameters

    sessions = session_factory(engine)

    def make(
        lines: list[str] | None = None,
        *,
        n_epochs: int = 2,
        batch_size: int = 2,
        checkpoint_every: int | str = "auto",
        model: str = "tiny",
        project: str = "acme",
        priority: int = 0,
        metadata: dict[str, str] | None = None,
    ) -> str:
        with sessions.begin() as session:
            proj = projects.get_or_create_project(session, project)
            file_id, path = files.new_file_path(settings, "train.jsonl")
            path.write_text("\n".join(GOOD_LINES if lines is None else lines) + "\n")
            record = files.add_file(
                session,
                file_id=file_id,
                project_id=proj.id,
                filename="train.jsonl",
                purpose="fine-tune",
                path=path,
                size=path.stat().st_size,
            )
            hp = Hyperparameters(
                n_epochs=n_epochs, batch_size=batch_size, checkpoint_every=checkpoint_every
            )
            spec = FinetuneSpec(model=model, train_file=path, hyperparameters=hp)
            new = service.NewJob(
                model=model,
                training_file=record,
                validation_file=None,
                spec=spec,
                method={"type": "supervised", "supervised": {"hyperparameters": {}}},
                hyperparameters={"n_epochs": n_epochs},
                priority=priority,
                metadata=metadata,
            )
            return service.create_job(session, settings, proj, new).id

    return make
