"""Continuous batching: rows join a running batch between steps and leave when done, and each
still gets exactly the reply it gets alone.

``sharp`` is the tiny Llama with weights drawn at 0.3 instead of 0.02: its attention is peaked,
so a wrong position, a misaligned cache column or a missing mask changes its greedy text
(at 0.02 attention is nearly uniform and such mistakes can go unseen).

``admit_at`` plays the queue: it hands rows over at chosen calls (call 0 comes before the
first prefill, call k after k decoding steps). ``forwards`` records every forward the loop
makes (rows, new tokens, cached columns), which shows who decoded together and how long the
KV cache is.
"""

from __future__ import annotations

import copy
import functools
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import torch
from transformers import MistralConfig, MistralForCausalLM

from tests.inference.batch_rows import CONVERSATIONS, Recorder, alone, row_for
from tests.inference.tiny_models import tiny_causal
from tunesmith.inference.batch_generation import ContextLengthError, OpenRow, generate_rows
from tunesmith.inference.batching import Admit, Batcher, BatchRow
from tunesmith.inference.continuous import (
    PREFILL_BUDGET,
    _prefill_group,
    supports_continuous,
)
from tunesmith.inference.generation import GenerationParams, chat_prompt_ids
from tunesmith.training.packed_attention import use_packed_attention


def greedy(max_new_tokens: int) -> GenerationParams:
    return GenerationParams(max_new_tokens=max_new_tokens, temperature=0)


def admit_at(plan: dict[int, list[BatchRow]]) -> Admit:
    """Hands ``plan[k]`` over at the k-th call, whatever the room (the tests stay within 8)."""
    calls = itertools.count()

    def admit(running: int) -> list[BatchRow]:
        return plan.get(next(calls), [])

    return admit


def recorded(admit: Admit, taken: list[BatchRow]) -> Admit:
    """``admit``, keeping what it hands over in ``taken``."""

    def admit_and_record(running: int) -> list[BatchRow]:
        rows = admit(running)
        taken.extend(rows)
        return rows

    return admit_and_record


@dataclass
class Forward:
    rows: int
    new: int  # tokens fed per row: the prompt width in a prefill, 1 in a step
    cached: int  # columns in the KV cache before it


@pytest.fixture(scope="module")
def sharp(tokenizer):
    model = tiny_causal(tokenizer)
    draws = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:
                parameter.copy_(torch.randn(parameter.shape, generator=draws) * 0.3)
    return model


@pytest.fixture(scope="module")
def sharp_packed(sharp):
    """``sharp`` switched to per-example attention, as the model cache switches a CPU decoder."""
    model = copy.deepcopy(sharp)
    assert use_packed_attention(model)
    return model


@pytest.fixture
def forwards(sharp, monkeypatch) -> list[Forward]:
    return _spy_on_forwards(sharp, monkeypatch)


@pytest.fixture
def packed_forwards(sharp_packed, monkeypatch) -> list[Forward]:
    return _spy_on_forwards(sharp_packed, monkeypatch)


def _spy_on_forwards(model, monkeypatch) -> list[Forward]:
    calls: list[Forward] = []
    original = model.forward

    @functools.wraps(original)  # the loop inspects forward's parameters: keep them visible
    def spy(*args, **kwargs):
        ids = kwargs["input_ids"]
        cache = kwargs.get("cache", kwargs.get("past_key_values"))  # its name before 5.2x
        cached = cache.get_seq_length() if cache is not None else 0
        calls.append(Forward(ids.shape[0], ids.shape[1], cached))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    return calls


def full_length(model, tokenizer, messages, params):
    """The reply alone, checked to run its whole length (no end token): the tests count steps."""
    reply = alone(model, tokenizer, messages, params)
    assert reply.completion_tokens == params.max_new_tokens, "pick a reply without an end token"
    return reply


def test_the_tiny_llama_is_decoded_continuously_and_t5_is_not(sharp, seq2seq):
    assert supports_continuous(sharp)
    assert not supports_continuous(seq2seq)


def test_rows_admitted_while_others_decode_get_what_they_get_alone(sharp, tokenizer, forwards):
    # the first; then a longer prompt than the running cache and a shorter one; then one more
    # shorter prompt beside a sampled neighbour
    asks = [(CONVERSATIONS[0], greedy(16)), (CONVERSATIONS[1], greedy(10))]
    asks += [(CONVERSATIONS[2], greedy(12)), (CONVERSATIONS[0], greedy(5))]
    first, *second, fourth = [row_for(messages, params) for messages, params in asks]
    hot = row_for(CONVERSATIONS[2], GenerationParams(max_new_tokens=8, temperature=1.3))
    expected = [alone(sharp, tokenizer, messages, params) for messages, params in asks]
    full_length(sharp, tokenizer, *asks[0])  # the first is still decoding when the rest join
    forwards.clear()

    generate_rows(sharp, tokenizer, [first], admit=admit_at({3: second, 6: [fourth, hot]}))

    for row, reply in zip([first, *second, fourth], expected, strict=True):
        assert row.sink.events == ["ready", "close"]
        assert row.sink.text == reply.text
        assert row.sink.last.finish_reason == reply.finish_reason
        assert row.sink.last.completion_tokens == reply.completion_tokens
    assert hot.sink.events == ["ready", "close"] and hot.sink.last.finish_reason
    # first alone for its prefill and 3 steps, then prefill of the two, then all three
    assert [(f.rows, f.new > 1) for f in forwards[:6]] == [
        (1, True), (1, False), (1, False), (1, False), (2, True), (3, False)
    ]  # fmt: skip
    assert max(f.rows for f in forwards) == 5


def test_a_finished_row_leaves_at_once_and_its_columns_leave_the_cache(sharp, tokenizer, forwards):
    long_ask = [{"role": "user", "content": "A much longer question than the other one. " * 3}]
    log: list[tuple[str, str]] = []
    short = row_for(long_ask, greedy(2), name="short", log=log)
    lasting = row_for(CONVERSATIONS[2], greedy(12), name="lasting", log=log)
    expected = [
        alone(sharp, tokenizer, long_ask, greedy(2)),
        full_length(sharp, tokenizer, CONVERSATIONS[2], greedy(12)),
    ]
    forwards.clear()

    generate_rows(sharp, tokenizer, [short, lasting])

    assert [short.sink.text, lasting.sink.text] == [e.text for e in expected]
    lasting_chunks = [i for i, entry in enumerate(log) if entry == ("lasting", "chunk")]
    assert log.index(("short", "close")) < lasting_chunks[2]  # closed, not padded along
    steps = [f for f in forwards if f.new == 1]
    assert [f.rows for f in steps] == [2] + [1] * 10
    # once the long prompt left, the cache holds only the lasting row's own tokens
    prompt = len(chat_prompt_ids(tokenizer, CONVERSATIONS[2]))
    assert prompt < len(chat_prompt_ids(tokenizer, long_ask))
    assert [f.cached for f in steps[1:]] == [prompt + k for k in range(1, 11)]


def test_a_row_whose_client_leaves_mid_reply_leaves_the_batch(sharp, tokenizer, forwards):
    leaving = row_for(CONVERSATIONS[0], greedy(20))
    left_after: list[int] = []  # forwards made when the client left

    def leave_after_three_chunks(sink: Recorder) -> None:
        if len(sink.chunks) == 3:
            leaving.cancelled.set()
            left_after.append(len(forwards))

    leaving.sink.on_chunk = leave_after_three_chunks
    staying = row_for(CONVERSATIONS[1], greedy(12))
    whole = full_length(sharp, tokenizer, CONVERSATIONS[0], greedy(20))
    expected = full_length(sharp, tokenizer, CONVERSATIONS[1], greedy(12))
    forwards.clear()

    generate_rows(sharp, tokenizer, [leaving, staying])

    assert leaving.sink.events == ["ready", "close"]  # no last chunk: nobody reads it
    assert len(leaving.sink.chunks) == 3 and whole.text.startswith(leaving.sink.text)
    assert staying.sink.text == expected.text
    (left,) = left_after
    assert [f.rows for f in forwards] == [2] * left + [1] * (len(forwards) - left)
    assert len(forwards) == 12  # the prefill and 11 steps: staying went on to its end


def test_a_bad_prompt_among_admitted_rows_fails_alone(sharp, tokenizer):
    first = row_for(CONVERSATIONS[0], greedy(10))
    bad = row_for([{"role": "user", "content": "word " * 200}], greedy(5))
    good = row_for(CONVERSATIONS[2], greedy(5))

    generate_rows(sharp, tokenizer, [first], admit=admit_at({2: [bad, good]}), context_length=256)

    assert isinstance(bad.sink.error, ContextLengthError)
    assert bad.sink.events == ["fail", "close"]
    assert first.sink.text == alone(sharp, tokenizer, CONVERSATIONS[0], greedy(10)).text
    assert good.sink.text == alone(sharp, tokenizer, CONVERSATIONS[2], greedy(5)).text


@pytest.mark.parametrize("failing_call", [3, 4], ids=["admitted-rows-prefill", "a-step"])
def test_an_error_in_the_model_fails_every_open_row(sharp, tokenizer, monkeypatch, failing_call):
    original, calls = sharp.forward, itertools.count()

    @functools.wraps(original)
    def fails_once(*args, **kwargs):
        if next(calls) == failing_call:
            raise RuntimeError("device lost")
        return original(*args, **kwargs)

    monkeypatch.setattr(sharp, "forward", fails_once)
    rows = [row_for(CONVERSATIONS[0], greedy(12)), row_for(CONVERSATIONS[1], greedy(12))]
    admitted = row_for(CONVERSATIONS[2], greedy(12))
    # forwards: 0 prefill, 1 and 2 steps, 3 the admitted row's prefill, 4 a step of three
    with pytest.raises(RuntimeError, match="device lost"):
        generate_rows(sharp, tokenizer, rows, admit=admit_at({2: [admitted]}))
    for row in [*rows, admitted]:
        assert row.sink.events == ["ready", "fail", "close"]
        assert str(row.sink.error) == "device lost"


def test_a_sliding_window_model_decodes_admitted_rows_as_alone(tokenizer):
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        sliding_window=8,  # far shorter than the prompts: the window decides every step
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    assert supports_continuous(model)
    asks = [(CONVERSATIONS[1], greedy(12)), (CONVERSATIONS[0], greedy(9))]
    asks.append((CONVERSATIONS[2], greedy(7)))
    first, *later = [row_for(messages, params) for messages, params in asks]

    generate_rows(model, tokenizer, [first], admit=admit_at({2: later}))

    for row, (messages, params) in zip([first, *later], asks, strict=True):
        assert row.sink.text == alone(model, tokenizer, messages, params).text


# --- with the queue ------------------------------------------------------------------------


def test_a_burst_joins_the_first_request_at_its_next_step_up_to_eight_rows(
    sharp, tokenizer, forwards
):
    """The leader starts with the first request alone; the nine sent just after join its
    batch as it decodes (seven at its next step, in prefill groups, two as rows finish),
    never more than 8 rows."""
    asks = [(CONVERSATIONS[i % 3], greedy(3 + i)) for i in range(10)]
    expected = [alone(sharp, tokenizer, m, p).text for m, p in asks]
    reached, gate = threading.Event(), threading.Event()

    def hold_first_step(sink: Recorder) -> None:
        reached.set()
        assert gate.wait(10)

    rows = [row_for(m, p) for m, p in asks]
    rows[0].sink.on_chunk = hold_first_step
    runs: list[list[BatchRow]] = []

    def run(first: list[BatchRow], admit: Admit) -> None:
        runs.append(first)
        generate_rows(sharp, tokenizer, first, admit=admit)

    forwards.clear()
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(pool)
        batcher.submit("m", rows[0], run)
        assert reached.wait(10)  # the first request decodes, alone
        for row in rows[1:]:
            batcher.submit("m", row, run)
        gate.set()
    assert runs == [[rows[0]]]  # one batch: everyone else was admitted into it
    assert [row.sink.text for row in rows] == expected
    assert max(f.rows for f in forwards) == 8
    assert forwards[0].rows == 1 and forwards[0].new > 1  # the leader's prefill
    # the seven are prefilled one group after another, with no step between the groups
    after_leader = list(itertools.dropwhile(lambda f: f.new == 1, forwards[1:]))
    joined = list(itertools.takewhile(lambda f: f.new > 1, after_leader))
    assert sum(f.rows for f in joined) == 7


def test_a_burst_is_prefilled_in_groups_each_replying_before_the_next(
    sharp, tokenizer, forwards, monkeypatch
):
    """Prompts that arrive together are prefilled in groups of at most the budget's padded
    tokens, and a group's first tokens go out before the next group's prefill runs: the
    first replies start after one small prefill instead of after all of them."""
    asks = [(CONVERSATIONS[i % 3], greedy(4)) for i in range(6)]
    expected = [alone(sharp, tokenizer, m, p).text for m, p in asks]
    rows = [row_for(m, p, name=str(i)) for i, (m, p) in enumerate(asks)]
    first_token_after: dict[str, int] = {}  # row -> forwards run when its first token came
    deliver = OpenRow.deliver

    def recording_deliver(self: OpenRow, token: int) -> None:
        first_token_after.setdefault(self.row.sink.name, len(forwards))
        deliver(self, token)

    monkeypatch.setattr(OpenRow, "deliver", recording_deliver)
    forwards.clear()

    generate_rows(sharp, tokenizer, rows)

    prefills = list(itertools.takewhile(lambda f: f.new > 1, forwards))
    budget = PREFILL_BUDGET["cpu"]
    assert len(prefills) > 1 and sum(f.rows for f in prefills) == 6
    assert all(f.rows == 1 or f.rows * f.new <= budget for f in prefills)
    groups = [g for g, f in enumerate(prefills) for _ in range(f.rows)]
    assert [first_token_after[str(i)] for i in range(6)] == [g + 1 for g in groups]
    assert [row.sink.text for row in rows] == expected


@pytest.mark.parametrize(
    ("lengths", "budget", "taken"),
    [([50, 20, 40], 128, 2), ([200, 10], 128, 1), ([10, 10, 10], 128, 3), ([30] * 5, 60, 2)],
)
def test_a_prefill_group_fills_the_budget_in_order_and_takes_at_least_one(lengths, budget, taken):
    rows = [OpenRow(row_for(CONVERSATIONS[0], greedy(1)), [0] * n, None) for n in lengths]
    assert _prefill_group(rows, budget) == taken


@pytest.mark.parametrize(
    ("lengths", "budget", "taken"),
    [([50, 20, 40], 128, 3), ([100, 30], 128, 1), ([200, 10], 128, 1), ([30] * 5, 60, 2)],
)
def test_a_packed_prefill_group_counts_its_prompt_tokens_not_padding(lengths, budget, taken):
    # prompts that begin differently: nothing to share
    rows = [
        OpenRow(row_for(CONVERSATIONS[0], greedy(1)), [i + 1] + [0] * (n - 1), None)
        for i, n in enumerate(lengths)
    ]
    assert _prefill_group(rows, budget, packed=True) == taken


def test_a_packed_prefill_group_counts_shared_tokens_once():
    """Five 30-token prompts with the same first 20 tokens compute 30 + 4 x 10 tokens."""
    prompts = [list(range(1, 21)) + [50 + i] * 10 for i in range(5)]
    rows = [OpenRow(row_for(CONVERSATIONS[0], greedy(1)), prompt, None) for prompt in prompts]
    assert _prefill_group(rows, 70, packed=True) == 5
    assert _prefill_group(rows, 69, packed=True) == 4


def test_a_packed_model_prefills_a_burst_in_one_row_and_each_row_replies_as_alone(
    sharp_packed, tokenizer, packed_forwards, monkeypatch
):
    """A model on per-example attention gets a group's prompts end to end in one row, with
    no padding; its cache is then cut into one left-padded row per prompt. Prompts of
    different lengths, rows joining mid-flight and rows leaving early all keep the reply
    they get alone (``sharp``'s peaked attention turns a misplaced cache column into other
    text)."""
    monkeypatch.setattr("tunesmith.inference.continuous.PACKED_PREFILL_BUDGET", 64)
    asks = [(CONVERSATIONS[i % 3], greedy(3 + 2 * i)) for i in range(6)]
    late = [(CONVERSATIONS[1], greedy(6)), (CONVERSATIONS[2], greedy(9))]
    expected = [alone(sharp_packed, tokenizer, m, p).text for m, p in asks + late]
    prompts = [len(chat_prompt_ids(tokenizer, m)) for m, _ in asks]
    assert len(set(prompts)) == 3  # three prompt lengths
    rows = [row_for(m, p) for m, p in asks]
    late_rows = [row_for(m, p) for m, p in late]
    packed_forwards.clear()

    generate_rows(sharp_packed, tokenizer, rows, admit=admit_at({4: late_rows}))

    assert [row.sink.text for row in rows + late_rows] == expected
    prefills = [f for f in packed_forwards if f.new > 1]
    assert all(f.rows == 1 and f.cached == 0 for f in prefills)  # one row each, a fresh cache
    # every prompt token at most once, no padding (a repeated prompt in a group computes
    # its tokens once: decision 025)
    assert sum(f.new for f in prefills) <= sum(prompts) + sum(
        len(chat_prompt_ids(tokenizer, m)) for m, _ in late
    )
    assert any(f.new > max(prompts) for f in prefills)  # some groups held several prompts
    assert all(f.new <= 64 or f.new in prompts for f in prefills)
    assert max(f.rows for f in packed_forwards) >= 6  # the late rows decode beside the rest


def test_prompts_that_begin_alike_are_prefilled_once_and_reply_as_alone(
    sharp_packed, tokenizer, packed_forwards, monkeypatch
):
    """A packed prefill computes the system prompt and template header the prompts share
    once; each prompt's cache row gets those columns copied in, so every reply is the one
    the prompt gets alone."""
    monkeypatch.setattr("tunesmith.inference.continuous.PACKED_PREFILL_BUDGET", 4096)
    system = {"role": "system", "content": "Answer in one short line, politely."}
    asks = ["Why?", "What is the time", "Name a colour.", "Count to three", "hello"]
    messages = [[system, {"role": "user", "content": ask}] for ask in asks]
    params = [greedy(4 + i) for i in range(len(asks))]
    expected = [
        alone(sharp_packed, tokenizer, m, p).text for m, p in zip(messages, params, strict=True)
    ]
    prompts = [chat_prompt_ids(tokenizer, m) for m in messages]
    common = next(i for i, column in enumerate(zip(*prompts, strict=False)) if len(set(column)) > 1)
    assert common >= 40
    rows = [row_for(m, p) for m, p in zip(messages, params, strict=True)]
    packed_forwards.clear()

    generate_rows(sharp_packed, tokenizer, rows)

    assert [row.sink.text for row in rows] == expected
    (prefill,) = [f for f in packed_forwards if f.new > 1]  # one group
    assert prefill.new == sum(len(p) for p in prompts) - (len(prompts) - 1) * common


def test_a_seeded_request_never_shares_a_batch(sharp, tokenizer):
    reached, gate = threading.Event(), threading.Event()

    def hold_first_step(sink: Recorder) -> None:
        reached.set()
        assert gate.wait(10)

    seeded = GenerationParams(max_new_tokens=8, temperature=1.0, seed=3)
    first = row_for(CONVERSATIONS[0], greedy(12), name="first", on_chunk=hold_first_step)
    joining = row_for(CONVERSATIONS[2], greedy(6), name="joining")
    lucky = row_for(CONVERSATIONS[1], seeded, name="seeded")
    behind = row_for(CONVERSATIONS[2], greedy(4), name="behind")
    full_length(sharp, tokenizer, CONVERSATIONS[0], greedy(12))  # first is still open
    batches: list[tuple[list[str], list[str]]] = []

    def run(rows: list[BatchRow], admit: Admit) -> None:
        taken: list[BatchRow] = []
        generate_rows(sharp, tokenizer, rows, admit=recorded(admit, taken))
        batches.append(([r.sink.name for r in rows], [r.sink.name for r in taken]))

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(pool)
        batcher.submit("m", first, run)
        assert reached.wait(10)
        for row in (joining, lucky, behind):
            batcher.submit("m", row, run)
        gate.set()
    assert batches == [(["first"], ["joining"]), (["seeded"], []), (["behind"], [])]
    assert lucky.sink.text == alone(sharp, tokenizer, CONVERSATIONS[1], seeded).text
