"""The chat event stream on its own: chunk shapes, usage over several choices, and an error
after the response started (sent as a last ``error`` event, without ``[DONE]``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from tunesmith.errors import ModelError
from tunesmith.inference.streaming import StreamChunk
from tunesmith.server.routes.chat import _events


async def _source(*items: tuple[int, StreamChunk] | Exception) -> AsyncIterator[object]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


def _collect(*items: tuple[int, StreamChunk] | Exception, n: int = 1) -> list[object]:
    async def run() -> list[str]:
        return [e async for e in _events(_source(*items), "m", n, include_usage=True)]

    events = asyncio.run(run())
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    return [e.removeprefix("data: ").strip() for e in events]


def test_two_choices_then_usage_then_done() -> None:
    events = _collect(
        (0, StreamChunk("sp")),
        (0, StreamChunk("am")),
        (0, StreamChunk("", "stop", 7, 3)),
        (1, StreamChunk("ham")),
        (1, StreamChunk("", "length", 7, 5)),
        n=2,
    )
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]  # type: ignore[arg-type]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert [c["choices"][0]["delta"] for c in chunks[:2]] == [
        {"role": "assistant", "content": "", "refusal": None}
    ] * 2
    texts = {0: "", 1: ""}
    for chunk in chunks[2:-1]:
        choice = chunk["choices"][0]
        texts[choice["index"]] += choice["delta"].get("content", "")
        assert chunk["usage"] is None
    assert texts == {0: "spam", 1: "ham"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 8, "total_tokens": 15}


def test_an_error_mid_stream_is_the_last_event() -> None:
    events = _collect((0, StreamChunk("sp")), ModelError("the model broke"))
    assert "[DONE]" not in events
    error = json.loads(events[-1])  # type: ignore[arg-type]
    assert error == {
        "error": {
            "message": "the model broke",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert json.loads(events[1])["choices"][0]["delta"] == {"content": "sp"}  # type: ignore[arg-type]
