"""The dataset report behind ``GET /v1/files/{id}/validation`` (a tunesmith extension).

What the dashboard's dataset page and new fine-tune form show: the validator's errors,
warnings and statistics (``training.planning.check_dataset``, token counts with the chosen
model's tokenizer), the cost of training on it (epochs, steps, tokens, seconds on this
machine) and every "auto" hyperparameter resolved to the number it becomes.

Validating and tokenizing a large file takes a while, and the form asks again each time a
hyperparameter changes, so the expensive part (the check, keyed by files, model and
``max_seq_length``; uploaded files never change) is kept in a small LRU cache; the estimate
and the resolved hyperparameters are recomputed on each request, which costs nothing.
The engine (and torch) are imported when the first report is asked for, not at start-up.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import ConfigError
from tunesmith.settings import Settings
from tunesmith.tasks import Method
from tunesmith.training.spec import Hyperparameters, resolve_hyperparameters

CACHED_CHECKS = 32


@dataclass(frozen=True)
class CheckKey:
    train: str
    validation: str | None
    model: str | None
    max_seq_length: int | None


@dataclass
class _Check:
    report: Any  # ValidationReport
    max_seq_length: int | None
    n_params: int | None
    kind: Any  # ModelKind | None
    model_max_length: int | None


class DatasetReports:
    """Builds reports; keeps the last ``CACHED_CHECKS`` checks (thread-safe)."""

    def __init__(self, settings: Settings, size: int = CACHED_CHECKS) -> None:
        self.settings = settings
        self.size = size
        self._checks: OrderedDict[CheckKey, _Check] = OrderedDict()
        self._lock = threading.Lock()

    def report(
        self,
        train: Path,
        *,
        validation: Path | None = None,
        model: str | None = None,
        method: Method = Method.LORA,
        hyperparameters: Hyperparameters | None = None,
        names: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The report as JSON: ``report``, ``estimate``, ``resolved``, ``problems``.

        ``names`` maps paths on disk to what the user calls the files (their ids): the
        report names files by those, never by where the server keeps them."""
        hp = hyperparameters or Hyperparameters.model_validate({})
        max_len = None if hp.max_seq_length == "auto" else hp.max_seq_length
        key = CheckKey(str(train), str(validation) if validation else None, model, max_len)
        check = self._check(key)
        report = check.report
        stats = report.stats
        body: dict[str, Any] = {
            "object": "file.validation",
            "model": model,
            "method": method.value,
            "max_seq_length": check.max_seq_length,
            "report": _renamed(report.to_dict(), names or {}),
            "estimate": None,
            "resolved": None,
            "problems": [],
        }
        if stats is None or stats.n_examples == 0:
            return body
        body["estimate"] = _estimate(stats, check, method, hp)
        if check.kind is not None:
            n_valid = report.validation_stats.n_examples if report.validation_stats else 0
            try:
                resolved = resolve_hyperparameters(
                    hp,
                    n_train_examples=stats.n_examples,
                    n_validation_examples=n_valid,
                    method=method,
                    model_kind=check.kind,
                    model_max_length=check.model_max_length,
                )
                body["resolved"] = resolved.to_dict()
            except ConfigError as exc:
                body["problems"] = list(exc.problems)
        return body

    def _check(self, key: CheckKey) -> _Check:
        with self._lock:
            found = self._checks.get(key)
            if found is not None:
                self._checks.move_to_end(key)
                return found
        check = _run_check(key, self.settings)  # outside the lock: it may take seconds
        with self._lock:
            self._checks[key] = check
            while len(self._checks) > self.size:
                self._checks.popitem(last=False)
        return check


def _run_check(key: CheckKey, settings: Settings) -> _Check:
    from tunesmith.models.registry import resolve_model
    from tunesmith.training.planning import check_dataset, count_parameters_of

    validation = Path(key.validation) if key.validation else None
    kind = model_max_length = n_params = None
    if key.model is not None:
        resolved = resolve_model(key.model, settings)
        kind, model_max_length = resolved.kind, resolved.max_length
        try:
            n_params = count_parameters_of(resolved.path, settings)
        except Exception:  # an architecture transformers cannot build on meta: no time estimate
            n_params = None
    check = check_dataset(
        Path(key.train),
        settings=settings,
        validation=validation,
        model=key.model,
        max_seq_length=key.max_seq_length,
    )
    return _Check(check.report, check.max_seq_length, n_params, kind, model_max_length)


def _estimate(stats: Any, check: _Check, method: Method, hp: Hyperparameters) -> dict[str, Any]:
    from tunesmith.training.estimate import estimate_training

    tokens = stats.tokens.total if stats.tokens is not None else 0
    estimate = estimate_training(
        n_examples=stats.n_examples,
        tokens_per_epoch=tokens,
        n_params=check.n_params,
        method=method,
        n_epochs=hp.n_epochs,
        batch_size=hp.batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation_steps,
    )
    return estimate.to_dict()


def _renamed(report: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    def name(path: Any) -> Any:
        return names.get(path, Path(path).name) if isinstance(path, str) else path

    report["file"] = name(report["file"])
    report["validation_file"] = name(report.get("validation_file"))
    for issue in report["errors"] + report["warnings"]:
        issue["file"] = name(issue.get("file"))
    return report
