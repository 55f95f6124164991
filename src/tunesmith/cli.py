"""The ``tunesmith`` command line. Each command calls the engine (or the server); none
re-implements it. Run ``tunesmith --help`` for the list.
"""

from __future__ import annotations

import dataclasses
import gc
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.settings import Settings, load_settings
from tunesmith.tasks import Method, Task
from tunesmith.training.spec import FinetuneSpec, Hyperparameters

app = typer.Typer(
    name="tunesmith",
    help="Self-hosted fine-tuning: validate data, fine-tune, evaluate, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Models tunesmith can fine-tune.", no_args_is_help=True)
data_app = typer.Typer(help="Check, inspect and de-identify datasets.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the server.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(keys_app, name="keys")

console = Console()
err_console = Console(stderr=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where tunesmith keeps models, runs, files and its database "
        "[default: $TUNESMITH_DATA_DIR or ~/.tunesmith].",
    ),
]


def _quiet_libraries() -> None:
    """Keep the terminal for tunesmith's own progress: no per-file bars from transformers."""
    import os
    import warnings

    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # deprecation notices that transformers and peft raise against each other, not ours
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def _settings(data_dir: Path | None) -> Settings:
    return load_settings(data_dir)


def main() -> None:
    """Entry point: run the app, turning tunesmith's own errors into a message and exit 1."""
    _quiet_libraries()
    try:
        app()
    except TunesmithError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise SystemExit(1) from None


# --- engine commands (models, data, finetune, evaluate, predict, chat, export) -------------

TaskOption = Annotated[
    Task | None,
    typer.Option("--task", help="chat, completion or classification [default: from the data]."),
]


# Several processes, GPUs or machines (torchrun); see docs/scaling.md.
NprocOption = Annotated[
    int,
    typer.Option(
        "--nproc-per-node",
        min=1,
        help="Train on this many processes on this machine (one per GPU) with torchrun.",
    ),
]
NnodesOption = Annotated[
    int, typer.Option("--nnodes", min=1, help="Machines taking part (run on each).")
]
NodeRankOption = Annotated[
    int, typer.Option("--node-rank", min=0, help="This machine's index (node 0 writes the run).")
]
RdzvOption = Annotated[
    str | None,
    typer.Option("--rdzv-endpoint", help="HOST:PORT on node 0 that every node reaches."),
]
FsdpOption = Annotated[
    bool,
    typer.Option("--fsdp", help="Shard a full fine-tune over the GPUs (FSDP) instead of DDP."),
]


def _distributed(
    nproc_per_node: int, nnodes: int, node_rank: int, rdzv_endpoint: str | None, fsdp: bool
) -> Any:
    from tunesmith.training.distributed import DistributedOptions

    return DistributedOptions(
        nproc_per_node=nproc_per_node,
        nnodes=nnodes,
        node_rank=node_rank,
        rdzv_endpoint=rdzv_endpoint,
        fsdp=fsdp,
    )


def _hp_default(name: str) -> Any:
    """A hyperparameter's default, from the spec itself: one place says what it is."""
    return Hyperparameters.model_fields[name].default


def _int_or_auto(value: str, name: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be 'auto' or an integer, got {value!r}") from None


def _float_or_auto(value: str, name: str) -> float | str:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be 'auto' or a number, got {value!r}") from None


def _print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@models_app.command("list")
def models_list(
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the packaged models and those in the cache, and whether each is ready."""
    from tunesmith.models.registry import list_models

    infos = list_models(_settings(data_dir))
    if as_json:
        _print_json([dataclasses.asdict(i) for i in infos])
        return
    table = Table("id", "kind", "source", "installed", "cached", "description")
    for info in infos:
        table.add_row(
            info.id,
            str(info.kind),
            str(info.source),
            _yes(info.installed),
            _yes(info.cached),
            info.description or "",
        )
    console.print(table)


def _yes(flag: bool) -> str:
    return "[green]yes[/]" if flag else "[dim]no[/]"


@data_app.command("validate")
def data_validate(
    file: Annotated[Path, typer.Argument(help="A JSONL or CSV dataset.")],
    validation: Annotated[
        Path | None, typer.Option(help="A validation file to check against it.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Count tokens with this model's tokenizer.")
    ] = None,
    method: Annotated[Method, typer.Option(help="Method, for the time estimate.")] = Method.LORA,
    max_seq_length: Annotated[int | None, typer.Option(help="Warn about longer examples.")] = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check a dataset: every error with its line and field, warnings, statistics, and what
    training on it would cost. Exits with status 1 when there are errors."""
    from tunesmith.training.planning import check_dataset

    result = check_dataset(
        file,
        validation=validation,
        model=model,
        method=method,
        max_seq_length=max_seq_length,
        settings=_settings(data_dir),
    )
    if as_json:
        _print_json(result.to_dict())
    else:
        render_check(result, console)
    if not result.report.ok:
        raise typer.Exit(1)


@data_app.command("deidentify")
def data_deidentify(
    in_file: Annotated[Path, typer.Argument(help="A JSONL or CSV dataset.")],
    out_file: Annotated[Path, typer.Argument(help="Where the de-identified copy goes.")],
    mode: Annotated[
        str, typer.Option(help="placeholder ([NAME], [DATE], ...) or surrogate (fake values).")
    ] = "placeholder",
    report: Annotated[
        Path | None, typer.Option(help="Also write the counts as JSON to this file.")
    ] = None,
    record_key_field: Annotated[
        str | None,
        typer.Option(
            help="Field naming a line's patient (e.g. patient_id): one patient's "
            "lines share surrogates; its values become keyed pseudonyms."
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """De-identify every text field of a dataset (HIPAA Safe Harbor identifiers; labels and
    structural fields kept). Prints what was replaced, by type: counts, never values."""
    from tunesmith.data.deid import deidentify_file
    from tunesmith.training.deidentified import data_dir_salt

    if in_file.resolve() == out_file.resolve():
        raise ConfigError("OUT must differ from IN: the original is read while OUT is written")
    err_console.print("Loading the de-identification engine (about 10 s)...")
    result = deidentify_file(
        in_file,
        out_file,
        mode=mode,
        report_path=report,
        salt=data_dir_salt(_settings(data_dir)),
        record_key_field=record_key_field,
    )
    table = Table(title=f"{out_file}: {result.records} records, {result.fields} text fields")
    table.add_column("identifier type")
    table.add_column("replaced", justify="right")
    for kind, count in result.replacements.items():
        table.add_row(kind, f"{count:,}")
    table.add_row("[bold]total[/]", f"[bold]{result.total:,}[/]")
    console.print(table)
    console.print(f"mode {result.mode}, {result.seconds:.1f} s; report: {report or '(not kept)'}")


@app.command()
def finetune(
    model: Annotated[str, typer.Option(help="Packaged id, local HF folder, or hub id.")],
    train: Annotated[Path, typer.Option(help="Training data (JSONL or CSV).")],
    validation: Annotated[Path | None, typer.Option(help="Held-out data for evaluation.")] = None,
    validation_split: Annotated[
        float, typer.Option(help="Hold out this share of --train instead.")
    ] = 0.0,
    task: TaskOption = None,
    method: Annotated[Method, typer.Option(help="lora, full or head.")] = Method.LORA,
    epochs: Annotated[str, typer.Option(help="Epochs or 'auto'.")] = "auto",
    batch_size: Annotated[str, typer.Option(help="Examples per step or 'auto'.")] = "auto",
    learning_rate: Annotated[str, typer.Option(help="Peak learning rate or 'auto'.")] = "auto",
    lr_multiplier: Annotated[
        str, typer.Option(help="Scale of the method's default rate or 'auto'.")
    ] = "auto",
    max_seq_length: Annotated[
        str, typer.Option(help="Token limit per example or 'auto'.")
    ] = "auto",
    warmup_ratio: Annotated[float, typer.Option()] = _hp_default("warmup_ratio"),
    scheduler: Annotated[str, typer.Option(help="linear, cosine or constant.")] = _hp_default(
        "lr_scheduler"
    ),
    grad_accum: Annotated[int, typer.Option(help="Gradient accumulation steps.")] = _hp_default(
        "gradient_accumulation_steps"
    ),
    weight_decay: Annotated[float, typer.Option()] = _hp_default("weight_decay"),
    dropout: Annotated[float | None, typer.Option(help="Override the model's dropout.")] = None,
    lora_r: Annotated[int, typer.Option()] = _hp_default("lora_r"),
    lora_alpha: Annotated[int, typer.Option()] = _hp_default("lora_alpha"),
    lora_dropout: Annotated[float, typer.Option()] = _hp_default("lora_dropout"),
    lora_targets: Annotated[
        str, typer.Option(help="'all-linear' or comma-separated module names.")
    ] = "all-linear",
    head_layers: Annotated[
        int, typer.Option(help="With --method head: top blocks also trained.")
    ] = _hp_default("head_layers"),
    early_stopping: Annotated[
        int | None, typer.Option(help="Patience in evaluations without a better valid_loss.")
    ] = None,
    eval_every: Annotated[str, typer.Option(help="Steps between evaluations or 'auto'.")] = "auto",
    checkpoint_every: Annotated[
        str, typer.Option(help="Steps between checkpoints or 'auto'.")
    ] = "auto",
    seed: Annotated[int, typer.Option()] = _hp_default("seed"),
    precision: Annotated[
        str,
        typer.Option(
            help="auto (bf16 where the hardware multiplies bf16 natively, else fp32), fp32, "
            "bf16 or fp16."
        ),
    ] = "auto",
    output: Annotated[
        Path | None, typer.Option(help="Run folder [default: <data-dir>/runs/...].")
    ] = None,
    suffix: Annotated[str | None, typer.Option(help="Added to the run's name.")] = None,
    deidentify: Annotated[
        bool,
        typer.Option(
            help="De-identify every text field of --train/--validation into <run>/data/ and "
            "train (and evaluate) on those copies only."
        ),
    ] = False,
    deidentify_mode: Annotated[
        str, typer.Option(help="With --deidentify: placeholder ([NAME]) or surrogate.")
    ] = "placeholder",
    deidentify_record_key: Annotated[
        str | None,
        typer.Option(help="With --deidentify: field grouping a patient's lines (e.g. patient_id)."),
    ] = None,
    evaluate_after: Annotated[
        bool,
        typer.Option(
            "--evaluate/--no-evaluate", help="Evaluate on the validation data at the end."
        ),
    ] = True,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline/--no-baseline", help="Also evaluate the base model, side by side."
        ),
    ] = True,
    nproc_per_node: NprocOption = 1,
    nnodes: NnodesOption = 1,
    node_rank: NodeRankOption = 0,
    rdzv_endpoint: RdzvOption = None,
    fsdp: FsdpOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Fine-tune a model: validate the data, train with a progress bar, save the run folder,
    and print the evaluation (base vs fine-tuned) on the validation data. With
    --nproc-per-node (and --nnodes for several machines) it trains under torchrun."""
    dist = _distributed(nproc_per_node, nnodes, node_rank, rdzv_endpoint, fsdp)
    targets: str | list[str] = (
        lora_targets if lora_targets == "all-linear" else lora_targets.split(",")
    )
    try:
        hp = Hyperparameters(
            n_epochs=_int_or_auto(epochs, "--epochs"),
            batch_size=_int_or_auto(batch_size, "--batch-size"),
            learning_rate=_float_or_auto(learning_rate, "--learning-rate"),
            learning_rate_multiplier=_float_or_auto(lr_multiplier, "--lr-multiplier"),
            max_seq_length=_int_or_auto(max_seq_length, "--max-seq-length"),
            warmup_ratio=warmup_ratio,
            lr_scheduler=scheduler,
            gradient_accumulation_steps=grad_accum,
            weight_decay=weight_decay,
            dropout=dropout,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_target_modules=targets,
            head_layers=head_layers,
            early_stopping_patience=early_stopping,
            eval_every=_int_or_auto(eval_every, "--eval-every"),
            checkpoint_every=_int_or_auto(checkpoint_every, "--checkpoint-every"),
            seed=seed,
        )
        spec = FinetuneSpec(
            model=model,
            train_file=train,
            validation_file=validation,
            validation_split=validation_split,
            task=task,
            method=method,
            hyperparameters=hp,
            output_dir=output,
            suffix=suffix,
            precision=precision,
            deidentify=deidentify,
            deidentify_mode=deidentify_mode,
            deidentify_record_key=deidentify_record_key,
        )
    except ValidationError as exc:
        raise ConfigError([_pydantic_problem(e) for e in exc.errors()]) from None
    _run_finetune(
        spec, _settings(data_dir), evaluate_after, baseline, resume_mode="never", dist=dist
    )


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with a checkpoint.")],
    evaluate_after: Annotated[bool, typer.Option("--evaluate/--no-evaluate")] = True,
    baseline: Annotated[bool, typer.Option("--baseline/--no-baseline")] = True,
    nproc_per_node: NprocOption = 1,
    nnodes: NnodesOption = 1,
    node_rank: NodeRankOption = 0,
    rdzv_endpoint: RdzvOption = None,
    fsdp: FsdpOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Continue an interrupted fine-tune exactly where its last checkpoint left off, on any
    number of processes (a checkpoint does not depend on how many trained it)."""
    from tunesmith.training.manifest import read

    dist = _distributed(nproc_per_node, nnodes, node_rank, rdzv_endpoint, fsdp)
    spec = FinetuneSpec.model_validate(read(run_dir)["spec"]).model_copy(
        update={"output_dir": run_dir}
    )
    _run_finetune(
        spec, _settings(data_dir), evaluate_after, baseline, resume_mode="must", dist=dist
    )


def _run_finetune(
    spec: FinetuneSpec,
    settings: Settings,
    evaluate_after: bool,
    baseline: bool,
    resume_mode: str,
    dist: Any = None,
) -> None:
    from tunesmith.errors import TrainingInterrupted
    from tunesmith.training.progress import RichProgress
    from tunesmith.training.run import finetune as run_finetune

    if dist is not None and dist.enabled:
        from tunesmith.training.distributed import launch

        try:
            result = launch(
                spec, settings=settings, options=dist, resume=resume_mode, progress=True
            )
        except TrainingInterrupted as exc:
            where = Path(exc.checkpoint).parent.parent if exc.checkpoint else spec.output_dir
            err_console.print(
                f"[yellow]{exc}[/]; continue with: tunesmith resume {where}", highlight=False
            )
            raise typer.Exit(130) from None
        if result is None:
            err_console.print(f"node {dist.node_rank} done; node 0 holds the run folder")
            return
    else:
        progress = RichProgress(err_console)
        try:
            result = run_finetune(spec, settings=settings, callbacks=[progress], resume=resume_mode)  # type: ignore[arg-type]
        finally:
            progress.on_train_end({})
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if isinstance(v, float))
    err_console.print(
        f"[green]done:[/] {result.steps} steps, {result.trained_tokens:,} tokens; {metrics}"
    )
    validation = _evaluation_file(spec, result.output_dir)
    if evaluate_after and validation is not None:
        from tunesmith.evaluation.evaluate import evaluate as run_evaluate

        report = run_evaluate(
            result.output_dir,
            validation,
            settings=settings,
            baseline=spec.model if baseline else None,
        )
        report.render_table(console)
    console.print(f"run folder: {result.output_dir}")


def _evaluation_file(spec: FinetuneSpec, run_dir: Path) -> Path | None:
    """The validation file to score: a de-identified run's own copy, never the original."""
    if not spec.deidentify or spec.validation_file is None:
        return spec.validation_file
    from tunesmith.training.deidentified import deidentified_files

    files = deidentified_files(run_dir)
    if files is None or files.validation is None:
        raise ConfigError(f"{run_dir} has no de-identified validation file to evaluate on")
    return files.validation


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="A run folder or a base model.")],
    data: Annotated[Path, typer.Option(help="Held-out data (same format as training).")],
    baseline: Annotated[
        str | None, typer.Option(help="Compare with this model (e.g. the base).")
    ] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Evaluate at most this many examples.")
    ] = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Evaluate a model on held-out data: classification metrics (accuracy, precision,
    recall, F1, AUROC, confusion matrix) or LM metrics (loss, perplexity, token accuracy,
    exact match), optionally side by side with a baseline."""
    from tunesmith.evaluation.evaluate import evaluate as run_evaluate

    report = run_evaluate(
        model, data, settings=_settings(data_dir), baseline=baseline, max_examples=max_examples
    )
    if as_json:
        _print_json(report.to_dict())
    else:
        report.render_table(console)


@app.command()
def predict(
    model: Annotated[str, typer.Option(help="A run folder (or a base model).")],
    text: Annotated[
        list[str] | None, typer.Option("--text", help="Text to score (repeatable).")
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input", help="JSONL/CSV with a text (or messages/prompt) field per line."),
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="For chat/completion models.")] = 128,
    data_dir: DataDirOption = None,
) -> None:
    """Classify texts (label probabilities) or generate replies; one JSON line per input."""
    from tunesmith.inference.predict import predict_lines

    if not text and input_file is None:
        raise typer.BadParameter("give --text or --input")
    for line in predict_lines(
        model,
        texts=text or [],
        input_file=input_file,
        max_tokens=max_tokens,
        settings=_settings(data_dir),
    ):
        typer.echo(json.dumps(line))


@app.command()
def chat(
    model: Annotated[str, typer.Option(help="A run folder or a base model.")],
    message: Annotated[
        str | None, typer.Option(help="Send one message, print the reply, exit.")
    ] = None,
    system: Annotated[str | None, typer.Option(help="A system prompt.")] = None,
    max_tokens: Annotated[int, typer.Option()] = 256,
    temperature: Annotated[float, typer.Option()] = 0.0,
    data_dir: DataDirOption = None,
) -> None:
    """Chat with a model in the terminal (empty line or Ctrl-D to quit)."""
    from tunesmith.inference.predict import ChatSession

    session = ChatSession(
        model,
        settings=_settings(data_dir),
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
    )
    if message is not None:
        typer.echo(session.send(message))
        return
    while True:
        try:
            line = console.input("[bold]you>[/] ")
        except EOFError:
            break
        if not line.strip():
            break
        console.print(f"[bold cyan]model>[/] {session.send(line)}", highlight=False)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    out: Annotated[Path, typer.Argument(help="Where to write the model folder.")],
    merge: Annotated[
        bool, typer.Option("--merge", help="Merge a LoRA adapter into the base weights.")
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Write a standalone Hugging Face model folder (with --merge, LoRA merged in)."""
    from tunesmith.models.export import export_run

    path = export_run(run_dir, out, merge=merge, settings=_settings(data_dir))
    console.print(f"wrote {path}")


def render_check(check: Any, out: Console) -> None:
    """Print a ``DatasetCheck``: errors, warnings, statistics, and the training estimate."""
    report = check.report
    by_line = lambda issue: (issue.file, issue.line or 0)  # noqa: E731
    for issue in sorted(report.errors, key=by_line):
        out.print(f"[red]error[/]   {issue}", highlight=False)
    shown = sorted(report.warnings, key=by_line)[:50]
    for issue in shown:
        out.print(f"[yellow]warning[/] {issue}", highlight=False)
    if len(report.warnings) > len(shown):
        out.print(f"[yellow]... and {len(report.warnings) - len(shown)} more warnings[/]")
    stats = report.stats
    table = Table(
        "statistic", "value", title=f"{report.file} ({report.format or 'unknown format'})"
    )
    if stats is not None:
        table.add_row("examples", str(stats.n_examples))
        if stats.tokens is not None:
            t = stats.tokens
            table.add_row(
                "tokens per example",
                f"min {t.min}, mean {t.mean:.1f}, p50 {t.p50}, p95 {t.p95}, max {t.max}",
            )
            table.add_row("tokens in total", f"{t.total:,}")
        if stats.n_target_tokens is not None:
            table.add_row("tokens that carry loss", f"{stats.n_target_tokens:,}")
        if stats.n_truncated:
            table.add_row("truncated", f"{stats.n_truncated} (over {stats.max_seq_length} tokens)")
        if stats.messages_per_example is not None:
            table.add_row("messages per example", f"mean {stats.messages_per_example.mean:.1f}")
        if stats.label_distribution:
            table.add_row(
                "labels", ", ".join(f"{k}: {v}" for k, v in stats.label_distribution.items())
            )
    if report.validation_stats is not None:
        table.add_row("validation examples", str(report.validation_stats.n_examples))
    est = check.estimate
    if est is not None:
        table.add_row("epochs (auto)", str(est.n_epochs))
        table.add_row("batch size (auto)", str(est.batch_size))
        table.add_row("steps", str(est.steps))
        if est.tokens_to_train:
            table.add_row("tokens to be trained", f"{est.tokens_to_train:,}")
        if est.seconds is not None:
            table.add_row(f"estimated time ({est.device})", _duration(est.seconds))
    if check.model is None:
        table.add_row("tokens", "[dim]give --model to count tokens and estimate the time[/]")
    out.print(table)
    verdict = "[green]ok[/]" if report.ok else f"[red]{len(report.errors)} error(s)[/]"
    out.print(f"{verdict}, {len(report.warnings)} warning(s)")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _pydantic_problem(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    return f"{where}: {error.get('msg')}" if where else str(error.get("msg"))


# --- server commands (serve, worker, keys) --------------------------------------------------


def _job_database(settings: Settings):  # type: ignore[no-untyped-def]
    """The migrated job database's engine (imported here: engine commands never need it)."""
    from tunesmith.jobs.store import create_engine_for, migrate

    engine = create_engine_for(settings)
    migrate(engine)
    return engine


@app.command()
def serve(
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=0, help="Job workers to run inside the server (0: none).")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the OpenAI-compatible API at http://HOST:PORT/v1 and the dashboard at /."""
    import uvicorn

    from tunesmith.server.app import create_app

    settings = _settings(data_dir)
    err_console.print(
        f"tunesmith: serving http://{host}:{port}/v1, dashboard at http://{host}:{port}/ "
        f"(data in {settings.data_dir})"
    )
    server_app = create_app(settings, workers=workers)
    # What is loaded by now (torch, transformers, the app: ~270k objects) lives as long as the
    # process. Frozen, a full garbage collection no longer walks it: that walk took 50 ms every
    # few hundred requests, and was the API's p99 under load (docs/benchmarks.md, benchmark 4).
    gc.freeze()
    uvicorn.run(server_app, host=host, port=port, log_level=log_level)


@app.command()
def worker(
    data_dir: DataDirOption = None,
    nproc_per_node: Annotated[
        int,
        typer.Option(
            "--nproc-per-node",
            min=1,
            help="Train each job on this many processes with torchrun (one per GPU); a job "
            "may ask for fewer.",
        ),
    ] = 1,
) -> None:
    """Run one job worker (several machines may share one PostgreSQL database)."""
    import logging
    import signal

    from tunesmith.jobs.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings(data_dir)
    job_worker = Worker(settings, _job_database(settings), nproc_per_node=nproc_per_node)
    signal.signal(signal.SIGTERM, lambda *_: job_worker.stop())
    try:
        job_worker.run()
    except KeyboardInterrupt:
        job_worker.stop()


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="The project the key belongs to.")],
    data_dir: DataDirOption = None,
) -> None:
    """Make an API key for PROJECT; the key is printed once, alone on the last line."""
    from tunesmith.jobs.projects import create_key
    from tunesmith.jobs.store import session_factory

    with session_factory(_job_database(_settings(data_dir))).begin() as session:
        created = create_key(session, project)
    err_console.print(f"API key for project {project!r} (shown once; store it now):")
    print(created.key)


@keys_app.command("list")
def keys_list(data_dir: DataDirOption = None) -> None:
    """List API keys: id, shown prefix, project (the keys themselves are not stored)."""
    from datetime import UTC, datetime

    from rich.table import Table

    from tunesmith.jobs.projects import list_keys
    from tunesmith.jobs.store import session_factory

    with session_factory(_job_database(_settings(data_dir)))() as session:
        keys = list_keys(session)
    table = Table("id", "key", "project", "created")
    for key in keys:
        created = datetime.fromtimestamp(key.created_at, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(key.key_id, key.prefix + "...", key.project, created)
    console.print(table)
