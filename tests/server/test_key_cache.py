"""API keys are looked up once a minute, not on every request; a wrong key, every time."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tunesmith.jobs.projects import create_key
from tunesmith.jobs.store import create_engine_for, session_factory
from tunesmith.server import deps
from tunesmith.server.app import create_app
from tunesmith.settings import Settings


def test_a_known_key_is_looked_up_once_and_a_wrong_one_every_time(
    tmp_path: Path, monkeypatch
) -> None:
    settings = Settings(data_dir=tmp_path)
    app = create_app(settings, workers=0)
    lookups: list[str] = []
    authenticate = deps.authenticate

    def counting(session, key):
        lookups.append(key)
        return authenticate(session, key)

    monkeypatch.setattr(deps, "authenticate", counting)
    with TestClient(app) as client:
        engine = create_engine_for(settings)
        with session_factory(engine).begin() as session:
            acme, globex = create_key(session, "acme").key, create_key(session, "globex").key
        engine.dispose()

        def jobs(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            return client.get("/v1/fine_tuning/jobs", headers=headers).status_code

        assert [jobs(acme) for _ in range(3)] == [200, 200, 200]
        assert lookups == [acme]
        assert [jobs(acme + "x") for _ in range(2)] == [401, 401]
        assert lookups == [acme, acme + "x", acme + "x"]
        assert jobs(globex) == 200 and lookups[-1] == globex
