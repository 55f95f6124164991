"""Running batched rows (see ``batching.py``): what every row needs, whichever loop decodes it.

``generate_rows`` is the entry point. Decoder-only models are decoded by our own loop
(``continuous.py``), which admits queued rows between steps and lets finished ones leave.
Encoder-decoders (T5) are rare here and run as one static ``generate`` call (``_generate_static``):
the rows present at the start, padded until the longest ends, nobody admitted mid-way; so do
decoders the loop cannot drive (see ``continuous.supports_continuous``).

Shared by both paths: building each row's prompt and checking it fits the context
(``open_rows``; a bad prompt fails only its row), the row's ``DeltaDecoder`` (its end tokens,
stop sequences, ``max_new_tokens``, text deltas), and per-row temperature / top-p
(``PerRowSampling``).
"""

from __future__ import annotations

from dataclasses import dataclass
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
from tunesmith.inference.batching import Admit, BatchRow
from tunesmith.inference.generation import (
    FinishReason,
    GenerationParams,
    decoding,
    device_of,
    end_token_ids,
    is_encoder_decoder,
    pad_id_of,
    pad_prompts,
)
from tunesmith.inference.streaming import DeltaDecoder


def generate_rows(
    model: Any,
    tokenizer: Any,
    rows: list[BatchRow],
    *,
    admit: Admit | None = None,
    context_length: int | None = None,
) -> None:
    """Generate every row's reply; each row's sink gets its results, and is closed.

    ``admit`` (from the ``Batcher``) hands over rows queued while the batch runs; the decode
    loop calls it between steps. A row whose prompt cannot be built, or leaves no room for one
    new token in ``context_length``, fails alone; an error in the model fails every open row
    and is raised. A seeded row must come alone (its sampling would depend on its neighbours).
    """
    if len(rows) > 1 and any(row.params.seed is not None for row in rows):
        raise ValueError("a seeded request must run alone")
    from tunesmith.inference.continuous import (  # it builds on this module
        decode_continuously,
        supports_continuous,
    )

    if supports_continuous(model):
        decode_continuously(model, tokenizer, rows, admit, context_length=context_length)
    else:
        _generate_static(model, tokenizer, rows, context_length)


# --- what every row needs ------------------------------------------------------------------


@dataclass
class OpenRow:
    """A row whose prompt is built and fits: its prompt ids, its decoder, its sink."""

    row: BatchRow
    prompt: list[int]
    decoder: DeltaDecoder
    closed: bool = False

    @property
    def params(self) -> GenerationParams:
        return self.row.params

    @property
    def over(self) -> bool:
        """Its reply is complete, or its client went away."""
        return self.decoder.done or self.row.cancelled.is_set()

    def deliver(self, token: int) -> None:
        """Feed one new token; its text deltas go to the sink. A row whose client went away
        ends without a last chunk (nobody reads it)."""
        if self.row.cancelled.is_set():
            self.decoder.done = True
            return
        for chunk in self.decoder.feed([token]):
            self.row.sink.chunk(chunk)

    def end(self, reason: FinishReason) -> None:
        """Finish a row the generator stopped without a reason of its own."""
        for chunk in self.decoder.end(reason):
            self.row.sink.chunk(chunk)

    def fail(self, error: BaseException) -> None:
        if not self.decoder.done:
            self.decoder.done = True
            self.row.sink.fail(error)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.row.sink.close()


def open_rows(
    model: Any, tokenizer: Any, rows: list[BatchRow], context_length: int | None
) -> list[OpenRow]:
    """Build each row's prompt and decoder; a row whose prompt fails is failed and closed
    here, the others are told ``ready()``."""
    encoder_decoder = is_encoder_decoder(model)
    end_ids = end_token_ids(model, tokenizer)
    opened = []
    for row in rows:
        try:
            prompt = row.prompt_of(tokenizer, encoder_decoder)
            check_context(len(prompt), context_length)
        except Exception as exc:
            row.sink.fail(exc)
            row.sink.close()
            continue
        row.sink.ready()
        limit = _max_new_tokens(row.params, len(prompt), context_length, encoder_decoder)
        decoder = DeltaDecoder(tokenizer, end_ids, row.params.stop, len(prompt), limit)
        opened.append(OpenRow(row, prompt, decoder))
    return opened


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


class PerRowSampling(LogitsProcessor):
    """Each row's temperature and top-p (as transformers' warpers apply them to one row);
    a greedy row keeps only its arg-max, so sampling it picks exactly that token."""

    def __init__(self, temperature: torch.Tensor, top_p: torch.Tensor, greedy: torch.Tensor):
        self.temperature = temperature
        self.top_p = top_p
        self.greedy = greedy

    @classmethod
    def for_rows(
        cls, params: list[GenerationParams], device: torch.device
    ) -> PerRowSampling | None:
        """None when every row is greedy: the arg-max alone decides."""
        if all(p.greedy for p in params):
            return None
        return cls(
            torch.tensor([p.temperature or 1.0 for p in params], device=device),
            torch.tensor([p.top_p for p in params], device=device),
            torch.tensor([p.greedy for p in params], device=device),
        )

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.warp(scores)

    def warp(self, scores: torch.Tensor) -> torch.Tensor:
        scores = scores / self.temperature[:, None].to(scores.dtype)
        ascending, order = torch.sort(scores, dim=-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - self.top_p)[:, None]
        drop[:, -1] = False  # the most likely token always stays
        scores = scores.masked_fill(drop.scatter(1, order, drop), float("-inf"))
        best = scores.argmax(dim=-1, keepdim=True)
        only_best = torch.full_like(scores, float("-inf")).scatter(1, best, 0.0)
        return torch.where(self.greedy[:, None], only_best, scores)

    def sample(self, scores: torch.Tensor) -> torch.Tensor:
        """One token per row, drawn as ``generate`` draws (softmax, then one multinomial)."""
        probabilities = self.warp(scores).softmax(dim=-1)
        return torch.multinomial(probabilities, num_samples=1).squeeze(1)


# --- the static path: one ``generate`` call ------------------------------------------------


def _generate_static(
    model: Any, tokenizer: Any, rows: list[BatchRow], context_length: int | None
) -> None:
    """The rows as one left-padded (right-padded for encoders) ``generate`` call; finished rows
    ride along padded until the last one ends. Nobody joins mid-way."""
    live = open_rows(model, tokenizer, rows, context_length)
    if not live:
        return
    encoder_decoder = is_encoder_decoder(model)
    control = _RowControl(live)
    try:
        inputs = pad_prompts(
            [row.prompt for row in live],
            pad_id_of(model, tokenizer),
            left=not encoder_decoder,
            device=device_of(model),
        )
        control.offset = 1 if encoder_decoder else inputs["input_ids"].shape[1]
        params = [row.params for row in live]
        limit = max(row.decoder.max_new_tokens or 1 for row in live)
        config = _batch_config(model, tokenizer, params, limit)
        processors = PerRowSampling.for_rows(params, device_of(model))
        with decoding(model, live[0].params.seed):
            model.generate(
                **inputs,
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([control]),
                logits_processor=LogitsProcessorList([processors] if processors else []),
            )
        for row in live:  # rows generate stopped at the batch's length, not their own
            row.end("length")
    except BaseException as exc:
        for row in live:
            row.fail(exc)
        raise
    finally:
        for row in live:
            row.close()


def _batch_config(
    model: Any, tokenizer: Any, params: list[GenerationParams], max_new_tokens: int
) -> GenerationConfig:
    """The batch's shared settings. Sampling, when any row samples, is done by
    ``PerRowSampling``: transformers' own warpers are set to change nothing."""
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


class _RowControl(StoppingCriteria):
    """Called after each step: feeds every open row's new token to its decoder, and reports
    which rows are over (their end, stop text, limit, or client gone)."""

    def __init__(self, rows: list[OpenRow]) -> None:
        self.rows = rows
        self.offset = 0

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        newest = input_ids[:, -1].tolist()
        if input_ids.shape[1] > self.offset:
            for row, token in zip(self.rows, newest, strict=True):
                row.deliver(token)
        over = [row.over for row in self.rows]
        return torch.tensor(over, dtype=torch.bool, device=input_ids.device)
