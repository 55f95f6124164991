"""Read a data file (JSONL or CSV) into examples, collecting every problem instead of stopping.

``scan_file`` never raises on bad data: it returns what it could read plus a list of
``DataIssue``. ``load_dataset`` is the strict door used by training: it raises one
``DataError`` listing every error. A bad file must produce messages a data author can act on
("line 7: not valid JSON"), never a traceback.

Line numbers are 1-based physical lines: blank JSONL lines are skipped but still counted, and
a CSV record spanning several lines (a quoted newline) is located at the line where it starts.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesmith.data.formats import FORMAT_KEYS, DataFormat, Example, describe_keys, detect_format
from tunesmith.data.records import parse_record
from tunesmith.errors import DataError, DataIssue

CSV_SUFFIXES = (".csv",)
CSV_COLUMNS = ("text", "label")


@dataclass(frozen=True)
class Dataset:
    """The examples of one valid file, with the hash recorded in a run's ``tunesmith.json``."""

    path: Path
    format: DataFormat
    examples: list[Example]
    sha256: str

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class ScanResult:
    """Everything one pass over a file found; ``format`` is None when it could not be told."""

    path: Path
    format: DataFormat | None
    examples: list[Example] = field(default_factory=list)
    issues: list[DataIssue] = field(default_factory=list)
    sha256: str = ""

    @property
    def errors(self) -> list[DataIssue]:
        return [i for i in self.issues if i.severity == "error"]


def load_dataset(path: Path | str, *, fmt: DataFormat | str | None = None) -> Dataset:
    """Read and check a file; raise ``DataError`` with every error when it has any."""
    scan = scan_file(path, fmt=fmt)
    if scan.errors or scan.format is None:
        raise DataError(scan.errors, summary=f"{len(scan.errors)} error(s) in {scan.path}")
    return Dataset(scan.path, scan.format, scan.examples, scan.sha256)


def scan_file(path: Path | str, *, fmt: DataFormat | str | None = None) -> ScanResult:
    """Read a file and check every record; never raises on bad data."""
    path = Path(path)
    name = str(path)
    result = ScanResult(path=path, format=DataFormat(fmt) if fmt else None)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        result.issues.append(DataIssue(name, None, None, "file not found"))
        return result
    except IsADirectoryError:
        result.issues.append(DataIssue(name, None, None, "is a directory, not a data file"))
        return result
    except OSError as exc:
        result.issues.append(DataIssue(name, None, None, f"cannot read the file: {exc.strerror}"))
        return result
    result.sha256 = hashlib.sha256(data).hexdigest()

    is_csv = path.suffix.lower() in CSV_SUFFIXES
    if is_csv and result.format not in (None, DataFormat.CLASSIFICATION):
        result.issues.append(
            DataIssue(name, None, None, "a CSV file holds classification data (text,label columns)")
        )
        return result
    records = _csv_records(data, name) if is_csv else _jsonl_records(data, name)
    rows: list[tuple[int, Any]] = []
    for line, record in records:
        if isinstance(record, DataIssue):
            result.issues.append(record)
        else:
            rows.append((line, record))
    if not rows and not result.issues:
        result.issues.append(DataIssue(name, None, None, "the file has no examples"))
    if not rows:
        return result
    _parse_rows(rows, result)
    return result


def _parse_rows(rows: list[tuple[int, Any]], result: ScanResult) -> None:
    """Settle the file's format (given, or from the first recognisable record), then parse."""
    name = str(result.path)
    first_line = None
    if result.format is None:
        for line, record in rows:
            found = detect_format(record) if isinstance(record, dict) else None
            if found is not None:
                result.format, first_line = found, line
                break
    if result.format is None:
        expected = "; ".join(f"{fmt.value} ({describe_keys(fmt)})" for fmt in FORMAT_KEYS)
        result.issues.append(
            DataIssue(
                name, None, None, f"cannot tell the format: no line has the keys of {expected}"
            )
        )
        return
    where = f" (from line {first_line})" if first_line else ""
    for line, record in rows:
        found = detect_format(record) if isinstance(record, dict) else None
        if found is not None and found is not result.format:
            message = (
                f"mixed formats: this line is {found.value} data "
                f"but the file is {result.format.value}{where}"
            )
            result.issues.append(DataIssue(name, line, None, message))
            continue
        example, issues = parse_record(record, result.format, file=name, line=line)
        result.issues.extend(issues)
        if example is not None:
            result.examples.append(example)


def _jsonl_records(data: bytes, name: str) -> Iterator[tuple[int, Any]]:
    """(line, parsed object) for each non-blank line, or (line, DataIssue) for a bad one."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark, as some editors on Windows write
    if _is_json_array_file(data):
        yield (
            1,
            DataIssue(
                name,
                1,
                None,
                "the file is one JSON array; write JSON Lines instead: one JSON object per line",
            ),
        )
        return
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1].hex()
            message = (
                f"not valid UTF-8 (byte 0x{bad} at column {exc.start + 1}); save the file as UTF-8"
            )
            yield number, DataIssue(name, number, None, message)
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            yield (
                number,
                DataIssue(name, number, None, f"not valid JSON: {exc.msg} (column {exc.colno})"),
            )
        except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
            yield number, DataIssue(name, number, None, f"not valid JSON: {exc}")


def _is_json_array_file(data: bytes) -> bool:
    """True for a whole-file JSON array (a common mistake with ``.json`` files)."""
    if not data.lstrip().startswith(b"["):
        return False
    try:
        return isinstance(json.loads(data.decode("utf-8")), list) and b"\n" in data.strip()
    except (ValueError, RecursionError):
        return False


def _csv_records(data: bytes, name: str) -> Iterator[tuple[int, Any]]:
    """(line, {"text", "label"}) per CSV row; the header must name ``text`` and ``label``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        yield line, DataIssue(name, line, None, "not valid UTF-8; save the file as UTF-8")
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip().lower() for column in next(reader, [])]
    except csv.Error as exc:
        yield 1, DataIssue(name, 1, None, f"not valid CSV: {exc}")
        return
    if not header:
        return
    missing = [column for column in CSV_COLUMNS if column not in header]
    if missing:
        message = (
            f"the header must name the columns text,label; missing {', '.join(missing)} "
            f"(found {','.join(header)})"
        )
        yield 1, DataIssue(name, 1, None, message)
        return
    text_at, label_at = header.index("text"), header.index("label")
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, DataIssue(name, start, None, f"not valid CSV: {exc}")
            return
        previous_end = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            yield (
                start,
                DataIssue(name, start, None, f"expected {len(header)} columns, got {len(row)}"),
            )
            continue
        yield start, {"text": row[text_at], "label": row[label_at]}
