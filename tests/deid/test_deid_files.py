"""deidentify_file: JSONL chat and CSV round trips, the report, and errors with file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tunesmith.data.deid import Deidentifier, DeidReport, deidentify_file
from tunesmith.errors import DataError

SECRETS = ["Maria Gonzalez", "617-555-0123", "00482913", "maria.g@example.com", "03/14/2021"]


def _chat(text: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You summarise notes."},
            {"role": "user", "content": text},
            {"role": "assistant", "content": "Summary for Maria Gonzalez: CHF."},
        ]
    }


def test_jsonl_chat_round_trip(tmp_path: Path, placeholder: Deidentifier) -> None:
    src, dst, rep = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "report.json"
    note = (
        "Patient: Maria Gonzalez, MRN: 00482913, seen 03/14/2021, call 617-555-0123, "
        "maria.g@example.com"
    )
    src.write_text(
        json.dumps(_chat(note)) + "\n" + json.dumps({"text": note, "label": "Maria"}) + "\n"
    )
    report = deidentify_file(src, dst, report_path=rep, deidentifier=placeholder)
    out = dst.read_text()
    assert not any(s in out for s in SECRETS)
    first, second = (json.loads(line) for line in out.splitlines())
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][0]["content"] == "You summarise notes."
    assert "[NAME]" in first["messages"][2]["content"]
    assert second["label"] == "Maria"  # labels are never touched
    assert report.records == 2 and report.fields == 4  # system, user, assistant, text
    assert report.replacements["NAME"] >= 3 and report.replacements["MRN"] == 2
    saved = json.loads(rep.read_text())
    assert saved["total"] == report.total
    assert not any(s in rep.read_text() for s in SECRETS)


def test_csv_round_trip(tmp_path: Path, placeholder: Deidentifier) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerow(['Maria Gonzalez, seen 03/14/2021, readmitted, "quoted"', "1"])
        w.writerow(["MRN: 00482913, call 617-555-0123", "0"])
    report = deidentify_file(src, dst, deidentifier=placeholder)
    with dst.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["text", "label"]
    assert [r[1] for r in rows[1:]] == ["1", "0"]
    assert not any(s in dst.read_text() for s in SECRETS)
    assert '"quoted"' in rows[1][0]
    assert isinstance(report, DeidReport) and report.format == "csv" and report.records == 2


def test_record_key_field_groups_and_is_pseudonymised(
    tmp_path: Path, surrogate: Deidentifier
) -> None:
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        {"patient_id": "MRN-4471", "text": "Admitted 01/06/2022, Mr. Kowalski."},
        {"patient_id": "MRN-4471", "text": "Discharged 01/16/2022, Mr. Kowalski."},
    ]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    deidentify_file(src, dst, record_key_field="patient_id", deidentifier=surrogate)
    a, b = (json.loads(x) for x in dst.read_text().splitlines())
    assert a["patient_id"] == b["patient_id"] != "MRN-4471"
    assert a["text"].split("Mr. ")[1] == b["text"].split("Mr. ")[1]  # one fake name per patient


def test_invalid_lines_name_file_and_line(tmp_path: Path, placeholder: Deidentifier) -> None:
    src, dst = tmp_path / "bad.jsonl", tmp_path / "out.jsonl"
    src.write_text('{"text": "ok"}\n{"text": \n[1, 2]\n')
    with pytest.raises(DataError) as info:
        deidentify_file(src, dst, deidentifier=placeholder)
    lines = [(i.line, i.message) for i in info.value.issues]
    assert [line for line, _ in lines] == [2, 3]
    assert "invalid JSON" in lines[0][1] and "JSON object" in lines[1][1]
    assert str(src) in str(info.value) and f"{src}:2" in str(info.value)
    assert not dst.exists()  # nothing is written when the input has errors


def test_csv_wrong_columns_and_unsupported_type(tmp_path: Path, placeholder: Deidentifier) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("text,label\nfine,1\ntoo,many,cells\n")
    with pytest.raises(DataError) as info:
        deidentify_file(src, tmp_path / "o.csv", deidentifier=placeholder)
    assert info.value.issues[0].line == 3
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        deidentify_file(other, tmp_path / "o.txt", deidentifier=placeholder)
