"""Small builders shared by the test packages: a tiny chat tokenizer and JSONL writing.

The tokenizer is a byte-level BPE trained in a few milliseconds on a handful of sentences, so
any text encodes without unknown tokens and decodes back exactly (byte level), and offsets
work like a real fast tokenizer's. It carries SmolLM2's conventions: the ChatML template,
``<|im_start|>`` / ``<|im_end|>`` as special tokens, eos = pad = ``<|im_end|>``. Its template
does not inject a default system prompt (SmolLM2's does; the ``slow`` test covers that).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from tunesmith.data.chat import CHATML_TEMPLATE

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello there! How are you today? I am fine, thank you.",
    "What is the capital of France? The capital of France is Paris.",
    "system user assistant tool: you are a helpful assistant",
    "spam ham positive negative yes no 0 1 2 3 4 5 6 7 8 9",
]


def make_tiny_chat_tokenizer(
    *, chat_template: str | None = CHATML_TEMPLATE
) -> PreTrainedTokenizerFast:
    """A fast tokenizer (vocabulary ~400) with ChatML; ``chat_template=None`` leaves it without."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        model_max_length=2048,
    )
    wrapped.chat_template = chat_template
    return wrapped


def write_jsonl(path: Path, rows: Iterable[Any]) -> Path:
    """Write one JSON value per line (strings are written as they are, for broken lines)."""
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def save_tiny_model(
    folder: Path, kind: str = "causal", seed: int = 0, *, embedding_std: float | None = None
) -> Path:
    """A tiny random model of ``kind`` ("causal": Llama, "encoder": BERT, "seq2seq": T5) with
    the tiny chat tokenizer, saved as a normal HF folder (safetensors).

    ``embedding_std`` redraws the (tied) token embeddings at that scale. At HF's 0.02 and width
    32 an embedding's norm is ~0.1, so with the embeddings frozen no adapter can lift one logit
    far above the rest: a LoRA's greedy tokens then win by ~0.15, a margin another CPU's kernels
    can flip. Tests that read a fine-tuned model's greedy output use 0.3 (margins of 2+)."""
    import torch
    from transformers import (
        BertConfig,
        BertModel,
        LlamaConfig,
        LlamaForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    tokenizer = make_tiny_chat_tokenizer()
    vocab = len(tokenizer)
    torch.manual_seed(seed)
    if kind == "causal":
        model: Any = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=vocab,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=256,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                bos_token_id=None,
                tie_word_embeddings=True,
            )
        )
    elif kind == "encoder":
        model = BertModel(
            BertConfig(
                vocab_size=vocab,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=256,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
    elif kind == "seq2seq":
        model = T5ForConditionalGeneration(
            T5Config(
                vocab_size=vocab,
                d_model=32,
                d_kv=8,
                d_ff=64,
                num_layers=2,
                num_decoder_layers=2,
                num_heads=4,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                decoder_start_token_id=tokenizer.pad_token_id,
            )
        )
    else:
        raise ValueError(kind)
    if embedding_std is not None:
        torch.nn.init.normal_(model.get_input_embeddings().weight, std=embedding_std)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
