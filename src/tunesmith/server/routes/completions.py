"""``POST /v1/completions``: OpenAI's legacy Completions, for prompt/completion models.

The prompt is continued as it is, with no chat template: a model fine-tuned on
``{"prompt", "completion"}`` data sees exactly what training showed it. Base models work too;
a fine-tuned chat model is refused (404, as OpenAI refuses chat models here), so is a
classifier. Several prompts are generated as one batch; choice ``i * n + j`` is sample ``j`` of
prompt ``i``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tunesmith.inference.cache import ModelHandle
from tunesmith.inference.params import GenerationParams
from tunesmith.jobs.ids import new_id
from tunesmith.jobs.store import now
from tunesmith.server import sampling
from tunesmith.server.deps import CurrentProject, ReadSessionsDep
from tunesmith.server.inference import Inference
from tunesmith.server.inference_schemas import (
    Completion,
    CompletionChoice,
    CompletionCreate,
    Usage,
)
from tunesmith.tasks import Task

router = APIRouter(tags=["inference"])


@router.post(
    "/completions", response_model=Completion, responses=sampling.stream_responses(Completion)
)
async def create_completion(
    body: CompletionCreate, request: Request, project: CurrentProject, sessions: ReadSessionsDep
) -> Completion | StreamingResponse:
    """Continue one prompt or several. Supported: max_tokens (default 16), temperature, top_p,
    stop, seed, n, echo, stream with ``stream_options.include_usage``. Not yet: logprobs,
    suffix, best_of above 1, token-id prompts, penalties, logit_bias."""
    sampling.refuse_unsupported(body)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    values = sampling.generation_values(body, body.max_tokens)
    inference: Inference = request.app.state.inference
    model = await inference.target(sessions, project, body.model, Task.COMPLETION)
    echo = bool(body.echo)
    wants_usage = sampling.wants_usage(body)
    if values["n"] == 1 and len(prompts) == 1:  # one sample: batched with other requests
        params = GenerationParams(**values)
        chunks = await inference.generate(model, partial(_prompt, prompts[0]), params)
        if body.stream:
            pairs = sampling.indexed_async(chunks)
            return sampling.sse_response(_events(pairs, body.model, prompts, 1, echo, wants_usage))
        per_prompt = [[await sampling.collect(chunks)]]
    elif body.stream:
        chunks = await inference.stream(model, partial(_stream, prompts, values))
        events = _events(chunks, body.model, prompts, values["n"], echo, wants_usage)
        return sampling.sse_response(events)
    else:
        per_prompt = await inference.run(model, partial(_generate, prompts, values))
    choices = [
        CompletionChoice(
            text=(prompt + o.text) if echo else o.text,
            index=i * len(outputs) + j,
            finish_reason=o.finish_reason,
        )
        for i, (prompt, outputs) in enumerate(zip(prompts, per_prompt, strict=True))
        for j, o in enumerate(outputs)
    ]
    return Completion(
        id=new_id("cmpl"),
        created=now(),
        model=body.model,
        choices=choices,
        usage=sampling.usage(per_prompt),
    )


# --- on the inference thread ---------------------------------------------------------------


def _prompt(prompt: str, tokenizer: Any, encoder_decoder: bool) -> list[int]:
    from tunesmith.inference.generation import completion_prompt_ids

    return completion_prompt_ids(tokenizer, prompt, encoder_decoder=encoder_decoder)


def _generate(prompts: list[str], values: dict[str, Any], handle: ModelHandle) -> list[Any]:
    from tunesmith.inference.generation import (
        completion_prompt_ids,
        generate_from_ids,
        is_encoder_decoder,
    )

    params = GenerationParams(**values)
    encoder_decoder = is_encoder_decoder(handle.model)
    tokenizer = handle.tokenizer
    ids = [completion_prompt_ids(tokenizer, p, encoder_decoder=encoder_decoder) for p in prompts]
    return generate_from_ids(handle.model, tokenizer, ids, params)


def _stream(prompts: list[str], values: dict[str, Any], handle: ModelHandle) -> Iterator[Any]:
    """Several prompts or samples: generated together, then streamed one after another."""
    params = GenerationParams(**values)
    per_prompt = _generate(prompts, values, handle)
    return (
        pair
        for i, outputs in enumerate(per_prompt)
        for pair in sampling.as_chunks(outputs, first_index=i * params.n)
    )


# --- the event stream ----------------------------------------------------------------------


async def _events(
    chunks: AsyncIterator[Any],
    model: str,
    prompts: list[str],
    n: int,
    echo: bool,
    include_usage: bool,
) -> AsyncIterator[str]:
    """``text_completion`` chunks: each choice's text pieces, then one with its finish
    reason; then the usage chunk when asked for, then ``[DONE]``."""
    head: dict[str, Any] = {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": now(),
        "model": model,
        "system_fingerprint": None,
    }
    if include_usage:
        head["usage"] = None

    def chunk(index: int, text: str, finish: str | None = None) -> str:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        return sampling.event({**head, "choices": [choice]})

    prompt_tokens = completion_tokens = 0
    try:
        if echo:
            for index in range(len(prompts) * n):
                yield chunk(index, prompts[index // n])
        async for index, piece in chunks:
            if piece.text:
                yield chunk(index, piece.text)
            if piece.finish_reason:
                yield chunk(index, "", piece.finish_reason)
                if index % n == 0:  # each prompt's tokens count once
                    prompt_tokens += piece.prompt_tokens
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
