"""A page of an uploaded data file's records, for browsing (``GET /v1/files/{id}/examples``).

Records are read as they are in the file, with their 1-based line numbers (the numbers the
validation report uses), streaming from the start: a page near the top of a large file costs
only the lines before it. JSONL lines are parsed as JSON (a line that is not JSON comes back
as its text with ``error`` set); CSV rows become ``{column: value}``. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CSV_SUFFIXES = (".csv",)
MAX_RECORD_CHARS = 20_000  # longer records are cut, for display


def read_examples(path: Path, *, offset: int, limit: int) -> dict[str, Any]:
    """``{"data": [{"line", "record", "error"}], "offset", "has_more"}``."""
    rows = _csv_rows(path) if path.suffix.lower() in CSV_SUFFIXES else _jsonl_rows(path)
    data: list[dict[str, Any]] = []
    has_more = False
    for index, row in enumerate(rows):
        if index < offset:
            continue
        if len(data) == limit:
            has_more = True
            break
        data.append(row)
    return {"object": "list", "data": data, "offset": offset, "has_more": has_more}


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            text = raw.decode("utf-8", "replace").removeprefix("\ufeff").strip()
            if not text:
                continue
            try:
                record = json.loads(text) if len(text) <= MAX_RECORD_CHARS else None
                error = None if record is not None else "too long to show"
            except ValueError as exc:
                record, error = None, f"not valid JSON: {exc}"
            if record is None:
                record = text[:MAX_RECORD_CHARS]
            yield {"line": number, "record": record, "error": error}


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, [])
            end = reader.line_num
            for row in reader:
                start, end = end + 1, reader.line_num
                if not row:
                    continue
                record = {
                    column.strip(): value[:MAX_RECORD_CHARS]
                    for column, value in zip(header, row, strict=False)
                }
                error = None if len(row) == len(header) else f"{len(row)} columns"
                yield {"line": start, "record": record, "error": error}
        except csv.Error as exc:
            yield {"line": reader.line_num, "record": None, "error": f"not valid CSV: {exc}"}
