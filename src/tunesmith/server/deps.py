"""Dependencies shared by the routes, as ``Annotated`` aliases.

``SessionDep``: a database session for the request (routes commit what they change).
``ReaderDep``: runs a GET route's database reads with a read session of their own, on the
event loop on SQLite and in a worker thread elsewhere (``Reader``, decision 017).
``ReadSessionDep``: a session that only reads, for routes that also touch files or models (they
run in a worker thread): on SQLite it does not queue for the write lock (``jobs/store.py``,
decision 010), and a write through it raises.
``SessionsDep`` / ``ReadSessionsDep``: the factories, for routes that open sessions themselves.
``CurrentProject``: the project of the request's ``Authorization: Bearer <key>``; any other
project's objects answer 404. ``SettingsDep``: the app's settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.jobs.projects import KeyCache, ProjectRef, authenticate, hash_key
from tunesmith.server.errors import AuthError
from tunesmith.settings import Settings

T = TypeVar("T")


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[Session]:
    async with _closing(request.app.state.sessions()) as session:
        yield session


async def get_read_sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.read_sessions  # type: ignore[no-any-return]


class Reader:
    """Runs read-only database work for a request, in a read session of its own.

    On SQLite the work runs on the event loop. In WAL mode a reader never waits for a lock
    (decision 010), so a read costs only its own CPU time, and under the GIL a read in a worker
    thread holds up the loop for that time anyway. What threads add is the hand-offs: a plain
    ``def`` route makes three (the route, its response's validation, the session's close),
    and on two vCPUs those wake-ups, not the work, bounded the API (decision 017). Elsewhere
    (PostgreSQL: a network round trip that can wait on the server) the work runs in a worker
    thread, so a slow database never stalls the loop.
    """

    def __init__(self, sessions: sessionmaker[Session], *, inline: bool) -> None:
        self.sessions = sessions
        self.inline = inline

    async def __call__(self, work: Callable[[Session], T]) -> T:
        if self.inline:
            return self._run(work)
        return await run_in_threadpool(self._run, work)

    def _run(self, work: Callable[[Session], T]) -> T:
        with self.sessions() as session:
            return work(session)


async def get_reader(request: Request) -> Reader:
    return request.app.state.reader  # type: ignore[no-any-return]


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    async with _closing(request.app.state.read_sessions()) as session:
        yield session


@asynccontextmanager
async def _closing(session: Session) -> AsyncIterator[Session]:
    """``session``, closed in a worker thread (closing can wait on the database).

    The dependencies that hand out app state and sessions are ``async``: FastAPI runs a plain
    ``def`` dependency in a worker thread, and those hops (two for a generator) cost more
    CPU than the few attribute reads they guard. A session opens its connection lazily, in
    the route's own thread, so nothing here blocks the event loop but the close.
    """
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


def _mask(key: str) -> str:
    return f"{key[:5]}***{key[-4:]}" if len(key) > 12 else "***"


async def get_project(request: Request) -> ProjectRef:
    """The request's project. A key seen in the last minute is answered from memory
    (``KeyCache``), in the event loop; others are looked up in a worker thread."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise AuthError(
            "You didn't provide an API key. Provide it in an Authorization header using "
            "Bearer auth (Authorization: Bearer YOUR_KEY). Make one with "
            "`tunesmith keys create --project NAME`."
        )
    keys: KeyCache = request.app.state.keys
    key_hash = hash_key(key)
    project = keys.get(key_hash)
    if project is None:
        reader: Reader = request.app.state.reader
        project = await reader(lambda session: authenticate(session, key))
        if project is None:
            raise AuthError(f"Incorrect API key provided: {_mask(key)}.")
        keys.put(key_hash, project)
    return project


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
ReadSessionsDep = Annotated[sessionmaker[Session], Depends(get_read_sessions)]
ReaderDep = Annotated[Reader, Depends(get_reader)]
# closed as soon as the route returns, not after the response is sent: on SQLite a write
# session holds the database's write lock from its first statement (store.py) until it closes,
# and a read session its WAL snapshot
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
CurrentProject = Annotated[ProjectRef, Depends(get_project)]
