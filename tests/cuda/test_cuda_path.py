"""The CUDA path: training in bf16 on a GPU, resume, and inference placed on the GPU.

Skipped on machines without a CUDA GPU (CI has none); run on one with ``pytest -m cuda``.
What runs on the CPU everywhere else is tested elsewhere; these tests check what only a GPU
exercises: that "auto" trains in bf16 there, that checkpoints carry the GPU's RNG state so a
resumed run continues the same loss curve, and that served and evaluated models land on the
GPU (in bf16) and still give each batched request the reply it gets alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import save_tiny_model, write_jsonl
from tests.inference.batch_rows import CONVERSATIONS, alone, row_for
from tests.training.conftest import chat_rows, classification_rows, finetune_spec
from tunesmith.errors import TrainingInterrupted
from tunesmith.evaluation.evaluate import evaluate
from tunesmith.inference.batch_generation import generate_rows
from tunesmith.inference.cache import ModelCache
from tunesmith.inference.classification import classify
from tunesmith.inference.generation import GenerationParams, device_of
from tunesmith.models.loading import load_any
from tunesmith.settings import Settings
from tunesmith.training.callbacks import BaseCallback, StepMetrics
from tunesmith.training.run import finetune, resume_run

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


class Losses(BaseCallback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.steps: list[StepMetrics] = []
        self.stop_at = stop_at

    def on_step_end(self, metrics: StepMetrics) -> None:
        self.steps.append(metrics)

    def should_stop(self) -> str | None:
        if self.stop_at is not None and self.steps and self.steps[-1].step == self.stop_at:
            return "pause requested"
        return None

    @property
    def curve(self) -> list[float]:
        return [m.train_loss for m in self.steps]


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # sharp embeddings: greedy replies win by clear margins (see save_tiny_model)
    return save_tiny_model(tmp_path_factory.mktemp("causal"), "causal", embedding_std=0.3)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("encoder"), "encoder")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def test_lora_trains_in_bf16_on_the_gpu_and_serves_from_it(causal_dir, tmp_path, settings):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(24, seed=1))
    losses = Losses()
    result = finetune(
        finetune_spec(causal_dir, train, None, tmp_path / "run"),
        settings=settings,
        callbacks=[losses],
    )

    environment = json.loads((result.output_dir / "tunesmith.json").read_text())["environment"]
    assert environment["precision"] == "bf16"
    assert environment["device"].startswith("cuda")
    first, last = sum(losses.curve[:3]) / 3, sum(losses.curve[-3:]) / 3
    assert last < first - 0.1

    with ModelCache(settings).get(result.output_dir) as served:
        assert device_of(served.model).type == "cuda"
        assert next(served.model.parameters()).dtype == torch.bfloat16


def test_resumed_gpu_run_continues_the_same_loss_curve(causal_dir, tmp_path, settings):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(24, seed=1))
    # dropout draws from the GPU's RNG: the checkpoint must carry its state
    options = {"lora_dropout": 0.1, "precision": "fp32"}
    straight = Losses()
    finetune(
        finetune_spec(causal_dir, train, None, tmp_path / "a", **options),
        settings=settings,
        callbacks=[straight],
    )
    paused = Losses(stop_at=5)
    with pytest.raises(TrainingInterrupted):
        finetune(
            finetune_spec(causal_dir, train, None, tmp_path / "b", **options),
            settings=settings,
            callbacks=[paused],
        )
    resumed = Losses()
    resume_run(tmp_path / "b", settings=settings, callbacks=[resumed])

    assert [m.step for m in resumed.steps] == list(range(6, 13))
    assert paused.curve + resumed.curve == pytest.approx(straight.curve, rel=1e-4)


def test_batched_replies_on_the_gpu_match_each_reply_alone(causal_dir, tmp_path, settings):
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(24, seed=1))
    run = finetune(finetune_spec(causal_dir, train, None, tmp_path / "run"), settings=settings)
    # fp32 on the GPU: bf16 rounds differently in a batch of three than alone
    loaded = load_any(run.output_dir, settings, dtype=torch.float32)
    model, tokenizer = loaded.model, loaded.tokenizer
    assert device_of(model).type == "cuda"
    params = GenerationParams(max_new_tokens=12, temperature=0)
    rows = [row_for(messages, params) for messages in CONVERSATIONS]
    expected = [alone(model, tokenizer, messages, params) for messages in CONVERSATIONS]

    generate_rows(model, tokenizer, rows)

    for row, reply in zip(rows, expected, strict=True):
        assert row.sink.events == ["ready", "close"]
        assert row.sink.text == reply.text
        assert row.sink.last.completion_tokens == reply.completion_tokens


def test_classifier_trains_and_predicts_on_the_gpu(encoder_dir, tmp_path, settings):
    labels = ("a", "b", "c")
    train = write_jsonl(tmp_path / "train.jsonl", classification_rows(48, 1, labels))
    valid = write_jsonl(tmp_path / "valid.jsonl", classification_rows(24, 2, labels))
    result = finetune(
        finetune_spec(
            encoder_dir, train, None, tmp_path / "run", "full", n_epochs=4, learning_rate=5e-3
        ),
        settings=settings,
    )
    assert result.manifest["environment"]["precision"] == "bf16"

    loaded = load_any(result.output_dir, settings)
    assert device_of(loaded.model).type == "cuda"
    texts = [row["text"] for row in classification_rows(24, 2, labels)]
    probabilities = classify(loaded.model, loaded.tokenizer, texts, loaded.label_space)
    assert all(sum(p.values()) == pytest.approx(1.0, abs=1e-5) for p in probabilities)
    report = evaluate(result.output_dir, valid, settings=settings)
    assert report.metrics["accuracy"] >= 0.9
