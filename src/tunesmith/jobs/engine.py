"""The two engine functions a worker calls, behind one seam.

``settings.job_engine`` names a module providing ``finetune`` and ``validate_file`` with the
signatures below; this module (the default) forwards to the real engine, imported lazily so
that the server starts without loading torch. ``tunesmith.jobs.fakes`` provides fast fakes for
tests and dry runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from tunesmith.settings import Settings
from tunesmith.training.callbacks import TrainingCallback
from tunesmith.training.spec import FinetuneSpec

Resume = Literal["auto", "never", "must"]


class JobEngine(Protocol):
    def finetune(
        self,
        spec: FinetuneSpec,
        *,
        settings: Settings,
        callbacks: Sequence[TrainingCallback] = (),
        resume: Resume = "auto",
    ) -> Any:
        """Train; returns a ``FinetuneResult`` (output_dir, metrics, trained_tokens, steps,
        manifest); raises ``TrainingInterrupted`` when a callback asks it to stop."""
        ...

    def validate_file(self, path: Path, *, validation_path: Path | None = None) -> Any:
        """A ``ValidationReport`` (``ok``, ``errors``: DataIssue list, ``to_dict()``)."""
        ...


def load_engine(settings: Settings) -> JobEngine:
    module: Any = importlib.import_module(settings.job_engine)
    return module  # a module with the two functions satisfies the protocol


def finetune(
    spec: FinetuneSpec,
    *,
    settings: Settings,
    callbacks: Sequence[TrainingCallback] = (),
    resume: Resume = "auto",
) -> Any:
    from tunesmith.training.run import finetune as engine_finetune

    return engine_finetune(spec, settings=settings, callbacks=callbacks, resume=resume)


def validate_file(path: Path, *, validation_path: Path | None = None) -> Any:
    from tunesmith.data.validation import validate_file as engine_validate

    return engine_validate(path, validation_path=validation_path)
