"""Data: the four formats, reading and checking files, label spaces, and tokenization.

    formats.py       DataFormat, the example dataclasses, task_for_format
    records.py       the per-record checks (one record -> an example or DataIssues)
    reading.py       load_dataset (strict) and scan_file (lenient): JSONL and CSV
    labels.py        LabelSpace: class names, their order, label encoding
    validation.py    validate_file -> ValidationReport (never raises on bad data)
    stats.py         DatasetStats
    chat.py          chat templates and the assistant-only loss mask
    tokenization.py  tokenize_dataset -> TokenizedDataset

Importing this package does not import torch or transformers; tokenizers are passed in.
"""

from tunesmith.data.chat import ensure_chat_template, render_chat, seq2seq_prompt, tokenize_chat
from tunesmith.data.formats import (
    ChatExample,
    ClassificationExample,
    CompletionExample,
    DataFormat,
    Example,
    PreferenceExample,
    task_for_format,
)
from tunesmith.data.labels import LabelSpace
from tunesmith.data.reading import Dataset, load_dataset, scan_file
from tunesmith.data.stats import DatasetStats
from tunesmith.data.tokenization import (
    IGNORE_INDEX,
    TokenizedDataset,
    TokenizedExample,
    tokenize_dataset,
)
from tunesmith.data.validation import ValidationReport, validate_file

__all__ = [
    "IGNORE_INDEX",
    "ChatExample",
    "ClassificationExample",
    "CompletionExample",
    "DataFormat",
    "Dataset",
    "DatasetStats",
    "Example",
    "LabelSpace",
    "PreferenceExample",
    "TokenizedDataset",
    "TokenizedExample",
    "ValidationReport",
    "ensure_chat_template",
    "load_dataset",
    "render_chat",
    "scan_file",
    "seq2seq_prompt",
    "task_for_format",
    "tokenize_chat",
    "tokenize_dataset",
    "validate_file",
]
