"""Chat rendering and the chat loss mask: which tokens of a conversation the model learns.

Only assistant messages with ``weight`` 1 (the default) carry loss. Their content and the
template's end-of-turn marker (``<|im_end|>`` in ChatML) are trained, so the model learns to
stop; system, user and tool messages, the role headers, weight-0 turns and the whitespace the
template writes after the end-of-turn marker get ``IGNORE_INDEX``.

How the mask is found, for any template: render the conversation progressively —
``messages[:i]`` with the generation prompt, then ``messages[:i+1]`` — so the characters
between the two renderings are exactly what the model must write for turn ``i``. The whole
conversation is then tokenized once with offsets, and a token carries loss when its
characters overlap a trained span. This reads the template instead of guessing its markers.

Templates that are not prefix-stable — those that rewrite earlier turns once a later one
exists (Qwen3 drops the reasoning of past turns, for example) — fall back to per-turn
tokenization: each trained turn becomes its own sequence (its rendered context, then the
turn), which is exactly what the model sees when it writes that turn at inference time. One
conversation then yields several sequences; ``tokenize_chat`` returns a list for that reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


class ChatSequence(NamedTuple):
    """One tokenized sequence; ``length`` is the token count before truncation."""

    input_ids: list[int]
    labels: list[int]
    length: int


# ChatML, the default when a tokenizer has none (a base model). Tools, when given, are listed
# in a first system block; tool calls are written as <tool_call> JSON, as Qwen and Hermes do.
CHATML_TEMPLATE = (
    "{%- if tools %}{{ '<|im_start|>system\\nYou can call these tools:\\n' + (tools | tojson)"
    " + '<|im_end|>\\n' }}{% endif -%}"
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] %}{{ message['content'] }}{% endif -%}"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] -%}"
    "{%- for call in message['tool_calls'] -%}"
    "{%- set function = call['function'] if call['function'] is defined else call -%}"
    "{{ '\\n<tool_call>\\n' + (function | tojson) + '\\n</tool_call>' }}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif -%}"
)


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def ensure_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give a tokenizer without a chat template the default (ChatML); True when it did.

    This is the one place that changes a tokenizer. Call it before training and save the
    tokenizer with the run, so inference renders conversations exactly as training did.
    The rendering functions here never change the tokenizer: without a template they use
    ChatML for that call only.
    """
    if has_chat_template(tokenizer):
        return False
    tokenizer.chat_template = CHATML_TEMPLATE
    return True


def render_chat(
    messages: list[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    *,
    tools: list[Any] | None = None,
    add_generation_prompt: bool = False,
) -> str:
    """The conversation as text, by the tokenizer's template (ChatML when it has none)."""
    template = None if has_chat_template(tokenizer) else CHATML_TEMPLATE
    return tokenizer.apply_chat_template(
        messages,
        tools=tools,
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
        tokenize=False,
    )


def trained_turns(messages: list[dict[str, Any]]) -> list[int]:
    """Indexes of the assistant messages that carry loss (weight 1, the default)."""
    return [
        i
        for i, m in enumerate(messages)
        if m.get("role") == "assistant" and m.get("weight", 1) != 0
    ]


def _turn_span(
    messages: list[dict[str, Any]],
    i: int,
    tokenizer: PreTrainedTokenizerBase,
    tools: list[Any] | None,
) -> tuple[str, tuple[int, int]]:
    """Render ``messages[:i+1]`` and find the characters of turn ``i`` to train.

    The span starts where the generation prompt for turn ``i`` ends and stops after the
    end-of-turn marker (trailing whitespace is not trained). If the template renders the
    turn differently from its generation prompt, the span starts at the content instead;
    if the content cannot be found either, ``ValueError``: the turn cannot be trained.
    """
    upto = render_chat(messages[: i + 1], tokenizer, tools=tools)
    # Templates refuse an empty conversation, so a first-message turn is found by its content.
    prompt = (
        render_chat(messages[:i], tokenizer, tools=tools, add_generation_prompt=True) if i else None
    )
    end = len(upto.rstrip())
    content = messages[i].get("content") or ""
    if prompt is not None and upto.startswith(prompt):
        start = len(prompt)
    else:
        start = upto.rfind(content) if content else -1
    if start < 0 or end <= start:
        raise ValueError(
            f"the chat template does not render assistant message {i} where its generation "
            "prompt ends, so its tokens cannot be located"
        )
    return upto, (start, end)


def _tokenize_with_spans(
    text: str, spans: list[tuple[int, int]], tokenizer: PreTrainedTokenizerBase
) -> tuple[list[int], list[int]]:
    """Token ids of ``text`` and labels: the id where a token overlaps a span, else -100."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    labels = []
    for token_id, (start, end) in zip(ids, encoding["offset_mapping"], strict=True):
        inside = end > start and any(start < s_end and end > s_start for s_start, s_end in spans)
        labels.append(token_id if inside else IGNORE_INDEX)
    return ids, labels


def tokenize_chat(
    messages: list[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int | None,
    tools: list[Any] | None = None,
    *,
    add_generation_prompt: bool = False,
) -> list[ChatSequence]:
    """Tokenize one conversation into sequences with aligned labels (-100 where no loss).

    Normally one sequence; one per trained turn when the template is not prefix-stable (see
    the module docstring). Sequences longer than ``max_seq_length`` keep their beginning; the
    caller reports the truncation and drops a sequence with no label left. Inference can pass
    ``add_generation_prompt=True``: the last sequence is then the prompt for the next
    assistant turn. Raises
    ``ValueError`` when a trained turn cannot be located in the rendering, and whatever the
    template raises (templates are code from the model folder) when it rejects the messages.
    """
    full = render_chat(
        messages, tokenizer, tools=tools, add_generation_prompt=add_generation_prompt
    )
    turns = [_turn_span(messages, i, tokenizer, tools) for i in trained_turns(messages)]
    if all(full.startswith(upto) for upto, _ in turns):
        pieces = [(full, [span for _, span in turns])]
    else:
        pieces = [(upto, [span]) for upto, span in turns]
        if add_generation_prompt:
            pieces.append((full, []))
    sequences = []
    for text, spans in pieces:
        ids, labels = _tokenize_with_spans(text, spans, tokenizer)
        length = len(ids)
        if max_seq_length is not None and length > max_seq_length:
            ids, labels = ids[:max_seq_length], labels[:max_seq_length]
        sequences.append(ChatSequence(ids, labels, length))
    return sequences


def is_prefix_stable(
    messages: list[dict[str, Any]],
    tokenizer: PreTrainedTokenizerBase,
    tools: list[Any] | None = None,
) -> bool:
    """Whether the template renders each turn as a prefix of the whole conversation."""
    full = render_chat(messages, tokenizer, tools=tools)
    return all(
        full.startswith(_turn_span(messages, i, tokenizer, tools)[0])
        for i in trained_turns(messages)
    )


def seq2seq_prompt(messages: list[dict[str, Any]]) -> str:
    """A conversation as plain ``role: content`` lines, the input format of seq2seq models."""
    return "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in messages)
