"""De-identifying whole datasets: JSONL (chat, completion, classification...) and CSV files.

Every text value is de-identified: chat message contents (and tool-call arguments), prompt,
completion, text, and any other string field. Labels and structural fields (role, type, ids)
are left as they are. The output is written next to its destination and renamed into place
only when the whole file went through, so a failed run never leaves half a file.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import hmac
import io
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tunesmith.data.deid.deidentifier import Deidentifier, DeidMode, parse_mode
from tunesmith.errors import DataError, DataIssue

# Never changed: labels (the training target) and fields that structure a record.
KEEP_FIELDS = frozenset(
    {"label", "labels", "role", "type", "weight", "id", "tool_call_id", "tools"}
)
JSONL_SUFFIXES = (".jsonl", ".json")


@dataclass
class DeidReport:
    """What a de-identification run replaced, by type. Never holds an original value."""

    input: str
    output: str
    mode: str
    format: str
    records: int = 0
    fields: int = 0
    replacements: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    engine: str = ""

    @property
    def total(self) -> int:
        return sum(self.replacements.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


class _Run:
    """State of one file: the de-identifier, the counts and the problems found so far."""

    def __init__(self, deid: Deidentifier, path: Path, key_field: str | None) -> None:
        self.deid = deid
        self.path = path
        self.key_field = key_field
        self.counts: Counter[str] = Counter()
        self.fields = 0
        self.issues: list[DataIssue] = []

    def text(self, value: str, record_key: str) -> str:
        if not value.strip():
            return value
        out, counts = self.deid.deidentify_text(value, record_key=record_key)
        self.counts.update(counts)
        self.fields += 1
        return out

    def record_key(self, record: dict[str, Any], line: int) -> str:
        if self.key_field and record.get(self.key_field) not in (None, ""):
            return f"key:{record[self.key_field]}"
        return f"{self.path.name}:{line}"

    def pseudonym(self, value: object) -> str:
        """The record key field's value, replaced by a keyed hash: still groups one patient's
        records (for splits), no longer names the patient."""
        digest = hmac.new(self.deid.salt, str(value).encode(), hashlib.sha256).hexdigest()
        return f"rec-{digest[:16]}"

    def issue(self, line: int | None, message: str, field_name: str | None = None) -> None:
        self.issues.append(DataIssue(str(self.path), line, field_name, message))


def _walk(value: Any, deid_text: Callable[[str], str], key: str | None = None) -> Any:
    """A copy of a JSON value with every string de-identified, except kept fields."""
    if key in KEEP_FIELDS:
        return value
    if isinstance(value, str):
        return deid_text(value)
    if isinstance(value, list):
        return [_walk(item, deid_text) for item in value]
    if isinstance(value, dict):
        if "arguments" in value and "name" in value:  # a tool call's function: keep its name
            return {k: v if k == "name" else _walk(v, deid_text, k) for k, v in value.items()}
        return {k: _walk(v, deid_text, k) for k, v in value.items()}
    return value


def _text_of_record(run: _Run, key: str, text: str) -> str:
    return run.text(text, key)


def _jsonl(run: _Run, src: io.TextIOBase, dst: io.TextIOBase) -> int:
    records = 0
    for line_no, line in enumerate(src, 1):
        if not line.strip():
            dst.write(line)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            run.issue(line_no, f"invalid JSON: {e.msg} (column {e.colno})")
            continue
        if not isinstance(record, dict):
            run.issue(line_no, f"each line must be a JSON object, found {type(record).__name__}")
            continue
        key = run.record_key(record, line_no)
        out = _walk(record, functools.partial(_text_of_record, run, key))
        if run.key_field and run.key_field in record:
            out[run.key_field] = run.pseudonym(record[run.key_field])
        dst.write(json.dumps(out, ensure_ascii=False) + "\n")
        records += 1
    return records


def _csv(run: _Run, src: io.TextIOBase, dst: io.TextIOBase) -> int:
    reader = csv.reader(src)
    writer = csv.writer(dst, lineterminator="\n")
    header = next(reader, None)
    if not header:
        run.issue(1, "the CSV file is empty: it needs a header row (e.g. text,label)")
        return 0
    writer.writerow(header)
    records = 0
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            run.issue(
                line, f"expected {len(header)} columns ({','.join(header)}), found {len(row)}"
            )
            continue
        record = dict(zip(header, row, strict=True))
        key = run.record_key(record, line)
        out = []
        for name, cell in record.items():
            if name == run.key_field:
                out.append(run.pseudonym(cell))
            elif name in KEEP_FIELDS:
                out.append(cell)
            else:
                out.append(run.text(cell, key))
        writer.writerow(out)
        records += 1
    return records


def deidentify_file(
    in_path: str | Path,
    out_path: str | Path,
    *,
    mode: DeidMode | str = DeidMode.PLACEHOLDER,
    report_path: str | Path | None = None,
    salt: bytes | str | None = None,
    record_key_field: str | None = None,
    deidentifier: Deidentifier | None = None,
) -> DeidReport:
    """De-identify a JSONL (``.jsonl``/``.json``) or CSV dataset into ``out_path``.

    ``record_key_field`` (e.g. ``"patient_id"``) groups lines into one record for surrogates
    (one date shift, one fake name per patient); its values are replaced by keyed hashes.
    Raises ``DataError`` naming file and line for every malformed line; nothing is written then.
    """
    src_path = Path(in_path)
    _check_name(src_path)
    if not src_path.is_file():
        raise DataError([DataIssue(str(src_path), None, None, "file not found")])
    with open(src_path, "rb") as src:
        report = deidentify_stream(
            src,
            out_path,
            name=str(src_path),
            mode=mode,
            salt=salt,
            record_key_field=record_key_field,
            deidentifier=deidentifier,
        )
    if report_path is not None:
        report.write(report_path)
    return report


def deidentify_stream(
    src: BinaryIO,
    out_path: str | Path,
    *,
    name: str,
    mode: DeidMode | str = DeidMode.PLACEHOLDER,
    salt: bytes | str | None = None,
    record_key_field: str | None = None,
    deidentifier: Deidentifier | None = None,
) -> DeidReport:
    """De-identify a dataset read from the byte stream ``src`` into ``out_path``.

    ``name`` is the dataset's file name: its suffix gives the format, and it names the file
    in problems. The stream is read line by line as it arrives, so a caller can pipe an
    upload through this without the original bytes ever being written anywhere (the server
    does: ``server/deid_upload.py``). Same output, report and errors as ``deidentify_file``.
    """
    src_path, dst_path = Path(name), Path(out_path)
    _check_name(src_path)
    mode = parse_mode(mode)
    deid = deidentifier or Deidentifier(mode, salt=salt)
    run = _Run(deid, src_path, record_key_field)
    started = time.perf_counter()
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst_path.name}.", dir=dst_path.parent)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as dst:
            records = _convert(run, src, dst)
        if run.issues:
            raise DataError(
                run.issues, summary=f"{src_path}: {len(run.issues)} problem(s); nothing written"
            )
        os.replace(tmp, dst_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    is_csv = src_path.suffix.lower() == ".csv"
    return DeidReport(
        input=str(src_path),
        output=str(dst_path),
        mode=deid.mode.value,
        format="csv" if is_csv else "jsonl",
        records=records,
        fields=run.fields,
        replacements=dict(sorted(run.counts.items())),
        seconds=round(time.perf_counter() - started, 3),
        engine=deid.engine.model_name,
    )


def _check_name(path: Path) -> None:
    if path.suffix.lower() not in (*JSONL_SUFFIXES, ".csv"):
        issue = DataIssue(str(path), None, None, "unsupported file type: use .jsonl, .json or .csv")
        raise DataError([issue], summary=f"{path}: cannot de-identify")


def _convert(run: _Run, src: BinaryIO, dst: io.TextIOBase) -> int:
    convert = _csv if run.path.suffix.lower() == ".csv" else _jsonl
    text = io.TextIOWrapper(src, encoding="utf-8-sig", newline="")
    try:
        return convert(run, text, dst)
    except UnicodeDecodeError as e:
        run.issue(None, f"not UTF-8 text (byte {e.start}): save the file as UTF-8")
    except csv.Error as e:
        run.issue(None, f"unreadable CSV: {e}")
    finally:
        text.detach()  # the caller owns ``src``
    return 0
