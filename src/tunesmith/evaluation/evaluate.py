"""Evaluate a fine-tuned run (or a base model) on a data file, optionally against a baseline.

Classification: class probabilities from ``classify``, scored by ``classification_metrics``.

Chat / completion, two views of the same examples:

* teacher-forced loss, perplexity and mean token accuracy over the tokens that carry loss in
  training (``tokenize_dataset`` builds the masks, training's loss modules score them), so the
  loss matches the ``valid_loss`` a run reported;
* greedy generation of each example's final assistant turn (the completion), compared with
  the reference: exact match, and — when the references are a small set of short answers
  such as spam/ham — classification metrics of the generated answers (unparseable answers
  count as wrong).

Models are evaluated one after the other, so at most one is in memory; a LoRA run compared
with its own base evaluates the base by switching the adapter off instead of loading it again.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunesmith.data.chat import trained_turns
from tunesmith.data.formats import (
    ChatExample,
    ClassificationExample,
    CompletionExample,
    task_for_format,
)
from tunesmith.data.labels import LabelSpace
from tunesmith.data.reading import Dataset, load_dataset
from tunesmith.data.tokenization import tokenize_dataset
from tunesmith.errors import ConfigError, ModelError
from tunesmith.evaluation.metrics import (
    classification_metrics,
    exact_match,
    label_metrics,
    lm_metrics,
)
from tunesmith.evaluation.report import ANSWERS, EvaluationReport
from tunesmith.evaluation.scoring import answer_classes, parse_answer, score_lm
from tunesmith.inference.classification import classify, model_max_length, predicted_labels
from tunesmith.inference.generation import (
    GenerationParams,
    chat_prompt_ids,
    completion_prompt_ids,
    generate_from_ids,
)
from tunesmith.models.loading import RUN_MANIFEST, LoadedModel, load_any
from tunesmith.models.registry import resolve_model
from tunesmith.settings import Settings, load_settings
from tunesmith.tasks import ModelKind, Task

DEFAULT_MAX_NEW_TOKENS = 128
EXAMPLES_SHOWN = 5
# The longest sequence scored when the run does not record its max_seq_length (a base model).
DEFAULT_MAX_SEQ_LENGTH = 2048
# Generation stops this many tokens past the longest reference: enough to see a model
# overrun, without generating max_new_tokens for every one-word answer.
GENERATION_SLACK_TOKENS = 16


def evaluate(
    model: str | Path,
    data: str | Path,
    *,
    settings: Settings | None = None,
    baseline: str | Path | None = None,
    task: Task | str | None = None,
    max_examples: int | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    batch_size: int = 8,
) -> EvaluationReport:
    """Metrics of ``model`` (a run folder or base model name) on ``data``; see the module doc.

    ``settings`` None reads them from the environment (``load_settings``), as the CLI does.
    """
    settings = settings or load_settings()
    dataset = _read(Path(data), max_examples)
    data_task = task_for_format(dataset.format)
    if task is not None and Task(task) != data_task:
        raise ConfigError(
            f"{data} holds {dataset.format.value} data, which is for {data_task}, not {task}"
        )
    label_space = _data_label_space(dataset) if data_task == Task.CLASSIFICATION else None
    notes: list[str] = []
    options = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}

    loaded = load_any(model, settings, task=data_task, label_space=label_space)
    notes += _head_notes(loaded, str(model))
    metrics, predictions, rows = _evaluate_loaded(loaded, dataset, notes, **options)
    baseline_metrics = baseline_predictions = None
    if baseline is not None:
        with _baseline_model(loaded, baseline, settings, data_task) as base:
            notes += _head_notes(base, str(baseline))
            baseline_metrics, baseline_predictions, _ = _evaluate_loaded(
                base, dataset, notes, **options
            )
    del loaded
    gc.collect()

    for i, row in enumerate(rows):
        row["prediction"] = predictions[i]
        if baseline_predictions is not None:
            row["baseline_prediction"] = baseline_predictions[i]
    return EvaluationReport(
        model=str(model),
        task=data_task.value,
        data=str(data),
        n_examples=len(dataset.examples),
        metrics=metrics,
        baseline=str(baseline) if baseline is not None else None,
        baseline_metrics=baseline_metrics,
        examples=rows[:EXAMPLES_SHOWN],
        notes=list(dict.fromkeys(notes)),
    )


# --- one model -----------------------------------------------------------------------------


def _evaluate_loaded(
    loaded: LoadedModel, dataset: Dataset, notes: list[str], **options: Any
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """(metrics, one prediction per example, display rows without predictions)."""
    if loaded.task == Task.CLASSIFICATION:
        return _evaluate_classifier(loaded, dataset, notes, options["batch_size"])
    return _evaluate_generator(loaded, dataset, notes, **options)


def _evaluate_classifier(
    loaded: LoadedModel, dataset: Dataset, notes: list[str], batch_size: int
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    examples = [e for e in dataset.examples if isinstance(e, ClassificationExample)]
    space = loaded.label_space
    if space is None:
        raise ModelError(f"{loaded.manifest.get('base_model')} has no label space to score")
    _check_labels(examples, space)
    limit = _max_seq_length(loaded)
    probabilities = classify(
        loaded.model,
        loaded.tokenizer,
        [e.text for e in examples],
        space,
        batch_size=batch_size,
        max_length=limit,
    )
    metrics = classification_metrics([e.label for e in examples], probabilities, space)
    labels = predicted_labels(probabilities, space)
    predictions = [
        _describe_prediction(label, probs)
        for label, probs in zip(labels, probabilities, strict=True)
    ]
    rows = [{"line": e.line, "input": e.text, "reference": _label_text(e.label)} for e in examples]
    return metrics, predictions, rows


def _evaluate_generator(
    loaded: LoadedModel, dataset: Dataset, notes: list[str], *, max_new_tokens: int, batch_size: int
) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    model, tokenizer = loaded.model, loaded.tokenizer
    limit = _max_seq_length(loaded)
    tokenized = tokenize_dataset(
        dataset,
        tokenizer,
        task=loaded.task,
        model_kind=loaded.kind,
        max_seq_length=limit,
        raise_on_error=False,
    )
    if tokenized.errors:
        notes.append(f"{len(tokenized.errors)} example(s) could not be tokenized and were skipped")
    if tokenized.n_truncated:
        notes.append(f"{tokenized.n_truncated} example(s) were truncated to {limit} tokens")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    loss_sum, correct, count = score_lm(
        model,
        tokenized.examples,
        kind=loaded.kind,
        pad_id=pad_id,
        row_capacity=limit,
        batch_size=batch_size,
    )
    metrics: dict[str, Any] = lm_metrics(loss_sum, correct, count)

    prompts, references, rows = _generation_inputs(loaded, dataset)
    budget = _generation_budget(tokenizer, references, max_new_tokens)
    prompts = _fit_prompts(loaded, prompts, budget)
    params = GenerationParams(max_new_tokens=budget, temperature=0)
    outputs = generate_from_ids(model, tokenizer, prompts, params, batch_size=batch_size)
    predictions = [o[0].text for o in outputs]
    metrics["exact_match"] = exact_match(references, predictions)
    metrics["n_generated"] = len(predictions)
    metrics["max_new_tokens"] = budget
    names = answer_classes(references)
    if names is not None:
        space = LabelSpace(names)
        parsed = [parse_answer(p, names) for p in predictions]
        truth = [parse_answer(r, names) or r for r in references]
        metrics[ANSWERS] = label_metrics(truth, parsed, space)
    return metrics, predictions, rows


def _generation_inputs(
    loaded: LoadedModel, dataset: Dataset
) -> tuple[list[list[int]], list[str], list[dict[str, Any]]]:
    """Prompt ids (up to the final assistant turn), reference texts, display rows."""
    tokenizer = loaded.tokenizer
    encoder_decoder = loaded.kind == ModelKind.SEQ2SEQ
    prompts, references, rows = [], [], []
    for example in dataset.examples:
        if isinstance(example, ChatExample):
            turns = trained_turns(example.messages)
            if not turns:
                continue
            last = turns[-1]
            messages = example.messages[:last]
            ids = chat_prompt_ids(
                tokenizer, messages, tools=example.tools, encoder_decoder=encoder_decoder
            )
            reference = str(example.messages[last].get("content") or "")
            shown = next(
                (m.get("content") for m in reversed(messages) if m.get("role") == "user"), ""
            )
        elif isinstance(example, CompletionExample):
            ids = completion_prompt_ids(tokenizer, example.prompt, encoder_decoder=encoder_decoder)
            reference, shown = example.completion, example.prompt
        else:
            continue
        prompts.append(ids)
        references.append(reference)
        rows.append({"line": example.line, "input": shown, "reference": reference})
    return prompts, references, rows


def _fit_prompts(loaded: LoadedModel, prompts: list[list[int]], budget: int) -> list[list[int]]:
    """Cut prompts the model cannot take: an encoder keeps the start of its input, a decoder
    the end of its prompt (the answer shares the decoder's context and follows the prompt)."""
    context = model_max_length(loaded.model, loaded.tokenizer)
    if loaded.kind == ModelKind.SEQ2SEQ:
        return [ids[:context] for ids in prompts]
    room = max(context - budget, 1)
    return [ids[-room:] for ids in prompts]


def _generation_budget(tokenizer: Any, references: list[str], max_new_tokens: int) -> int:
    longest = max(
        (len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references), default=0
    )
    return max(1, min(max_new_tokens, longest + GENERATION_SLACK_TOKENS))


# --- models and their data -----------------------------------------------------------------


@contextmanager
def _baseline_model(
    loaded: LoadedModel, baseline: str | Path, settings: Settings, task: Task
) -> Iterator[LoadedModel]:
    """The baseline: the run's own base with the adapter switched off, or a fresh load."""
    if _is_own_base(loaded, baseline, settings):
        peft_model: Any = loaded.model
        with peft_model.disable_adapter():
            yield dataclasses.replace(loaded, manifest={**loaded.manifest, "method": None})
        return
    base = load_any(baseline, settings, task=task, label_space=loaded.label_space)
    try:
        yield base
    finally:
        del base
        gc.collect()


def _is_own_base(loaded: LoadedModel, baseline: str | Path, settings: Settings) -> bool:
    """Whether ``baseline`` names the base model of the LoRA run ``loaded``."""
    manifest = loaded.manifest
    if manifest.get("method") != "lora" or not hasattr(loaded.model, "disable_adapter"):
        return False
    if (Path(baseline).expanduser() / RUN_MANIFEST).is_file():
        return False
    if str(baseline) == manifest.get("base_model"):
        return True
    try:
        path = resolve_model(str(baseline), settings).path
    except ModelError:
        return False
    recorded = manifest.get("base_model_path")
    return recorded is not None and Path(recorded).resolve() == path.resolve()


def _head_notes(loaded: LoadedModel, name: str) -> list[str]:
    if loaded.task == Task.CLASSIFICATION and not loaded.manifest.get("method"):
        return [
            f"{name} is a base model: its classification head is new and untrained, so its "
            "scores are at chance level by construction"
        ]
    return []


def _read(path: Path, max_examples: int | None) -> Dataset:
    dataset = load_dataset(path)
    if max_examples is not None and max_examples < len(dataset.examples):
        return dataclasses.replace(dataset, examples=dataset.examples[:max_examples])
    return dataset


def _data_label_space(dataset: Dataset) -> LabelSpace:
    """The labels of the data: the head of a base model gets one output per label."""
    return LabelSpace.from_examples(
        e for e in dataset.examples if isinstance(e, ClassificationExample)
    )


def _check_labels(examples: list[ClassificationExample], space: Any) -> None:
    known = set(space.names)
    unknown = sorted({n for e in examples for n in _as_list(e.label)} - known)
    if unknown:
        raise ConfigError(
            f"the data has labels the model does not know: {unknown}; it was trained on "
            f"{space.names}"
        )


def _max_seq_length(loaded: LoadedModel) -> int:
    """The run's own max_seq_length, else what the model accepts (capped)."""
    recorded = (loaded.manifest.get("hyperparameters") or {}).get("max_seq_length")
    if isinstance(recorded, int) and recorded > 0:
        return recorded
    return min(model_max_length(loaded.model, loaded.tokenizer), DEFAULT_MAX_SEQ_LENGTH)


def _as_list(label: str | list[str]) -> list[str]:
    return [label] if isinstance(label, str) else list(label)


def _label_text(label: str | list[str]) -> str:
    return label if isinstance(label, str) else ", ".join(label)


def _describe_prediction(label: str | list[str], probs: dict[str, float]) -> str:
    if isinstance(label, str):
        return f"{label} ({probs[label]:.2f})"
    return ", ".join(label) if label else "(none)"


__all__ = ["DEFAULT_MAX_NEW_TOKENS", "EvaluationReport", "evaluate"]
