"""The job database: engine, sessions, migrations.

SQLite (the default, ``<data_dir>/tunesmith.db``) runs in WAL mode with a busy timeout, and
every transaction that may write starts with ``BEGIN IMMEDIATE``: it takes the write lock up
front, so two processes that read then write never fail half-way with "database is locked" —
they wait their turn instead. Sessions from ``read_session_factory`` only read: they begin
deferred, so WAL lets them run beside each other and beside the one writer instead of queueing
for its lock (the API's GET requests: 20 clients queued behind it had a p99 of 758 ms, now 126 ms),
with ``PRAGMA query_only`` so that a write there fails loudly. PostgreSQL is used when
``TUNESMITH_DATABASE_URL`` names one; a plain ``postgresql://`` URL is given the psycopg 3
driver.

Migrations are Alembic scripts shipped inside the package (``tunesmith/migrations``) and run
programmatically by ``migrate(engine)`` when the server or a worker starts; concurrent starts
are serialised (SQLite's write lock, a PostgreSQL advisory lock).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 40
READ_ONLY_OPTION = "tunesmith_read_only"  # an execution option: this connection only reads
# Any constant shared by every tunesmith process; serialises concurrent migrations on PostgreSQL.
MIGRATION_LOCK_ID = 0x7475_6E65


def now() -> int:
    """Integer Unix seconds, the unit of every timestamp the API shows."""
    return int(time.time())


def normalise_url(url: str) -> URL:
    """Parse a database URL, giving bare ``postgresql://`` the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_engine_for(settings: Settings, **kwargs: Any) -> Engine:
    """The engine for ``settings.database_url``; builds nothing and connects to nothing yet."""
    url = normalise_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    if url.database and url.database != ":memory:":
        from pathlib import Path

        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # A pooled connection for every request the server runs at once (anyio's 40 worker
        # threads): with SQLAlchemy's default of 5 (+10 overflow) the 16th concurrent request
        # waited for a connection, and each overflow one was opened and closed per request.
        kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock at BEGIN: a deferred transaction that reads, then writes, fails
        # with SQLITE_BUSY when another process wrote in between; an immediate one waits.
        # A read-only one never writes, so it begins deferred and reads its WAL snapshot
        # without waiting. query_only is per connection and stays set, so a BEGIN sets it
        # only when the connection last served the other kind of transaction.
        read_only = bool(connection.get_execution_options().get(READ_ONLY_OPTION))
        info = connection.connection.info  # lives as long as the pooled DBAPI connection
        if info.get(READ_ONLY_OPTION) is not read_only:  # a statement saved per request
            connection.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
            info[READ_ONLY_OPTION] = read_only
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that only read: deferred and ``query_only`` on SQLite (see the module's
    docstring), a ``READ ONLY`` transaction on PostgreSQL. Writing through one raises."""
    option = READ_ONLY_OPTION if is_sqlite(engine) else "postgresql_readonly"
    return session_factory(engine.execution_options(**{option: True}))


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error."""
    with factory() as session, session.begin():
        yield session


def alembic_config() -> Config:
    """Alembic's configuration, pointing at the migrations inside the installed package."""
    config = Config()
    location = resources.files("tunesmith") / "migrations"
    config.set_main_option("script_location", str(location))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (``alembic upgrade head``)."""
    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
