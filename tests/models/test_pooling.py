"""Encoder classifiers pool the way their checkpoint declares (models/pooling.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tunesmith.data.labels import LabelSpace
from tunesmith.models.loading import load_model, load_tokenizer
from tunesmith.models.pooling import POOLING_CONFIG_KEY, declared_pooling
from tunesmith.models.registry import resolve_model
from tunesmith.settings import Settings

BINARY = LabelSpace(names=["no", "yes"])


def _declare(folder: Path, **modes: bool) -> Path:
    """Write sentence-transformers' modules.json and pooling config into ``folder``."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    config = {"word_embedding_dimension": 32, "pooling_mode_cls_token": False} | {
        f"pooling_mode_{mode}": on for mode, on in modes.items()
    }
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture
def mean_bert(tmp_path: Path, bert_dir: Path) -> Path:
    folder = tmp_path / "mean-bert"
    shutil.copytree(bert_dir, folder)
    return _declare(folder, mean_tokens=True)


def _classifier(folder: Path, settings: Settings) -> torch.nn.Module:
    resolved = resolve_model(str(folder), settings)
    torch.manual_seed(0)
    model = load_model(resolved, task="classification", settings=settings, label_space=BINARY)
    return model.eval()


def test_declared_pooling_reads_the_sentence_transformers_files(
    tmp_path: Path, bert_dir: Path
) -> None:
    config = object()
    assert declared_pooling(bert_dir, config) is None  # no modules.json: CLS, as transformers
    for name, modes, expected in (
        ("mean", {"mean_tokens": True}, "mean"),
        ("cls", {"cls_token": True}, None),
        ("mean+max", {"mean_tokens": True, "max_tokens": True}, None),  # not ours to imitate
    ):
        folder = tmp_path / name
        folder.mkdir()
        assert declared_pooling(_declare(folder, **modes), config) == expected


def test_a_mean_pooling_checkpoint_classifies_from_the_masked_mean(
    settings: Settings, mean_bert: Path
) -> None:
    model = _classifier(mean_bert, settings)
    assert getattr(model.config, POOLING_CONFIG_KEY) == "mean"
    assert not any("pooler" in name for name, _ in model.named_parameters())
    ids = torch.tensor([[5, 6, 7, 8, 1, 1], [5, 6, 7, 8, 9, 10]])  # row 0 padded with <pad>=1
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        alone = model(input_ids=ids[:1, :4]).logits  # row 0 without its padding
    by_hand = model.classifier(
        torch.stack([hidden[0, :4].mean(0), hidden[1].mean(0)])
    )  # dropout is off in eval mode
    torch.testing.assert_close(logits, by_hand)
    torch.testing.assert_close(logits[:1], alone, atol=1e-5, rtol=1e-4)


def test_without_a_declaration_the_pooler_stays(settings: Settings, bert_dir: Path) -> None:
    model = _classifier(bert_dir, settings)
    assert getattr(model.config, POOLING_CONFIG_KEY, None) is None
    assert any(name.startswith("bert.pooler.dense") for name, _ in model.named_parameters())


def test_a_saved_classifier_reloads_with_mean_pooling(
    settings: Settings, mean_bert: Path, tmp_path: Path
) -> None:
    """A full fine-tune's run folder has no 1_Pooling folder: the config carries the choice."""
    model = _classifier(mean_bert, settings)
    saved = tmp_path / "run"
    model.save_pretrained(saved)
    load_tokenizer(mean_bert, settings).save_pretrained(saved)
    assert json.loads((saved / "config.json").read_text())[POOLING_CONFIG_KEY] == "mean"
    reloaded = _classifier(saved, settings)
    ids = torch.tensor([[5, 6, 7, 1], [5, 6, 7, 8]])
    mask = (ids != 1).long()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(input_ids=ids, attention_mask=mask).logits,
            model(input_ids=ids, attention_mask=mask).logits,
        )
