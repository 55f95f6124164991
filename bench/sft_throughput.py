"""Benchmark 1, LoRA SFT throughput: tunesmith vs TRL ``SFTTrainer`` vs transformers ``Trainer``.

    .venv/bin/python -m bench.sft_throughput --quick       # ~10 minutes: TRL defaults are slow
    .venv/bin/python -m bench.sft_throughput --examples 480 --valid 160
    .venv/bin/python -m bench.sft_throughput --data dialogue       # long targets instead of labels

smollm2-135m-instruct, LoRA r=16 (alpha 32, no dropout: peft's default) on all linear layers,
one epoch over the same chat set (SMS spam as chat: system prompt, user = the SMS,
assistant = spam/ham; or movie dialogue: assistant = the reply), the same learning rate,
batch, sequence limit, linear schedule with 5% warm-up, fp32 weights, each contender at its
own default arithmetic (tunesmith: bf16 autocast where the CPU multiplies bf16 natively, else
fp32; TRL: bf16 autocast; Trainer: fp32). Each contender trains in its own child process, one
after another; each reports real (non-padding) input tokens per second after the warm-up
steps, its peak RSS, and the validation loss of its final weights computed by one shared
function (``validation_loss``: mean cross-entropy per assistant token, fp32, padded batches).

Contenders (``--contenders``):
  tunesmith          ``tunesmith.training.run.finetune`` (in-batch packing, on a CPU into one
                     row with attention per example and shared prompt prefixes, target-only
                     logits, precision "auto")
  tunesmith-unshared the same with ``share_prompt_prefixes`` off (decision 025): every example
                     computes its system prompt and template header again, as the others
                     do, so its MFU is the hardware's use per token computed
  tunesmith-fp32     (optional) the same with ``precision="fp32"``: what bf16 changes
  trl-default        ``SFTTrainer``, ``SFTConfig`` defaults; ``use_cpu=True`` (needed to start
                     on a CPU: the default bf16=True is refused otherwise), which leaves bf16
                     autocast and gradient checkpointing on, as TRL ships them
  trl-packing        the same with ``packing=True`` (best-fit packing, padding-free rows)
  trainer-padding    transformers ``Trainer``, a right-padding collator, loss on assistant tokens
  trl-packing-fp32   (optional) TRL's fastest set-up on a CPU without bf16 hardware: packing,
                     ``bf16=False``, ``gradient_checkpointing=False``

TRL gets the data in its prompt-completion conversational format, so its default
(``completion_only_loss``) puts the loss on the assistant turn, as tunesmith does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_DIR,
    StepClock,
    bench_device,
    emit_json,
    machine,
    matmul_peak,
    movie_dialog,
    peak_gpu_mib,
    peak_rss_mib,
    print_table,
    ratio,
    read_jsonl,
    report_to_parent,
    run_child,
    set_threads,
    sms_spam,
    split,
    step_clock_callback,
    synchronize,
    timed,
    write_jsonl,
)

MODEL = "smollm2-135m-instruct"
SYSTEM_PROMPTS = {
    "sms": "Classify the SMS message as spam or ham. Answer with one word.",
    "dialogue": "You are a character in a movie. Reply to the line you are given.",
}
REQUIRED = ("tunesmith", "tunesmith-unshared", "trl-default", "trl-packing", "trainer-padding")
OPTIONAL = ("tunesmith-fp32", "trl-packing-fp32")


@dataclass
class Setup:
    """One benchmark configuration, shared by every contender (passed to children as JSON)."""

    model: str = MODEL  # a packaged model id or a model folder
    data: str = "sms"
    examples: int = 480
    valid: int = 160
    batch_size: int = 8
    max_length: int = 256
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.05
    warmup_steps: int = 3  # optimizer steps left out of the throughput (timing warm-up)
    lora_r: int = 16
    lora_alpha: int = 32
    # peft's LoraConfig default and tunesmith's (decision 008); TRL sets none of its own.
    lora_dropout: float = 0.0
    seed: int = 42
    threads: int = 2
    work_dir: str = str(BENCH_DIR / "sft")

    @property
    def dir(self) -> Path:
        return Path(self.work_dir) / f"{self.data}-{self.examples}"


# ---------------------------------------------------------------- data


def chat_records(rows: list[tuple[str, str]], data: str) -> list[dict[str, Any]]:
    system = SYSTEM_PROMPTS[data]
    return [
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": text},
                {"role": "assistant", "content": answer},
            ]
        }
        for text, answer in rows
    ]


def prepare_data(setup: Setup) -> None:
    """train.jsonl / valid.jsonl in tunesmith's chat format, from the real data set."""
    rows = sms_spam() if setup.data == "sms" else movie_dialog()
    train, valid = split(rows, setup.examples, setup.valid)
    write_jsonl(setup.dir / "train.jsonl", chat_records(train, setup.data))
    write_jsonl(setup.dir / "valid.jsonl", chat_records(valid, setup.data))


def prompt_completion(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """TRL's conversational prompt-completion form of the same chats."""
    return [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in records]


def resolve(setup: Setup) -> Any:
    from tunesmith.models.registry import resolve_model
    from tunesmith.settings import load_settings

    return resolve_model(setup.model, load_settings(data_dir=BENCH_DIR))


def tokenized(setup: Setup, name: str, tokenizer: Any) -> list[Any]:
    """tunesmith's tokenization (chat template, labels -100 outside assistant turns)."""
    from tunesmith.data.reading import load_dataset
    from tunesmith.data.tokenization import tokenize_dataset
    from tunesmith.tasks import ModelKind, Task

    data = tokenize_dataset(
        load_dataset(setup.dir / name),
        tokenizer,
        task=Task.CHAT,
        model_kind=ModelKind.CAUSAL,
        max_seq_length=setup.max_length,
    )
    return data.examples


# ---------------------------------------------------------------- the shared evaluation


def validation_loss(model: Any, examples: list[Any], pad_id: int, batch_size: int = 8) -> float:
    """Mean cross-entropy per target token of the validation set; the same for every contender."""
    import torch
    import torch.nn.functional as F

    model.eval()
    order = sorted(examples, key=lambda e: len(e.input_ids))
    loss_sum, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = pad_batch(order[start : start + batch_size], pad_id)
            ids, mask, labels = (t.to(device) for t in batch)
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            targets = labels[:, 1:]
            picked = targets != -100
            loss_sum += float(
                F.cross_entropy(logits[:, :-1][picked], targets[picked], reduction="sum")
            )
            count += int(picked.sum())
    return loss_sum / max(count, 1)


def pad_batch(examples: list[Any], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded input ids, attention mask and labels (-100 on padding)."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels)
    return ids, mask, labels


def evaluate_adapter(setup: Setup, adapter_dir: Path) -> float:
    """Load the base model fresh, apply the saved adapter, compute the shared validation loss."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunesmith.models.loading import load_tokenizer
    from tunesmith.settings import load_settings

    resolved = resolve(setup)
    tokenizer = load_tokenizer(resolved.path, load_settings(data_dir=BENCH_DIR))
    base = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base.to(bench_device()), adapter_dir)
    return validation_loss(
        model, tokenized(setup, "valid.jsonl", tokenizer), tokenizer.pad_token_id
    )


# ---------------------------------------------------------------- contenders (in a child)


def train_tunesmith(
    setup: Setup, out: Path, precision: str = "auto", share_prefixes: bool = True
) -> StepClock:
    from tunesmith.settings import load_settings
    from tunesmith.training.callbacks import BaseCallback, StepMetrics
    from tunesmith.training.run import finetune
    from tunesmith.training.spec import FinetuneSpec, Hyperparameters

    clock = StepClock()

    class Clock(BaseCallback):
        def on_step_end(self, metrics: StepMetrics) -> None:
            synchronize()
            clock.tick(metrics.tokens)

    never = 10**9  # no evaluation or checkpoint inside the timed steps (one at the epoch's end)
    spec = FinetuneSpec(
        model=setup.model,
        train_file=setup.dir / "train.jsonl",
        method="lora",
        output_dir=out,
        precision=precision,
        hyperparameters=Hyperparameters(
            n_epochs=1,
            batch_size=setup.batch_size,
            learning_rate=setup.learning_rate,
            warmup_ratio=setup.warmup_ratio,
            max_seq_length=setup.max_length,
            lora_r=setup.lora_r,
            lora_alpha=setup.lora_alpha,
            lora_dropout=setup.lora_dropout,
            seed=setup.seed,
            eval_every=never,
            checkpoint_every=never,
        ),
    )
    settings = load_settings(data_dir=BENCH_DIR, share_prompt_prefixes=share_prefixes)
    finetune(spec, settings=settings, callbacks=[Clock()], resume="never")
    return clock


class CountingCollator:
    """Wraps a collator; records the real (non-padding) input tokens of every batch it builds."""

    def __init__(self, inner: Callable[[list[Any]], dict[str, Any]]) -> None:
        self.inner = inner
        self.tokens: list[int] = []

    def __call__(self, features: list[Any]) -> dict[str, Any]:
        batch = self.inner(features)
        mask = batch.get("attention_mask")
        # padding-free batches (TRL packing) carry no mask and no padding
        self.tokens.append(int(mask.sum()) if mask is not None else int(batch["input_ids"].numel()))
        return batch


def run_trainer(trainer: Any, clock: StepClock, out: Path) -> StepClock:
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    trainer.add_callback(step_clock_callback(clock))
    trainer.train()
    clock.work = counter.tokens[: len(clock.ends)]  # batch i feeds step i (no accumulation)
    trainer.model.save_pretrained(out)
    return clock


def lora_config(setup: Setup) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=setup.lora_r,
        lora_alpha=setup.lora_alpha,
        lora_dropout=setup.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def base_model_and_tokenizer(setup: Setup) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    from tunesmith.models.loading import load_tokenizer
    from tunesmith.settings import load_settings

    resolved = resolve(setup)
    set_seed(setup.seed)
    tokenizer = load_tokenizer(resolved.path, load_settings(data_dir=BENCH_DIR))
    return AutoModelForCausalLM.from_pretrained(resolved.path, dtype=torch.float32), tokenizer


def common_args(setup: Setup, out: Path) -> dict[str, Any]:
    """The settings every Trainer-based contender shares with tunesmith's run."""
    return {
        "output_dir": str(out / "trainer"),
        "num_train_epochs": 1,
        "per_device_train_batch_size": setup.batch_size,
        "learning_rate": setup.learning_rate,
        "lr_scheduler_type": "linear",
        "warmup_steps": setup.warmup_ratio,
        "seed": setup.seed,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": bench_device() == "cpu",
    }


def train_trl(setup: Setup, out: Path, **overrides: Any) -> StepClock:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model, tokenizer = base_model_and_tokenizer(setup)
    records = prompt_completion(read_jsonl(setup.dir / "train.jsonl"))
    config = SFTConfig(**common_args(setup, out), max_length=setup.max_length, **overrides)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=lora_config(setup),
    )
    return run_trainer(trainer, StepClock(), out)


def pad_collator(pad_id: int) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    import torch

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for row, f in enumerate(features):
            n = len(f["input_ids"])
            ids[row, :n] = torch.tensor(f["input_ids"])
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(f["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def train_trainer_padding(setup: Setup, out: Path) -> StepClock:
    from peft import get_peft_model
    from transformers import Trainer, TrainingArguments

    model, tokenizer = base_model_and_tokenizer(setup)
    model = get_peft_model(model, lora_config(setup))
    features = [
        {"input_ids": e.input_ids, "labels": e.labels}
        for e in tokenized(setup, "train.jsonl", tokenizer)
    ]
    args = TrainingArguments(**common_args(setup, out), remove_unused_columns=False)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=pad_collator(tokenizer.pad_token_id),
    )
    return run_trainer(trainer, StepClock(), out)


CONTENDERS: dict[str, Callable[[Setup, Path], StepClock]] = {
    "tunesmith": train_tunesmith,
    "tunesmith-unshared": lambda setup, out: train_tunesmith(setup, out, share_prefixes=False),
    "tunesmith-fp32": lambda setup, out: train_tunesmith(setup, out, precision="fp32"),
    "trl-default": train_trl,
    "trl-packing": lambda setup, out: train_trl(setup, out, packing=True),
    "trainer-padding": train_trainer_padding,
    "trl-packing-fp32": lambda setup, out: train_trl(
        setup, out, packing=True, bf16=False, gradient_checkpointing=False
    ),
}


def child(name: str, setup: Setup) -> None:
    """Train one contender, then report its figures and the shared validation loss."""
    set_threads(setup.threads)
    out = setup.dir / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    clock, train_s = timed(lambda: CONTENDERS[name](setup, out))
    result = {
        "contender": name,
        "tokens_per_s": clock.rate(setup.warmup_steps),
        "tokens_per_cpu_s": clock.rate_per_cpu_s(setup.warmup_steps),
        "s_per_step": clock.seconds_per_step(setup.warmup_steps),
        "steps": len(clock.ends),
        "total_tokens": sum(clock.work),
        "train_s": round(train_s, 1),
        "peak_rss_mib": peak_rss_mib(),  # before the evaluation loads a second model
        "peak_gpu_mib": peak_gpu_mib(),
    }
    result["valid_loss"] = round(evaluate_adapter(setup, out), 4)
    report_to_parent(result)


# ---------------------------------------------------------------- the parent


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Setup]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small example counts")
    parser.add_argument("--model", default=MODEL, help="a packaged model id or a model folder")
    parser.add_argument("--data", choices=sorted(SYSTEM_PROMPTS), default="sms")
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
    # quick: enough examples that TRL's packed run has steps after its warm-up step
    examples = args.examples or (128 if args.quick else Setup.examples)
    setup = Setup(
        model=args.model,
        data=args.data,
        examples=examples,
        valid=args.valid or (32 if args.quick else Setup.valid),
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=args.learning_rate,
        threads=args.threads,
        warmup_steps=1 if args.quick else Setup.warmup_steps,
    )
    return args, setup


def mfu(row: dict[str, Any], params: int, peak: dict[str, float]) -> None:
    """LoRA: 4 x params FLOPs per token (forward 2N, backward through activations 2N)."""
    tokens_per_s = row.get("tokens_per_s")
    for dtype, key in (("float32", "mfu_fp32"), ("bfloat16", "mfu_bf16")):
        if tokens_per_s and peak.get(dtype):
            row[key] = 4 * params * tokens_per_s / (peak[dtype] * 1e9)


def run(setup: Setup, contenders: list[str]) -> dict[str, Any]:
    resolved, convert_s = timed(lambda: resolve(setup))
    prepare_data(setup)
    params = count_params(resolved.path)
    set_threads(setup.threads)
    before = machine()
    peak = matmul_peak()
    print(
        f"# sft_throughput: {setup.examples} train / {setup.valid} valid {setup.data} examples, "
        f"batch {setup.batch_size}, max_length {setup.max_length}, lr {setup.learning_rate}, "
        f"{setup.threads} threads; matmul peak {peak} GFLOP/s; load {before['load_avg_1_5_15']}",
        flush=True,
    )
    rows = []
    for name in contenders:
        log = setup.dir / "logs" / f"{name}.log"
        result = run_child(
            "bench.sft_throughput",
            ["--child", name, "--setup", json.dumps(asdict(setup))],
            setup.threads,
            log,
        )
        result.setdefault("contender", name)
        mfu(result, params, peak)
        rows.append(result)
        print(f"  {name}: {json.dumps(result)}", flush=True)
    add_speedups(rows)
    return {
        "setup": asdict(setup),
        "model": setup.model,
        "params": params,
        "model_convert_s": round(convert_s, 1),
        "matmul_peak_gflops": peak,
        "machine": before,
        "load_after": machine()["load_avg_1_5_15"],
        "results": rows,
    }


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """tunesmith's tokens per second (and per CPU-second) over each other contender's."""
    ours = next((r for r in rows if r["contender"] == "tunesmith"), {})
    for row in rows:
        row["tunesmith_speedup"] = ratio(ours.get("tokens_per_s"), row.get("tokens_per_s"))
        row["tunesmith_speedup_cpu"] = ratio(
            ours.get("tokens_per_cpu_s"), row.get("tokens_per_cpu_s")
        )


def count_params(path: Path) -> int:
    """Distinct parameters of the base model (tied embeddings counted once)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    import torch

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    model.tie_weights()
    return sum(p.numel() for p in model.parameters())


COLUMNS = [
    ("contender", "contender"),
    ("tokens_per_s", "tokens/s"),
    ("tokens_per_cpu_s", "tokens/CPU-s"),
    ("s_per_step", "s/step"),
    ("steps", "steps"),
    ("total_tokens", "tokens"),
    ("peak_rss_mib", "peak RSS MiB"),
    ("peak_gpu_mib", "peak GPU MiB"),
    ("valid_loss", "valid loss"),
    ("mfu_fp32", "MFU fp32"),
    ("mfu_bf16", "MFU bf16"),
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
    unknown = sorted(set(contenders) - set(CONTENDERS))
    if unknown:
        sys.exit(f"unknown contenders: {', '.join(unknown)}")
    report = run(setup, contenders)
    print_table(report["results"], COLUMNS)
    emit_json("sft_throughput", report)
    return report


if __name__ == "__main__":
    main()
