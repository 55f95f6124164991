"""Projects and their API keys.

A key is ``ts-`` followed by 40 random URL-safe characters. Only its sha256 is stored, with a
short prefix so that ``tunesmith keys list`` can tell keys apart; a lost key cannot be shown
again, only replaced.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tunesmith.jobs.ids import new_id
from tunesmith.jobs.models import ApiKey, Project
from tunesmith.jobs.store import now

KEY_PREFIX = "ts-"
SHOWN_PREFIX_CHARS = 10


@dataclass(frozen=True)
class CreatedKey:
    key: str  # the secret, shown once
    key_id: str
    project: Project


@dataclass(frozen=True)
class ProjectRef:
    """A project as a request sees it: its id and name, detached from any database session,
    so one copy can be shared by concurrent requests (an ORM object cannot)."""

    id: str
    name: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    prefix: str
    project: str
    created_at: int


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def get_or_create_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(id=new_id("proj"), name=name, created_at=now())
        session.add(project)
        session.flush()
    return project


def create_key(session: Session, project_name: str) -> CreatedKey:
    """Make a key for ``project_name`` (creating the project if needed)."""
    project = get_or_create_project(session, project_name)
    key = KEY_PREFIX + secrets.token_urlsafe(30)
    record = ApiKey(
        id=new_id("key"),
        project_id=project.id,
        prefix=key[:SHOWN_PREFIX_CHARS],
        key_hash=hash_key(key),
        created_at=now(),
    )
    session.add(record)
    return CreatedKey(key=key, key_id=record.id, project=project)


def authenticate(session: Session, key: str) -> ProjectRef | None:
    """The project a key belongs to, or None for an unknown key."""
    stmt = select(Project).join(ApiKey).where(ApiKey.key_hash == hash_key(key))
    project = session.scalar(stmt)
    return ProjectRef(project.id, project.name) if project is not None else None


class KeyCache:
    """Keys authenticated in the last ``ttl_seconds``, by hash, with their project.

    Every API request names its key, and looking it up took a database session and a worker
    thread of its own: about a fifth of a list request's CPU (docs/benchmarks.md, benchmark
    4). Keys are never changed or revoked once made (there is no command for it), so a known
    key's project cannot go stale; the TTL bounds how long a cached key would outlive a
    revocation added later, and such a command must also call ``clear``. Unknown keys are
    not cached: each miss goes to the database.
    """

    def __init__(self, ttl_seconds: float = 60.0, max_keys: int = 4096) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_keys = max_keys
        self._known: OrderedDict[str, tuple[float, ProjectRef]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> ProjectRef | None:
        with self._lock:
            found = self._known.get(key_hash)
            if found is None:
                return None
            if time.monotonic() - found[0] > self.ttl_seconds:
                del self._known[key_hash]
                return None
            return found[1]

    def put(self, key_hash: str, project: ProjectRef) -> None:
        with self._lock:
            self._known[key_hash] = (time.monotonic(), project)
            self._known.move_to_end(key_hash)
            while len(self._known) > self.max_keys:
                self._known.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._known.clear()


def list_keys(session: Session) -> list[KeyInfo]:
    rows = session.execute(
        select(ApiKey, Project.name).join(Project).order_by(Project.name, ApiKey.id)
    )
    return [KeyInfo(k.id, k.prefix, name, k.created_at) for k, name in rows]
