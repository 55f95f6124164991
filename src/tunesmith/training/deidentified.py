"""``FinetuneSpec.deidentify``: the run trains on de-identified copies of its data files.

``finetune`` swaps the spec's files for these copies before anything reads them, so
validation, tokenization, training, checkpoints, evaluation and the events all see only
de-identified text::

    <run>/data/
      train.jsonl          the training file, every text field de-identified (same suffix)
      validation.jsonl     the validation file, likewise (when the run has one)
      deid-report.json     what was replaced, by type and file: counts, never a value

Why in the run folder: the run is then self-contained (an auditor finds exactly what the
model saw next to it), and resuming never needs the originals, which a hospital may delete
once they are de-identified. The surrogate salt is the data directory's ``deid-salt``
(``load_or_create_salt``), never the run folder's: whoever holds a run must not be able to
test guesses against its surrogates.

Reuse: the report is written last and records each output's SHA-256 and a keyed
fingerprint (HMAC with the salt) of each source, so a resumed run reuses the copies without
a second pass, even when the originals are gone; a source that still exists and changed is
de-identified again. Under ``torchrun`` every rank calls ``deidentified_spec``: a file lock
lets the first do the work and the others reuse it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from tunesmith.data.deid import Deidentifier, deidentify_file, load_or_create_salt
from tunesmith.settings import Settings
from tunesmith.training.callbacks import TrainingCallback
from tunesmith.training.spec import FinetuneSpec

DATA_DIR = "data"
REPORT_FILE = "deid-report.json"
SALT_FILE = "deid-salt"
LOCK_FILE = ".deid.lock"
REPORT_VERSION = 1


@dataclass(frozen=True)
class DeidentifiedFiles:
    """The de-identified copies a run trains on."""

    train: Path
    validation: Path | None
    report: Path


def deidentified_spec(
    spec: FinetuneSpec,
    run_dir: Path,
    settings: Settings,
    callbacks: Sequence[TrainingCallback] = (),
) -> FinetuneSpec:
    """``spec`` itself, or (with ``deidentify``) a copy pointing at de-identified files."""
    if not spec.deidentify:
        return spec
    files = prepare(spec, run_dir, settings, callbacks)
    return spec.model_copy(update={"train_file": files.train, "validation_file": files.validation})


def prepare(
    spec: FinetuneSpec,
    run_dir: Path,
    settings: Settings,
    callbacks: Sequence[TrainingCallback] = (),
) -> DeidentifiedFiles:
    """De-identify the spec's files into ``<run_dir>/data/``, or reuse the copies there."""
    folder = run_dir / DATA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / LOCK_FILE)):
        salt = data_dir_salt(settings)
        sources = _sources(spec)
        reused = _reusable(folder, sources, spec, salt)
        if reused is not None:
            _tell(callbacks, "info", "De-identified data found in the run folder; reused.")
            return reused
        return _deidentify(folder, sources, spec, salt, callbacks)


def data_dir_salt(settings: Settings) -> bytes:
    """The data directory's secret salt, created once even when processes race for it."""
    path = settings.data_dir / SALT_FILE
    with FileLock(str(path) + ".lock"):
        return load_or_create_salt(path)


def deidentified_files(run_dir: Path) -> DeidentifiedFiles | None:
    """The copies a de-identified run trained on (for evaluating it), or None."""
    report = run_dir / DATA_DIR / REPORT_FILE
    if not report.is_file():
        return None
    files = json.loads(report.read_text(encoding="utf-8"))["files"]
    folder = run_dir / DATA_DIR  # by name: the run folder may have moved since
    validation = files.get("validation")
    return DeidentifiedFiles(
        train=folder / Path(files["train"]["output"]).name,
        validation=folder / Path(validation["output"]).name if validation else None,
        report=report,
    )


def _sources(spec: FinetuneSpec) -> dict[str, Path]:
    sources = {"train": Path(spec.train_file)}
    if spec.validation_file is not None:
        sources["validation"] = Path(spec.validation_file)
    return sources


def _target(folder: Path, role: str, source: Path) -> Path:
    """``train.jsonl`` / ``validation.csv``: the reader goes by the suffix, so it is kept."""
    return folder / f"{role}{source.suffix.lower()}"


def _reusable(
    folder: Path, sources: dict[str, Path], spec: FinetuneSpec, salt: bytes
) -> DeidentifiedFiles | None:
    """The copies in ``folder`` if they are complete and made from these sources, else None."""
    report_path = folder / REPORT_FILE
    if not report_path.is_file():
        return None
    report = json.loads(report_path.read_text(encoding="utf-8"))
    if (
        report.get("mode") != spec.deidentify_mode
        or report.get("record_key_field") != spec.deidentify_record_key
        or set(report.get("files", {})) != set(sources)
    ):
        return None
    for role, source in sources.items():
        entry = report["files"][role]
        output = folder / Path(entry["output"]).name
        if not output.is_file() or _sha256(output) != entry["sha256"]:
            return None
        # A source that is gone (deleted after de-identification) cannot have changed.
        if source.is_file() and fingerprint(source, salt) != entry["source_fingerprint"]:
            return None
    return deidentified_files(folder.parent)


def _deidentify(
    folder: Path,
    sources: dict[str, Path],
    spec: FinetuneSpec,
    salt: bytes,
    callbacks: Sequence[TrainingCallback],
) -> DeidentifiedFiles:
    (folder / REPORT_FILE).unlink(missing_ok=True)  # no report: the copies are incomplete
    deid = Deidentifier(spec.deidentify_mode, salt=salt)
    entries: dict[str, dict[str, Any]] = {}
    for role, source in sources.items():
        _tell(callbacks, "info", f"De-identifying the {role} file ({spec.deidentify_mode}).")
        target = _target(folder, role, source)
        report = deidentify_file(
            source, target, deidentifier=deid, record_key_field=spec.deidentify_record_key
        )
        entries[role] = report.to_dict() | {
            "sha256": _sha256(target),
            "source_fingerprint": fingerprint(source, salt),
        }
        _tell(callbacks, "info", f"De-identified the {role} file: {_summary(report.to_dict())}.")
    _write_report(folder / REPORT_FILE, spec, deid, entries)
    files = deidentified_files(folder.parent)
    assert files is not None
    return files


def _write_report(
    path: Path, spec: FinetuneSpec, deid: Deidentifier, entries: dict[str, dict[str, Any]]
) -> None:
    """Counts by type per file and in all; written last, atomically: it marks completion."""
    totals: Counter[str] = Counter()
    for entry in entries.values():
        totals.update(entry["replacements"])
    report = {
        "report_version": REPORT_VERSION,
        "mode": spec.deidentify_mode,
        "record_key_field": spec.deidentify_record_key,
        "engine": deid.engine.model_name,
        "files": entries,
        "replacements": dict(sorted(totals.items())),
        "total": sum(totals.values()),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def fingerprint(path: Path, salt: bytes) -> str:
    """A keyed digest of a source file: tells a changed source from the same one, and, unlike
    a plain hash, cannot be used without the salt to confirm a guess of the original."""
    digest = hmac.new(salt, digestmod=hashlib.sha256)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _summary(report: dict[str, Any]) -> str:
    counts = ", ".join(f"{kind} {n}" for kind, n in report["replacements"].items()) or "none"
    return f"{report['records']} records, {report['total']} replacements ({counts})"


def _tell(callbacks: Sequence[TrainingCallback], level: str, message: str) -> None:
    for callback in callbacks:
        callback.on_message(level, message)
