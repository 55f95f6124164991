"""``POST /v1/chat/completions``: chat with a base model, a fine-tuned model or a checkpoint.

The conversation is rendered with the model's chat template exactly as training rendered it
(the engine's ``chat_prompt_ids``). A single reply (``n`` = 1) is generated in a batch with the
model's other requests (``Inference.generate``); ``n > 1`` samples are generated together on
their own. ``stream: true`` answers Server-Sent Events shaped as OpenAI's
``chat.completion.chunk``: one choice arrives token by token, several one after another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tunesmith.inference.cache import ModelHandle
from tunesmith.inference.params import GenerationParams
from tunesmith.jobs.errors import InvalidRequestError
from tunesmith.jobs.ids import new_id
from tunesmith.jobs.store import now
from tunesmith.server import sampling
from tunesmith.server.deps import CurrentProject, ReadSessionsDep
from tunesmith.server.inference import Inference
from tunesmith.server.inference_schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionCreate,
    ChatMessageIn,
    ChatMessageOut,
    Usage,
)
from tunesmith.tasks import Task

router = APIRouter(tags=["inference"])

Messages = list[dict[str, Any]]


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses=sampling.stream_responses(ChatCompletionChunk),
)
async def create_chat_completion(
    body: ChatCompletionCreate, request: Request, project: CurrentProject, sessions: ReadSessionsDep
) -> ChatCompletion | StreamingResponse:
    """Reply to a conversation. ``model`` may be a base model, a fine-tuned chat model
    (``ft:...``) or one of its checkpoints (``ft:...:ckpt-step-N``). Supported: temperature,
    top_p, max_completion_tokens (or max_tokens; default 256), stop, seed, n, stream with
    ``stream_options.include_usage``. Not yet: logprobs, tools, response_format other than
    text, penalties, logit_bias (a 400 names the field)."""
    sampling.refuse_unsupported(body)
    messages = chat_messages(body.messages)
    values = sampling.generation_values(body, body.max_completion_tokens or body.max_tokens)
    inference: Inference = request.app.state.inference
    model = await inference.target(sessions, project, body.model, Task.CHAT)
    wants_usage = sampling.wants_usage(body)
    if values["n"] == 1:  # one sample: batched with the model's other requests
        params = GenerationParams(**values)
        chunks = await inference.generate(model, partial(_prompt, messages), params)
        if body.stream:
            events = _events(sampling.indexed_async(chunks), body.model, 1, wants_usage)
            return sampling.sse_response(events)
        outputs = [await sampling.collect(chunks)]
    elif body.stream:
        chunks = await inference.stream(model, partial(_stream, messages, values))
        return sampling.sse_response(_events(chunks, body.model, values["n"], wants_usage))
    else:
        outputs = await inference.run(model, partial(_generate, messages, values))
    return ChatCompletion(
        id=new_id("chatcmpl"),
        created=now(),
        model=body.model,
        choices=[
            ChatChoice(
                index=i, message=ChatMessageOut(content=o.text), finish_reason=o.finish_reason
            )
            for i, o in enumerate(outputs)
        ],
        usage=sampling.usage([outputs]),
    )


def chat_messages(messages: list[ChatMessageIn]) -> Messages:
    """OpenAI's messages as the engine renders them: text content as one string (parts
    joined), ``developer`` as ``system`` (what it replaced), other fields kept."""
    rendered = []
    for i, message in enumerate(messages):
        data = message.model_dump(exclude_none=True)
        if isinstance(message.content, list):
            data["content"] = _text_of(message.content, i)
        if message.role == "developer":
            data["role"] = "system"
        rendered.append(data)
    return rendered


def _text_of(parts: list[Any], index: int) -> str:
    texts = []
    for part in parts:
        if part.type != "text" or part.text is None:
            raise InvalidRequestError(
                f"tunesmith models read text only; content part type {part.type!r} is not "
                "supported.",
                param=f"messages.[{index}].content",
            )
        texts.append(part.text)
    return "".join(texts)


# --- on the inference thread ---------------------------------------------------------------


def _prompt(messages: Messages, tokenizer: Any, encoder_decoder: bool) -> list[int]:
    from tunesmith.inference.generation import chat_prompt_ids

    return chat_prompt_ids(tokenizer, messages, encoder_decoder=encoder_decoder)


def _generate(messages: Messages, values: dict[str, Any], handle: ModelHandle) -> list[Any]:
    from tunesmith.inference.generation import generate_chat

    params = GenerationParams(**values)
    return generate_chat(handle.model, handle.tokenizer, messages, params)


def _stream(messages: Messages, values: dict[str, Any], handle: ModelHandle) -> Iterator[Any]:
    """Several samples (n > 1): generated together, then streamed one after another."""
    from tunesmith.inference.generation import generate_chat

    params = GenerationParams(**values)
    return sampling.as_chunks(generate_chat(handle.model, handle.tokenizer, messages, params))


# --- the event stream ----------------------------------------------------------------------


async def _events(
    chunks: AsyncIterator[Any], model: str, n: int, include_usage: bool
) -> AsyncIterator[str]:
    """``chat.completion.chunk`` events: each choice's role, its text deltas, its finish
    reason; then the usage chunk when asked for, then ``[DONE]``."""
    head: dict[str, Any] = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion.chunk",
        "created": now(),
        "model": model,
        "system_fingerprint": None,
    }
    if include_usage:
        head["usage"] = None  # every chunk has the field; only the last one fills it

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sampling.event({**head, "choices": [choice]})

    prompt_tokens = completion_tokens = 0
    try:
        for index in range(n):
            yield chunk(index, {"role": "assistant", "content": "", "refusal": None})
        async for index, piece in chunks:
            if piece.text:
                yield chunk(index, {"content": piece.text})
            if piece.finish_reason:
                yield chunk(index, {}, piece.finish_reason)
                prompt_tokens = piece.prompt_tokens
                completion_tokens += piece.completion_tokens
    except Exception as exc:
        yield sampling.error_event(exc)
        return
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    if include_usage:
        counts = Usage.of(prompt_tokens, completion_tokens).model_dump()
        yield sampling.event({**head, "choices": [], "usage": counts})
    yield sampling.DONE
