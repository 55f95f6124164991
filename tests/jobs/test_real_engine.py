"""The worker driving the real engine on a tiny causal model: validation, training in the
child process, metrics events, checkpoints, and the fine-tuned model's name."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.helpers import save_tiny_model, write_jsonl
from tunesmith.jobs.models import Checkpoint, Job, JobEvent, JobStatus
from tunesmith.jobs.store import session_factory
from tunesmith.jobs.worker import Worker
from tunesmith.settings import Settings


def chat_rows(n: int) -> list[dict[str, object]]:
    words = ["win", "prize", "hello", "lunch"]
    return [
        {
            "messages": [
                {"role": "user", "content": f"{words[i % 4]} {i}"},
                {"role": "assistant", "content": "spam" if i % 4 < 2 else "ham"},
            ]
        }
        for i in range(n)
    ]


def test_a_job_trains_a_tiny_model_with_the_real_engine(
    settings: Settings,
    engine: Engine,
    make_job: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the engine path does not depend on the database; once is enough")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model_dir = save_tiny_model(tmp_path / "model", "causal")
    lines = write_jsonl(tmp_path / "t.jsonl", chat_rows(16)).read_text().splitlines()
    job_id = make_job(lines, model=str(model_dir), n_epochs=2, batch_size=4, checkpoint_every=2)
    real = settings.model_copy(
        update={"job_engine": "tunesmith.jobs.engine", "lease_seconds": 30.0}
    )
    Worker(real, engine).run(until_idle=True)
    sessions = session_factory(engine)
    with sessions() as session:
        job = session.get(Job, job_id)
        events = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)))
        checkpoints = list(session.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id)))
    log = Path(job.output_dir) / "worker.log"
    assert job.status == JobStatus.SUCCEEDED, (job.error, log.read_text() if log.exists() else "")
    assert job.fine_tuned_model and job.fine_tuned_model.startswith("ft:")
    assert job.trained_tokens and job.trained_tokens > 0
    assert [e for e in events if e.type == "metrics"]
    steps = sorted(c.step for c in checkpoints)
    assert steps and len(steps) <= 3  # the engine keeps the newest 3; pruned ones are forgotten
    assert all(Path(c.path).is_dir() for c in checkpoints)
    assert os.path.exists(Path(job.output_dir) / "tunesmith.json")
