"""Projects and their API keys.

A key is ``ts-`` followed by 40 random URL-safe characters. Only its sha256 is stored, with a
short prefix so that ``tunesmith keys list`` can tell keys apart; a lost key cannot be shown
again, only replaced.
"""

from __future__ import annotations

import hashlib
import secrets
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


def authenticate(session: Session, key: str) -> Project | None:
    """The project a key belongs to, or None for an unknown key."""
    stmt = select(Project).join(ApiKey).where(ApiKey.key_hash == hash_key(key))
    return session.scalar(stmt)


def list_keys(session: Session) -> list[KeyInfo]:
    rows = session.execute(
        select(ApiKey, Project.name).join(Project).order_by(Project.name, ApiKey.id)
    )
    return [KeyInfo(k.id, k.prefix, name, k.created_at) for k, name in rows]
