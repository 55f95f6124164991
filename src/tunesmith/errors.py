"""The exceptions tunesmith raises. Every one derives from ``TunesmithError``::

    TunesmithError
    ├── ConfigError            a spec or setting is invalid (lists every problem at once)
    ├── DataError              a dataset is invalid (carries every DataIssue found)
    ├── ModelError             a model cannot be found, converted or loaded
    │   └── ModelNotFoundError
    ├── CheckpointError        a checkpoint is missing, incomplete or does not match
    └── TrainingInterrupted    a callback asked training to stop (cancel / pause)

Third-party errors are translated at the boundary where they occur (``raise ... from``), so
callers — the CLI, the job worker, the server — handle one family.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


class TunesmithError(Exception):
    """Base of every error tunesmith raises on purpose."""


class ConfigError(TunesmithError):
    """One or more settings are invalid. ``problems`` lists each, with how to fix it."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class DataIssue:
    """One problem (or warning) in a dataset, located by file, line and field."""

    file: str
    line: int | None
    field: str | None
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class DataError(TunesmithError):
    """A dataset has errors. ``issues`` holds every one found, not just the first."""

    def __init__(self, issues: list[DataIssue], summary: str | None = None) -> None:
        self.issues = list(issues)
        shown = "\n".join(str(i) for i in self.issues[:20])
        more = f"\n... and {len(self.issues) - 20} more" if len(self.issues) > 20 else ""
        head = summary or f"{len(self.issues)} error(s) in the data"
        super().__init__(f"{head}\n{shown}{more}")


class ModelError(TunesmithError):
    """A model cannot be resolved, converted or loaded."""


class ModelNotFoundError(ModelError):
    """No local folder, packaged id or cached hub id matches the name."""


class CheckpointError(TunesmithError):
    """A checkpoint is missing, incomplete, or incompatible with the run."""


class TrainingInterrupted(TunesmithError):
    """Training stopped because a callback asked it to (cancel or pause).

    The last checkpoint written before stopping is in ``checkpoint`` (None if none yet).
    """

    def __init__(self, reason: str, checkpoint: str | None = None) -> None:
        self.reason = reason
        self.checkpoint = checkpoint
        super().__init__(f"training stopped: {reason}")
