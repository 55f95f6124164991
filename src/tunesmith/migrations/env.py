"""Alembic environment: runs on the connection ``tunesmith.jobs.store.migrate`` passes in.

To write a new migration from a checkout::

    alembic -c /dev/null -x url=sqlite:///dev.db revision --autogenerate -m "what changed"

(or call ``alembic.command.revision`` with ``tunesmith.jobs.store.alembic_config()``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from tunesmith.jobs.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database with -x url=...")
    with create_engine(url).begin() as conn:
        _run(conn)
