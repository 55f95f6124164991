"""validate_file: each check on a small bad file, asserting the line, field and severity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunesmith.data import validate_file
from tunesmith.data.validation import ValidationReport
from tunesmith.errors import DataError


def user(text: str = "Hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def bot(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, **extra}


def chat(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"messages": list(messages)}


def good_chats(n: int) -> list[dict[str, Any]]:
    return [chat(user(f"question {i}"), bot(f"answer {i}")) for i in range(n)]


def issues(
    report: ValidationReport, severity: str = "error"
) -> list[tuple[int | None, str | None]]:
    found = report.errors if severity == "error" else report.warnings
    return [(i.line, i.field) for i in found]


def check_one(jsonl, row: Any) -> tuple[int | None, str | None, str]:
    """Validate 10 good lines then ``row`` (line 11); return its one error."""
    report = validate_file(jsonl([*good_chats(10), row]))
    assert len(report.errors) == 1, report.errors
    error = report.errors[0]
    assert error.line == 11
    return error.line, error.field, error.message


@pytest.mark.parametrize(
    ("row", "field", "text"),
    [
        ("[1, 2]", None, "expected a JSON object, got a JSON array"),
        ('{"messages": ', None, "not valid JSON"),
        ({"messages": "hi"}, "messages", "must be a list of messages"),
        ({"messages": []}, "messages", "has no messages"),
        (chat(user(), "hello", bot()), "messages[1]", "a message must be a JSON object"),
        (chat(user(), {"content": "x"}, bot()), "messages[1].role", "missing role"),
        (
            chat({"role": "robot", "content": "x"}, bot()),
            "messages[0].role",
            "unknown role 'robot'",
        ),
        (chat({"role": "function", "content": "x"}, bot()), "messages[0].role", "deprecated"),
        (chat(user(), bot(mood="happy")), "messages[1].mood", "unrecognised key 'mood'"),
        (chat({"role": "user"}, bot()), "messages[0].content", "missing content"),
        (chat(user(), bot({"x": 1})), "messages[1].content", "must be a string, got a JSON object"),
        (chat(user(), bot([{"type": "image_url"}])), "messages[1].content[0]", "only text parts"),
        (chat(user(), bot(weight=2)), "messages[1].weight", "weight must be 0 or 1"),
        (chat({**user(), "weight": 1}, bot()), "messages[0].weight", "only allowed on assistant"),
        (chat(user(), user("again")), "messages", "no assistant message"),
        (chat(user(), bot(weight=0)), "messages", "every assistant message has weight 0"),
        (chat(user("  "), bot()), "messages[0].content", "empty content"),
        (chat(user(), bot(tool_calls="x")), "messages[1].tool_calls", "must be a list of objects"),
        ({"messages": [user(), bot()], "tools": "x"}, "tools", "tools must be a list"),
    ],
)
def test_chat_record_checks(jsonl, row: Any, field: str | None, text: str) -> None:
    _, found_field, message = check_one(jsonl, row)
    assert found_field == field
    assert text in message


def test_assistant_tool_call_needs_no_content(jsonl) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    row = chat(
        user(),
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        bot("It is 42."),
    )
    report = validate_file(jsonl([*good_chats(10), row]))
    assert report.ok, report.errors


def test_all_errors_are_reported_at_once(jsonl) -> None:
    rows = [*good_chats(10), chat(user()), "{bad", chat({"role": "x", "content": "y"}, bot())]
    report = validate_file(jsonl(rows))
    assert issues(report) == [(12, None), (11, "messages"), (13, "messages[0].role")]
    with pytest.raises(DataError) as caught:
        report.raise_for_errors()
    assert len(caught.value.issues) == 3


@pytest.mark.parametrize(
    ("row", "field", "text"),
    [
        ({"prompt": 1, "completion": "x"}, "prompt", "must be a string, got a JSON number"),
        ({"prompt": "p", "completion": " "}, "completion", "empty completion"),
        ({"prompt": "p"}, "completion", 'missing "completion"'),
    ],
)
def test_completion_checks(jsonl, row: Any, field: str, text: str) -> None:
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(10)]
    report = validate_file(jsonl([*rows, row]))
    assert [(e.line, e.field) for e in report.errors] == [(11, field)]
    assert text in report.errors[0].message


@pytest.mark.parametrize(
    ("row", "field", "text"),
    [
        ({"text": "t", "label": {"a": 1}}, "label", "got a JSON object"),
        ({"text": "t", "label": 1.5}, "label", "1.5 is not a class"),
        ({"text": "t", "label": [["a"]]}, "label", "only strings or integers"),
        ({"text": "t", "label": None}, "label", "got a JSON null"),
        ({"text": "t", "label": []}, "label", "empty label list"),
        ({"label": "a"}, "text", 'missing "text"'),
        ({"text": "", "label": "a"}, "text", "empty text"),
    ],
)
def test_classification_checks(jsonl, row: Any, field: str, text: str) -> None:
    rows = [{"text": f"text {i}", "label": "ab"[i % 2]} for i in range(10)]
    report = validate_file(jsonl([*rows, row]))
    assert [(e.line, e.field) for e in report.errors] == [(11, field)]
    assert text in report.errors[0].message


def preference(i: int, **override: Any) -> dict[str, Any]:
    row = {
        "input": {"messages": [user(f"q{i}")]},
        "preferred_output": [bot(f"good {i}")],
        "non_preferred_output": [bot(f"bad {i}")],
    }
    return {**row, **override}


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"input": {"msgs": []}}, "input.messages"),
        ({"input": {"messages": [{"role": "x", "content": "y"}]}}, "input.messages[0].role"),
        ({"preferred_output": [bot(), bot()]}, "preferred_output"),
        ({"non_preferred_output": bot()}, "non_preferred_output"),
        ({"non_preferred_output": [user()]}, "non_preferred_output"),
    ],
)
def test_preference_checks(jsonl, override: dict[str, Any], field: str) -> None:
    rows = [preference(i) for i in range(10)]
    report = validate_file(jsonl([*rows, preference(10, **override)]))
    assert [(e.line, e.field) for e in report.errors] == [(11, field)]


def test_few_examples_and_duplicates_are_warnings(jsonl) -> None:
    rows = [*good_chats(3), good_chats(2)[1]]
    report = validate_file(jsonl(rows))
    assert report.ok
    assert issues(report, "warning") == [(None, None), (4, None)]
    assert "only 4 valid examples" in report.warnings[0].message
    assert report.warnings[1].message == "duplicate of line 2"


def test_same_text_other_label_is_flagged(jsonl) -> None:
    rows = [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(10)]
    rows.append({"text": "t0", "label": "b"})
    report = validate_file(jsonl(rows))
    assert issues(report, "warning") == [(11, "label")]
    assert "same text as line 1 with a different label ('a' there, 'b' here)" in (
        report.warnings[0].message
    )


def test_class_imbalance_and_rare_classes(jsonl) -> None:
    rows = [{"text": f"ham {i}", "label": "ham"} for i in range(44)]
    rows += [{"text": f"spam {i}", "label": "spam"} for i in range(4)]
    report = validate_file(jsonl(rows))
    messages = [w.message for w in report.warnings]
    assert any("'ham' has 44 examples, 'spam' only 4 (ratio 11.0)" in m for m in messages)
    assert any("class 'spam' has only 4 example(s)" in m for m in messages)
    assert report.stats is not None
    assert report.stats.label_distribution == {"ham": 44, "spam": 4}


def test_one_class_is_an_error(jsonl) -> None:
    report = validate_file(jsonl([{"text": f"t{i}", "label": "a"} for i in range(10)]))
    assert issues(report) == [(None, "label")]


def test_validation_file_leakage_unseen_labels_and_format(jsonl) -> None:
    train = jsonl([{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(10)])
    valid = jsonl([{"text": "new", "label": "c"}, {"text": "t3", "label": "a"}], "valid.jsonl")
    report = validate_file(train, validation_path=valid)
    assert [(Path(e.file).name, e.line, e.field) for e in report.errors] == [
        ("valid.jsonl", 2, None),
        ("valid.jsonl", 1, "label"),
    ]
    assert f"also in the training file {train} at line 4" in report.errors[0].message
    assert report.validation_stats is not None and report.validation_stats.n_examples == 2

    other = jsonl([{"prompt": "a", "completion": "b"}], "other.jsonl")
    report = validate_file(train, validation_path=other)
    assert (
        report.errors[0].message
        == "the validation file is completion data but the training file is classification"
    )


def test_token_stats_and_long_examples(jsonl, tokenizer) -> None:
    rows = [*good_chats(9), chat(user("Hello there! " * 40), bot("ok"))]
    report = validate_file(jsonl(rows), tokenizer=tokenizer, max_seq_length=64)
    stats = report.stats
    assert stats is not None and stats.tokens is not None
    lengths = []
    targets = 0
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        lengths.append(len(tokenizer(text)["input_ids"]))
        answer = row["messages"][-1]["content"] + "<|im_end|>"
        targets += len(tokenizer(answer)["input_ids"])
    assert stats.tokens.max == max(lengths) > 64
    assert stats.tokens.total == sum(lengths)
    assert stats.n_truncated == 1
    # The long example's answer is beyond token 64: what is trained excludes it.
    assert stats.n_target_tokens == targets - len(tokenizer("ok<|im_end|>")["input_ids"])
    assert stats.messages_per_example is not None and stats.messages_per_example.max == 2
    long = [w for w in report.warnings if w.line == 10]
    assert len(long) == 1
    assert long[0].message == (
        f"{max(lengths)} tokens, will be truncated to 64; nothing to learn is left, "
        "so the example will be dropped"
    )


def test_report_is_json_serialisable(jsonl, tokenizer) -> None:
    report = validate_file(jsonl([*good_chats(2), "{"]), tokenizer=tokenizer, max_seq_length=32)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False
    assert data["errors"][0]["line"] == 3 and data["errors"][0]["severity"] == "error"
    assert data["stats"]["format"] == "chat" and data["stats"]["tokens"]["min"] > 0


def test_never_raises_on_missing_file(tmp_path: Path) -> None:
    report = validate_file(tmp_path / "missing.jsonl", validation_path=tmp_path / "v.jsonl")
    assert [e.message for e in report.errors] == ["file not found", "file not found"]
    assert report.to_dict()["stats"]["n_examples"] == 0
