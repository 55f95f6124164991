"""Evaluating a finished job on its validation file, for ``/v1/fine_tuning/jobs/{id}/evaluation``
(a tunesmith extension the dashboard's evaluation view uses).

``start`` runs the engine's ``evaluation.evaluate.evaluate`` in a background thread: the
fine-tuned run against its base model for chat and completion jobs (the base vs fine-tuned
comparison on held-out examples), the run alone for classification (metrics and confusion
matrix). The report is cached as ``evaluation.json`` in the job's run folder, so it is
computed once per job and survives restarts. One evaluation runs at a time (they are
CPU-heavy); others wait their turn in ``running``. Failures are kept in memory until
the next start.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.evaluation.report import ANSWERS, METRIC_ROWS
from tunesmith.settings import Settings

log = logging.getLogger("tunesmith.server")

EVALUATION_FILE = "evaluation.json"
MAX_EXAMPLES = 200  # held-out examples scored; enough for metrics, bounded in time


@dataclass(frozen=True)
class EvaluationRequest:
    job_id: str
    run_dir: Path
    data: Path
    data_name: str  # the validation file's id, shown instead of its path
    model_name: str  # the fine-tuned model's name
    baseline: str | None  # the base model, or None (classification)


class Evaluations:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Lock()
        self._running: set[str] = set()
        self._errors: dict[str, str] = {}

    def status(self, job_id: str, run_dir: Path) -> dict[str, Any]:
        """``{"object", "job_id", "status", "error", "report", "created_at", "metric_rows",
        "answers_key"}``; ``metric_rows`` lists the report's metrics in the order to show them
        (``key``, ``label``, ``higher_is_better``), as the CLI's table does."""
        body: dict[str, Any] = {
            "object": "fine_tuning.job.evaluation",
            "job_id": job_id,
            "status": "not_started",
            "error": None,
            "report": None,
            "created_at": None,
            "metric_rows": [
                {"key": key, "label": label, "higher_is_better": higher}
                for key, label, higher in METRIC_ROWS
            ],
            "answers_key": ANSWERS,
        }
        cached = run_dir / EVALUATION_FILE
        with self._lock:
            if job_id in self._running:
                return body | {"status": "running"}
            if job_id in self._errors:
                return body | {"status": "failed", "error": self._errors[job_id]}
        if cached.is_file():
            stored = json.loads(cached.read_text(encoding="utf-8"))
            return body | {"status": "succeeded", **stored}
        return body

    def start(self, request: EvaluationRequest) -> dict[str, Any]:
        """Start evaluating (unless it runs or is done); returns the status."""
        with self._lock:
            done = (request.run_dir / EVALUATION_FILE).is_file()
            if request.job_id not in self._running and not done:
                self._running.add(request.job_id)
                self._errors.pop(request.job_id, None)
                thread = threading.Thread(
                    target=self._run, args=(request,), name=f"evaluate-{request.job_id}"
                )
                thread.daemon = True
                thread.start()
        return self.status(request.job_id, request.run_dir)

    def _run(self, request: EvaluationRequest) -> None:
        try:
            with self._one_at_a_time:
                report = self._evaluate(request)
            stored = {"created_at": int(time.time()), "report": report}
            temp = request.run_dir / f".{EVALUATION_FILE}.tmp"
            temp.write_text(json.dumps(stored), encoding="utf-8")
            temp.replace(request.run_dir / EVALUATION_FILE)
        except Exception as exc:
            log.exception("evaluating %s failed", request.job_id)
            with self._lock:
                self._errors[request.job_id] = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._running.discard(request.job_id)

    def _evaluate(self, request: EvaluationRequest) -> dict[str, Any]:
        from tunesmith.evaluation.evaluate import evaluate

        report = evaluate(
            request.run_dir,
            request.data,
            settings=self.settings,
            baseline=request.baseline,
            max_examples=MAX_EXAMPLES,
        ).to_dict()
        report["model"] = request.model_name
        report["data"] = request.data_name
        return report
