"""End-to-end fine-tunes on tiny models: the files written, the losses, resume, methods."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import write_jsonl
from tests.training.conftest import chat_rows, classification_rows, finetune_spec
from tunesmith.errors import CheckpointError, ConfigError, DataError, TrainingInterrupted
from tunesmith.training.callbacks import BaseCallback, StepMetrics
from tunesmith.training.checkpoint import COMPLETE_MARKER, OPTIMIZER_FILE, list_checkpoints
from tunesmith.training.run import finetune, resume_run


class Recorder(BaseCallback):
    def __init__(self, stop_at: int | None = None) -> None:
        self.steps: list[StepMetrics] = []
        self.messages: list[tuple[str, str]] = []
        self.stop_at = stop_at

    def on_step_end(self, metrics: StepMetrics) -> None:
        self.steps.append(metrics)

    def on_message(self, level: str, message: str) -> None:
        self.messages.append((level, message))

    def should_stop(self) -> str | None:
        if self.stop_at is not None and self.steps and self.steps[-1].step == self.stop_at:
            return "pause requested"
        return None


def _csv_steps(path: Path) -> list[int]:
    return [int(row["step"]) for row in csv.DictReader(path.read_text().splitlines())]


def test_lora_chat_run_writes_a_reloadable_run_folder(causal_dir, chat_files, tmp_path, settings):
    train, valid = chat_files
    recorder = Recorder()
    spec = finetune_spec(causal_dir, train, valid, tmp_path / "run")
    result = finetune(spec, settings=settings, callbacks=[recorder])
    run = result.output_dir
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tunesmith.json",
        "metrics.csv",
    ):
        assert (run / name).is_file(), name
    meta = json.loads((run / "tunesmith.json").read_text())
    assert meta["status"] == "complete"
    assert meta["task"] == "chat" and meta["method"] == "lora" and meta["model_kind"] == "causal"
    assert meta["hyperparameters"]["n_epochs"] == 2
    assert meta["data"]["train"]["n_examples"] == 24
    assert len(meta["data"]["train"]["sha256"]) == 64
    # 24 examples, batch 4, 2 epochs -> 12 steps, each reported once, in order
    assert result.steps == 12
    assert [m.step for m in recorder.steps] == list(range(1, 13))
    assert _csv_steps(run / "metrics.csv") == list(range(1, 13))
    assert result.trained_tokens == sum(m.tokens for m in recorder.steps)
    # the adapter learnt something: the loss fell from the first steps to the last ones
    first = sum(m.train_loss for m in recorder.steps[:3]) / 3
    last = sum(m.train_loss for m in recorder.steps[-3:]) / 3
    assert last < first - 0.1
    checkpoints = list_checkpoints(run)
    assert checkpoints and all((c / COMPLETE_MARKER).exists() for c in checkpoints)
    # only the newest checkpoint keeps the optimizer state
    assert [(c / OPTIMIZER_FILE).exists() for c in checkpoints][-1] is True
    assert not any((c / OPTIMIZER_FILE).exists() for c in checkpoints[:-1])
    # a finished run is not trained again: "auto" returns it, "never" refuses the folder
    again = finetune(spec, settings=settings, callbacks=[recorder])
    assert again.steps == 12 and len(recorder.steps) == 12
    with pytest.raises(ConfigError):
        finetune(spec, settings=settings, resume="never")


def test_resume_continues_exactly_where_it_stopped(causal_dir, chat_files, tmp_path, settings):
    train, valid = chat_files
    straight = Recorder()
    finetune(
        finetune_spec(causal_dir, train, valid, tmp_path / "a", lora_dropout=0.1),
        settings=settings,
        callbacks=[straight],
    )

    paused = Recorder(stop_at=5)
    with pytest.raises(TrainingInterrupted) as stopped:
        finetune(
            finetune_spec(causal_dir, train, valid, tmp_path / "b", lora_dropout=0.1),
            settings=settings,
            callbacks=[paused],
        )
    assert stopped.value.checkpoint is not None and stopped.value.checkpoint.endswith("step-000005")
    resumed = Recorder()
    result = resume_run(tmp_path / "b", settings=settings, callbacks=[resumed])

    assert [m.step for m in resumed.steps] == list(range(6, 13))
    combined = [m.train_loss for m in paused.steps] + [m.train_loss for m in resumed.steps]
    expected = [m.train_loss for m in straight.steps]
    assert combined == pytest.approx(expected, rel=1e-5, abs=1e-6)
    a = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    b = load_file(str(result.output_dir / "adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert _csv_steps(result.output_dir / "metrics.csv") == list(range(1, 13))


def test_resume_without_checkpoint_is_refused(tmp_path, settings):
    with pytest.raises(CheckpointError):
        resume_run(tmp_path, settings=settings)


def test_bad_data_fails_before_training_with_file_and_line(causal_dir, tmp_path, settings):
    rows = chat_rows(12, seed=3)
    rows[4] = {"messages": [{"role": "bot", "content": "hi"}]}
    train = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as caught:
        finetune(finetune_spec(causal_dir, train, None, tmp_path / "run"), settings=settings)
    issues = caught.value.issues
    assert any(i.line == 5 and "role" in (i.field or "") for i in issues)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("labels", "problem"),
    [(("ham", "spam"), "binary"), (("a", "b", "c"), "multiclass")],
)
def test_classification_learns(encoder_dir, tmp_path, settings, labels, problem):
    train = write_jsonl(tmp_path / "train.jsonl", classification_rows(48, 1, labels))
    valid = write_jsonl(tmp_path / "valid.jsonl", classification_rows(12, 2, labels))
    recorder = Recorder()
    spec = finetune_spec(
        encoder_dir, train, valid, tmp_path / "run", "full", n_epochs=4, learning_rate=5e-3
    )
    result = finetune(spec, settings=settings, callbacks=[recorder])
    meta = result.manifest
    assert meta["task"] == "classification"
    assert meta["label_space"]["names"] == list(labels)
    assert result.metrics["valid_mean_token_accuracy"] >= 0.9
    assert (result.output_dir / "model.safetensors").exists()


def test_multilabel_uses_binary_cross_entropy(encoder_dir, tmp_path, settings):
    rows = [
        {"text": f"{' '.join(ls)} item {i}", "label": list(ls)}
        for i, ls in enumerate([["a"], ["b"], ["a", "b"], ["c"]] * 8)
    ]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    result = finetune(
        finetune_spec(encoder_dir, train, None, tmp_path / "run", n_epochs=1), settings=settings
    )
    assert result.manifest["label_space"]["multi_label"] is True
    assert result.steps == 8


def test_head_method_trains_only_the_top(causal_dir, chat_files, tmp_path, settings):
    train, valid = chat_files
    spec = finetune_spec(
        causal_dir, train, valid, tmp_path / "run", "head", n_epochs=1, head_layers=1
    )
    result = finetune(spec, settings=settings)
    params = result.manifest["parameters"]
    assert 0 < params["trainable"] < params["total"] / 2
    base = load_file(str(causal_dir / "model.safetensors"))
    tuned = load_file(str(result.output_dir / "model.safetensors"))
    assert torch.equal(
        base["model.layers.0.mlp.up_proj.weight"], tuned["model.layers.0.mlp.up_proj.weight"]
    )
    assert not torch.equal(
        base["model.layers.1.mlp.up_proj.weight"], tuned["model.layers.1.mlp.up_proj.weight"]
    )


def test_seq2seq_completion_trains(seq2seq_dir, tmp_path, settings):
    rows = [{"prompt": f"say {w}", "completion": w} for w in ["yes", "no", "hello", "fox"] * 4]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    result = finetune(
        finetune_spec(seq2seq_dir, train, None, tmp_path / "run", n_epochs=3), settings=settings
    )
    assert result.manifest["model_kind"] == "seq2seq" and result.manifest["task"] == "completion"
    assert result.metrics["train_loss"] < 6


def _memorise_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    words = ["fox", "dog", "Paris", "hello", "today", "thank", "quick", "lazy"]
    return [
        {
            "messages": [
                {"role": "user", "content": f"item {seed}-{i}"},
                {"role": "assistant", "content": " ".join(rng.choice(words) for _ in range(3))},
            ]
        }
        for i in range(n)
    ]


def test_early_stopping_keeps_the_best_weights(causal_dir, tmp_path, settings):
    # 8 random answers to memorise, judged on 8 other random answers: once the model
    # memorises, valid_loss rises, and early stopping must keep the best weights.
    train = write_jsonl(tmp_path / "train.jsonl", _memorise_rows(8, seed=1))
    valid = write_jsonl(tmp_path / "valid.jsonl", _memorise_rows(8, seed=2))
    recorder = Recorder()
    spec = finetune_spec(
        causal_dir,
        train,
        valid,
        tmp_path / "run",
        "full",
        n_epochs=40,
        learning_rate=1e-2,
        eval_every=2,
        early_stopping_patience=2,
    )
    result = finetune(spec, settings=settings, callbacks=[recorder])
    assert result.manifest["stopped_early"] is True
    assert result.steps < 80
    assert any("early stopping" in m for _, m in recorder.messages)
    assert result.metrics["best_valid_loss"] < result.metrics["valid_loss"]
    assert any("kept the weights of step" in m for _, m in recorder.messages)
    # the saved weights are the best step's: evaluating them gives the best valid_loss
    best = load_file(str(result.output_dir / "checkpoints" / "best" / "model.safetensors"))
    final = load_file(str(result.output_dir / "model.safetensors"))
    assert all(torch.equal(best[k], final[k]) for k in final)
