"""evaluate() end to end on tiny models: a chat run that learned its answers vs its base,
a LoRA run vs its own base, an untrained classifier head, and a seq2seq completion model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from tests.helpers import write_jsonl
from tests.inference.tiny_models import (
    save_base,
    save_lora_adapter,
    tiny_causal,
    tiny_classifier,
    tiny_encoder,
    tiny_seq2seq,
    write_manifest,
)
from tunesmith.data.reading import load_dataset
from tunesmith.data.tokenization import tokenize_dataset
from tunesmith.errors import ConfigError
from tunesmith.evaluation.evaluate import evaluate

SPAM = [
    ("win cash now", "spam"),
    ("lunch at noon?", "ham"),
    ("free prize!!", "spam"),
    ("see you soon", "ham"),
    ("claim your reward", "spam"),
    ("call mom", "ham"),
]


def _chat_data(path: Path) -> Path:
    records = [
        {"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": a}]}
        for t, a in SPAM
    ]
    return write_jsonl(path, records)


def _memorize(model, tokenizer, data: Path, steps: int = 50) -> None:
    """Overfit the tiny model on the data (one padded batch) so it answers the references."""
    examples = tokenize_dataset(
        load_dataset(data), tokenizer, task="chat", model_kind="causal", max_seq_length=64
    ).examples
    width = max(len(e.input_ids) for e in examples)
    pad = [tokenizer.pad_token_id]
    ids = torch.tensor([e.input_ids + pad * (width - len(e.input_ids)) for e in examples])
    labels = torch.tensor([e.labels + [-100] * (width - len(e.labels)) for e in examples])
    mask = (ids != tokenizer.pad_token_id).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@pytest.fixture(scope="module")
def chat_setup(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("chat")
    data = _chat_data(root / "spam.jsonl")
    base = save_base(tiny_causal(tokenizer), tokenizer, root / "base")
    trained = tiny_causal(tokenizer)
    _memorize(trained, tokenizer, data)
    full = save_base(trained, tokenizer, root / "full-run")
    write_manifest(full, base, method="full", hyperparameters={"max_seq_length": 64})
    lora = save_lora_adapter(base, root / "lora-run", seed=3)
    write_manifest(lora, base, hyperparameters={"max_seq_length": 64})
    return data, base, full, lora


def test_chat_run_against_its_base(chat_setup, settings):
    data, base, full, _ = chat_setup
    report = evaluate(full, data, settings=settings, baseline=base)
    m, b = report.metrics, report.baseline_metrics
    assert report.task == "chat" and report.n_examples == 6
    assert m["exact_match"] == 1.0
    assert m["loss"] < b["loss"] and m["token_accuracy"] > b["token_accuracy"]
    assert m["perplexity"] == pytest.approx(2.718281828 ** m["loss"], rel=1e-6)
    answers = m["answer_classification"]
    assert answers["accuracy"] == 1.0
    assert answers["confusion_matrix"]["labels"][:2] == ["ham", "spam"]
    assert b["answer_classification"]["n"] == 6
    assert report.examples[0]["input"] == "win cash now"
    assert report.examples[0]["prediction"] == "spam"
    assert "baseline_prediction" in report.examples[0]
    json.dumps(report.to_dict())

    console = Console(record=True, width=140)
    report.render_table(console)
    text = console.export_text()
    assert "exact match" in text and "confusion matrix" in text and "baseline" in text


def test_lora_baseline_reuses_the_base_weights(chat_setup, settings):
    """The own-base path (adapter switched off) scores exactly like loading the base."""
    data, base, _, lora = chat_setup
    report = evaluate(
        lora, data, settings=settings, baseline=base, max_examples=3, max_new_tokens=4
    )
    alone = evaluate(base, data, settings=settings, max_examples=3, max_new_tokens=4)
    assert report.n_examples == 3
    assert report.baseline_metrics["loss"] == pytest.approx(alone.metrics["loss"], rel=1e-5)
    assert report.metrics["loss"] != pytest.approx(alone.metrics["loss"], rel=1e-3)
    assert report.baseline_metrics["exact_match"] == alone.metrics["exact_match"]


def test_task_must_match_the_data(chat_setup, settings):
    data, base, _, _ = chat_setup
    with pytest.raises(ConfigError):
        evaluate(base, data, settings=settings, task="classification")


def test_classification_base_has_an_untrained_head(tmp_path, tokenizer, settings):
    data = write_jsonl(tmp_path / "cls.jsonl", [{"text": t, "label": a} for t, a in SPAM])
    base = save_base(tiny_encoder(tokenizer), tokenizer, tmp_path / "encoder")
    report = evaluate(base, data, settings=settings)
    m = report.metrics
    assert report.task == "classification"
    assert m["n"] == 6 and 0.0 <= m["accuracy"] <= 1.0
    assert m["auroc"] is not None
    assert m["confusion_matrix"]["labels"] == ["ham", "spam"]
    assert any("untrained" in note for note in report.notes)
    assert report.examples[0]["prediction"].split()[0] in ("ham", "spam")


def test_classification_run_with_unknown_labels_is_refused(tmp_path, tokenizer, settings):
    run = save_base(tiny_classifier(tokenizer, 1), tokenizer, tmp_path / "run")
    write_manifest(
        run,
        None,
        task="classification",
        model_kind="encoder",
        method="full",
        label_space={"names": ["ham", "spam"], "multi_label": False},
    )
    ok = write_jsonl(tmp_path / "ok.jsonl", [{"text": t, "label": a} for t, a in SPAM])
    assert evaluate(run, ok, settings=settings).metrics["n"] == 6
    bad = write_jsonl(
        tmp_path / "bad.jsonl",
        [{"text": "x", "label": "eggs"}, *({"text": t, "label": a} for t, a in SPAM)],
    )
    with pytest.raises(ConfigError, match="eggs"):
        evaluate(run, bad, settings=settings)


def test_seq2seq_completion(tmp_path, tokenizer, settings):
    data = write_jsonl(
        tmp_path / "comp.jsonl", [{"prompt": t + " ->", "completion": " " + a} for t, a in SPAM]
    )
    base = save_base(tiny_seq2seq(tokenizer), tokenizer, tmp_path / "t5")
    report = evaluate(base, data, settings=settings, max_new_tokens=8)
    m = report.metrics
    assert report.task == "completion"
    assert m["n_tokens"] > 0 and m["loss"] > 0
    assert m["n_generated"] == 6 and m["max_new_tokens"] == 8
