"""What ``tunesmith predict`` and ``tunesmith chat`` do with a model: score texts, or reply.

A classification model (a run folder of the classification task) answers each input with
its label probabilities, calibrated when the run folder holds a fitted temperature
(``inference/calibration.py``); a chat or completion model answers with generated text.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tunesmith.data.formats import ChatExample, ClassificationExample, CompletionExample
from tunesmith.data.reading import load_dataset
from tunesmith.inference.calibration import apply_calibration, load_calibration
from tunesmith.inference.classification import classify
from tunesmith.inference.generation import (
    GenerationParams,
    generate_chat,
    generate_completion,
)
from tunesmith.models.loading import LoadedModel, load_any
from tunesmith.settings import Settings
from tunesmith.tasks import Task


def predict_lines(
    model: str | Path,
    *,
    texts: Sequence[str],
    input_file: Path | None,
    max_tokens: int,
    settings: Settings,
) -> Iterator[dict[str, Any]]:
    """One result per input: ``{"text", "label", "probabilities"}`` or ``{"input", "reply"}``."""
    loaded = load_any(model, settings)
    inputs = list(_inputs(texts, input_file))
    if loaded.task == Task.CLASSIFICATION:
        assert loaded.label_space is not None
        scored = classify(
            loaded.model, loaded.tokenizer, [_as_text(i) for i in inputs], loaded.label_space
        )
        calibration = load_calibration(model)
        if calibration is not None:
            scored = apply_calibration(scored, calibration, loaded.label_space.problem_type)
        for item, probs in zip(inputs, scored, strict=True):
            best = max(probs, key=lambda k: probs[k])
            line: dict[str, Any] = {"text": _as_text(item), "label": best, "probabilities": probs}
            if calibration is not None:
                line["temperature"] = calibration.temperature
            yield line
        return
    params = GenerationParams(max_new_tokens=max_tokens, temperature=0.0)
    for item in inputs:
        yield {"input": item, "reply": _reply(loaded, item, params)}


def _inputs(texts: Sequence[str], input_file: Path | None) -> Iterator[Any]:
    yield from texts
    if input_file is None:
        return
    for example in load_dataset(input_file).examples:
        if isinstance(example, ChatExample):
            # score the conversation up to its last assistant turn (a labelled file works too)
            messages = example.messages
            if messages and messages[-1]["role"] == "assistant":
                messages = messages[:-1]
            yield messages
        elif isinstance(example, CompletionExample):
            yield example.prompt
        elif isinstance(example, ClassificationExample):
            yield example.text


def _as_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    return "\n".join(str(m.get("content", "")) for m in item if m.get("role") == "user")


def _reply(loaded: LoadedModel, item: Any, params: GenerationParams) -> str:
    if loaded.task == Task.COMPLETION:
        return generate_completion(loaded.model, loaded.tokenizer, _as_text(item), params)[0].text
    messages = item if isinstance(item, list) else [{"role": "user", "content": item}]
    return generate_chat(loaded.model, loaded.tokenizer, messages, params)[0].text


class ChatSession:
    """A conversation with a model that remembers its turns (``tunesmith chat``)."""

    def __init__(
        self,
        model: str | Path,
        *,
        settings: Settings,
        system: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> None:
        self.loaded = load_any(model, settings, task=Task.CHAT)
        self.messages: list[dict[str, Any]] = []
        if system:
            self.messages.append({"role": "system", "content": system})
        self.params = GenerationParams(max_new_tokens=max_tokens, temperature=temperature)

    def send(self, text: str) -> str:
        self.messages.append({"role": "user", "content": text})
        reply = generate_chat(self.loaded.model, self.loaded.tokenizer, self.messages, self.params)
        answer = reply[0].text
        self.messages.append({"role": "assistant", "content": answer})
        return answer
