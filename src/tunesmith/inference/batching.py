"""Dynamic batching: concurrent requests for one model share each ``generate`` call.

On a CPU (and on a GPU at small batch sizes) one decoding step costs about the same for 1 row
as for 8: the time goes into reading the weights, not into arithmetic. Serving requests one at
a time therefore wastes most of the machine as soon as several clients talk to one model. Here
requests queue per model, and whoever finds no batch running for its model leads: it takes up
to ``max_batch`` queued requests, runs them as one left-padded batch (``generate_rows``), and
repeats while requests keep arriving. Requests that arrive mid-batch wait for the next one;
rows are not added to a running batch (that would be continuous batching, which needs a
decode loop of our own over a paged KV cache).

Each row keeps its own settings: temperature and top-p are applied per row by a logits
processor (a temperature of 0 keeps only the row's arg-max), and a stopping criterion, called
after every step, hands each row's new token to its ``DeltaDecoder`` (``streaming.py``), which
finds its end token, stop sequences and ``max_new_tokens`` and produces its text deltas. A row
that is over, or whose client went away, is marked finished so ``generate`` pads it from then
on and ends once every row is over.

A request with a ``seed`` runs alone: sampling several rows together draws from one random
stream, so a seeded reply would depend on its neighbours. ``n > 1`` is not batched here (its
samples are rows of their own; the server runs those requests unbatched).

This module is the queue (no torch); ``batch_generation.py`` runs a batch.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the queue itself needs no torch: the server imports it at start-up
    from tunesmith.inference.params import GenerationParams
    from tunesmith.inference.streaming import StreamChunk

MAX_BATCH = 8


class RowSink(Protocol):
    """Where a row's results go, called from the batch's thread.

    ``ready()`` once its prompt is prepared (before any chunk), then ``chunk()`` for each text
    delta (the last one has the finish reason), or ``fail()`` instead, and always ``close()``.
    A sink ignores whatever comes after its ``close()`` or ``fail()``.
    """

    def ready(self) -> None: ...
    def chunk(self, chunk: StreamChunk) -> None: ...
    def fail(self, error: BaseException) -> None: ...
    def close(self) -> None: ...


PromptOf = Callable[[Any, bool], list[int]]  # (tokenizer, encoder_decoder) -> prompt ids


@dataclass
class BatchRow:
    """One request: how to build its prompt with the model's tokenizer, its settings, its sink."""

    prompt_of: PromptOf
    params: GenerationParams
    sink: RowSink
    cancelled: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.params.n != 1:
            raise ValueError("a batched row is one sample: n must be 1")


# --- the queue in front of a model ---------------------------------------------------------

RunBatch = Callable[[list[BatchRow]], None]


class Batcher:
    """Queues rows per model key; one leader at a time per key runs them in batches.

    ``submit`` never blocks: it queues the row and, when no batch is running for the key,
    starts a leader on ``executor``. ``run_batch`` (given with each row; the first one queued
    for an idle key is used) must call every row's sink (``generate_rows`` does).
    """

    def __init__(self, executor: Executor, *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.executor = executor
        self.max_batch = max_batch
        self._pending: defaultdict[str, deque[BatchRow]] = defaultdict(deque)
        self._runners: dict[str, RunBatch] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, row: BatchRow, run_batch: RunBatch) -> None:
        with self._lock:
            self._pending[key].append(row)
            idle = key not in self._runners
            if idle:
                self._runners[key] = run_batch
        if idle:
            self.executor.submit(self._lead, key)

    def _lead(self, key: str) -> None:
        while True:
            with self._lock:
                rows = self._take(self._pending[key])
                if not rows:
                    del self._pending[key]
                    del self._runners[key]
                    return
                run_batch = self._runners[key]
            try:
                run_batch(rows)
            except BaseException as exc:  # a row's sink has been told, or is told now
                for row in rows:
                    row.sink.fail(exc)
                    row.sink.close()

    def _take(self, queue: deque[BatchRow]) -> list[BatchRow]:
        """The next batch: the oldest row if it is seeded, else up to ``max_batch`` unseeded
        rows in order of arrival (seeded ones wait their turn at the front)."""
        if not queue:
            return []
        if queue[0].params.seed is not None:
            return [queue.popleft()]
        taken: list[BatchRow] = []
        kept: deque[BatchRow] = deque()
        while queue and len(taken) < self.max_batch:
            row = queue.popleft()
            (kept if row.params.seed is not None else taken).append(row)
        queue.extendleft(reversed(kept))
        return taken
