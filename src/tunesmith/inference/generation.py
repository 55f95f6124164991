"""Text generation with OpenAI semantics: stop sequences, finish reasons, n samples, streaming.

Everything funnels into two paths over ``model.generate``:

* ``generate_from_ids`` runs a batch of prompts (left-padded for decoders, so every row's
  next token sits in the last column) and post-processes each sequence: cut at the first
  end-of-sequence token, then at the earliest stop sequence. A stopping criterion ends a row
  as soon as its text contains a stop sequence, so no compute is spent past it.
* ``stream_from_ids`` (``streaming.py``) runs ``generate`` in a thread and turns the tokens
  it emits into text deltas; ``stream_chat`` / ``stream_completion`` here are its front doors.

Finish reasons follow OpenAI: ``"stop"`` for an end-of-sequence token or a stop sequence (the
stop sequence itself is not returned), ``"length"`` when ``max_new_tokens`` ran out.

Seeding uses the global torch RNG inside ``torch.random.fork_rng``, so a seeded call does not
disturb anyone else's randomness; calls that must not interleave (one model, several threads)
are serialised by the caller (``ModelCache`` holds a lock per model).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from tunesmith.data.chat import render_chat, seq2seq_prompt
from tunesmith.inference.params import FinishReason, GenerationOutput, GenerationParams

if TYPE_CHECKING:
    from tunesmith.inference.streaming import StreamChunk

Messages = list[dict[str, Any]]


# --- prompts -------------------------------------------------------------------------------


def chat_prompt_ids(
    tokenizer: Any,
    messages: Messages,
    *,
    tools: list | None = None,
    encoder_decoder: bool = False,
) -> list[int]:
    """Token ids of a conversation, rendered exactly as training rendered it (``data/chat``).

    Decoders: the chat template (ChatML when the tokenizer has none) with the assistant's
    turn header, tokenized without special tokens because templates write the BOS
    themselves. Encoder-decoders: the plain ``role: content`` lines training feeds the encoder.
    """
    if encoder_decoder:
        return list(tokenizer(seq2seq_prompt(messages))["input_ids"])
    text = render_chat(messages, tokenizer, tools=tools, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def completion_prompt_ids(
    tokenizer: Any, prompt: str, *, encoder_decoder: bool = False
) -> list[int]:
    """Token ids of a raw prompt with the tokenizer's special tokens, as training has them.

    A decoder's prompt must not end with eos (a tokenizer that appends one would make the
    model stop at once); an encoder's input keeps it, as in training.
    """
    ids = list(tokenizer(prompt)["input_ids"])
    if not encoder_decoder and ids and ids[-1] == tokenizer.eos_token_id and len(ids) > 1:
        ids = ids[:-1]
    return ids


# --- public entry points -------------------------------------------------------------------


def generate_chat(
    model: Any,
    tokenizer: Any,
    messages: Messages,
    params: GenerationParams,
    *,
    tools: list | None = None,
) -> list[GenerationOutput]:
    """``params.n`` assistant replies to one conversation."""
    ids = chat_prompt_ids(
        tokenizer, messages, tools=tools, encoder_decoder=is_encoder_decoder(model)
    )
    return generate_from_ids(model, tokenizer, [ids], params)[0]


def generate_completion(
    model: Any, tokenizer: Any, prompt: str, params: GenerationParams
) -> list[GenerationOutput]:
    """``params.n`` continuations of a raw prompt (prompt/completion models: no template)."""
    ids = completion_prompt_ids(tokenizer, prompt, encoder_decoder=is_encoder_decoder(model))
    return generate_from_ids(model, tokenizer, [ids], params)[0]


def generate_batch(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Messages],
    params: GenerationParams,
    *,
    batch_size: int = 8,
) -> list[list[GenerationOutput]]:
    """Replies to many conversations, ``batch_size`` at a time; one list of n per conversation."""
    encoder_decoder = is_encoder_decoder(model)
    prompts = [
        chat_prompt_ids(tokenizer, m, encoder_decoder=encoder_decoder) for m in conversations
    ]
    return generate_from_ids(model, tokenizer, prompts, params, batch_size=batch_size)


def stream_chat(
    model: Any,
    tokenizer: Any,
    messages: Messages,
    params: GenerationParams,
    *,
    tools: list | None = None,
) -> Iterator[StreamChunk]:
    """Stream one assistant reply as text deltas; the last chunk carries the finish reason."""
    from tunesmith.inference.streaming import stream_from_ids  # it builds on this module

    ids = chat_prompt_ids(
        tokenizer, messages, tools=tools, encoder_decoder=is_encoder_decoder(model)
    )
    return stream_from_ids(model, tokenizer, ids, params)


def stream_completion(
    model: Any, tokenizer: Any, prompt: str, params: GenerationParams
) -> Iterator[StreamChunk]:
    """Stream one continuation of a raw prompt."""
    from tunesmith.inference.streaming import stream_from_ids

    ids = completion_prompt_ids(tokenizer, prompt, encoder_decoder=is_encoder_decoder(model))
    return stream_from_ids(model, tokenizer, ids, params)


# --- batched generation --------------------------------------------------------------------


def generate_from_ids(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[int]],
    params: GenerationParams,
    *,
    batch_size: int = 8,
) -> list[list[GenerationOutput]]:
    """Generate for already-tokenized prompts; the seed (if any) covers the whole call."""
    if not prompts:
        return []
    results: list[list[GenerationOutput]] = []
    with decoding(model, params.seed):
        for start in range(0, len(prompts), batch_size):
            results.extend(
                _generate_chunk(model, tokenizer, prompts[start : start + batch_size], params)
            )
    return results


def _generate_chunk(
    model: Any, tokenizer: Any, prompts: Sequence[list[int]], params: GenerationParams
) -> list[list[GenerationOutput]]:
    encoder_decoder = is_encoder_decoder(model)
    inputs = pad_prompts(
        prompts, pad_id_of(model, tokenizer), left=not encoder_decoder, device=device_of(model)
    )
    # Greedy decoding gives the same sequence n times: compute it once and copy it.
    samples = 1 if params.greedy else params.n
    config = generation_config_for(model, tokenizer, params, samples)
    offset = 1 if encoder_decoder else inputs["input_ids"].shape[1]  # decoder start / prompt
    stops = (
        StoppingCriteriaList([StopOnText(tokenizer, params.stop, offset)]) if params.stop else None
    )
    sequences = model.generate(**inputs, generation_config=config, stopping_criteria=stops)
    new_tokens = sequences[:, offset:].tolist()
    eos_ids = end_token_ids(model, tokenizer)
    pad_id = pad_id_of(model, tokenizer)
    outputs: list[list[GenerationOutput]] = []
    for i, prompt in enumerate(prompts):
        rows = new_tokens[i * samples : (i + 1) * samples]
        if pad_id not in eos_ids:  # else the cut at the first end token removes the padding
            rows = [_strip_padding(row, pad_id) for row in rows]
        done = [_finish(tokenizer, row, eos_ids, params.stop, len(prompt)) for row in rows]
        outputs.append(done if samples == params.n else done * params.n)
    return outputs


def _finish(
    tokenizer: Any, tokens: list[int], eos_ids: set[int], stops: list[str], prompt_tokens: int
) -> GenerationOutput:
    """Cut one generated row at its end token and earliest stop sequence."""
    end = next((i for i, t in enumerate(tokens) if t in eos_ids), None)
    kept = tokens if end is None else tokens[:end]
    text = tokenizer.decode(kept, skip_special_tokens=True)
    cut = find_stop(text, stops)
    if cut is not None:
        return GenerationOutput(text[:cut], "stop", prompt_tokens, len(kept))
    reason: FinishReason = "length" if end is None else "stop"
    return GenerationOutput(text, reason, prompt_tokens, len(tokens) if end is None else end + 1)


def _strip_padding(tokens: list[int], pad_id: int) -> list[int]:
    """Drop the padding ``generate`` appends to rows that finished before the longest one."""
    end = len(tokens)
    while end and tokens[end - 1] == pad_id:
        end -= 1
    return tokens[:end]


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the earliest stop sequence starts in ``text``, or None."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


# --- helpers -------------------------------------------------------------------------------


class StopOnText(StoppingCriteria):
    """Ends a row once its generated text contains a stop sequence, or all rows on ``cancel``."""

    def __init__(
        self,
        tokenizer: Any,
        stops: Sequence[str],
        offset: int,
        cancel: threading.Event | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.stops = list(stops)
        self.offset = offset
        self.cancel = cancel

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        batch = input_ids.shape[0]
        if self.cancel is not None and self.cancel.is_set():
            return torch.ones(batch, dtype=torch.bool, device=input_ids.device)
        if not self.stops:
            return torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        texts = self.tokenizer.batch_decode(input_ids[:, self.offset :], skip_special_tokens=True)
        hit = [find_stop(text, self.stops) is not None for text in texts]
        return torch.tensor(hit, dtype=torch.bool, device=input_ids.device)


def generation_config_for(
    model: Any, tokenizer: Any, params: GenerationParams, samples: int
) -> GenerationConfig:
    """Only what the request decides; anything unset falls back to the model's own config."""
    values: dict[str, Any] = {
        "max_new_tokens": params.max_new_tokens,
        "pad_token_id": pad_id_of(model, tokenizer),
        "eos_token_id": sorted(end_token_ids(model, tokenizer)),
        "num_return_sequences": samples,
        "do_sample": not params.greedy,
    }
    if not params.greedy:
        # top_k=0 switches off transformers' default top-k of 50, which OpenAI does not have
        values.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
    return GenerationConfig(**values)


def end_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """The model's end tokens plus the tokenizer's (a chat template's end-of-turn token)."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def pad_id_of(model: Any, tokenizer: Any) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    configured = getattr(getattr(model, "generation_config", None), "pad_token_id", None)
    if configured is not None:
        return int(configured)
    return min(end_token_ids(model, tokenizer), default=0)


def pad_prompts(
    prompts: Sequence[list[int]], pad_id: int, *, left: bool, device: torch.device
) -> dict[str, torch.Tensor]:
    """Pad by hand (not via the tokenizer) so a shared tokenizer's padding side is untouched."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        span = slice(width - len(prompt), width) if left else slice(0, len(prompt))
        ids[row, span] = torch.tensor(prompt, dtype=torch.long)
        mask[row, span] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def is_encoder_decoder(model: Any) -> bool:
    return bool(getattr(model.config, "is_encoder_decoder", False))


def device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def decoding(model: Any, seed: int | None) -> Iterator[None]:
    """What every decoding path runs in: no autograd, the seed's random stream (if any), and
    the output head fed contiguous hidden states (``_feed_head_contiguously``)."""
    _feed_head_contiguously(model)
    with seeded(model, seed), torch.inference_mode():
        yield


_CONTIGUOUS_HOOK = "_tunesmith_contiguous_input"


def _feed_head_contiguously(model: Any) -> None:
    """Make the output head copy its input to contiguous memory first (once per model).

    A prefill asks for the last position's logits only (``logits_to_keep=1``), so the head
    gets ``hidden[:, -1:, :]``: for one prompt a ``[1, 1, hidden]`` view whose batch stride is
    the whole prompt's. torch's matmul cannot fold that view into one matrix, so it takes the
    batched path, which copies the transposed output embedding on every call: 49152 x 576
    bf16 values for SmolLM2, 84 ms of a 250 ms prefill on two CPU cores. Copying the one row
    instead costs microseconds, gives the same values and lets matmul use a plain product.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or getattr(head, _CONTIGUOUS_HOOK, False):
        return
    head.register_forward_pre_hook(_contiguous_first_argument)
    setattr(head, _CONTIGUOUS_HOOK, True)


def _contiguous_first_argument(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    # ``is_contiguous()`` ignores the strides of size-1 axes, and matmul's folding does not:
    # compare with the row-major strides of the shape
    hidden = args[0] if args else None
    if isinstance(hidden, torch.Tensor) and hidden.stride() != _row_major_strides(hidden.shape):
        return (hidden.clone(memory_format=torch.contiguous_format), *args[1:])
    return None


def _row_major_strides(shape: torch.Size) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


@contextmanager
def seeded(model: Any, seed: int | None) -> Iterator[None]:
    """Seed torch's RNG for the block and restore the previous state afterwards."""
    if seed is None:
        yield
        return
    device = device_of(model)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def context_length_of(model: Any) -> int | None:
    """Most positions a decoder attends to (prompt and reply together); None when the model
    has no fixed limit (relative positions, as T5)."""
    if is_encoder_decoder(model):
        return None
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
