"""De-identified uploads: ``POST /v1/files`` with ``deidentify=true`` never stores the original.

A hospital's expectation is that identifiers it asked to remove never reach the server's disk,
not that they are removed some time after. So de-identification happens while the upload
streams in: the file part's bytes go through a small bounded queue to a thread running
``deidentify_stream``, which writes only de-identified lines (to a temporary file renamed into
place when the whole file went through). The original exists only in memory, a few chunks at
a time. Decision 006 explains the choice.

Asked for by form fields sent *before* the file part (the ``openai`` SDK's ``extra_body``,
``curl -F`` in the order given and browsers' ``FormData`` all do so):

- ``deidentify``: ``true`` to de-identify;
- ``deidentify_mode``: ``placeholder`` (default) or ``surrogate``;
- ``record_key_field``: a JSONL field or CSV column naming each line's patient.

``TUNESMITH_DEIDENTIFY_UPLOADS=true`` makes every upload de-identified, whatever the request
says: the operator's guarantee does not depend on every client remembering a flag. A
``deidentify`` field sent after the file part is refused (the bytes are then already stored
as they came) and the stored bytes deleted.
"""

from __future__ import annotations

import io
import queue
import threading
from pathlib import Path
from typing import Any

import anyio

from tunesmith.data.deid import DeidReport, deidentify_stream
from tunesmith.jobs.errors import InvalidRequestError
from tunesmith.server.uploads import OpenSink, Sink, Upload
from tunesmith.settings import Settings
from tunesmith.training.deidentified import data_dir_salt

FIELDS = ("deidentify", "deidentify_mode", "record_key_field")
MODES = ("placeholder", "surrogate")
QUEUE_CHUNKS = 16  # chunks waiting for the de-identifying thread: bounds memory, gives backpressure
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def sink_opener(settings: Settings) -> OpenSink:
    """The ``open_sink`` for ``receive_upload``: de-identify when asked (or always, by policy)."""

    def open_sink(fields: dict[str, str], filename: str, temp: Path) -> Sink | None:
        if not wanted(fields, settings):
            return None
        mode = fields.get("deidentify_mode") or "placeholder"
        if mode not in MODES:
            raise InvalidRequestError(
                f"deidentify_mode must be one of {', '.join(MODES)}, got {mode!r}.",
                param="deidentify_mode",
            )
        return DeidentifyingSink(
            temp,
            filename=filename,
            mode=mode,
            record_key_field=fields.get("record_key_field") or None,
            salt=data_dir_salt(settings),
        )

    return open_sink


def wanted(fields: dict[str, str], settings: Settings) -> bool:
    """Whether these fields (or the server's policy) ask for de-identification."""
    value = fields.get("deidentify", "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise InvalidRequestError(
            f"deidentify must be true or false, got {value!r}.", param="deidentify"
        )
    return settings.deidentify_uploads or value in _TRUE


def check_field_order(upload: Upload, settings: Settings) -> None:
    """Refuse an upload whose de-identification fields came after its file part."""
    late = [f for f in FIELDS if f in upload.fields and f not in upload.fields_before_file]
    if late and upload.sink_result is None and wanted(upload.fields, settings):
        raise InvalidRequestError(
            f"Send {', '.join(late)} before the file part: the file was read before the "
            "server knew it had to be de-identified, so it was not stored.",
            param=late[0],
        )


def summary(report: DeidReport, record_key_field: str | None) -> dict[str, Any]:
    """What the file record keeps: counts by type, never a value or the uploaded name."""
    return {
        "mode": report.mode,
        "record_key_field": record_key_field,
        "records": report.records,
        "fields": report.fields,
        "replacements": report.replacements,
        "total": report.total,
        "seconds": report.seconds,
        "engine": report.engine,
    }


class DeidentifyingSink:
    """Bytes in (from the event loop), de-identified lines out (from a thread), to ``target``."""

    def __init__(
        self,
        target: Path,
        *,
        filename: str,
        mode: str,
        record_key_field: str | None,
        salt: bytes,
    ) -> None:
        self.record_key_field = record_key_field
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._reader = _QueueReader(self._queue)
        self._report: DeidReport | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run,
            args=(target, filename, mode, record_key_field, salt),
            name="deidentify-upload",
            daemon=True,
        )
        self._thread.start()

    def _run(
        self, target: Path, filename: str, mode: str, key_field: str | None, salt: bytes
    ) -> None:
        try:
            stream = io.BufferedReader(self._reader)
            self._report = deidentify_stream(
                stream, target, name=filename, mode=mode, salt=salt, record_key_field=key_field
            )
        except BaseException as exc:  # handed to the request in close()
            self._error = exc
        finally:
            self._reader.drain()  # a failed thread must not leave the producer blocked

    async def write(self, data: bytes) -> None:
        await anyio.to_thread.run_sync(self._put, data)

    async def close(self) -> dict[str, Any]:
        await anyio.to_thread.run_sync(self._put, None)
        await anyio.to_thread.run_sync(self._thread.join)
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return summary(self._report, self.record_key_field)

    async def abort(self) -> None:
        self._reader.cancel()
        await anyio.to_thread.run_sync(self._thread.join)

    def _put(self, data: bytes | None) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(data, timeout=0.2)
                return
            except queue.Full:
                continue


class _QueueReader(io.RawIOBase):
    """A readable stream over a queue of byte chunks; ``None`` in the queue ends it."""

    def __init__(self, chunks: queue.Queue[bytes | None]) -> None:
        self._chunks = chunks
        self._current = b""
        self._ended = False
        self._cancelled = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._current and not self._ended:
            if self._cancelled.is_set():
                raise OSError("upload aborted")
            try:
                chunk = self._chunks.get(timeout=0.2)
            except queue.Empty:
                continue
            if chunk is None:
                self._ended = True
            else:
                self._current = chunk
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def cancel(self) -> None:
        self._cancelled.set()

    def drain(self) -> None:
        """Empty the queue so a producer waiting on it returns (its bytes are dropped)."""
        self._ended = True
        while True:
            try:
                self._chunks.get_nowait()
            except queue.Empty:
                return
