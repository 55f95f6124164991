"""``create_app(settings)``: the OpenAI-compatible API as a FastAPI app.

Nothing is built at import time: the database engine is made here, migrated when the app
starts (its lifespan), and the embedded job workers (``workers=N``) start and stop with it.
Run it with ``tunesmith serve``; the OpenAPI document is at ``/openapi.json``, docs at ``/docs``,
and the web dashboard (``server/dashboard.py``) at ``/``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from tunesmith import __version__
from tunesmith.jobs.projects import KeyCache
from tunesmith.jobs.store import (
    create_engine_for,
    is_sqlite,
    migrate,
    read_session_factory,
    session_factory,
)
from tunesmith.jobs.worker import WorkerPool
from tunesmith.server.dashboard import mount_dashboard
from tunesmith.server.dataset_report import DatasetReports
from tunesmith.server.deps import Reader
from tunesmith.server.errors import install_error_handlers
from tunesmith.server.evaluations import Evaluations
from tunesmith.server.inference import Inference
from tunesmith.server.inference_schemas import ChatCompletionChunk
from tunesmith.server.routes import (
    chat,
    classifications,
    completions,
    evaluations,
    file_reports,
    files,
    fine_tuning,
    models,
)
from tunesmith.server.sampling import document_stream_chunks
from tunesmith.settings import Settings

log = logging.getLogger("tunesmith.server")

DESCRIPTION = """\
tunesmith's OpenAI-compatible fine-tuning API: point the official `openai` SDK at
`http://HOST:PORT/v1` with a key from `tunesmith keys create --project NAME`.

Models: `/v1/models` lists the base models and your project's fine-tuned models
(`ft:...`) and checkpoints (`ft:...:ckpt-step-N`); each of them works as `model` in
`/v1/chat/completions` (streaming included), `/v1/completions` (prompt/completion models) and
`/v1/classifications`. One base model in memory serves all of its LoRA fine-tunes.

tunesmith's extensions: `method.type = "classification"` trains a classifier on
`{"text", "label"}` data; `method.<type>.training_method` picks `lora` (default), `full` or
`head`; `method.<type>.hyperparameters` accepts every tunesmith hyperparameter; jobs may be
`paused`; `POST /v1/classifications` answers each text's label and label probabilities from a
classification fine-tune.

De-identified training (for clinical records): `POST /v1/files` with the form field
`deidentify=true` (before the file part; `deidentify_mode`: `placeholder` or `surrogate`;
`record_key_field`: the field naming each line's patient) removes the HIPAA Safe Harbor
identifiers while the file streams in, so the original text is never stored; the file object's
`deidentification` holds the counts replaced, by type. A job with
`method.<type>.deidentify = true` trains only on such files (a file stored as sent is refused,
`file_not_deidentified`) and keeps the counts in its run folder. `TUNESMITH_DEIDENTIFY_UPLOADS`
makes every upload de-identified.
"""


def create_app(settings: Settings, *, workers: int = 0) -> FastAPI:
    """The app for ``settings``; ``workers`` job workers run in threads while it serves."""
    engine = create_engine_for(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(migrate, engine)
        pool = WorkerPool(settings, engine, workers)
        pool.start()
        try:
            yield
        finally:
            app.state.inference.close()
            await run_in_threadpool(pool.stop, settings.cancel_grace_seconds + 5)
            engine.dispose()

    app = FastAPI(
        title="tunesmith",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.read_sessions = read_session_factory(engine)  # for requests that only read
    app.state.reader = Reader(app.state.read_sessions, inline=is_sqlite(engine))
    app.state.keys = KeyCache()  # recently authenticated API keys (server/deps.get_project)
    install_error_handlers(app)
    app.include_router(files.router, prefix="/v1")
    app.include_router(fine_tuning.router, prefix="/v1")
    # models and inference: one model cache for the app (server/inference.py)
    app.state.inference = Inference(settings)
    app.include_router(models.router, prefix="/v1")
    app.include_router(chat.router, prefix="/v1")
    app.include_router(completions.router, prefix="/v1")
    app.include_router(classifications.router, prefix="/v1")
    document_stream_chunks(app, ChatCompletionChunk)
    # tunesmith's extensions for the dashboard, and the dashboard itself at /
    app.state.dataset_reports = DatasetReports(settings)
    app.state.evaluations = Evaluations(settings)
    app.include_router(file_reports.router, prefix="/v1")
    app.include_router(evaluations.router, prefix="/v1")
    mount_dashboard(app)
    return app
