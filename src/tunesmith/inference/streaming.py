"""Streaming generation: ``generate`` in a thread, its tokens turned into text deltas.

The consumer decodes the tokens received so far and yields only text that can no longer
change: it holds back a tail that could still grow into a stop sequence (so a client never
sees text that is later cut) and an incomplete UTF-8 character. The last chunk carries the
finish reason and token counts, which the server puts in the final SSE event. Closing the
iterator early (the client went away) sets an event the stopping criterion checks, so the
thread stops within one token.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from tunesmith.errors import ConfigError
from tunesmith.inference.generation import (
    FinishReason,
    GenerationParams,
    StopOnText,
    decoding,
    device_of,
    end_token_ids,
    find_stop,
    generation_config_for,
    is_encoder_decoder,
    pad_id_of,
    pad_prompts,
)


@dataclass
class StreamChunk:
    """A piece of a streamed sample. The last chunk has ``finish_reason`` and the counts."""

    text: str
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def stream_from_ids(
    model: Any, tokenizer: Any, prompt: list[int], params: GenerationParams
) -> Iterator[StreamChunk]:
    """Text deltas of one sample (n must be 1: one stream, one sample).

    Checked here, at the call, so a bad request fails before the response starts; the
    generation thread starts with the first ``next()``, so an unread stream costs nothing.
    """
    if params.n != 1:
        raise ConfigError("streaming supports n=1 only; request n>1 without streaming")
    return _stream(model, tokenizer, prompt, params)


def _stream(
    model: Any, tokenizer: Any, prompt: list[int], params: GenerationParams
) -> Iterator[StreamChunk]:
    encoder_decoder = is_encoder_decoder(model)
    inputs = pad_prompts([prompt], pad_id_of(model, tokenizer), left=True, device=device_of(model))
    offset = 1 if encoder_decoder else len(prompt)
    cancel = threading.Event()
    tokens: queue.Queue[list[int] | BaseException | None] = queue.Queue()
    criteria = StoppingCriteriaList([StopOnText(tokenizer, params.stop, offset, cancel)])
    config = generation_config_for(model, tokenizer, params, 1)

    def run() -> None:
        try:
            with decoding(model, params.seed):
                model.generate(
                    **inputs,
                    generation_config=config,
                    stopping_criteria=criteria,
                    streamer=_QueueStreamer(tokens),
                )
        except BaseException as exc:  # re-raised in the consumer, which owns the request
            tokens.put(exc)
        finally:
            tokens.put(None)

    worker = threading.Thread(target=run, name="tunesmith-generate", daemon=True)
    worker.start()
    try:
        yield from _deltas(
            tokenizer, tokens, end_token_ids(model, tokenizer), params.stop, len(prompt)
        )
    finally:
        cancel.set()  # the consumer left early (client gone, stop found): end generate()
        worker.join()


def _deltas(
    tokenizer: Any,
    source: queue.Queue[list[int] | BaseException | None],
    eos_ids: set[int],
    stops: list[str],
    prompt_tokens: int,
) -> Iterator[StreamChunk]:
    """Turn token ids from ``source`` into text deltas, holding back possible stop prefixes."""
    decoder = DeltaDecoder(tokenizer, eos_ids, stops, prompt_tokens)
    while (item := source.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield from decoder.feed(item)
        if decoder.done:
            return
    yield from decoder.end("length")


class DeltaDecoder:
    """One sample's generated token ids in, text deltas out (see the module docstring).

    ``feed`` takes the tokens of one or more steps and returns the text that can no longer
    change; once the sample is over (an end token, a stop sequence, ``max_new_tokens``) the
    last chunk carries the finish reason and the counts, and ``done`` is true. ``end`` closes a
    sample the generator stopped without a reason of its own.
    """

    def __init__(
        self,
        tokenizer: Any,
        eos_ids: set[int],
        stops: list[str],
        prompt_tokens: int,
        max_new_tokens: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.stops = stops
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.kept: list[int] = []
        self.generated = 0
        self.emitted = 0
        self.done = False

    def feed(self, tokens: Sequence[int]) -> list[StreamChunk]:
        if self.done:
            return []
        for token in tokens:
            self.generated += 1
            if token in self.eos_ids:
                return self.end("stop")
            self.kept.append(token)
        text = self.tokenizer.decode(self.kept, skip_special_tokens=True)
        cut = find_stop(text, self.stops)
        if cut is not None:
            self.done = True
            head = [StreamChunk(text[self.emitted : cut])] if cut > self.emitted else []
            return [*head, self._last("stop")]
        chunks = []
        safe = len(text) - _unsafe_tail(text, self.stops)
        if safe > self.emitted:
            chunks.append(StreamChunk(text[self.emitted : safe]))
            self.emitted = safe
        if self.max_new_tokens is not None and self.generated >= self.max_new_tokens:
            chunks.extend(self.end("length"))
        return chunks

    def end(self, reason: FinishReason) -> list[StreamChunk]:
        """Flush the held-back text and finish with ``reason``."""
        if self.done:
            return []
        self.done = True
        text = self.tokenizer.decode(self.kept, skip_special_tokens=True)
        head = [StreamChunk(text[self.emitted :])] if len(text) > self.emitted else []
        return [*head, self._last(reason)]

    def _last(self, reason: FinishReason) -> StreamChunk:
        return StreamChunk("", reason, self.prompt_tokens, self.generated)


def _unsafe_tail(text: str, stops: Sequence[str]) -> int:
    """Characters at the end of ``text`` that must wait: an incomplete UTF-8 character
    (decoded as U+FFFD) or the start of a stop sequence."""
    if text.endswith("\ufffd"):
        return len(text) - len(text.rstrip("\ufffd"))
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


class _QueueStreamer(BaseStreamer):
    """Hands each step's new token ids to a queue; the first ``put`` (the prompt) is skipped."""

    def __init__(self, target: queue.Queue[list[int] | BaseException | None]) -> None:
        self.target = target
        self.seen_prompt = False

    def put(self, value: torch.Tensor) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        self.target.put(value.reshape(-1).tolist())

    def end(self) -> None:
        """The producer thread signals the end itself (also on errors)."""
