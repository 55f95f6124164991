"""Cursor pagination over time-ordered ids (see ``ids.py``): ``after`` is the last id seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_more: bool


def paginate(
    session: Session,
    stmt: Select[Any],
    id_column: InstrumentedAttribute[str],
    *,
    limit: int,
    after: str | None,
    descending: bool,
) -> Page[Any]:
    """One page of ``stmt``'s rows after the cursor; one extra row tells whether more follow."""
    if after:
        stmt = stmt.where(id_column < after if descending else id_column > after)
    stmt = stmt.order_by(id_column.desc() if descending else id_column.asc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    return Page(items=rows[:limit], has_more=len(rows) > limit)
