"""The de-identifying upload sink on its own: bytes fed in arbitrary chunks (split inside
UTF-8 characters and CSV quotes) come out exactly as ``deidentify_file`` would write them;
the policy setting and the form fields decide when it applies. Invented notes only."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import anyio
import pytest

from tests.phi import VALUES, note_rows
from tunesmith.data.deid import deidentify_file
from tunesmith.jobs.errors import InvalidRequestError
from tunesmith.server.deid_upload import DeidentifyingSink, sink_opener, wanted
from tunesmith.settings import Settings

SALT = b"upload-test-salt"


def _feed(target: Path, name: str, data: bytes, chunk: int) -> dict:
    async def run() -> dict:
        sink = DeidentifyingSink(
            target, filename=name, mode="surrogate", record_key_field=None, salt=SALT
        )
        for start in range(0, len(data), chunk):
            await sink.write(data[start : start + chunk])
        return await sink.close()

    return anyio.run(run)


def _csv_bytes() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["text", "label"])
    for row in note_rows(17):
        # a quoted field over two lines, and a character of two UTF-8 bytes
        writer.writerow([row["text"].replace(". ", ".\n", 1) + " Café visit.", row["label"]])
    return out.getvalue().encode()


@pytest.mark.parametrize("chunk", [7, 4096])
def test_chunks_give_the_same_file_as_deidentify_file(tmp_path: Path, chunk: int) -> None:
    data = _csv_bytes()
    source = tmp_path / "notes.csv"
    source.write_bytes(data)
    expected = tmp_path / "expected.csv"
    deidentify_file(source, expected, mode="surrogate", salt=SALT)

    summary = _feed(tmp_path / "streamed.csv", "notes.csv", data, chunk)
    streamed = (tmp_path / "streamed.csv").read_bytes()
    assert streamed == expected.read_bytes()
    assert not [v for v in VALUES if v.encode() in streamed]
    assert summary["records"] == 17 and summary["mode"] == "surrogate"
    assert "notes.csv" not in str(summary)  # counts only: no file names, no values


def test_a_failed_stream_leaves_no_file(tmp_path: Path) -> None:
    from tunesmith.errors import DataError

    with pytest.raises(DataError):
        _feed(tmp_path / "out.jsonl", "x.jsonl", b'{"text": "a", "label": "b"}\n[1, 2]\n', 5)
    assert list(tmp_path.iterdir()) == []


def test_policy_and_fields(tmp_path: Path) -> None:
    off, on = Settings(data_dir=tmp_path), Settings(data_dir=tmp_path, deidentify_uploads=True)
    assert wanted({}, off) is False and wanted({"deidentify": "true"}, off) is True
    assert wanted({}, on) is True and wanted({"deidentify": "false"}, on) is True  # policy wins
    with pytest.raises(InvalidRequestError):
        wanted({"deidentify": "maybe"}, off)
    with pytest.raises(InvalidRequestError, match="deidentify_mode"):
        sink_opener(off)({"deidentify": "1", "deidentify_mode": "redact"}, "a.jsonl", tmp_path)
    assert sink_opener(off)({}, "a.jsonl", tmp_path / "x") is None
