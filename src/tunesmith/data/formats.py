"""The four data formats tunesmith reads, one dataclass per example, and format detection.

Every format is OpenAI's, so files prepared for OpenAI fine-tuning work unchanged::

    chat            {"messages": [{"role": "user", "content": "..."}, ...], "tools": [...]}
    completion      {"prompt": "...", "completion": "..."}            (OpenAI's legacy format)
    classification  {"text": "...", "label": "spam"}  or a CSV with text,label columns
    preference      {"input": {"messages": [...]}, "preferred_output": [...],
                     "non_preferred_output": [...]}                   (OpenAI's DPO format)

Each example keeps ``line``, the 1-based line of the file it came from (for CSV, the physical
line where the record starts), so every later warning — truncation, an unknown label — can
point at the line to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tunesmith.errors import ConfigError
from tunesmith.tasks import Task


class DataFormat(StrEnum):
    """The shape of one record; a file holds one format only."""

    CHAT = "chat"
    COMPLETION = "completion"
    CLASSIFICATION = "classification"
    PREFERENCE = "preference"


# The keys that identify each format. A record is of a format when it has all of its keys;
# preference is tested first because its ``input`` holds ``messages`` one level down.
FORMAT_KEYS: dict[DataFormat, tuple[str, ...]] = {
    DataFormat.PREFERENCE: ("input", "preferred_output", "non_preferred_output"),
    DataFormat.CHAT: ("messages",),
    DataFormat.COMPLETION: ("prompt", "completion"),
    DataFormat.CLASSIFICATION: ("text", "label"),
}


@dataclass(frozen=True)
class ChatExample:
    """A conversation. ``messages`` are normalised: ``content`` is always a string."""

    messages: list[dict[str, Any]]
    tools: list[Any] | None
    line: int


@dataclass(frozen=True)
class CompletionExample:
    """A raw-text prompt and the completion the model should learn to write after it."""

    prompt: str
    completion: str
    line: int


@dataclass(frozen=True)
class ClassificationExample:
    """A text and its label: one string, or a list of strings for multi-label data."""

    text: str
    label: str | list[str]
    line: int


@dataclass(frozen=True)
class PreferenceExample:
    """A prompt conversation with a preferred and a rejected assistant reply (one message each)."""

    messages: list[dict[str, Any]]
    preferred: list[dict[str, Any]]
    non_preferred: list[dict[str, Any]]
    line: int


Example = ChatExample | CompletionExample | ClassificationExample | PreferenceExample

EXAMPLE_TYPES: dict[DataFormat, type] = {
    DataFormat.CHAT: ChatExample,
    DataFormat.COMPLETION: CompletionExample,
    DataFormat.CLASSIFICATION: ClassificationExample,
    DataFormat.PREFERENCE: PreferenceExample,
}


def detect_format(record: dict[str, Any]) -> DataFormat | None:
    """The format whose keys the record has all of, or None when it matches none."""
    for fmt, keys in FORMAT_KEYS.items():
        if all(key in record for key in keys):
            return fmt
    return None


def format_of(example: Example) -> DataFormat:
    """The format an example object belongs to."""
    for fmt, cls in EXAMPLE_TYPES.items():
        if isinstance(example, cls):
            return fmt
    raise TypeError(f"not an example: {type(example).__name__}")


def task_for_format(fmt: DataFormat | str) -> Task:
    """The task a data format trains. Preference data (DPO) has no trainer yet."""
    fmt = DataFormat(fmt)
    if fmt is DataFormat.PREFERENCE:
        raise ConfigError(
            "preference data (preferred_output / non_preferred_output) is not supported for "
            "training yet; use chat data with the preferred replies as assistant messages"
        )
    return {
        DataFormat.CHAT: Task.CHAT,
        DataFormat.COMPLETION: Task.COMPLETION,
        DataFormat.CLASSIFICATION: Task.CLASSIFICATION,
    }[fmt]


def describe_keys(fmt: DataFormat) -> str:
    """The keys of a format, for error messages: ``"prompt", "completion"``."""
    return ", ".join(f'"{key}"' for key in FORMAT_KEYS[fmt])
