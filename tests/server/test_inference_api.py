"""Inference through the official SDK against a real ``tunesmith serve`` and the real engine.

Three jobs train tiny random models through the API (a chat and a completion LoRA on one tiny
Llama, a classifier on a tiny BERT); then the tests chat with the fine-tuned model, its
checkpoint and its base, stream, continue prompts and classify. One SQLite server: naming a
model is the only database work here, and ``test_models_api`` runs that on both databases.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from tests.helpers import save_tiny_model

from .conftest import Server, running_server, server_env, wait_job

WORDS = ["win", "prize", "hello", "lunch"]
SPAM = [{"role": "user", "content": "win 3"}]


def _label(i: int) -> str:
    return "spam" if i % 4 < 2 else "ham"


def _lines(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def chat_rows(n: int = 16) -> bytes:
    return _lines(
        [
            {
                "messages": [
                    {"role": "user", "content": f"{WORDS[i % 4]} {i}"},
                    {"role": "assistant", "content": _label(i)},
                ]
            }
            for i in range(n)
        ]
    )


def completion_rows(n: int = 16) -> bytes:
    return _lines(
        [{"prompt": f"{WORDS[i % 4]} {i} ->", "completion": f" {_label(i)}"} for i in range(n)]
    )


def classification_rows(n: int = 16) -> bytes:
    return _lines([{"text": f"{WORDS[i % 4]} {i}", "label": _label(i)} for i in range(n)])


@dataclass
class Trained:
    server: Server
    base: str  # the tiny Llama's folder, a base model name
    chat: str  # fine-tuned model names
    checkpoint: str
    completion: str
    classifier: str


HYPER = {"n_epochs": 20, "batch_size": 4, "learning_rate": 0.02, "checkpoint_every": 4}


def _job(server: Server, model: Path, data: bytes, kind: str = "supervised") -> str:
    client = server.client()
    file_id = client.files.create(file=("train.jsonl", data), purpose="fine-tune").id
    method = {"type": kind, kind: {"hyperparameters": HYPER}}
    return client.fine_tuning.jobs.create(
        model=str(model), training_file=file_id, method=method, seed=1
    ).id


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("inference")
    llama = save_tiny_model(root / "llama", "causal", embedding_std=0.3)
    bert = save_tiny_model(root / "bert", "encoder")
    env = server_env(
        root / "data",
        f"sqlite:///{root / 'tunesmith.db'}",
        TUNESMITH_LEASE_SECONDS="60",
        TUNESMITH_MODEL_CACHE_SIZE="2",
    )
    with running_server(env, workers=2) as server:
        jobs = [
            _job(server, llama, chat_rows()),
            _job(server, llama, completion_rows()),
            _job(server, bert, classification_rows(), kind="classification"),
        ]
        client = server.client()
        done = [
            wait_job(client, job, lambda j: j.status in ("succeeded", "failed"), timeout=600)
            for job in jobs
        ]
        log = (server.data_dir / "serve.log").read_text()
        assert [j.status for j in done] == ["succeeded"] * 3, ([j.error for j in done], log)
        chat = done[0].fine_tuned_model or ""
        # the oldest checkpoint still kept (the engine keeps the newest few)
        kept = [m.id for m in client.models.list() if m.id.startswith(chat + ":ckpt-step-")]
        yield Trained(
            server,
            str(llama),
            chat,
            kept[-1],
            done[1].fine_tuned_model or "",
            done[2].fine_tuned_model or "",
        )


def test_chat_with_the_fine_tuned_model(trained: Trained) -> None:
    client = trained.server.client()
    reply = client.chat.completions.create(
        model=trained.chat, messages=SPAM, temperature=0, max_completion_tokens=4, n=2
    )
    assert reply.object == "chat.completion" and reply.model == trained.chat
    assert reply.id.startswith("chatcmpl-") and len(reply.choices) == 2
    first, second = reply.choices
    assert first.message.role == "assistant" and first.message.content
    assert first.message.content.startswith("spam")  # the tiny model learned its answer
    assert second.message.content == first.message.content  # greedy: the same twice
    assert [c.index for c in reply.choices] == [0, 1]
    assert {c.finish_reason for c in reply.choices} <= {"stop", "length"}
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    assert 2 <= reply.usage.completion_tokens <= 2 * 4  # both choices count
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    ham = client.chat.completions.create(
        model=trained.chat,
        messages=[{"role": "user", "content": [{"type": "text", "text": "lunch 7"}]}],
        temperature=0,
        max_tokens=4,
    )
    assert (ham.choices[0].message.content or "").startswith("ham")


def test_streaming_gives_the_same_reply_in_chunks(trained: Trained) -> None:
    client = trained.server.client()
    common = {"model": trained.chat, "messages": SPAM, "temperature": 0, "max_tokens": 4}
    whole = client.chat.completions.create(**common)  # type: ignore[call-overload]
    chunks = list(
        client.chat.completions.create(
            **common, stream=True, stream_options={"include_usage": True}
        )
    )
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] in ("stop", "length") and set(finish[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
    assert all(c.usage is None for c in chunks[:-1])

    several = list(client.chat.completions.create(**common, n=2, stream=True))
    texts = ["", ""]
    for chunk in several:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == [whole.choices[0].message.content] * 2


def test_chat_with_a_checkpoint_and_with_the_base_model(trained: Trained) -> None:
    client = trained.server.client()
    listed = [m.id for m in client.models.list()]
    assert trained.chat in listed and trained.checkpoint in listed
    for model in (trained.checkpoint, trained.base):
        reply = client.chat.completions.create(
            model=model, messages=SPAM, max_tokens=3, temperature=0.7, seed=5
        )
        again = client.chat.completions.create(
            model=model, messages=SPAM, max_tokens=3, temperature=0.7, seed=5
        )
        assert reply.model == model and reply.choices[0].finish_reason in ("stop", "length")
        assert reply.choices[0].message.content == again.choices[0].message.content  # seeded
    base = client.chat.completions.create(model=trained.base, messages=SPAM, max_tokens=4)
    assert base.choices[0].message.content != "spam"  # the random base learned nothing


def test_legacy_completions_continue_prompts(trained: Trained) -> None:
    client = trained.server.client()
    reply = client.completions.create(
        model=trained.completion,
        prompt=["win 1 ->", "lunch 3 ->"],
        max_tokens=2,
        temperature=0,
        n=2,
        echo=True,
    )
    assert reply.object == "text_completion" and [c.index for c in reply.choices] == [0, 1, 2, 3]
    texts = [c.text for c in reply.choices]
    assert texts[0] == texts[1] and texts[2] == texts[3]  # greedy: n copies
    assert texts[0].startswith("win 1 -> spam") and texts[2].startswith("lunch 3 -> ham")
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    streamed = list(
        client.completions.create(
            model=trained.completion, prompt="win 1 ->", max_tokens=2, temperature=0, stream=True
        )
    )
    whole = client.completions.create(
        model=trained.completion, prompt="win 1 ->", max_tokens=2, temperature=0
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == whole.choices[0].text
    assert streamed[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    base = client.completions.create(model=trained.base, prompt="hello", max_tokens=3)
    assert base.choices[0].finish_reason in ("stop", "length")


def test_each_model_answers_only_on_its_endpoint(trained: Trained) -> None:
    client = trained.server.client()
    calls = [
        lambda: client.completions.create(model=trained.chat, prompt="win 1"),
        lambda: client.chat.completions.create(model=trained.completion, messages=SPAM),
        lambda: client.chat.completions.create(model=trained.classifier, messages=SPAM),
        lambda: classify(trained.server, trained.chat, "win 1"),
        lambda: classify(trained.server, trained.base, "win 1"),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as caught:
            call()
        assert caught.value.status_code == 404
        assert caught.value.param == "model" and "endpoint" in caught.value.message


def classify(server: Server, model: str, texts: str | list[str]) -> dict[str, object]:
    """The extension through the SDK's generic ``post``, as a client would call it."""
    client = server.client()
    return client.post(  # type: ignore[no-any-return]
        "/classifications", body={"model": model, "input": texts}, cast_to=object
    )


def test_classifications_extension(trained: Trained) -> None:
    answer = classify(trained.server, trained.classifier, ["win 5", "lunch 7", "prize 9"])
    assert answer["object"] == "list" and answer["model"] == trained.classifier
    data = answer["data"]
    assert isinstance(data, list) and [d["index"] for d in data] == [0, 1, 2]
    for item in data:
        probabilities = item["probabilities"]
        assert set(probabilities) == {"ham", "spam"}
        assert abs(sum(probabilities.values()) - 1) < 1e-5
        assert item["label"] == max(probabilities, key=probabilities.get)
    one = classify(trained.server, trained.classifier, "win 5")
    assert one["data"] == [data[0]]  # type: ignore[index]


def test_requests_for_one_base_model_queue_and_a_dropped_stream_frees_it(
    trained: Trained,
) -> None:
    server = trained.server
    body = {"model": trained.chat, "messages": SPAM, "max_tokens": 200, "stream": True}
    with server.http() as http, http.stream("POST", "/chat/completions", json=body) as stream:
        first = next(stream.iter_lines())
        assert first.startswith("data: ")
    # the client left mid-stream: the model's lock must be free again
    results: list[str | None] = []

    def ask(model: str) -> None:
        with server.client() as client:
            reply = client.chat.completions.create(
                model=model, messages=SPAM, max_tokens=4, temperature=0
            )
        results.append(reply.choices[0].message.content)

    threads = [threading.Thread(target=ask, args=(m,)) for m in (trained.chat, trained.checkpoint)]
    for thread in threads:
        thread.start()
    with server.http() as http:  # the event loop is free
        assert http.get("/models", timeout=10).status_code == 200
    for thread in threads:
        thread.join(120)
    assert len(results) == 2 and all((r or "").startswith("spam") for r in results)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(trained: Trained) -> None:
    """Requests arriving together share ``generate`` calls; each reply (own length, own stop,
    streamed or not) is what that request gets when it is sent alone."""
    asks = [
        {"messages": SPAM, "max_tokens": 1},  # cut before its eos
        {"messages": [{"role": "user", "content": "hello 2"}], "max_tokens": 3},  # ends at eos
        {"messages": [{"role": "user", "content": "lunch 7"}], "max_tokens": 8, "stop": ["m"]},
        {"messages": [{"role": "user", "content": "prize 5"}], "max_tokens": 1},
    ]
    with trained.server.client() as client:

        def reply(ask: dict[str, object], stream: bool = False) -> tuple[str, str | None]:
            common = {"model": trained.chat, "temperature": 0, **ask}
            if not stream:
                choice = client.chat.completions.create(**common).choices[0]  # type: ignore[call-overload]
                return choice.message.content or "", choice.finish_reason
            text, finish = "", None
            for chunk in client.chat.completions.create(**common, stream=True):  # type: ignore[call-overload]
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                    finish = chunk.choices[0].finish_reason or finish
            return text, finish

        alone = [reply(ask) for ask in asks]
        together: list[tuple[str, str | None] | None] = [None] * (2 * len(asks))

        def send(i: int) -> None:
            together[i] = reply(asks[i % len(asks)], stream=i >= len(asks))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(together))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert together == alone + alone
    assert alone == [("spam", "length"), ("ham", "stop"), ("ha", "stop"), ("spam", "length")]


def test_a_prompt_longer_than_the_context_is_refused_as_openai_does(trained: Trained) -> None:
    words = " ".join(f"{WORDS[i % 4]} {i}" for i in range(400))  # far past 256 positions
    with trained.server.client() as client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=trained.chat, messages=[{"role": "user", "content": words}], max_tokens=4
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert "maximum context length is 256 tokens" in error["message"]
