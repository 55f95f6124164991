"""Tiny random models (2 layers, hidden 32) saved as HF folders, so model tests run in seconds."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tunesmith.settings import Settings

VOCAB = ["<unk>", "<pad>", "<s>", "</s>", *[f"w{i}" for i in range(60)]]
UNK, PAD, BOS, EOS = 0, 1, 2, 3
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }} {{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant{% endif %}"
)


def save_tokenizer(folder: Path, *, pad: bool, chat_template: bool = False) -> None:
    """A word-level tokenizer over VOCAB (no download); without a pad token when ``pad`` is off."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    special = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
    if pad:
        special["pad_token"] = "<pad>"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **special)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)


def _save(model, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # reloads are compared with fp32 models built here: fp32 even where bf16 is native
    return Settings(data_dir=tmp_path / "data", offline=True, inference_dtype="fp32")


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama-architecture causal LM; its tokenizer has no pad token (like most decoders)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=BOS,
        eos_token_id=EOS,
    )
    folder = _save(LlamaForCausalLM(config), tmp_path_factory.mktemp("llama"))
    save_tokenizer(folder, pad=False, chat_template=True)
    return folder


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=64,
        pad_token_id=PAD,
    )
    folder = _save(BertModel(config), tmp_path_factory.mktemp("bert"))
    save_tokenizer(folder, pad=True)
    return folder


@pytest.fixture(scope="session")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(VOCAB),
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        relative_attention_num_buckets=8,
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=PAD,
    )
    folder = _save(T5ForConditionalGeneration(config), tmp_path_factory.mktemp("t5"))
    save_tokenizer(folder, pad=True)
    return folder


def write_manifest(run_dir: Path, base: Path, kind: str, task: str, method: str, labels) -> None:
    manifest = {
        "base_model": str(base),
        "base_model_path": str(base),
        "model_kind": kind,
        "task": task,
        "method": method,
        "label_space": labels.to_dict() if labels is not None else None,
        "status": "complete",
    }
    (run_dir / "tunesmith.json").write_text(json.dumps(manifest))


@pytest.fixture
def make_lora_run(tmp_path: Path, settings: Settings):
    """Factory: a LoRA run folder over ``base`` with random (non-zero) adapter weights.

    Returns (run_dir, the in-memory PeftModel) so tests compare reloaded outputs against it.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    from tunesmith.models.loading import load_model
    from tunesmith.models.registry import resolve_model

    peft_tasks = {
        ("causal", "chat"): TaskType.CAUSAL_LM,
        ("seq2seq", "completion"): TaskType.SEQ_2_SEQ_LM,
    }

    def make(base: Path, task: str, labels=None, name: str = "run"):
        import torch

        torch.manual_seed(1)
        resolved = resolve_model(str(base), settings)
        model = load_model(resolved, task=task, settings=settings, label_space=labels)
        task_type = peft_tasks.get((resolved.kind.value, task), TaskType.SEQ_CLS)
        config = LoraConfig(
            r=4,
            lora_alpha=8,
            target_modules="all-linear",
            init_lora_weights=False,  # random B, so the adapter changes the outputs
            task_type=task_type,
        )
        peft_model = get_peft_model(model, config).eval()
        run_dir = tmp_path / name
        peft_model.save_pretrained(run_dir)
        for file in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(base / file, run_dir / file)
        write_manifest(run_dir, base, resolved.kind.value, task, "lora", labels)
        return run_dir, peft_model

    return make
