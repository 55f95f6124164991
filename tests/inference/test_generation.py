"""Generation semantics on a tiny random Llama: stops, finish reasons, seeds, batching, streams.

A random model's greedy output is arbitrary but fixed, so each test first reads the unstopped
greedy text and then places stop sequences / end tokens inside it.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tunesmith.errors import ConfigError
from tunesmith.inference.generation import (
    GenerationParams,
    chat_prompt_ids,
    decoding,
    generate_batch,
    generate_chat,
    generate_completion,
    stream_chat,
)

MESSAGES = [{"role": "user", "content": "Say something."}]
GREEDY = GenerationParams(max_new_tokens=12, temperature=0)


def _greedy_text(model, tokenizer, messages=MESSAGES):
    (out,) = generate_chat(model, tokenizer, messages, GREEDY)
    return out


def test_params_accept_one_stop_string_and_drop_empty_ones():
    assert GenerationParams(stop="###").stop == ["###"]
    assert GenerationParams(stop=["", "x"]).stop == ["x"]
    with pytest.raises(ValueError):
        GenerationParams(temperature=-1)


def test_length_finish_reason_and_token_counts(causal, tokenizer):
    out = _greedy_text(causal, tokenizer)
    assert out.finish_reason == "length"
    assert out.completion_tokens == 12
    assert out.prompt_tokens == len(chat_prompt_ids(tokenizer, MESSAGES))


def test_greedy_is_deterministic(causal, tokenizer):
    assert _greedy_text(causal, tokenizer) == _greedy_text(causal, tokenizer)


def test_stop_sequence_cuts_text_and_is_not_included(causal, tokenizer):
    full = _greedy_text(causal, tokenizer).text
    stop = full[4:6]
    expected = full[: full.find(stop)]
    params = GREEDY.model_copy(update={"stop": [stop, "never-appears"]})
    (out,) = generate_chat(causal, tokenizer, MESSAGES, params)
    assert out.text == expected
    assert out.finish_reason == "stop"
    assert out.completion_tokens < 12


def test_end_token_gives_stop(causal, tokenizer):
    """Make a greedy token (its first occurrence) the end token: the text ends before it."""
    prompt = chat_prompt_ids(tokenizer, MESSAGES)
    raw = causal.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)
    ids = raw[0, len(prompt) :].tolist()
    k = next(i for i in range(2, len(ids)) if ids[i] not in ids[:i])
    model = copy.deepcopy(causal)
    model.generation_config.eos_token_id = ids[k]
    (out,) = generate_chat(model, tokenizer, MESSAGES, GREEDY)
    assert out.finish_reason == "stop"
    assert out.completion_tokens == k + 1
    assert out.text == tokenizer.decode(ids[:k], skip_special_tokens=True)


def test_n_samples_with_seed_repeat_and_differ(causal, tokenizer):
    params = GenerationParams(max_new_tokens=8, temperature=1.5, n=3, seed=7)
    first = generate_chat(causal, tokenizer, MESSAGES, params)
    second = generate_chat(causal, tokenizer, MESSAGES, params)
    assert len(first) == 3
    assert [o.text for o in first] == [o.text for o in second]
    assert len({o.text for o in first}) > 1


def test_greedy_n_copies_one_sample(causal, tokenizer):
    outs = generate_chat(causal, tokenizer, MESSAGES, GREEDY.model_copy(update={"n": 2}))
    assert outs[0] == outs[1]


def test_batch_with_left_padding_matches_one_by_one(causal, tokenizer):
    conversations = [MESSAGES, [{"role": "user", "content": "A much longer question, padded?"}]]
    batched = generate_batch(causal, tokenizer, conversations, GREEDY)
    single = [generate_chat(causal, tokenizer, c, GREEDY) for c in conversations]
    assert [b[0].text for b in batched] == [s[0].text for s in single]


def test_completion_uses_raw_prompt(causal, tokenizer):
    (out,) = generate_completion(causal, tokenizer, "Once upon", GREEDY)
    assert out.prompt_tokens == len("Once upon")
    assert out.completion_tokens == 12


def test_seq2seq_generation(seq2seq, tokenizer):
    (out,) = generate_chat(seq2seq, tokenizer, MESSAGES, GREEDY)
    assert out.finish_reason in ("stop", "length")
    assert out.completion_tokens <= 12
    batched = generate_batch(seq2seq, tokenizer, [MESSAGES, MESSAGES[:1] * 2], GREEDY)
    assert batched[0][0].text == out.text
    streamed = list(stream_chat(seq2seq, tokenizer, MESSAGES, GREEDY))
    assert "".join(c.text for c in streamed) == out.text
    assert streamed[-1].finish_reason == out.finish_reason


def test_stream_joins_to_the_same_text(causal, tokenizer):
    chunks = list(stream_chat(causal, tokenizer, MESSAGES, GREEDY))
    expected = _greedy_text(causal, tokenizer)
    assert "".join(c.text for c in chunks) == expected.text
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].completion_tokens == expected.completion_tokens
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_stream_never_shows_the_stop_sequence(causal, tokenizer):
    full = _greedy_text(causal, tokenizer).text
    stop = full[5:8]
    params = GREEDY.model_copy(update={"stop": [stop]})
    chunks = list(stream_chat(causal, tokenizer, MESSAGES, params))
    assert "".join(c.text for c in chunks) == full[: full.find(stop)]
    assert chunks[-1].finish_reason == "stop"


def test_stream_can_be_abandoned(causal, tokenizer):
    stream = stream_chat(
        causal, tokenizer, MESSAGES, GREEDY.model_copy(update={"max_new_tokens": 200})
    )
    next(stream)
    stream.close()  # joins the generation thread; must not hang


def test_stream_refuses_n_above_one(causal, tokenizer):
    with pytest.raises(ConfigError):
        stream_chat(causal, tokenizer, MESSAGES, GREEDY.model_copy(update={"n": 2}))


def test_request_settings_override_the_models_sampling_defaults(causal, tokenizer):
    """A model shipped with sampling defaults still decodes greedily at temperature 0."""
    model = copy.deepcopy(causal)
    model.generation_config.update(do_sample=True, temperature=0.6, top_k=20)
    assert _greedy_text(model, tokenizer) == _greedy_text(causal, tokenizer)


def test_prompts_match_the_training_rendering(tokenizer):
    """Decoders: the template plus the assistant header; encoder-decoders: role lines."""
    messages = [{"role": "system", "content": "Be brief."}, *MESSAGES]
    text = tokenizer.decode(chat_prompt_ids(tokenizer, messages))
    assert text.endswith("<|im_start|>assistant\n")
    seq2seq = tokenizer.decode(chat_prompt_ids(tokenizer, messages, encoder_decoder=True))
    assert seq2seq == "system: Be brief.\nuser: Say something."


def test_pad_equal_to_eos_and_byte_level_tokens():
    """SmolLM2's set-up: pad is the end token, and tokens are byte-level BPE pieces."""
    from tests.helpers import make_tiny_chat_tokenizer
    from tests.inference.tiny_models import tiny_causal

    tokenizer = make_tiny_chat_tokenizer()
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    model = tiny_causal(tokenizer)
    conversations = [MESSAGES, [{"role": "user", "content": "What is the capital of France?"}]]
    batched = generate_batch(model, tokenizer, conversations, GREEDY)
    for conversation, (out,) in zip(conversations, batched, strict=True):
        (single,) = generate_chat(model, tokenizer, conversation, GREEDY)
        assert out == single
        streamed = list(stream_chat(model, tokenizer, conversation, GREEDY))
        assert "".join(c.text for c in streamed) == single.text
        assert streamed[-1].completion_tokens == single.completion_tokens


def test_a_prefill_keeping_one_position_feeds_the_head_a_dense_row(tokenizer):
    """``logits_to_keep=1`` hands the head a view strided like the whole prompt, which sends
    torch's matmul down a path that copies the output embedding (see ``decoding``)."""
    from tests.inference.tiny_models import tiny_causal

    model = tiny_causal(tokenizer)
    head = model.get_output_embeddings()
    ids = torch.arange(5, 17)[None]
    strides_seen: list[tuple[int, ...]] = []
    with decoding(model, None):
        every_position = model(input_ids=ids).logits[:, -1:]
        watch = head.register_forward_pre_hook(
            lambda _, args: strides_seen.append(args[0].stride())
        )
        try:
            last_position = model(input_ids=ids, logits_to_keep=1).logits
        finally:
            watch.remove()
    with decoding(model, None):  # the head is prepared once per model
        pass
    hidden = model.config.hidden_size
    assert strides_seen == [(hidden, hidden, 1)]
    torch.testing.assert_close(last_position, every_position)
    assert len(head._forward_pre_hooks) == 1
