"""Dependencies shared by the routes, as ``Annotated`` aliases.

``SessionDep``: a database session for the request (routes commit what they change).
``ReadSessionDep``: one that only reads (GET routes, model lookups): on SQLite it does not
queue for the write lock (``jobs/store.py``, decision 010), and a write through it raises.
``SessionsDep`` / ``ReadSessionsDep``: the factories, for routes that open sessions themselves.
``CurrentProject``: the project of the request's ``Authorization: Bearer <key>``; any other
project's objects answer 404. ``SettingsDep``: the app's settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.jobs.projects import KeyCache, ProjectRef, authenticate, hash_key
from tunesmith.server.errors import AuthError
from tunesmith.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessions  # type: ignore[no-any-return]


async def get_session(request: Request) -> AsyncIterator[Session]:
    async with _closing(request.app.state.sessions()) as session:
        yield session


async def get_read_sessions(request: Request) -> sessionmaker[Session]:
    return request.app.state.read_sessions  # type: ignore[no-any-return]


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
        project = await run_in_threadpool(_authenticate, request.app.state.read_sessions, key)
        if project is None:
            raise AuthError(f"Incorrect API key provided: {_mask(key)}.")
        keys.put(key_hash, project)
    return project


def _authenticate(sessions: sessionmaker[Session], key: str) -> ProjectRef | None:
    with sessions() as session:  # a read session: never wait to write
        return authenticate(session, key)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
ReadSessionsDep = Annotated[sessionmaker[Session], Depends(get_read_sessions)]
# closed as soon as the route returns, not after the response is sent: on SQLite a write
# session holds the database's write lock from its first statement (store.py) until it closes,
# and a read session its WAL snapshot
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]
CurrentProject = Annotated[ProjectRef, Depends(get_project)]
