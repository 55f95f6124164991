"""The public surface of tunesmith.data.deid."""

from __future__ import annotations

from pathlib import Path

import pytest

import tunesmith.data.deid as deid
from tunesmith.data.deid import DeidEngine, Deidentifier, load_engine, load_or_create_salt
from tunesmith.errors import ConfigError


def test_all_names_exist() -> None:
    assert all(hasattr(deid, name) for name in deid.__all__)


def test_engine_is_loaded_once(engine: DeidEngine) -> None:
    assert load_engine() is engine


def test_unknown_mode(engine: DeidEngine) -> None:
    with pytest.raises(ConfigError, match="placeholder, surrogate"):
        Deidentifier("redact", engine=engine)


def test_salt_file_is_created_once(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "deid-salt"
    salt = load_or_create_salt(path)
    assert len(salt) == 32 and load_or_create_salt(path) == salt
    assert path.stat().st_mode & 0o077 == 0
