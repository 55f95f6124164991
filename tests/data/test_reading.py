"""Reading files: format detection, JSONL and CSV parsing, and errors instead of tracebacks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tunesmith.data import (
    ChatExample,
    ClassificationExample,
    CompletionExample,
    DataFormat,
    PreferenceExample,
    load_dataset,
    scan_file,
    task_for_format,
)
from tunesmith.data.formats import detect_format
from tunesmith.errors import ConfigError, DataError
from tunesmith.tasks import Task

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}


def only_error(path: Path) -> tuple[int | None, str | None, str]:
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    assert len(caught.value.issues) == 1, caught.value.issues
    issue = caught.value.issues[0]
    assert issue.file == str(path)
    return issue.line, issue.field, issue.message


@pytest.mark.parametrize(
    ("record", "fmt"),
    [
        (CHAT, DataFormat.CHAT),
        ({"prompt": "a", "completion": "b"}, DataFormat.COMPLETION),
        ({"text": "a", "label": 1}, DataFormat.CLASSIFICATION),
        ({"input": {}, "preferred_output": [], "non_preferred_output": []}, DataFormat.PREFERENCE),
        ({"prompt": "a"}, None),
    ],
)
def test_detect_format(record: dict, fmt: DataFormat | None) -> None:
    assert detect_format(record) == fmt


def test_task_for_format() -> None:
    assert task_for_format("chat") is Task.CHAT
    assert task_for_format(DataFormat.CLASSIFICATION) is Task.CLASSIFICATION
    with pytest.raises(ConfigError, match="preference"):
        task_for_format(DataFormat.PREFERENCE)


def test_each_format_loads_with_lines_counting_blank_lines(jsonl) -> None:
    path = jsonl([CHAT, "", {**CHAT, "tools": [{"type": "function"}]}])
    dataset = load_dataset(path)
    assert dataset.format is DataFormat.CHAT
    assert [e.line for e in dataset.examples] == [1, 3]
    assert isinstance(dataset.examples[1], ChatExample)
    assert dataset.examples[1].tools == [{"type": "function"}]
    assert dataset.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()

    completion = load_dataset(jsonl([{"prompt": "2+2=", "completion": "4"}], "c.jsonl"))
    assert completion.examples == [CompletionExample("2+2=", "4", 1)]

    labels = [1, 2.0, True, ["b", "a", "b"]]
    rows = [{"text": f"t{i}", "label": label} for i, label in enumerate(labels)]
    classification = load_dataset(jsonl(rows, "l.json"))
    assert [e.label for e in classification.examples] == ["1", "2", "true", ["b", "a"]]

    preference = {
        "input": {"messages": [{"role": "user", "content": "Hi"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello!"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away."}],
    }
    example = load_dataset(jsonl([preference], "p.jsonl")).examples[0]
    assert isinstance(example, PreferenceExample)
    assert example.preferred[0]["content"] == "Hello!"


def test_content_parts_are_joined(jsonl) -> None:
    parts = [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]
    row = {"messages": [{"role": "user", "content": parts}, {"role": "assistant", "content": "Hi"}]}
    example = load_dataset(jsonl([row])).examples[0]
    assert example.messages[0]["content"] == "Hello"


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    line, field, message = only_error(tmp_path / "nope.jsonl")
    assert (line, field, message) == (None, None, "file not found")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    assert only_error(path)[2].startswith("the file has no examples")


def test_bad_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"prompt": "a", "completion": "b"}\n{"prompt": "caf\xe9", "completion": "b"}\n'
    )
    line, _, message = only_error(path)
    assert line == 2
    assert "not valid UTF-8" in message and "0xe9" in message


def test_bad_json_and_arrays_are_errors_per_line(jsonl) -> None:
    path = jsonl([CHAT, '{"messages": [', ["not", "an", "object"], CHAT])
    with pytest.raises(DataError) as caught:
        load_dataset(path)
    found = {(i.line, i.message.split(":")[0]) for i in caught.value.issues}
    assert found == {(2, "not valid JSON"), (3, "expected a JSON object, got a JSON array")}


def test_whole_file_json_array_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('[\n {"prompt": "a", "completion": "b"}\n]\n', encoding="utf-8")
    assert "JSON Lines" in only_error(path)[2]


def test_mixed_formats_are_an_error_naming_the_line(jsonl) -> None:
    path = jsonl([CHAT, CHAT, {"prompt": "a", "completion": "b"}])
    line, _, message = only_error(path)
    assert line == 3
    assert (
        message == "mixed formats: this line is completion data but the file is chat (from line 1)"
    )


def test_format_is_taken_from_the_first_valid_record(jsonl) -> None:
    path = jsonl(["{oops", {"prompt": "a", "completion": "b"}])
    scan = scan_file(path)
    assert scan.format is DataFormat.COMPLETION
    assert [(i.line, i.severity) for i in scan.issues] == [(1, "error")]


def test_unknown_shape(jsonl) -> None:
    line, _, message = only_error(jsonl([{"question": "a", "answer": "b"}]))
    assert line is None and message.startswith("cannot tell the format")


def test_csv_reads_text_label_with_physical_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        'id,text,label\n1,"hello, world",spam\n\n2,"two\nlines",ham\n3,third,1\n', encoding="utf-8"
    )
    dataset = load_dataset(path)
    assert dataset.format is DataFormat.CLASSIFICATION
    assert dataset.examples == [
        ClassificationExample("hello, world", "spam", 2),
        ClassificationExample("two\nlines", "ham", 4),
        ClassificationExample("third", "1", 6),
    ]


def test_csv_errors(tmp_path: Path) -> None:
    header = tmp_path / "header.csv"
    header.write_text("index,spam,text\n1,1,hi\n", encoding="utf-8")
    line, _, message = only_error(header)
    assert line == 1 and "missing label" in message

    rows = tmp_path / "rows.csv"
    rows.write_text("text,label\nok,a\nonly one column\nok,\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_dataset(rows)
    found = [(i.line, i.field, i.message) for i in caught.value.issues]
    assert found == [(3, None, "expected 2 columns, got 1"), (4, "label", "empty label")]

    chat = tmp_path / "chat.csv"
    chat.write_text("text,label\na,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="CSV file holds classification"):
        load_dataset(chat, fmt="chat")
