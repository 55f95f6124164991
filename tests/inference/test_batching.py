"""Batching: rows with their own settings decoded together give what each would get alone
(the continuous loop for the tiny Llama, one ``generate`` call for the tiny T5); the queue
forms batches of what waits, hands a running batch what queues meanwhile, seeded rows alone.

Rows admitted while others decode, rows leaving, and the KV cache are in ``test_continuous``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from tests.inference.batch_rows import CONVERSATIONS, Recorder, alone, row_for
from tunesmith.inference.batch_generation import ContextLengthError, generate_rows
from tunesmith.inference.batching import Admit, Batcher, BatchRow
from tunesmith.inference.generation import GenerationParams, chat_prompt_ids


def test_greedy_rows_with_their_own_lengths_match_each_request_alone(causal, tokenizer):
    params = [GenerationParams(max_new_tokens=n, temperature=0) for n in (12, 3, 7)]
    rows = [row_for(m, p) for m, p in zip(CONVERSATIONS, params, strict=True)]
    generate_rows(causal, tokenizer, rows)
    for row, messages, p in zip(rows, CONVERSATIONS, params, strict=True):
        expected = alone(causal, tokenizer, messages, p)
        sink = row.sink
        assert sink.events == ["ready", "close"]
        assert sink.text == expected.text
        assert sink.last.finish_reason == expected.finish_reason == "length"
        assert sink.last.completion_tokens == p.max_new_tokens
        assert sink.last.prompt_tokens == expected.prompt_tokens


def test_a_stop_sequence_ends_only_its_own_row(causal, tokenizer):
    full = alone(
        causal, tokenizer, CONVERSATIONS[0], GenerationParams(max_new_tokens=12, temperature=0)
    )
    stop = full.text[len(full.text) // 2 :][:3]
    assert stop.strip(), "the random model's text should have something to stop at"
    stopped = GenerationParams(max_new_tokens=12, temperature=0, stop=[stop])
    rows = [
        row_for(CONVERSATIONS[0], stopped),
        row_for(CONVERSATIONS[0], stopped.model_copy(update={"stop": []})),
    ]
    generate_rows(causal, tokenizer, rows)
    expected = alone(causal, tokenizer, CONVERSATIONS[0], stopped)
    assert rows[0].sink.text == expected.text == full.text[: full.text.find(stop)]
    assert rows[0].sink.last.finish_reason == "stop"
    assert rows[1].sink.text == full.text  # its neighbour's stop did not end it
    assert rows[1].sink.last.finish_reason == "length"


def test_a_greedy_row_beside_sampled_rows_stays_greedy(causal, tokenizer):
    greedy = GenerationParams(max_new_tokens=10, temperature=0)
    hot = GenerationParams(max_new_tokens=10, temperature=1.5, top_p=0.9)
    rows = [
        row_for(CONVERSATIONS[0], hot),
        row_for(CONVERSATIONS[0], greedy),
        row_for(CONVERSATIONS[1], hot),
    ]
    torch.manual_seed(0)
    generate_rows(causal, tokenizer, rows)
    assert rows[1].sink.text == alone(causal, tokenizer, CONVERSATIONS[0], greedy).text
    assert all(r.sink.last.finish_reason in ("stop", "length") for r in rows)


def test_per_row_top_p_of_almost_zero_is_greedy(causal, tokenizer):
    """A nucleus holding only the most likely token samples exactly the greedy reply, whatever
    the temperature: the per-row warper applies top-p like transformers' own."""
    narrow = GenerationParams(max_new_tokens=10, temperature=1.0, top_p=1e-6)
    wide = GenerationParams(max_new_tokens=10, temperature=1.0)
    rows = [row_for(CONVERSATIONS[1], narrow), row_for(CONVERSATIONS[1], wide)]
    generate_rows(causal, tokenizer, rows)
    greedy = alone(
        causal, tokenizer, CONVERSATIONS[1], GenerationParams(max_new_tokens=10, temperature=0)
    )
    assert rows[0].sink.text == greedy.text


def test_a_cancelled_row_stops_and_the_others_go_on(causal, tokenizer):
    params = GenerationParams(max_new_tokens=12, temperature=0)
    rows = [row_for(CONVERSATIONS[0], params), row_for(CONVERSATIONS[0], params)]
    rows[0].cancelled.set()
    generate_rows(causal, tokenizer, rows)
    assert rows[0].sink.chunks == [] and rows[0].sink.events == ["ready", "close"]
    assert rows[1].sink.text == alone(causal, tokenizer, CONVERSATIONS[0], params).text


def test_a_prompt_that_fills_the_context_fails_alone(causal, tokenizer):
    params = GenerationParams(max_new_tokens=5, temperature=0)
    long = [{"role": "user", "content": "word " * 200}]
    rows = [row_for(long, params), row_for(CONVERSATIONS[2], params)]
    generate_rows(causal, tokenizer, rows, context_length=64)
    assert isinstance(rows[0].sink.error, ContextLengthError)
    assert rows[0].sink.error.code == "context_length_exceeded"
    assert rows[0].sink.events == ["fail", "close"]
    assert rows[1].sink.text == alone(causal, tokenizer, CONVERSATIONS[2], params).text


def test_the_reply_is_cut_where_the_context_ends(causal, tokenizer):
    prompt_tokens = len(chat_prompt_ids(tokenizer, CONVERSATIONS[0]))
    row = row_for(CONVERSATIONS[0], GenerationParams(max_new_tokens=50, temperature=0))
    generate_rows(causal, tokenizer, [row], context_length=prompt_tokens + 4)
    assert row.sink.last.finish_reason == "length"
    assert row.sink.last.completion_tokens == 4


def test_a_seeded_row_gives_what_the_same_seed_gives_alone(causal, tokenizer):
    params = GenerationParams(max_new_tokens=10, temperature=1.0, seed=7)
    row = row_for(CONVERSATIONS[0], params)
    generate_rows(causal, tokenizer, [row])
    assert row.sink.text == alone(causal, tokenizer, CONVERSATIONS[0], params).text
    with pytest.raises(ValueError, match="alone"):
        generate_rows(causal, tokenizer, [row_for(CONVERSATIONS[0], params)] * 2)


# --- the queue -----------------------------------------------------------------------------


def test_requests_that_arrive_during_a_batch_form_the_next_one():
    batches: list[list[str]] = []
    first_started, release = threading.Event(), threading.Event()

    def run(rows: list[BatchRow], admit: Admit) -> None:
        batches.append([r.params.stop[0] for r in rows])
        first_started.set()
        release.wait(10)
        for r in rows:
            r.sink.close()

    def row(name: str, seed: int | None = None) -> BatchRow:
        return BatchRow(lambda t, e: [], GenerationParams(stop=[name], seed=seed), Recorder())

    with ThreadPoolExecutor(2) as pool:
        batcher = Batcher(pool, max_batch=3)
        batcher.submit("m", row("a"), run)
        assert first_started.wait(10)
        for name, seed in [("b", None), ("s", 1), ("c", None), ("d", None), ("e", None)]:
            batcher.submit("m", row(name, seed), run)
        release.set()
    # the seeded row waits at the front for its turn and then runs alone
    assert batches == [["a"], ["b", "c", "d"], ["s"], ["e"]]


def test_a_failing_batch_fails_each_of_its_rows_and_the_queue_goes_on():
    def run(rows: list[BatchRow], admit: Admit) -> None:
        if any(r.params.stop == ["bad"] for r in rows):
            raise RuntimeError("model failed to load")
        for r in rows:
            r.sink.close()

    bad = BatchRow(lambda t, e: [], GenerationParams(stop=["bad"]), Recorder())
    later = BatchRow(lambda t, e: [], GenerationParams(), Recorder())
    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(pool)
        batcher.submit("m", bad, run)
        assert bad.sink.closed.wait(10)
        batcher.submit("m", later, run)
    assert bad.sink.events == ["fail", "close"]
    assert str(bad.sink.error) == "model failed to load"
    assert later.sink.events == ["close"]


def test_an_encoder_decoder_runs_one_static_batch_that_admits_nobody(seq2seq, tokenizer):
    def admit(running: int) -> list[BatchRow]:
        raise AssertionError("an encoder-decoder batch takes no rows mid-way")

    params = [GenerationParams(max_new_tokens=n, temperature=0) for n in (6, 2, 4)]
    rows = [row_for(m, p) for m, p in zip(CONVERSATIONS, params, strict=True)]
    generate_rows(seq2seq, tokenizer, rows, admit=admit)
    for row, messages, p in zip(rows, CONVERSATIONS, params, strict=True):
        assert row.sink.events == ["ready", "close"]
        assert row.sink.text == alone(seq2seq, tokenizer, messages, p).text


def test_a_running_batch_is_handed_what_queues_up_to_the_batch_limit():
    started, queued = threading.Event(), threading.Event()
    admitted: list[list[str]] = []

    def run(rows: list[BatchRow], admit: Admit) -> None:
        started.set()
        assert queued.wait(10)
        admitted.append([r.params.stop[0] for r in admit(len(rows))])  # room for 2
        admitted.append([r.params.stop[0] for r in admit(3)])  # full
        admitted.append([r.params.stop[0] for r in admit(2)])  # room for 1
        for r in rows:
            r.sink.close()

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(pool, max_batch=3)
        batcher.submit("m", _named("a"), run)
        assert started.wait(10)
        for name in "bcde":
            batcher.submit("m", _named(name), run)
        batcher.submit("other", _named("x"), run)  # another key's rows are never handed over
        queued.set()
    assert admitted[:3] == [["b", "c"], [], ["d"]]


def test_a_waiting_seeded_row_stops_admission_so_it_runs_next():
    started, queued = threading.Event(), threading.Event()
    batches: list[tuple[list[str], list[str]]] = []

    def run(rows: list[BatchRow], admit: Admit) -> None:
        if not batches:
            started.set()
            assert queued.wait(10)
        taken = admit(len(rows)) + admit(len(rows))
        batches.append(([r.params.stop[0] for r in rows], [r.params.stop[0] for r in taken]))
        for r in rows + taken:
            r.sink.close()

    with ThreadPoolExecutor(1) as pool:
        batcher = Batcher(pool, max_batch=4)
        batcher.submit("m", _named("a"), run)
        assert started.wait(10)
        for name, seed in [("b", None), ("s", 1), ("c", None)]:
            batcher.submit("m", _named(name, seed), run)
        queued.set()
    # b joins a; c, behind the seeded row, waits for it; the seeded row admits nobody
    assert batches == [(["a"], ["b"]), (["s"], []), (["c"], [])]


def _named(name: str, seed: int | None = None) -> BatchRow:
    return BatchRow(lambda t, e: [], GenerationParams(stop=[name], seed=seed), Recorder())
