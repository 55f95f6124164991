"""Reloading fine-tuned runs (LoRA and full), ``load_any``, and merging adapters for export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tunesmith.data.labels import LabelSpace
from tunesmith.errors import ModelError
from tunesmith.models.export import export_run, merge_adapter
from tunesmith.models.loading import load_any, load_finetuned
from tunesmith.settings import Settings
from tunesmith.tasks import ModelKind, Task

IDS = torch.tensor([[4, 9, 17, 23, 5]])


def logits(model, **extra) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS, **extra).logits


def test_lora_causal_run_reloads_to_the_same_outputs(
    settings: Settings, llama_dir: Path, make_lora_run
) -> None:
    run_dir, trained = make_lora_run(llama_dir, "chat")
    loaded = load_finetuned(run_dir, settings)
    assert (loaded.kind, loaded.task, loaded.label_space) == (ModelKind.CAUSAL, Task.CHAT, None)
    assert not loaded.model.training
    assert loaded.tokenizer.pad_token == "</s>"
    torch.testing.assert_close(logits(loaded.model), logits(trained))


def test_lora_classifier_restores_its_trained_head(
    settings: Settings, bert_dir: Path, make_lora_run
) -> None:
    labels = LabelSpace(names=["a", "b", "c"], multi_label=False)
    run_dir, trained = make_lora_run(bert_dir, "classification", labels)
    loaded = load_finetuned(run_dir, settings)
    assert isinstance(loaded.label_space, LabelSpace) and loaded.label_space.names == labels.names
    torch.testing.assert_close(logits(loaded.model), logits(trained))


def test_full_run_reloads_from_its_own_folder(settings: Settings, t5_dir: Path, tmp_path) -> None:
    run_dir = tmp_path / "full"
    shutil.copytree(t5_dir, run_dir)
    manifest = {"base_model": "gone", "model_kind": "seq2seq", "task": "completion"}
    (run_dir / "tunesmith.json").write_text(json.dumps(manifest | {"label_space": None}))
    loaded = load_finetuned(run_dir, settings)
    assert type(loaded.model).__name__ == "T5ForConditionalGeneration"
    assert loaded.kind == ModelKind.SEQ2SEQ


def test_run_without_weights_is_a_model_error(settings: Settings, tmp_path: Path) -> None:
    manifest = {"base_model": "x", "model_kind": "causal", "task": "chat"}
    (tmp_path / "tunesmith.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="neither an adapter"):
        load_finetuned(tmp_path, settings)


def test_load_any_accepts_runs_and_base_models(
    settings: Settings, llama_dir: Path, t5_dir: Path, bert_dir: Path, make_lora_run
) -> None:
    run_dir, _ = make_lora_run(llama_dir, "chat")
    assert load_any(run_dir, settings).manifest["method"] == "lora"
    with pytest.raises(ModelError, match="fine-tuned for chat"):
        load_any(run_dir, settings, task="classification")

    base = load_any(str(llama_dir), settings)
    assert base.task == Task.CHAT and base.manifest["method"] is None  # has a chat template
    assert load_any(str(t5_dir), settings).task == Task.COMPLETION  # no chat template
    with pytest.raises(ModelError, match="without a trained classifier"):
        load_any(str(bert_dir), settings)


def test_merged_lora_matches_the_adapter(
    settings: Settings, llama_dir: Path, make_lora_run, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    run_dir, trained = make_lora_run(llama_dir, "chat")
    out = merge_adapter(run_dir, tmp_path / "export" / "merged", settings)
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    assert json.loads((out / "tunesmith.json").read_text())["merged"] is True
    assert not list(out.parent.glob(".merged.tmp-*"))

    plain = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)  # no peft needed
    torch.testing.assert_close(logits(plain), logits(trained), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits(load_any(out, settings).model), logits(plain))


def test_merged_lora_classifier_keeps_head_and_labels(
    settings: Settings, bert_dir: Path, make_lora_run, tmp_path: Path
) -> None:
    labels = LabelSpace(names=["no", "yes"], multi_label=False)
    run_dir, trained = make_lora_run(bert_dir, "classification", labels)
    out = merge_adapter(run_dir, tmp_path / "merged", settings)
    loaded = load_any(out, settings)
    assert loaded.model.config.id2label == {0: "yes"}
    torch.testing.assert_close(logits(loaded.model), logits(trained), rtol=1e-5, atol=1e-5)


def test_full_run_export_copies_weights_only(
    settings: Settings, bert_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "full"
    shutil.copytree(bert_dir, run_dir)
    manifest = {"base_model": "b", "model_kind": "encoder", "task": "classification"}
    (run_dir / "tunesmith.json").write_text(json.dumps(manifest | {"method": "full"}))
    (run_dir / "metrics.csv").write_text("step,train_loss\n")
    (run_dir / "checkpoints" / "step-000001").mkdir(parents=True)
    out = merge_adapter(run_dir, tmp_path / "out", settings)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "tunesmith.json",
    ]
    assert json.loads((out / "tunesmith.json").read_text())["merged"] is True


def test_export_never_overwrites(settings: Settings, llama_dir: Path, make_lora_run, tmp_path):
    run_dir, _ = make_lora_run(llama_dir, "chat")
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ModelError, match="not empty"):
        merge_adapter(run_dir, out, settings)
    assert (out / "keep.txt").read_text() == "mine"


def test_unmerged_export_is_a_loadable_adapter(
    settings: Settings, llama_dir: Path, make_lora_run, tmp_path: Path
) -> None:
    run_dir, trained = make_lora_run(llama_dir, "chat")
    (run_dir / "metrics.csv").write_text("step,train_loss\n")
    out = export_run(run_dir, tmp_path / "adapter", settings=settings)
    assert (out / "adapter_model.safetensors").is_file() and not (out / "metrics.csv").exists()
    assert json.loads((out / "tunesmith.json").read_text())["merged"] is False
    torch.testing.assert_close(logits(load_any(out, settings).model), logits(trained))
