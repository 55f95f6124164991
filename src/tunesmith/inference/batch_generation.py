"""One batch of generation requests in one ``generate`` call (see ``batching.py``)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from tunesmith.errors import ConfigError
from tunesmith.inference.batching import BatchRow
from tunesmith.inference.generation import (
    GenerationParams,
    device_of,
    end_token_ids,
    is_encoder_decoder,
    pad_id_of,
    pad_prompts,
    seeded,
)
from tunesmith.inference.streaming import DeltaDecoder


def generate_rows(
    model: Any, tokenizer: Any, rows: list[BatchRow], *, context_length: int | None = None
) -> None:
    """Run ``rows`` as one ``generate`` call; every row's sink gets its results.

    A row whose prompt cannot be built, or does not fit ``context_length`` with room for one
    new token, fails alone; an error in ``generate`` fails every row still open.
    """
    encoder_decoder = is_encoder_decoder(model)
    live: list[tuple[BatchRow, list[int]]] = []
    for row in rows:
        try:
            prompt = row.prompt_of(tokenizer, encoder_decoder)
            check_context(len(prompt), context_length)
        except Exception as exc:
            row.sink.fail(exc)
            row.sink.close()
            continue
        row.sink.ready()
        live.append((row, prompt))
    if not live:
        return
    seeds = {row.params.seed for row, _ in live}
    if len(live) > 1 and seeds != {None}:
        raise ValueError("a seeded request must run alone")
    control = _RowControl(
        [row for row, _ in live],
        [
            DeltaDecoder(
                tokenizer,
                end_token_ids(model, tokenizer),
                row.params.stop,
                len(prompt),
                _max_new_tokens(row.params, len(prompt), context_length, encoder_decoder),
            )
            for row, prompt in live
        ],
    )
    try:
        inputs = pad_prompts(
            [prompt for _, prompt in live],
            pad_id_of(model, tokenizer),
            left=not encoder_decoder,
            device=device_of(model),
        )
        control.offset = 1 if encoder_decoder else inputs["input_ids"].shape[1]
        params = [row.params for row, _ in live]
        config = _batch_config(model, tokenizer, params, max(control.limits()))
        processors = _PerRowSampling.for_rows(params, device_of(model))
        with seeded(model, live[0][0].params.seed), torch.inference_mode():
            model.generate(
                **inputs,
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([control]),
                logits_processor=LogitsProcessorList([processors] if processors else []),
            )
        control.end_open_rows()
    except BaseException as exc:
        control.fail_open_rows(exc)
        raise
    finally:
        control.close_all()


def check_context(prompt_tokens: int, context_length: int | None) -> None:
    """Refuse a prompt that leaves no room for a reply (OpenAI's ``context_length_exceeded``)."""
    if context_length is not None and prompt_tokens >= context_length:
        raise ContextLengthError(
            f"This model's maximum context length is {context_length} tokens, but the "
            f"prompt has {prompt_tokens} tokens. Shorten the messages."
        )


class ContextLengthError(ConfigError):
    """The prompt alone fills the model's context."""

    code = "context_length_exceeded"
    param = "messages"


def _max_new_tokens(
    params: GenerationParams, prompt_tokens: int, context_length: int | None, encoder_decoder: bool
) -> int:
    """The row's own limit, cut to what its context leaves (the reply ends with "length")."""
    if context_length is None or encoder_decoder:
        return params.max_new_tokens
    return max(1, min(params.max_new_tokens, context_length - prompt_tokens))


def _batch_config(
    model: Any, tokenizer: Any, params: list[GenerationParams], max_new_tokens: int
) -> GenerationConfig:
    """The batch's shared settings. Sampling, when any row samples, is done by
    ``_PerRowSampling``: transformers' own warpers are set to change nothing."""
    values: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "pad_token_id": pad_id_of(model, tokenizer),
        "eos_token_id": sorted(end_token_ids(model, tokenizer)),
        "num_return_sequences": 1,
        "do_sample": any(not p.greedy for p in params),
    }
    if values["do_sample"]:
        values.update(temperature=1.0, top_p=1.0, top_k=0)
    return GenerationConfig(**values)


class _PerRowSampling(LogitsProcessor):
    """Each row's temperature and top-p (as transformers' warpers apply them to one row);
    a greedy row keeps only its arg-max, so sampling it picks exactly that token."""

    def __init__(self, temperature: torch.Tensor, top_p: torch.Tensor, greedy: torch.Tensor):
        self.temperature = temperature
        self.top_p = top_p
        self.greedy = greedy

    @classmethod
    def for_rows(
        cls, params: list[GenerationParams], device: torch.device
    ) -> _PerRowSampling | None:
        if all(p.greedy for p in params):
            return None  # transformers decodes greedily by itself
        return cls(
            torch.tensor([p.temperature or 1.0 for p in params], device=device),
            torch.tensor([p.top_p for p in params], device=device),
            torch.tensor([p.greedy for p in params], device=device),
        )

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores / self.temperature[:, None].to(scores.dtype)
        ascending, order = torch.sort(scores, dim=-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - self.top_p)[:, None]
        drop[:, -1] = False  # the most likely token always stays
        scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
        best = scores.argmax(dim=-1, keepdim=True)
        only_best = torch.full_like(scores, float("-inf")).scatter(1, best, 0.0)
        return torch.where(self.greedy[:, None], only_best, scores)


class _RowControl(StoppingCriteria):
    """Called after each step: feeds every open row's new token to its decoder, sends its text
    deltas, and reports which rows are over (their end, stop text, limit, or client gone)."""

    def __init__(self, rows: list[BatchRow], decoders: list[DeltaDecoder]) -> None:
        self.rows = rows
        self.decoders = decoders
        self.offset = 0
        self.closed = [False] * len(rows)

    def limits(self) -> list[int]:
        return [d.max_new_tokens or 1 for d in self.decoders]

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        newest = input_ids[:, -1].tolist()
        over = []
        for i, (row, decoder) in enumerate(zip(self.rows, self.decoders, strict=True)):
            if not decoder.done and row.cancelled.is_set():
                decoder.done = True
            elif not decoder.done and input_ids.shape[1] > self.offset:
                for chunk in decoder.feed([newest[i]]):
                    row.sink.chunk(chunk)
            over.append(decoder.done)
        return torch.tensor(over, dtype=torch.bool, device=input_ids.device)

    def end_open_rows(self) -> None:
        """Rows ``generate`` stopped without their own reason (the batch's length) end here."""
        for row, decoder in zip(self.rows, self.decoders, strict=True):
            for chunk in decoder.end("length"):
                row.sink.chunk(chunk)

    def fail_open_rows(self, error: BaseException) -> None:
        for row, decoder in zip(self.rows, self.decoders, strict=True):
            if not decoder.done:
                decoder.done = True
                row.sink.fail(error)

    def close_all(self) -> None:
        for i, row in enumerate(self.rows):
            if not self.closed[i]:
                self.closed[i] = True
                row.sink.close()
