"""Tiny random models and a byte-level tokenizer for fast tests (no hub, no weights).

The tokenizer is character-level over printable ASCII and newline: every character is one
token, so a random model writes readable text, and stop sequences can be placed anywhere.
It has a ChatML template with ``<|im_end|>`` as its end token, like SmolLM2.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(*, chat_template: bool = True) -> PreTrainedTokenizerFast:
    """100 tokens: ``<unk>``, 96 characters, ``<|im_end|>`` (eos), ``<pad>``, ``<|im_start|>``."""
    chars = ["<unk>", *(chr(i) for i in range(32, 127)), "\n"]
    core = Tokenizer(
        models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[], unk_token="<unk>")
    )
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"],
    )
    if chat_template:
        tokenizer.chat_template = CHATML
    return tokenizer


def _llama_config(tokenizer: PreTrainedTokenizerFast, **extra: object) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        **extra,
    )


def tiny_causal(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(_llama_config(tokenizer)).eval()


def tiny_seq2seq(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5ForConditionalGeneration(config).eval()


def tiny_encoder(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> BertModel:
    """A BERT encoder without a head: what a base model for classification looks like."""
    torch.manual_seed(seed)
    return BertModel(_bert_config(tokenizer, num_labels=2)).eval()


def _bert_config(tokenizer: PreTrainedTokenizerFast, num_labels: int) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=num_labels,
    )


def tiny_classifier(
    tokenizer: PreTrainedTokenizerFast, num_labels: int, *, decoder: bool = False, seed: int = 0
) -> LlamaForSequenceClassification | BertForSequenceClassification:
    """A sequence classifier; ``decoder=True`` gives a Llama one (reads the last real token)."""
    torch.manual_seed(seed)
    if decoder:
        return LlamaForSequenceClassification(
            _llama_config(tokenizer, num_labels=num_labels)
        ).eval()
    return BertForSequenceClassification(_bert_config(tokenizer, num_labels)).eval()


def save_base(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, folder: Path) -> Path:
    """Save model and tokenizer as a plain HF folder (what a local base model looks like)."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_lora_adapter(base_folder: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter over the causal base in ``base_folder`` with random (non-zero) weights.

    peft initialises B to zero, which would make every adapter equal the base; the weights are
    randomised so two adapters (different seeds) give visibly different outputs.
    """
    from peft import LoraConfig, get_peft_model

    base = LlamaForCausalLM.from_pretrained(base_folder)
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(out)
    PreTrainedTokenizerFast.from_pretrained(base_folder).save_pretrained(out)
    return out


def write_manifest(run_dir: Path, base_folder: Path | None, **fields: object) -> Path:
    """A minimal ``tunesmith.json`` as training writes it (the keys loading reads)."""
    manifest: dict[str, object] = {"task": "chat", "model_kind": "causal", "method": "lora"}
    if base_folder is not None:
        manifest.update(base_model=str(base_folder), base_model_path=str(base_folder))
    manifest.update(fields)
    (run_dir / "tunesmith.json").write_text(json.dumps(manifest, indent=2))
    return run_dir
