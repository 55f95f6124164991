"""Turn one parsed record (a dict from a JSONL line or a CSV row) into an example, or issues.

The checks follow OpenAI's chat fine-tuning data-prep guide (format errors: not an object,
missing ``messages``, unknown role, unrecognised key, missing content, no assistant message)
and add what the guide leaves out: the ``weight`` key, the list-of-text-parts content form,
tool calls, the other three formats, and label types. Every check reports a ``DataIssue``
naming the file, the line and the field (``messages[2].role``) and never raises, so one pass
over a file lists everything to fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tunesmith.data.formats import (
    ChatExample,
    ClassificationExample,
    CompletionExample,
    DataFormat,
    Example,
    PreferenceExample,
)
from tunesmith.errors import DataIssue

ROLES = ("system", "user", "assistant", "tool")
MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
)


@dataclass
class Reporter:
    """Collects the issues of one record, stamping each with the file and line."""

    file: str
    line: int | None
    issues: list[DataIssue] = field(default_factory=list)

    def error(self, field_name: str | None, message: str) -> None:
        self.issues.append(DataIssue(self.file, self.line, field_name, message, "error"))

    def warning(self, field_name: str | None, message: str) -> None:
        self.issues.append(DataIssue(self.file, self.line, field_name, message, "warning"))

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == "error" for issue in self.issues)


def type_name(value: Any) -> str:
    """JSON's name for a Python value's type, for messages a data author understands."""
    if value is None:
        return "null"
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object" if isinstance(value, dict) else type(value).__name__)


def parse_record(
    record: Any, fmt: DataFormat, *, file: str, line: int
) -> tuple[Example | None, list[DataIssue]]:
    """Check one record against ``fmt``; the example is None when the record has errors."""
    report = Reporter(file, line)
    if not isinstance(record, dict):
        report.error(None, f"expected a JSON object, got a JSON {type_name(record)}")
        return None, report.issues
    parser = {
        DataFormat.CHAT: _parse_chat,
        DataFormat.COMPLETION: _parse_completion,
        DataFormat.CLASSIFICATION: _parse_classification,
        DataFormat.PREFERENCE: _parse_preference,
    }[fmt]
    example = parser(record, report)
    return (None if report.has_errors else example), report.issues


# --- chat -------------------------------------------------------------------------------------


def _parse_chat(record: dict[str, Any], report: Reporter) -> Example | None:
    if "messages" not in record:
        report.error("messages", 'missing "messages" (every line of a chat file needs it)')
        return None
    messages = check_messages(record["messages"], report, "messages", need_assistant=True)
    tools = _check_tools(record.get("tools"), report, "tools")
    if messages is None:
        return None
    return ChatExample(messages=messages, tools=tools, line=report.line or 0)


def check_messages(
    value: Any, report: Reporter, where: str, *, need_assistant: bool
) -> list[dict[str, Any]] | None:
    """Check a list of messages; return normalised copies (``content`` a string) or None."""
    if not isinstance(value, list):
        report.error(where, f"must be a list of messages, got a JSON {type_name(value)}")
        return None
    if not value:
        report.error(where, "has no messages")
        return None
    messages = [_check_message(m, report, f"{where}[{i}]") for i, m in enumerate(value)]
    if any(m is None for m in messages):
        return None
    checked = [m for m in messages if m is not None]
    if need_assistant:
        assistants = [m for m in checked if m["role"] == "assistant"]
        if not assistants:
            report.error(where, "no assistant message: there is nothing for the model to learn")
            return None
        if all(m.get("weight", 1) == 0 for m in assistants):
            report.error(where, "every assistant message has weight 0: nothing to learn")
            return None
    return checked


def _check_message(message: Any, report: Reporter, where: str) -> dict[str, Any] | None:
    if not isinstance(message, dict):
        report.error(where, f"a message must be a JSON object, got a JSON {type_name(message)}")
        return None
    before = len(report.issues)
    role = message.get("role")
    if "role" not in message:
        report.error(f"{where}.role", "missing role")
    elif role == "function":
        report.error(
            f"{where}.role",
            'the "function" role is deprecated and not supported; use "tool" with tool_call_id',
        )
    elif role not in ROLES:
        report.error(f"{where}.role", f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    for key in sorted(set(message) - MESSAGE_KEYS):
        report.error(
            f"{where}.{key}",
            f"unrecognised key {key!r}; a message may have {', '.join(sorted(MESSAGE_KEYS))}",
        )
    content = _check_content(message, role, report, where)
    _check_weight(message, role, report, where)
    _check_tool_fields(message, role, report, where)
    if any(issue.severity == "error" for issue in report.issues[before:]):
        return None
    return {**message, "content": content}


def _check_content(message: dict[str, Any], role: Any, report: Reporter, where: str) -> str:
    """The content as one string; the list-of-text-parts form is joined."""
    calls_tool = role == "assistant" and bool(
        message.get("tool_calls") or message.get("function_call")
    )
    content = message.get("content")
    if content is None:
        if not calls_tool:
            report.error(f"{where}.content", "missing content")
        return ""
    if isinstance(content, list):
        content = _join_text_parts(content, report, f"{where}.content")
        if content is None:  # already reported, part by part
            return ""
    if not isinstance(content, str):
        report.error(
            f"{where}.content", f"content must be a string, got a JSON {type_name(content)}"
        )
        return ""
    if not content.strip() and not calls_tool:
        if role in ("user", "assistant"):
            report.error(f"{where}.content", "empty content")
        elif role == "system":
            report.warning(f"{where}.content", "empty system message")
    return content


def _join_text_parts(parts: list[Any], report: Reporter, where: str) -> str | None:
    """OpenAI's ``[{"type": "text", "text": "..."}]`` form; only text parts can be trained."""
    texts = []
    for i, part in enumerate(parts):
        if (
            not isinstance(part, dict)
            or part.get("type") != "text"
            or not isinstance(part.get("text"), str)
        ):
            kind = part.get("type") if isinstance(part, dict) else type_name(part)
            report.error(f"{where}[{i}]", f"only text parts are supported, got {kind!r}")
            return None
        texts.append(part["text"])
    return "".join(texts)


def _check_weight(message: dict[str, Any], role: Any, report: Reporter, where: str) -> None:
    if "weight" not in message:
        return
    weight = message["weight"]
    if isinstance(weight, bool) or weight not in (0, 1):
        report.error(f"{where}.weight", f"weight must be 0 or 1, got {weight!r}")
    elif role != "assistant":
        report.error(f"{where}.weight", "weight is only allowed on assistant messages")


def _check_tool_fields(message: dict[str, Any], role: Any, report: Reporter, where: str) -> None:
    if "tool_calls" in message:
        calls = message["tool_calls"]
        if role != "assistant":
            report.error(f"{where}.tool_calls", "tool_calls are only allowed on assistant messages")
        elif not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            report.error(f"{where}.tool_calls", "tool_calls must be a list of objects")
    if "tool_call_id" in message and not isinstance(message["tool_call_id"], str):
        report.error(f"{where}.tool_call_id", "tool_call_id must be a string")
    if "name" in message and not isinstance(message["name"], str):
        report.error(f"{where}.name", "name must be a string")


def _check_tools(value: Any, report: Reporter, where: str) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        report.error(where, "tools must be a list of objects (function definitions)")
        return None
    return value


# --- completion -------------------------------------------------------------------------------


def _parse_completion(record: dict[str, Any], report: Reporter) -> Example | None:
    values = {}
    for key in ("prompt", "completion"):
        if key not in record:
            report.error(key, f'missing "{key}" (every line of a completion file needs it)')
        elif not isinstance(record[key], str):
            report.error(key, f"must be a string, got a JSON {type_name(record[key])}")
        else:
            values[key] = record[key]
    if "completion" in values and not values["completion"].strip():
        report.error("completion", "empty completion: there is nothing for the model to learn")
    if report.has_errors:
        return None
    return CompletionExample(values["prompt"], values["completion"], line=report.line or 0)


# --- classification ---------------------------------------------------------------------------


def _parse_classification(record: dict[str, Any], report: Reporter) -> Example | None:
    text = record.get("text")
    if "text" not in record:
        report.error("text", 'missing "text"')
    elif not isinstance(text, str):
        report.error("text", f"must be a string, got a JSON {type_name(text)}")
    elif not text.strip():
        report.error("text", "empty text")
    if "label" not in record:
        report.error("label", 'missing "label"')
        return None
    label, problem = normalize_label(record["label"])
    if problem:
        report.error("label", problem)
    if report.has_errors or label is None or not isinstance(text, str):
        return None
    return ClassificationExample(text=text, label=label, line=report.line or 0)


def normalize_label(value: Any) -> tuple[str | list[str] | None, str | None]:
    """A label as a string (or a list of strings for multi-label), or why it cannot be one.

    Integers and integral floats become their decimal string (``1`` and ``1.0`` -> ``"1"``) so
    that a label read from JSON and the same label read from CSV are equal; booleans become
    ``"true"``/``"false"``, as JSON spells them.
    """
    if isinstance(value, list):
        if not value:
            return None, "empty label list: a multi-label example needs at least one label"
        labels: list[str] = []
        for item in value:
            if isinstance(item, list | dict):
                return (
                    None,
                    f"a label list may hold only strings or integers, got a JSON {type_name(item)}",
                )
            one, problem = normalize_label(item)
            if problem or not isinstance(one, str):
                return None, f"in the label list: {problem}"
            if one not in labels:
                labels.append(one)
        return labels, None
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, int):
        return str(value), None
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value)), None
        return None, f"label {value!r} is not a class; use a string or an integer"
    if isinstance(value, str):
        if not value.strip():
            return None, "empty label"
        return value, None
    return (
        None,
        f"label must be a string, an integer or a list of them, got a JSON {type_name(value)}",
    )


# --- preference -------------------------------------------------------------------------------


def _parse_preference(record: dict[str, Any], report: Reporter) -> Example | None:
    given = record.get("input")
    if not isinstance(given, dict) or "messages" not in given:
        report.error("input.messages", 'input must be an object with "messages"')
        messages = None
    else:
        messages = check_messages(given["messages"], report, "input.messages", need_assistant=False)
    outputs = [
        _check_output(record, key, report) for key in ("preferred_output", "non_preferred_output")
    ]
    if messages is None or outputs[0] is None or outputs[1] is None:
        return None
    if outputs[0][0]["content"] == outputs[1][0]["content"]:
        report.warning(
            "non_preferred_output", "the same reply as preferred_output: no preference to learn"
        )
    return PreferenceExample(messages, outputs[0], outputs[1], line=report.line or 0)


def _check_output(
    record: dict[str, Any], key: str, report: Reporter
) -> list[dict[str, Any]] | None:
    if key not in record:
        report.error(key, f'missing "{key}"')
        return None
    value = record[key]
    if not isinstance(value, list) or len(value) != 1:
        report.error(key, "must be a list with exactly one assistant message")
        return None
    # One message, and check_messages requires an assistant one: so it is the reply.
    return check_messages(value, report, key, need_assistant=True)
