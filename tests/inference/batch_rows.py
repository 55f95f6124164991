"""Helpers for the batching tests: a recording row sink, rows for chat messages, replies alone.

A tiny random Llama's greedy text is arbitrary but fixed, so each batched row is compared with
the same request run on its own by ``generate_chat`` (transformers' ``generate``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunesmith.inference.batching import BatchRow
from tunesmith.inference.generation import GenerationParams, chat_prompt_ids, generate_chat
from tunesmith.inference.params import GenerationOutput
from tunesmith.inference.streaming import StreamChunk

CONVERSATIONS = [
    [{"role": "user", "content": "Say something."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A longer ask?"}],
    [{"role": "user", "content": "hi"}],
]


@dataclass
class Recorder:
    """A row sink that keeps what it was sent, in order; ``on_chunk`` runs after each chunk
    (on the batch's thread), ``log`` (shared between sinks) gets ``(name, event)`` pairs."""

    name: str = ""
    events: list[str] = field(default_factory=list)
    chunks: list[StreamChunk] = field(default_factory=list)
    error: BaseException | None = None
    closed: threading.Event = field(default_factory=threading.Event)
    on_chunk: Callable[[Recorder], None] | None = None
    log: list[tuple[str, str]] | None = None

    def ready(self) -> None:
        self._event("ready")

    def chunk(self, chunk: StreamChunk) -> None:
        self.chunks.append(chunk)
        if self.log is not None:
            self.log.append((self.name, "chunk"))
        if self.on_chunk is not None:
            self.on_chunk(self)

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._event("fail")

    def close(self) -> None:
        self._event("close")
        self.closed.set()

    def _event(self, event: str) -> None:
        self.events.append(event)
        if self.log is not None:
            self.log.append((self.name, event))

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    @property
    def last(self) -> StreamChunk:
        return self.chunks[-1]


def row_for(messages: list[dict[str, Any]], params: GenerationParams, **sink: Any) -> BatchRow:
    def prompt_of(tokenizer: Any, encoder_decoder: bool) -> list[int]:
        return chat_prompt_ids(tokenizer, messages, encoder_decoder=encoder_decoder)

    return BatchRow(prompt_of, params, Recorder(**sink))


def alone(
    model: Any, tokenizer: Any, messages: list[dict[str, Any]], params: GenerationParams
) -> GenerationOutput:
    (out,) = generate_chat(model, tokenizer, messages, params)
    return out
