"""Shared fixtures: one detection engine for the whole session (loading takes seconds).

The notes in these tests are invented; no real patient data is used anywhere.
"""

from __future__ import annotations

import pytest

from tunesmith.data.deid import DeidEngine, Deidentifier, load_engine

SALT = b"test-salt-not-secret"


@pytest.fixture(scope="session")
def salt() -> bytes:
    return SALT


@pytest.fixture(scope="session")
def engine() -> DeidEngine:
    return load_engine()


@pytest.fixture(scope="session")
def placeholder(engine: DeidEngine) -> Deidentifier:
    return Deidentifier("placeholder", engine=engine)


@pytest.fixture(scope="session")
def surrogate(engine: DeidEngine) -> Deidentifier:
    return Deidentifier("surrogate", salt=SALT, engine=engine)
