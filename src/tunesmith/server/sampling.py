"""What chat and legacy completions share: request checks, sampling settings, usage, SSE.

A request is checked before any model is loaded: each setting tunesmith cannot honour yet is
refused with a 400 naming it (``param``), since a silently ignored ``logprobs`` or
``response_format`` would give a client an answer it did not ask for.

Streams are Server-Sent Events as OpenAI sends them: ``data: {json}`` events, then
``data: [DONE]``. An error after the response has started cannot change its status; it is sent
as a last ``data: {"error": {...}}`` event (the SDK raises it) and the stream ends there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tunesmith.inference.params import GenerationOutput
from tunesmith.jobs.errors import InvalidRequestError
from tunesmith.server.errors import describe
from tunesmith.server.inference_schemas import SamplingRequest, Usage

if TYPE_CHECKING:
    from tunesmith.inference.streaming import StreamChunk

log = logging.getLogger("tunesmith.server")

DONE = "data: [DONE]\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# (field, value that changes nothing): a set field with another value is refused
NEUTRAL: tuple[tuple[str, object], ...] = (
    ("frequency_penalty", 0),
    ("presence_penalty", 0),
    ("logit_bias", {}),
    ("logprobs", False),
    ("logprobs", 0),
    ("top_logprobs", 0),
    ("tools", []),
    ("functions", []),
    ("tool_choice", "none"),
    ("function_call", "none"),
    ("audio", {}),
    ("prediction", {}),
    ("suffix", ""),
    ("best_of", 1),
)


def refuse_unsupported(body: SamplingRequest) -> None:
    """Raise for the first set field whose effect tunesmith cannot produce."""
    given = body.model_dump(exclude_none=True)
    neutral: dict[str, list[object]] = {}
    for name, value in NEUTRAL:
        neutral.setdefault(name, []).append(value)
    for name, allowed in neutral.items():
        if name in given and given[name] not in allowed:
            raise InvalidRequestError(
                f"tunesmith does not support '{name}' yet; leave it out of the request.",
                param=name,
            )
    response_format = given.get("response_format")
    if response_format and response_format.get("type") != "text":
        raise InvalidRequestError(
            "tunesmith answers in plain text only; response_format must be {'type': 'text'}.",
            param="response_format",
        )
    if body.stream_options is not None and not body.stream:
        raise InvalidRequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    modalities = given.get("modalities")
    if modalities and set(modalities) != {"text"}:
        raise InvalidRequestError("tunesmith answers with text only.", param="modalities")


def generation_values(body: SamplingRequest, max_tokens: int | None) -> dict[str, Any]:
    """Keyword arguments of the engine's ``GenerationParams`` (built on the inference thread,
    so the event loop never imports torch). Unset fields keep the engine's OpenAI defaults."""
    values: dict[str, Any] = {"n": body.n or 1, "stop": body.stop, "seed": body.seed}
    if body.temperature is not None:
        values["temperature"] = body.temperature
    if body.top_p == 0:  # a nucleus of no mass keeps the single most likely token
        values["temperature"] = 0.0
    elif body.top_p is not None:
        values["top_p"] = body.top_p
    if max_tokens is not None:
        values["max_new_tokens"] = max_tokens
    return values


def wants_usage(body: SamplingRequest) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


def usage(per_prompt: Sequence[Sequence[GenerationOutput]]) -> Usage:
    """OpenAI counts each prompt once and the tokens of every choice."""
    prompt = sum(outputs[0].prompt_tokens for outputs in per_prompt if outputs)
    completion = sum(o.completion_tokens for outputs in per_prompt for o in outputs)
    return Usage.of(prompt, completion)


def as_chunks(outputs: Sequence[GenerationOutput], first_index: int = 0) -> Iterator[Any]:
    """Finished samples as ``(index, StreamChunk)`` pairs: the text, then the end.

    Used to stream several choices: they are generated together (as without streaming, so
    the same seed gives the same samples) and then sent one after another.
    """
    from tunesmith.inference.streaming import StreamChunk

    for i, out in enumerate(outputs, start=first_index):
        if out.text:
            yield i, StreamChunk(out.text)
        yield i, StreamChunk("", out.finish_reason, out.prompt_tokens, out.completion_tokens)


async def indexed_async(
    chunks: AsyncIterator[StreamChunk],
) -> AsyncIterator[tuple[int, StreamChunk]]:
    """One batched sample's chunks as choice 0; closing this closes the sample's stream."""
    try:
        async for chunk in chunks:
            yield 0, chunk
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def collect(chunks: AsyncIterator[StreamChunk]) -> GenerationOutput:
    """A whole sample from its chunks: the text, and the finish reason and counts of the last."""
    texts: list[str] = []
    last = None
    async for chunk in chunks:
        texts.append(chunk.text)
        last = chunk
    if last is None or last.finish_reason is None:
        raise RuntimeError("the generation ended without a finish reason")
    text = "".join(texts)
    return GenerationOutput(text, last.finish_reason, last.prompt_tokens, last.completion_tokens)


# --- Server-Sent Events ------------------------------------------------------------------------


def event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def error_event(exc: BaseException) -> str:
    status, body = describe(exc)
    if status >= 500:
        log.error("inference failed while streaming", exc_info=exc)
    return event(body)


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


def stream_responses(chunk_model: type[Any]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry for ``stream: true``: a ``text/event-stream`` of ``chunk_model``."""
    return {
        200: {
            "description": "The answer; with `stream: true`, Server-Sent Events: one "
            f"`data: {{{chunk_model.__name__}}}` per chunk, then `data: [DONE]`.",
            "content": {
                "text/event-stream": {
                    "schema": {"$ref": f"#/components/schemas/{chunk_model.__name__}"}
                }
            },
        }
    }


def document_stream_chunks(app: FastAPI, *models: type[BaseModel]) -> None:
    """Put the chunk models into the OpenAPI document's components, where the ``$ref`` of
    ``stream_responses`` points: FastAPI adds only the models routes return as JSON."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in body.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components.setdefault(model.__name__, body)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
