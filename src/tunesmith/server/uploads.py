"""Streaming ``multipart/form-data`` uploads: the ``file`` part goes to disk chunk by chunk.

The body is never held in memory, and the size limit is enforced while it streams: a
``Content-Length`` over the limit is refused before reading anything, and a body that grows
past it (chunked uploads) is cut off at the limit. Other fields (``purpose``) are small and
kept in memory, up to ``MAX_FIELD_BYTES``.

Where the file's bytes go is a ``Sink``, chosen when the file part begins from the fields
sent before it: by default a plain file; ``server/deid_upload.py`` supplies one that
de-identifies the bytes as they arrive, so the original text is never written anywhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from tunesmith.jobs.errors import InvalidRequestError
from tunesmith.server.errors import UploadTooLargeError

MAX_FIELD_BYTES = 64 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # headers and boundaries around the file's bytes


@dataclass
class Upload:
    fields: dict[str, str]
    filename: str | None = None
    temp_path: Path | None = None
    size: int = 0
    fields_before_file: dict[str, str] = field(default_factory=dict)
    sink_result: Any = None  # what the sink's ``close`` returned (a de-identification report)


class Sink(Protocol):
    """Where the file part's bytes go; ``close`` leaves the stored bytes at its path."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> Any: ...

    async def abort(self) -> None: ...


# (fields sent before the file part, the file's name, the temporary path) -> a sink, or None
# for the default: the bytes as they came.
OpenSink = Callable[[dict[str, str], str, Path], Sink | None]


class _FileSink:
    """The default sink: the bytes as they came, into the temporary file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    async def write(self, data: bytes) -> None:
        if self._file is None:
            self._file = await anyio.open_file(self.path, "wb")
        await self._file.write(data)

    async def close(self) -> None:
        if self._file is None:
            self.path.touch()
        else:
            await self._file.aclose()

    async def abort(self) -> None:
        if self._file is not None:
            await self._file.aclose()


@dataclass
class _Part:
    headers: dict[str, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    value: bytearray = field(default_factory=bytearray)


class _Collector:
    """Parser callbacks: collect headers and small fields; queue file bytes for writing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.part = _Part()
        self.header_field = b""
        self.header_value = b""
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.fields_before_file: dict[str, str] | None = None  # set when the file part begins
        self.pending: list[bytes] = []
        self.size = 0

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.header_field.decode("latin-1").lower()] = self.header_value
        self.header_field, self.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get("content-disposition", b""))
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options and self.part.name == "file":
            self.part.filename = options[b"filename"].decode("utf-8", "replace")
            self.filename = Path(self.part.filename.replace("\\", "/")).name or "upload"
            self.fields_before_file = dict(self.fields)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.filename is not None:
            self.size += end - start
            if self.size > self.limit:
                raise UploadTooLargeError(self.limit)
            self.pending.append(data[start:end])
            return
        self.part.value += data[start:end]
        if len(self.part.value) > MAX_FIELD_BYTES:
            raise InvalidRequestError(f"Form field {self.part.name!r} is too long.")

    def on_part_end(self) -> None:
        if self.part.filename is None and self.part.name:
            self.fields[self.part.name] = self.part.value.decode("utf-8", "replace")


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise InvalidRequestError(
            "Upload files as multipart/form-data with a 'file' and a 'purpose' field.",
            param="file",
        )
    return options[b"boundary"]


async def receive_upload(
    request: Request, folder: Path, limit: int, *, open_sink: OpenSink | None = None
) -> Upload:
    """Stream the request's ``file`` part into a temporary file in ``folder``, through the
    sink ``open_sink`` picks (or the bytes as they came)."""
    boundary = _boundary(request)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise UploadTooLargeError(limit)
    collector = _Collector(limit)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".upload-{secrets.token_hex(8)}.part"
    sink: Sink | None = None
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            sink = sink or _open(collector, open_sink, temp)
            for piece in collector.pending:
                assert sink is not None  # bytes arrive only after the file part began
                await sink.write(piece)
            collector.pending.clear()
        parser.finalize()
        sink = sink or _open(collector, open_sink, temp)
        result = await sink.close() if sink is not None else None
    except MultipartParseError as exc:
        await _abort(sink, temp)
        raise InvalidRequestError(f"Malformed multipart body: {exc}", param="file") from None
    except BaseException:
        await _abort(sink, temp)
        raise
    if collector.filename is None:
        temp.unlink(missing_ok=True)
        raise InvalidRequestError("The upload has no 'file' part.", param="file")
    return Upload(
        collector.fields,
        collector.filename,
        temp,
        collector.size,
        fields_before_file=collector.fields_before_file or {},
        sink_result=result,
    )


def _open(collector: _Collector, open_sink: OpenSink | None, temp: Path) -> Sink | None:
    """The sink for the file part, once it has begun (None before)."""
    if collector.fields_before_file is None or collector.filename is None:
        return None
    fields, name = collector.fields_before_file, collector.filename
    chosen = open_sink(fields, name, temp) if open_sink is not None else None
    return chosen or _FileSink(temp)


async def _abort(sink: Sink | None, temp: Path) -> None:
    if sink is not None:
        await sink.abort()
    temp.unlink(missing_ok=True)
