"""Batching: concurrent requests for one model decode together, joining as they arrive.

On a CPU (and on a GPU at small batch sizes) one decoding step costs about the same for 1 row
as for 8: the time goes into reading the weights, not into arithmetic. Serving requests one at
a time therefore wastes most of the machine as soon as several clients talk to one model. Here
requests queue per model, and whoever finds no batch running for its model leads: it takes up
to ``max_batch`` queued requests and runs them (``generate_rows``). For decoder-only models the
batch is continuous (``continuous.py``): between decoding steps the leader takes the rows
queued meanwhile (``admit``), up to ``max_batch`` open at once, and rows that finish leave at
once, so a request arriving mid-batch starts at the next step instead of waiting for the batch
to end. Encoder-decoders run one static ``generate`` batch at a time; requests arriving
meanwhile form the next one. Decision 011 tells why.

Each row keeps its own settings: temperature and top-p are applied per row (a temperature of
0 keeps only the row's arg-max, so it decodes as it would alone), and each new token goes to
the row's ``DeltaDecoder`` (``streaming.py``), which finds its end token, stop sequences and
``max_new_tokens`` and produces its text deltas. A row that is over, or whose client went
away (``cancelled``), is closed at the next step.

A request with a ``seed`` runs alone, nobody admitted: sampling several rows together draws
from one random stream, so a seeded reply would depend on its neighbours. A seeded request
waiting at the front of the queue stops admission, so the running batch drains and it gets its
turn even under steady load. ``n > 1`` is not batched here (its samples are rows of their own;
the server runs those requests unbatched). Rows of one key share the model's adapter: the
leader of a key only ever takes that key's rows.

This module is the queue (no torch); ``batch_generation.py`` and ``continuous.py`` run a batch.
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

Admit = Callable[[int], list[BatchRow]]
"""Asked by a running batch between steps, with the number of rows it has open: the queued
rows to add now (none when the batch is full, or runs a seeded row alone)."""

RunBatch = Callable[[list[BatchRow], Admit], None]


class Batcher:
    """Queues rows per model key; one leader at a time per key runs them in batches.

    ``submit`` never blocks: it queues the row and, when no batch is running for the key,
    starts a leader on ``executor``. The leader calls ``run_batch(rows, admit)`` (given with
    each row; the first one queued for an idle key is used), which must end every row's sink,
    those it takes through ``admit`` included, even when it fails (``generate_rows`` does); if
    it raises, the leader fails the first rows too (sinks ignore what follows their close).
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
                run_batch(rows, self._admission(key, rows))
            except BaseException as exc:  # a row's sink has been told, or is told now
                for row in rows:
                    row.sink.fail(exc)
                    row.sink.close()

    def _admission(self, key: str, rows: list[BatchRow]) -> Admit:
        """How the batch of ``rows`` takes rows queued after it started."""
        if any(row.params.seed is not None for row in rows):
            return admit_nothing  # a seeded row runs alone

        def admit(running: int) -> list[BatchRow]:
            with self._lock:
                return _take_unseeded(self._pending[key], self.max_batch - running)

        return admit

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


def _take_unseeded(queue: deque[BatchRow], room: int) -> list[BatchRow]:
    """Up to ``room`` rows from the front of ``queue``, stopping at a seeded one: rows behind
    it wait, so the running batch drains and the seeded row runs next."""
    taken: list[BatchRow] = []
    while queue and len(taken) < room and queue[0].params.seed is None:
        taken.append(queue.popleft())
    return taken


def admit_nothing(running: int) -> list[BatchRow]:
    """The admission of a batch that must stay as it started (a seeded row's)."""
    return []
