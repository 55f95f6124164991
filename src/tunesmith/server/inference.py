"""Serving models to the inference routes: one ``ModelCache`` per app, work in a thread pool.

The cache (``inference/cache.py``) keeps ``settings.model_cache_size`` models loaded; one base
model serves all of its LoRA fine-tunes, switching adapters per request. Its handles lock the
model while in use, because the active adapter is state of the shared model: requests for one
base model therefore run one after another, requests for different models side by side.

Every call into the engine runs in a pool of ``settings.inference_threads`` threads of its own,
never on the event loop, and not in the pool FastAPI runs sync routes in: a request waiting
for a busy model would otherwise hold a thread the database routes need. A handle is entered
and left on the same thread (its lock is thread-owned), so a stream is produced whole by one
pool thread and handed to the event loop through an ``asyncio.Queue``.

Concurrent single-sample requests for one model are batched (``generate``): they queue per
model and decode together, up to ``MAX_BATCH`` rows at once, each with its own settings
(``inference/batching.py``). For decoder-only models the batch is continuous: a request that
arrives while others decode joins at the next step and leaves as soon as it is done
(``inference/continuous.py``, decision 011). Such a batch holds the model for as long as
requests keep coming, so it stops taking new ones while another request waits for the same
model (another fine-tune of its base, an ``n > 1`` request), ends, and lets that one in.
Requests with ``n > 1`` run on their own (``run``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from tunesmith.errors import ModelNotFoundError
from tunesmith.inference.batching import Admit, Batcher, BatchRow, PromptOf
from tunesmith.inference.cache import ModelCache, ModelHandle
from tunesmith.inference.params import GenerationParams
from tunesmith.jobs.catalog import CatalogModel, model_for_inference
from tunesmith.jobs.errors import UnknownModelError
from tunesmith.jobs.projects import ProjectRef
from tunesmith.server.errors import WrongEndpointError
from tunesmith.settings import Settings
from tunesmith.tasks import Task

if TYPE_CHECKING:
    from tunesmith.inference.streaming import StreamChunk

T = TypeVar("T")

ENDPOINT_FOR = {
    Task.CHAT: "v1/chat/completions",
    Task.COMPLETION: "v1/completions",
    Task.CLASSIFICATION: "v1/classifications",
}


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_READY = object()  # the model is loaded and the stream opened: the response may start
_END = object()  # the producer is done


class Inference:
    """The app's model cache and inference threads (``app.state.inference``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cache = ModelCache(settings, max_models=settings.model_cache_size)
        self._base_tasks: dict[str, Task] = {}
        self._pool = ThreadPoolExecutor(
            settings.inference_threads, thread_name_prefix="tunesmith-inference"
        )
        self.batcher = Batcher(self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.cache.clear()

    async def target(
        self, sessions: sessionmaker[Session], project: ProjectRef, name: str, task: Task
    ) -> CatalogModel:
        """The model a request names, refused early when it was trained for another task."""
        model = await run_in_threadpool(_lookup, sessions, project, name)
        if model.task is not None and model.task != task:
            raise WrongEndpointError(
                f"`{name}` is a {model.task.value} model and is not served by the "
                f"{ENDPOINT_FOR[task]} endpoint. Did you mean to use {ENDPOINT_FOR[model.task]}?"
            )
        return model

    async def run(self, model: CatalogModel, work: Callable[[ModelHandle], T]) -> T:
        """``work(handle)`` on a pool thread, with the model loaded and locked."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._use, model, work)

    async def stream(
        self, model: CatalogModel, open_stream: Callable[[ModelHandle], Iterator[T]]
    ) -> AsyncIterator[T]:
        """The items of ``open_stream(handle)``, produced on one pool thread.

        Returns once the model is loaded and the stream opened, or raises what went wrong
        there, so a bad model or parameter still gets its error status before the response
        starts. Closing the returned iterator (the client went away) stops the producer at its
        next item, which ends the engine's generation.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: the server is shutting down
                stop.set()

        def produce() -> None:
            try:
                self._use(model, lambda handle: _pump(open_stream(handle), put, stop))
            except BaseException as exc:
                put(_Failed(exc))
            finally:
                put(_END)

        loop.run_in_executor(self._pool, produce)
        try:
            first = await queue.get()  # _READY or the failure that came before it
        except BaseException:
            stop.set()
            raise
        if isinstance(first, _Failed):
            raise first.error
        return _consume(queue, stop)

    async def generate(
        self, model: CatalogModel, prompt_of: PromptOf, params: GenerationParams
    ) -> AsyncIterator[StreamChunk]:
        """One sample's text deltas, generated in a batch with the model's other requests.

        Returns once the prompt is built (the model loaded, the prompt tokenized and within the
        context), or raises what went wrong there, as ``stream`` does. Closing the returned
        iterator takes the row out of its batch at the next token.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        row = BatchRow(prompt_of, params, _QueueSink(loop, queue))
        self.batcher.submit(model.load_name, row, partial(self._run_batch, model))
        try:
            first = await queue.get()  # _READY or the failure that came before it
        except BaseException:
            row.cancelled.set()
            raise
        if isinstance(first, _Failed):
            raise first.error
        return _consume(queue, row.cancelled)

    def _run_batch(self, model: CatalogModel, rows: list[BatchRow], admit: Admit) -> None:
        from tunesmith.inference.batch_generation import generate_rows
        from tunesmith.inference.generation import context_length_of

        def work(handle: ModelHandle) -> None:
            limit = context_length_of(handle.model)
            admit_while_alone = _unless_wanted_elsewhere(admit, handle)
            generate_rows(
                handle.model, handle.tokenizer, rows, admit=admit_while_alone, context_length=limit
            )

        self._use(model, work)

    def _use(self, model: CatalogModel, work: Callable[[ModelHandle], T]) -> T:
        # A base model's task is remembered after its first load: asked without one, the cache
        # loads the tokenizer on every call to choose it (chat with a template, else completion).
        known_task = self._base_tasks.get(model.load_name) if model.source == "base" else None
        try:
            handle = self.cache.get(model.load_name, task=known_task)
        except ModelNotFoundError as exc:
            if isinstance(exc, UnknownModelError):
                raise
            raise UnknownModelError(model.id, str(exc)) from exc
        if model.source == "base":
            self._base_tasks[model.load_name] = handle.task
        with handle:
            return work(handle)


class _QueueSink:
    """A batch row's results, handed from the batch's thread to the request's event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        self.loop = loop
        self.queue = queue
        self.closed = False

    def _put(self, item: object) -> None:
        if self.closed:
            return
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server is shutting down
            self.closed = True

    def ready(self) -> None:
        self._put(_READY)

    def chunk(self, chunk: StreamChunk) -> None:
        self._put(chunk)

    def fail(self, error: BaseException) -> None:
        self._put(_Failed(error))
        self.close()

    def close(self) -> None:
        self._put(_END)
        self.closed = True


def _unless_wanted_elsewhere(admit: Admit, handle: ModelHandle) -> Admit:
    """``admit``, but no rows while another request waits for the handle's model: the batch
    then drains and ends, and the other gets the model instead of waiting for a lull."""

    def admit_while_alone(running: int) -> list[BatchRow]:
        return [] if handle.wanted_elsewhere else admit(running)

    return admit_while_alone


def _lookup(sessions: sessionmaker[Session], project: ProjectRef, name: str) -> CatalogModel:
    with sessions() as session:
        return model_for_inference(session, project, name)


def _pump(items: Iterator[Any], put: Callable[[object], None], stop: threading.Event) -> None:
    """Forward ``items`` until they end or the consumer left; closing them stops generation."""
    put(_READY)
    try:
        for item in items:
            if stop.is_set():
                break
            put(item)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


async def _consume(queue: asyncio.Queue[Any], stop: threading.Event) -> AsyncIterator[Any]:
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
