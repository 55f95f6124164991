"""Tiny models and datasets for training tests (each fine-tune runs in a few seconds)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.helpers import save_tiny_model, write_jsonl
from tunesmith.settings import Settings
from tunesmith.training.batching import TrainItem, pack_causal
from tunesmith.training.spec import FinetuneSpec, Hyperparameters


@pytest.fixture(scope="session")
def causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("causal"), "causal")


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("encoder"), "encoder")


@pytest.fixture(scope="session")
def seq2seq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("t5"), "seq2seq")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def chat_rows(n: int, seed: int) -> list[dict]:
    """Chat examples whose answer (spam/ham) is a deterministic function of the text."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        word = rng.choice(["win", "prize", "hello", "lunch"])
        answer = "spam" if word in ("win", "prize") else "ham"
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "Answer spam or ham."},
                    {"role": "user", "content": f"{word} {seed}-{i}"},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    return rows


def classification_rows(n: int, seed: int, labels: tuple[str, ...] = ("ham", "spam")) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(labels)
        rows.append({"text": f"{label} {label} message {seed}-{i}", "label": label})
    return rows


@pytest.fixture
def chat_files(tmp_path: Path) -> tuple[Path, Path]:
    train = write_jsonl(tmp_path / "train.jsonl", chat_rows(24, seed=1))
    valid = write_jsonl(tmp_path / "valid.jsonl", chat_rows(8, seed=2))
    return train, valid


# The shape of the tiny decoders: two blocks, a 64-token vocabulary, grouped-query attention.
TINY_DECODER = {
    "vocab_size": 64,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}


def tiny_llama(*, tie_word_embeddings: bool = False) -> LlamaForCausalLM:
    """A two-block Llama with a 64-token vocabulary, the same weights every call."""
    torch.manual_seed(0)
    config = LlamaConfig(**TINY_DECODER, tie_word_embeddings=tie_word_embeddings)
    return LlamaForCausalLM(config).eval()


def tiny_bert_classifier(dropout: float = 0.1) -> BertForSequenceClassification:
    """A two-layer BERT with a two-label head on sdpa, the same weights every call."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=2,
        attn_implementation="sdpa",
    )
    return BertForSequenceClassification(config)


def finetune_spec(
    model: Path,
    train: Path,
    valid: Path | None,
    out: Path,
    method: str = "lora",
    *,
    precision: str = "auto",
    **hp: object,
) -> FinetuneSpec:
    """A short fine-tune of a tiny model: 2 epochs of batch 4 at a high learning rate,
    checkpoints every 3 steps; ``hp`` overrides any hyperparameter."""
    params = {"n_epochs": 2, "batch_size": 4, "learning_rate": 3e-2, "checkpoint_every": 3} | hp
    return FinetuneSpec(
        model=str(model),
        train_file=train,
        validation_file=valid,
        output_dir=out,
        method=method,
        precision=precision,
        hyperparameters=Hyperparameters(**params),  # type: ignore[arg-type]
    )


def packed_causal_batch() -> dict[str, torch.Tensor]:
    """Four examples of 5-20 tokens, the second half of each a target, packed into rows of 32
    for the tiny Llama's 64-token vocabulary."""
    gen = torch.Generator().manual_seed(1)
    items = []
    for n in (9, 14, 5, 20):
        ids = torch.randint(3, 64, (n,), generator=gen).tolist()
        items.append(TrainItem(input_ids=ids, labels=[-100] * (n // 2) + ids[n // 2 :]))
    return pack_causal(items, 32, pad_id=0)
