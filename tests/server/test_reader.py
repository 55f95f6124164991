"""GET routes' database reads: on the event loop with SQLite, in a worker thread otherwise."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tunesmith.jobs.store import create_engine_for, migrate, read_session_factory
from tunesmith.server.app import create_app
from tunesmith.server.deps import Reader
from tunesmith.settings import Settings


@pytest.fixture
def read_sessions(tmp_path: Path):
    engine = create_engine_for(Settings(data_dir=tmp_path))
    migrate(engine)
    yield read_session_factory(engine)
    engine.dispose()


def _where_it_ran(reader: Reader) -> tuple[int, int]:
    async def main() -> tuple[int, int]:
        return threading.get_ident(), await reader(lambda session: threading.get_ident())

    return asyncio.run(main())


def test_inline_reads_run_on_the_loop_and_the_others_in_a_worker_thread(read_sessions):
    loop_thread, work_thread = _where_it_ran(Reader(read_sessions, inline=True))
    assert work_thread == loop_thread
    loop_thread, work_thread = _where_it_ran(Reader(read_sessions, inline=False))
    assert work_thread != loop_thread


@pytest.mark.parametrize("inline", [True, False])
def test_the_work_gets_a_read_session_that_is_closed_afterwards(read_sessions, inline):
    used: list[Session] = []

    def work(session: Session) -> int:
        used.append(session)
        count = session.execute(text("select count(*) from fine_tuning_jobs")).scalar_one()
        with pytest.raises(OperationalError, match="readonly"):
            session.execute(text("delete from fine_tuning_jobs"))
        return count

    assert asyncio.run(Reader(read_sessions, inline=inline)(work)) == 0
    assert not used[0].in_transaction()  # closed: its connection went back to the pool


def test_the_app_reads_inline_on_sqlite_only(tmp_path: Path):
    sqlite_app = create_app(Settings(data_dir=tmp_path), workers=0)
    assert sqlite_app.state.reader.inline
    # building the app connects to nothing: no server is needed at this address
    postgres = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u@127.0.0.1:9/x")
    assert not create_app(postgres, workers=0).state.reader.inline
