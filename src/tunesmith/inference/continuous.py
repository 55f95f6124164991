"""Continuous batching: a decode loop of our own that admits rows between steps.

``generate`` decodes a batch fixed at its start: a request arriving a moment later waits for
the whole batch, and a finished row rides along until the longest one ends. Here the batch
changes at every step (iteration-level scheduling, as vLLM and TGI do it):

* **admission**: before each step the loop asks the queue (``Batcher``'s ``admit``) for rows
  queued meanwhile. Their prompts are prefilled in groups of at most ``PREFILL_BUDGET``
  padded tokens, one group after another, each group's first tokens delivered before the
  next group's prefill (so a burst of prompts does not keep every one of them waiting for
  all of their prefills). A group is left-padded, with explicit position
  ids (the mask's cumulative sum, as ``generate`` computes them) into a fresh
  ``DynamicCache``. A model on per-example attention (a CPU decoder the model cache
  switched, decision 024) gets the group's prompts end to end in one row instead, without
  padding, up to ``PACKED_PREFILL_BUDGET`` tokens; prompts that begin with the same tokens
  compute them once (decision 025), and the row's cache is cut into one left-padded row per
  prompt, each with its shared columns copied in. Either way the group's cache is then
  merged into the running one: both are left-padded to a common length along the sequence
  axis and concatenated along the batch axis, and the attention mask marks the padding. A
  row's tokens are always its last columns, contiguous, so column distance is position
  distance (sliding-window masks stay right).
* **a step**: every open row feeds its newest token at its own next position; the logits are
  sampled per row (``PerRowSampling``: a greedy row takes its arg-max, so it decodes as it
  would alone) and each token goes to its row's ``DeltaDecoder`` (end token, stop sequences,
  ``max_new_tokens``, text deltas).
* **leaving**: a row that is over (its end, stop text or limit, or its client gone) is closed
  at once and its index dropped from the cache; leading columns that are padding for every
  remaining row are cut, so the cache is never longer than its longest live row.

The cache is a ``DynamicCache`` of plain full-attention layers whatever the architecture: we
cut and join its key/value tensors ourselves. A sliding-window model therefore keeps its whole
past (more memory), and its attention mask still applies the window. Models whose cache is
not plain keys and values (recurrent or linear-attention layers, chunked attention, shared KV
layers), whose forward takes no cache (``cache``, or ``past_key_values`` before transformers
5.2x) or no ``position_ids``, and encoder-decoders are not decoded here: ``generate_rows``
runs them as one static ``generate`` batch.

Only the request's settings shape the logits (temperature, top-p, greedy): sampling options
in the model's own ``generation_config`` (a repetition penalty, say) are not applied.

A seeded row runs alone, nobody admitted (its samples must not depend on its neighbours).
"""

from __future__ import annotations

import inspect
from typing import Any, cast

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, get_layer_types_and_kwargs

from tunesmith.inference.batch_generation import OpenRow, PerRowSampling, open_rows
from tunesmith.inference.batching import Admit, BatchRow, admit_nothing
from tunesmith.inference.generation import (
    decoding,
    device_of,
    is_encoder_decoder,
    pad_id_of,
    pad_prompts,
)
from tunesmith.training.batching import SharedPlacement, share_prefixes
from tunesmith.training.packed_attention import uses_packed_attention

_PLAIN_ATTENTION = {"full_attention", "sliding_attention"}


def supports_continuous(model: Any) -> bool:
    """Whether ``decode_continuously`` can drive ``model`` (see the module docstring)."""
    if is_encoder_decoder(model):
        return False
    base = _transformers_model(model)
    if _cache_keyword(base) is None:
        return False
    if not {"position_ids", "attention_mask"} <= _forward_parameters(base):
        return False
    config = base.config.get_text_config(decoder=True)
    layer_types, _ = get_layer_types_and_kwargs(config)
    return set(layer_types) <= _PLAIN_ATTENTION


def decode_continuously(
    model: Any,
    tokenizer: Any,
    rows: list[BatchRow],
    admit: Admit | None,
    *,
    context_length: int | None = None,
) -> None:
    """Decode ``rows`` and every row ``admit`` hands over between steps, until none is open.

    Each row's sink is told ``ready()`` (or ``fail()`` for a prompt that cannot be used),
    gets its chunks, and is closed as soon as the row is over. An error in the model fails
    every open row and is raised.
    """
    seed = rows[0].params.seed if rows else None
    if admit is None or seed is not None:
        admit = admit_nothing
    batch = _RunningBatch(model, tokenizer, context_length)
    newcomers = list(rows)
    try:
        with decoding(model, seed):
            while True:
                # rows queued while the model loaded, or during the last step, join now
                newcomers += admit(len(batch.rows) + len(newcomers))
                batch.admit(newcomers)
                newcomers = []
                batch.release_finished()
                if not batch.rows:
                    return
                batch.step()
                batch.release_finished()
    except BaseException as exc:
        batch.fail(exc)
        raise


class _RunningBatch:
    """The rows decoding together and their shared KV cache.

    Row ``i`` of ``rows`` is row ``i`` of every cache tensor, of ``mask`` (1 where a column
    holds one of the row's tokens, 0 for padding; as wide as the cache) and of ``pending``
    (the row's newest token, sampled but not yet fed to the model).
    """

    def __init__(self, model: Any, tokenizer: Any, context_length: int | None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.device = device_of(model)
        self.pad_id = pad_id_of(model, tokenizer)
        self.logits_kwargs = (
            {"logits_to_keep": 1}  # the prefill needs the last position's logits only
            if "logits_to_keep" in _forward_parameters(_transformers_model(model))
            else {}
        )
        self.cache_keyword = _cache_keyword(_transformers_model(model)) or "cache"
        # a model switched to per-example attention prefills a group packed in one row
        self.packs = uses_packed_attention(_transformers_model(model))
        self.rows: list[OpenRow] = []
        self.joining: list[OpenRow] = []  # rows opened, not yet prefilled into ``rows``
        self.cache = DynamicCache()  # plain full-attention layers, created as the model fills them
        self.mask = torch.zeros((0, 0), dtype=torch.long, device=self.device)
        self.pending = torch.zeros((0,), dtype=torch.long, device=self.device)
        self.sampling: PerRowSampling | None = None

    # --- admission -------------------------------------------------------------------------

    def admit(self, rows: list[BatchRow]) -> None:
        """Open ``rows``, prefill them in groups of at most ``prefill_budget`` padded prompt
        tokens and merge each group into the running batch; a group's first tokens are
        sampled and delivered as soon as it is prefilled, before the next group's prefill."""
        self.joining = open_rows(self.model, self.tokenizer, rows, self.context_length)
        budget = prefill_budget(self.device, packed=self.packs)
        while self.joining:
            group = self.joining[: _prefill_group(self.joining, budget, packed=self.packs)]
            if self.packs:
                cache, mask, logits = self._prefill_packed(group)
            else:
                cache, mask, logits = self._prefill_padded(group)
            sampling = PerRowSampling.for_rows([row.params for row in group], self.device)
            tokens = _pick(logits, sampling)
            self._deliver(group, tokens)
            self._join(cache, mask, tokens, group)

    def _prefill_padded(
        self, group: list[OpenRow]
    ) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """The group left-padded into a batch: its cache, mask and last positions' logits."""
        inputs = pad_prompts(
            [row.prompt for row in group], self.pad_id, left=True, device=self.device
        )
        mask = inputs["attention_mask"]
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache()
        logits = self._forward(inputs["input_ids"], mask, positions, cache)
        return cache, mask, logits

    def _prefill_packed(
        self, group: list[OpenRow]
    ) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """The group's prompts end to end in one row, no padding; the per-example attention
        (``training/packed_attention.py``) reads each prompt's span from the position ids,
        which restart at 0 for each. Prompts that begin with the same tokens (a chat
        template's header and system prompt) compute them once (``share_prefixes``,
        decision 025). The row's cache is then cut into one left-padded row per prompt, as
        ``_prefill_padded`` would have made it."""
        prompts = [row.prompt for row in group]
        layout = _shared_layout(prompts)
        kept = [len(prompts[place.index]) - place.shared for place in layout]
        ids = [t for place in layout for t in prompts[place.index][place.shared :]]
        positions = torch.cat(
            [torch.arange(place.shared, len(prompts[place.index])) for place in layout]
        )
        ends = torch.tensor(kept).cumsum(0) - 1
        cache = DynamicCache()
        logits = self._forward(
            torch.tensor([ids], device=self.device),
            None,
            positions[None].to(self.device),
            cache,
            ends=ends.to(self.device),
        )
        lengths = [len(prompt) for prompt in prompts]
        width = max(lengths)
        for layer in _layers(cache):
            keys, values = _filled(layer)
            layer.keys = _rows_of(keys, layout, kept, lengths, width)
            layer.values = _rows_of(values, layout, kept, lengths, width)
        columns = torch.arange(width, device=self.device)
        starts = width - torch.tensor(lengths, device=self.device)
        mask = (columns[None, :] >= starts[:, None]).long()
        in_group_order = torch.tensor([place.index for place in layout]).argsort()
        return cache, mask, logits[in_group_order.to(logits.device)]

    def _join(
        self, cache: DynamicCache, mask: torch.Tensor, tokens: torch.Tensor, group: list[OpenRow]
    ) -> None:
        if not self.rows:
            self.cache = cache
            self.mask = mask
        else:
            width = max(self.mask.shape[1], mask.shape[1])
            _append_rows(self.cache, cache, width)
            self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(mask, width)])
        self.pending = torch.cat([self.pending, tokens])
        self.rows += group
        self.joining = self.joining[len(group) :]
        self.sampling = PerRowSampling.for_rows([row.params for row in self.rows], self.device)

    # --- decoding --------------------------------------------------------------------------

    def step(self) -> None:
        """Feed every row's pending token; sample and deliver the next one."""
        mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=-1)
        positions = self.mask.sum(dim=-1, keepdim=True)  # the row's tokens so far
        logits = self._forward(self.pending[:, None], mask, positions, self.cache)
        self.mask = mask
        self.pending = _pick(logits, self.sampling)
        self._deliver(self.rows, self.pending)

    def _forward(
        self,
        input_ids: torch.Tensor,
        mask: torch.Tensor | None,
        positions: torch.Tensor,
        cache: DynamicCache,
        ends: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The next-token logits of each row, in float32 as ``generate`` samples them; with
        ``ends``, of those positions of one packed row (one per prompt, no mask)."""
        keep: dict[str, Any]
        if ends is None:
            keep = self.logits_kwargs
        else:
            keep = {"logits_to_keep": ends} if self.logits_kwargs else {}
        output = self.model(
            input_ids=input_ids,
            # without padding anywhere, no mask: ``generate`` drops an all-ones mask too, and
            # a row alone then takes exactly the path it takes there
            attention_mask=None if mask is None or bool(mask.all()) else mask,
            position_ids=positions,
            use_cache=True,
            **{self.cache_keyword: cache},
            **keep,
        )
        if ends is None:
            return output.logits[:, -1, :].float()
        logits = output.logits[0]
        return (logits if keep else logits[ends]).float()

    @staticmethod
    def _deliver(rows: list[OpenRow], tokens: torch.Tensor) -> None:
        for row, token in zip(rows, tokens.tolist(), strict=True):
            row.deliver(token)

    # --- leaving ---------------------------------------------------------------------------

    def release_finished(self) -> None:
        """Close the rows that are over and take them out of the cache."""
        keep = [i for i, row in enumerate(self.rows) if not row.over]
        if len(keep) == len(self.rows):
            return
        for row in self.rows:
            if row.over:
                row.close()
        if not keep:
            self._empty()
            return
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.pending = self.pending[index]
        self.rows = [self.rows[i] for i in keep]
        self.sampling = PerRowSampling.for_rows([row.params for row in self.rows], self.device)
        self._drop_shared_padding()

    def _drop_shared_padding(self) -> None:
        """Cut leading columns no remaining row uses (a long row that left, say)."""
        first_used = int(self.mask.any(dim=0).int().argmax())
        if first_used == 0:
            return
        self.mask = self.mask[:, first_used:]
        for layer in _layers(self.cache):
            keys, values = _filled(layer)
            layer.keys, layer.values = keys[:, :, first_used:], values[:, :, first_used:]

    def _empty(self) -> None:
        self.rows = []
        self.cache = DynamicCache()
        self.mask = self.mask[:0, :0]
        self.pending = self.pending[:0]
        self.sampling = None

    def fail(self, error: BaseException) -> None:
        """An error in the model: every open row fails and is closed."""
        for row in [*self.rows, *self.joining]:
            row.fail(error)
            row.close()


# Padded prompt tokens one prefill may take. A prefill of many prompts keeps every one of
# them waiting for its first token until all are done: on two CPU cores seven ~80-token
# prompts prefilled together took ~1 s. In groups of ~128 tokens the first group's replies
# start after ~0.15 s, and no padding to the longest of many prompts is computed. A GPU
# prefills thousands of tokens in the time a CPU takes for one.
PREFILL_BUDGET = {"cpu": 128, "cuda": 4096}
# Tokens one packed prefill may compute (CPU, per-example attention; decision 024). A packed
# row has no padding, and its matrix products are wider: eight ~90-token prompts took ~0.7 s
# packed together against ~0.16 s each alone, so a time of about a + b x tokens with a ~80
# ms. Groups of two or three such prompts gave the lowest median first-token time in a burst
# of eight, and less total prefill time than one prompt at a time. The budget counts the
# tokens the row computes: prompts that begin alike share those tokens (decision 025), so
# more of them fit.
PACKED_PREFILL_BUDGET = 256


def prefill_budget(device: torch.device, *, packed: bool = False) -> int:
    if packed:
        return PACKED_PREFILL_BUDGET
    return PREFILL_BUDGET.get(device.type, PREFILL_BUDGET["cpu"])


def _prefill_group(rows: list[OpenRow], budget: int, *, packed: bool = False) -> int:
    """How many of ``rows``, in order, one prefill takes: as many as fit in ``budget``
    tokens (packed: the tokens the row computes, each prompt's own after the ones it shares;
    padded: each as long as the longest), and always the first."""
    longest = 0
    for count, row in enumerate(rows):
        longest = max(longest, len(row.prompt))
        if packed:
            cost = _packed_tokens([other.prompt for other in rows[: count + 1]])
        else:
            cost = (count + 1) * longest
        if count and cost > budget:
            return count
    return len(rows)


def _shared_layout(prompts: list[list[int]]) -> list[SharedPlacement]:
    """How a packed prefill lays ``prompts`` out: each keeps at least its last token, whose
    logits it needs."""
    return share_prefixes(prompts, [len(prompt) - 1 for prompt in prompts])


def _packed_tokens(prompts: list[list[int]]) -> int:
    """Tokens the packed row of ``prompts`` holds (``_shared_layout``)."""
    return sum(len(prompts[place.index]) - place.shared for place in _shared_layout(prompts))


def _pick(logits: torch.Tensor, sampling: PerRowSampling | None) -> torch.Tensor:
    """One token per row: the arg-max when every row is greedy (as ``generate`` does)."""
    if sampling is None:
        return logits.argmax(dim=-1)
    return sampling.sample(logits)


def _append_rows(cache: DynamicCache, newcomer: DynamicCache, width: int) -> None:
    """Put ``newcomer``'s rows after ``cache``'s, both left-padded to ``width`` columns."""
    for mine, theirs in zip(_layers(cache), _layers(newcomer), strict=True):
        (my_keys, my_values), (their_keys, their_values) = _filled(mine), _filled(theirs)
        mine.keys = torch.cat([_pad_left(my_keys, width), _pad_left(their_keys, width)])
        mine.values = torch.cat([_pad_left(my_values, width), _pad_left(their_values, width)])


def _rows_of(
    packed: torch.Tensor,
    layout: list[SharedPlacement],
    kept: list[int],
    lengths: list[int],
    width: int,
) -> torch.Tensor:
    """A packed row's keys or values ``[1, heads, sum(kept), head size]`` as one left-padded
    row per prompt, ``[prompts, heads, width, head size]`` in the group's order; a prompt
    that shared its first tokens gets them from its root's part."""
    parts = dict(zip((place.index for place in layout), packed.split(kept, dim=2), strict=True))
    rows = packed.new_zeros(len(lengths), packed.shape[1], width, packed.shape[3])
    for place in layout:
        start = width - lengths[place.index]
        if place.shared:
            shared = parts[place.root][0, :, : place.shared]
            rows[place.index, :, start : start + place.shared] = shared
        rows[place.index, :, start + place.shared :] = parts[place.index][0]
    return rows


def _layers(cache: DynamicCache) -> list[DynamicLayer]:
    """A ``DynamicCache()`` made without a config holds plain ``DynamicLayer``s only."""
    return cast(list[DynamicLayer], cache.layers)


def _filled(layer: DynamicLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's keys and values, ``[rows, heads, columns, head size]``."""
    assert layer.keys is not None and layer.values is not None  # a forward has filled it
    return layer.keys, layer.values


def _pad_left(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Zeros before the sequence axis's columns up to ``width`` (a mask's last axis, a key's
    or value's third): the attention mask hides them."""
    axis = 1 if tensor.dim() == 2 else 2
    missing = width - tensor.shape[axis]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)


def _transformers_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (whose forward passes keywords through)."""
    unwrap = getattr(model, "get_base_model", None)
    return unwrap() if callable(unwrap) else model


def _forward_parameters(model: Any) -> set[str]:
    return set(inspect.signature(model.forward).parameters)


def _cache_keyword(model: Any) -> str | None:
    """The name ``model.forward`` takes its KV cache by: ``cache`` since transformers 5.2x,
    ``past_key_values`` before (5.17 on the GPU machine; pyproject allows any 5.x)."""
    parameters = _forward_parameters(model)
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)
