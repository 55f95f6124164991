"""Turn a ``Dataset`` into token ids and labels for one task and model kind.

=================  =============  ==========================================================
task               model kind     input_ids / labels
=================  =============  ==========================================================
chat               causal         the chat template's rendering / the ids of trained
                                  assistant turns and their end-of-turn marker, else -100
completion         causal         prompt + completion + eos / the completion and eos, else -100
chat, completion   seq2seq        the prompt (chat: ``role: content`` lines up to the last
                                  trained assistant turn) / the target's ids + eos
classification     any            the text / ``LabelSpace.encode(label)``
=================  =============  ==========================================================

Causal ``labels`` are aligned with ``input_ids`` (the model shifts them), so a collator that
pads must pad ``labels`` with -100, never with the pad id: eos is often the pad token
(SmolLM2), and the eos a model must learn would otherwise be masked or trained on padding.

Every example longer than ``max_seq_length`` is truncated, keeping its beginning, and the
truncation is reported as a warning naming the file and line; a causal example with no label
left after truncation is dropped, with a warning. Nothing is truncated silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tunesmith.data.chat import (
    IGNORE_INDEX,
    ensure_chat_template,
    render_chat,
    seq2seq_prompt,
    tokenize_chat,
    trained_turns,
)
from tunesmith.data.formats import (
    ChatExample,
    ClassificationExample,
    CompletionExample,
    DataFormat,
    Example,
    format_of,
    task_for_format,
)
from tunesmith.data.labels import LabelSpace
from tunesmith.data.reading import Dataset
from tunesmith.errors import ConfigError, DataError, DataIssue
from tunesmith.tasks import ModelKind, Task

try:
    from jinja2.exceptions import TemplateError
except ImportError:  # pragma: no cover - transformers needs jinja2 to render chat templates
    TemplateError = ValueError  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "IGNORE_INDEX",
    "TokenizedDataset",
    "TokenizedExample",
    "ensure_chat_template",
    "render_chat",
    "seq2seq_prompt",
    "tokenize_chat",
    "tokenize_dataset",
]


@dataclass
class TokenizedExample:
    """One training sequence. ``labels``: aligned ids (causal), target ids (seq2seq), or the
    encoded class (classification). ``length`` counts the input tokens before truncation."""

    input_ids: list[int]
    labels: list[int] | int | list[float]
    line: int
    truncated: bool = False
    length: int = 0
    n_target_tokens: int = 0


@dataclass
class TokenizedDataset:
    """The tokenized examples, the warnings (truncations, drops) and any errors found."""

    examples: list[TokenizedExample]
    warnings: list[DataIssue] = field(default_factory=list)
    errors: list[DataIssue] = field(default_factory=list)

    @property
    def n_truncated(self) -> int:
        return sum(1 for example in self.examples if example.truncated)

    def __len__(self) -> int:
        return len(self.examples)


def tokenize_dataset(
    dataset: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    *,
    task: Task | str,
    model_kind: ModelKind | str,
    max_seq_length: int | None,
    label_space: LabelSpace | None = None,
    raise_on_error: bool = True,
) -> TokenizedDataset:
    """Tokenize every example for ``task`` on a ``model_kind`` model.

    ``max_seq_length`` None keeps everything (validation uses it to count tokens). Examples
    the tokenizer or template cannot handle, and labels outside ``label_space``, are errors:
    a ``DataError`` listing all of them, or kept in ``errors`` when ``raise_on_error`` is
    False. A chat dataset on a tokenizer without a template is rendered with ChatML, and a
    warning says so (call ``ensure_chat_template`` before training to keep that template).
    """
    task, model_kind = Task(task), ModelKind(model_kind)
    _check_combination(dataset.format, task, model_kind)
    if task is Task.CLASSIFICATION and label_space is None:
        label_space = LabelSpace.from_examples(dataset.examples)  # type: ignore[arg-type]
    if model_kind is not ModelKind.ENCODER and task is not Task.CLASSIFICATION:
        _require_eos(tokenizer)
    name = str(dataset.path)
    result = TokenizedDataset(examples=[])
    if (
        task is Task.CHAT
        and model_kind is ModelKind.CAUSAL
        and not getattr(tokenizer, "chat_template", None)
    ):
        result.warnings.append(
            DataIssue(
                name, None, None, "the tokenizer has no chat template; using ChatML", "warning"
            )
        )
    for example in dataset.examples:
        try:
            tokenized = _tokenize_one(example, tokenizer, model_kind, max_seq_length, label_space)
        except (ValueError, TypeError, KeyError, IndexError, TemplateError) as exc:
            # An unknown label, or a chat template (code from the model folder) rejecting
            # these messages: a problem of this example, reported with its line.
            message = f"cannot tokenize this example: {exc}"
            result.errors.append(DataIssue(name, example.line, None, message))
            continue
        for item in tokenized:
            _keep_or_drop(item, name, max_seq_length, result)
    if result.errors and raise_on_error:
        raise DataError(
            result.errors, summary=f"{len(result.errors)} example(s) cannot be tokenized"
        )
    return result


def _check_combination(fmt: DataFormat, task: Task, model_kind: ModelKind) -> None:
    problems = []
    if task_for_format(fmt) is not task:
        problems.append(
            f"the data is in the {fmt.value} format, which trains "
            f"{task_for_format(fmt).value}, not {task.value}"
        )
    if model_kind is ModelKind.ENCODER and task is not Task.CLASSIFICATION:
        problems.append(
            f"an encoder model cannot learn {task.value}; use a causal or seq2seq model"
        )
    if problems:
        raise ConfigError(problems)


def _require_eos(tokenizer: PreTrainedTokenizerBase) -> None:
    if tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer has no eos token, so a model could not learn to stop")


def _keep_or_drop(
    item: TokenizedExample, name: str, max_seq_length: int | None, result: TokenizedDataset
) -> None:
    """Report every truncation; drop a sequence whose labels were all cut off."""
    if item.truncated:
        # Only causal labels can be all -100; a multi-hot vector holds floats, never -100.
        nothing_left = isinstance(item.labels, list) and all(
            label == IGNORE_INDEX for label in item.labels
        )
        if nothing_left:
            message = (
                f"{item.length} tokens; nothing to learn is left after truncation to "
                f"{max_seq_length}: example dropped"
            )
            result.warnings.append(DataIssue(name, item.line, None, message, "warning"))
            return
        message = f"{item.length} tokens, truncated to {max_seq_length}"
        result.warnings.append(DataIssue(name, item.line, None, message, "warning"))
    result.examples.append(item)


def _tokenize_one(
    example: Example,
    tokenizer: PreTrainedTokenizerBase,
    model_kind: ModelKind,
    max_seq_length: int | None,
    label_space: LabelSpace | None,
) -> list[TokenizedExample]:
    if isinstance(example, ClassificationExample):
        assert label_space is not None
        return [_classification(example, tokenizer, max_seq_length, label_space)]
    if model_kind is ModelKind.SEQ2SEQ:
        return [_seq2seq(example, tokenizer, max_seq_length)]
    if isinstance(example, CompletionExample):
        return [_completion(example, tokenizer, max_seq_length)]
    if isinstance(example, ChatExample):
        return [
            _causal(ids, labels, length, example.line)
            for ids, labels, length in tokenize_chat(
                example.messages, tokenizer, max_seq_length, example.tools
            )
        ]
    raise ConfigError(f"cannot tokenize {format_of(example).value} data")


def _causal(ids: list[int], labels: list[int], length: int, line: int) -> TokenizedExample:
    n_target = sum(1 for label in labels if label != IGNORE_INDEX)
    return TokenizedExample(
        ids, labels, line, truncated=length > len(ids), length=length, n_target_tokens=n_target
    )


def _completion(
    example: CompletionExample, tokenizer: PreTrainedTokenizerBase, max_seq_length: int | None
) -> TokenizedExample:
    """Prompt + completion as raw text (no template), then eos; loss on completion and eos.

    The text is tokenized whole, so the tokens are those the model will see; a token that
    straddles the prompt/completion boundary holds completion characters and is trained.
    Special tokens the tokenizer adds itself (a bos) are kept and never trained.
    """
    text = example.prompt + example.completion
    encoding = tokenizer(text, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    boundary = len(example.prompt)
    labels = [
        token if end > start and end > boundary else IGNORE_INDEX
        for token, (start, end) in zip(ids, encoding["offset_mapping"], strict=True)
    ]
    if not ids or ids[-1] != tokenizer.eos_token_id:
        ids.append(tokenizer.eos_token_id)
    labels = [*labels[: len(ids) - 1], tokenizer.eos_token_id]
    return _causal(*_truncate(ids, labels, max_seq_length), example.line)


def _truncate(
    ids: list[int], labels: list[int], max_seq_length: int | None
) -> tuple[list[int], list[int], int]:
    length = len(ids)
    if max_seq_length is not None and length > max_seq_length:
        return ids[:max_seq_length], labels[:max_seq_length], length
    return ids, labels, length


def _classification(
    example: ClassificationExample,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int | None,
    label_space: LabelSpace,
) -> TokenizedExample:
    """The text with the tokenizer's special tokens ([CLS] ... [SEP]); the encoded label."""
    ids = tokenizer(example.text)["input_ids"]
    length = len(ids)
    if max_seq_length is not None and length > max_seq_length:
        ids = tokenizer(example.text, truncation=True, max_length=max_seq_length)["input_ids"]
    label = label_space.encode(example.label)
    return TokenizedExample(
        list(ids), label, example.line, truncated=length > len(ids), length=length
    )


def _seq2seq(
    example: Example, tokenizer: PreTrainedTokenizerBase, max_seq_length: int | None
) -> TokenizedExample:
    """T5 style: the prompt as the encoder input; the target ids plus eos as labels."""
    if isinstance(example, ChatExample):
        last = trained_turns(example.messages)[-1]
        source = seq2seq_prompt(example.messages[:last])
        target = example.messages[last]["content"]
    else:
        assert isinstance(example, CompletionExample)
        source, target = example.prompt, example.completion
    ids = tokenizer(source)["input_ids"]
    length = len(ids)
    if max_seq_length is not None and length > max_seq_length:
        ids = tokenizer(source, truncation=True, max_length=max_seq_length)["input_ids"]
    labels = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    cut = max_seq_length is not None and len(labels) > max_seq_length
    labels = labels[:max_seq_length] if cut else labels
    truncated = length > len(ids) or cut
    return TokenizedExample(
        list(ids),
        labels,
        example.line,
        truncated=truncated,
        length=length,
        n_target_tokens=len(labels),
    )
