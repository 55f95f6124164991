"""``FinetuneSpec.deidentify``: the run trains on de-identified copies in ``<run>/data/``, no
original identifier reaches any file under the data directory, and resume reuses the copies.

The notes are invented (tests/phi.py); the model is the tiny BERT of ``save_tiny_model``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.helpers import write_jsonl
from tests.phi import IDENTIFIERS, VALUES, find_values, note_rows
from tests.training.test_finetune import Recorder
from tunesmith.errors import TrainingInterrupted
from tunesmith.settings import Settings
from tunesmith.training import deidentified
from tunesmith.training.run import finetune, resume_run
from tunesmith.training.spec import FinetuneSpec, Hyperparameters


@pytest.fixture
def notes(tmp_path: Path) -> tuple[Path, Path]:
    """Originals outside the data directory, as a hospital's extract would be."""
    source = tmp_path / "extract"
    source.mkdir()
    train = write_jsonl(source / "train.jsonl", note_rows(34))
    valid = write_jsonl(source / "valid.jsonl", note_rows(10, offset=100))
    return train, valid


def _spec(
    model: Path, train: Path, valid: Path | None, method: str = "full", **extra: object
) -> FinetuneSpec:
    return FinetuneSpec(
        model=str(model),
        train_file=train,
        validation_file=valid,
        method=method,  # type: ignore[arg-type]
        deidentify=True,
        hyperparameters=Hyperparameters(
            n_epochs=2, batch_size=8, learning_rate=1e-3, checkpoint_every=2
        ),
        **extra,  # type: ignore[arg-type]
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_deidentified_run_sees_only_deidentified_text(
    encoder_dir: Path, notes: tuple[Path, Path], settings: Settings
) -> None:
    train, valid = notes
    recorder = Recorder()
    result = finetune(_spec(encoder_dir, train, valid), settings=settings, callbacks=[recorder])
    run = result.output_dir
    assert run.is_relative_to(settings.data_dir)  # the default run folder: <data_dir>/runs

    copies = run / "data"
    assert sorted(p.name for p in copies.iterdir() if not p.name.startswith(".")) == [
        "deid-report.json",
        "train.jsonl",
        "validation.jsonl",
    ]
    text = (copies / "train.jsonl").read_text()
    assert "[NAME]" in text and "[MRN]" in text and "[ZIP]" in text
    labels = [json.loads(line)["label"] for line in text.splitlines()]
    assert labels == [row["label"] for row in note_rows(34)]  # labels are never touched

    # the manifest names the copies and their hashes; the spec keeps what was asked
    meta = json.loads((run / "tunesmith.json").read_text())
    assert meta["data"]["train"]["path"] == str(copies / "train.jsonl")
    assert meta["data"]["train"]["sha256"] == _sha256(copies / "train.jsonl")
    assert meta["data"]["validation"]["sha256"] == _sha256(copies / "validation.jsonl")
    assert meta["spec"]["deidentify"] is True and meta["spec"]["deidentify_mode"] == "placeholder"

    # the report: counts by type and file, never a value
    report = json.loads((copies / "deid-report.json").read_text())
    assert report["mode"] == "placeholder" and report["total"] > 0
    assert set(report["files"]) == {"train", "validation"}
    for kind in ("NAME", "DATE", "AGE", "PHONE", "EMAIL", "SSN", "MRN", "ID", "URL", "IP"):
        assert report["replacements"].get(kind, 0) > 0, kind
    for kind in ("ADDRESS", "CITY", "ZIP"):
        assert report["replacements"].get(kind, 0) > 0, kind
    assert any("De-identified the train file" in m for _, m in recorder.messages)

    # not one original value in any file of the data directory, run folder included
    assert find_values(VALUES, [settings.data_dir]) == {}
    # ...and the scan does see them where they are (the originals)
    assert set(find_values(VALUES, [train.parent])[str(train)]) == set(VALUES)


@pytest.mark.parametrize("kind", sorted(IDENTIFIERS))
def test_each_identifier_type_is_in_the_originals_only(kind: str) -> None:
    # guards the scan above: every type's value is in the notes the runs train on
    sentence, value = IDENTIFIERS[kind]
    assert value in sentence
    assert any(sentence in row["text"] for row in note_rows(34))


def test_resume_reuses_the_deidentified_copies(
    encoder_dir: Path,
    notes: tuple[Path, Path],
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    train, valid = notes
    # LoRA: resuming a full fine-tune currently trips over the checkpoint's rng.safetensors
    # (read as weights); that belongs to the checkpoint code, not to de-identification
    spec = _spec(encoder_dir, train, valid, "lora", output_dir=settings.runs_dir / "resumable")
    with pytest.raises(TrainingInterrupted):
        finetune(spec, settings=settings, callbacks=[Recorder(stop_at=2)])
    run = settings.runs_dir / "resumable"
    before = {p.name: _sha256(p) for p in (run / "data").glob("*.jsonl")}

    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("resume de-identified the data again")

    monkeypatch.setattr(deidentified, "deidentify_file", no_second_pass)
    train.unlink()  # a hospital may delete the originals once de-identified
    valid.unlink()
    recorder = Recorder()
    result = resume_run(run, settings=settings, callbacks=[recorder])
    assert result.steps == 10  # 34 examples, batch 8 -> 5 steps an epoch, 2 epochs
    assert {p.name: _sha256(p) for p in (run / "data").glob("*.jsonl")} == before
    assert any("reused" in m for _, m in recorder.messages)
    assert find_values(VALUES, [settings.data_dir]) == {}


def test_a_changed_source_is_deidentified_again(
    notes: tuple[Path, Path], settings: Settings, tmp_path: Path
) -> None:
    train, _ = notes
    spec = _spec(Path("unused-model"), train, None)
    run = tmp_path / "run"
    first = deidentified.prepare(spec, run, settings)
    recorder = Recorder()
    again = deidentified.prepare(spec, run, settings, [recorder])
    assert again == first and any("reused" in m for _, m in recorder.messages)

    write_jsonl(train, note_rows(12, offset=500))
    recorder = Recorder()
    changed = deidentified.prepare(spec, run, settings, [recorder])
    assert not any("reused" in m for _, m in recorder.messages)
    assert "Visit 500." in changed.train.read_text()
    # the report stores a keyed fingerprint of the source, not a plain hash of it
    report = json.loads(changed.report.read_text())
    assert report["files"]["train"]["source_fingerprint"] != _sha256(train)


def test_surrogate_mode_keeps_a_patients_lines_together(settings: Settings, tmp_path: Path) -> None:
    rows = [
        {"patient_id": "P-7", "text": "Patient: Maria Gonzalez admitted 03/14/2021.", "label": "a"},
        {"patient_id": "P-7", "text": "Maria Gonzalez discharged 03/20/2021.", "label": "b"},
    ]
    train = write_jsonl(tmp_path / "notes.jsonl", rows)
    spec = _spec(
        Path("unused"), train, None, deidentify_mode="surrogate", deidentify_record_key="patient_id"
    )
    files = deidentified.prepare(spec, tmp_path / "run", settings)
    first, second = (json.loads(line) for line in files.train.read_text().splitlines())
    assert first["patient_id"] == second["patient_id"] != "P-7"  # one keyed pseudonym
    assert "Maria" not in first["text"] + second["text"]
    fake_name = first["text"].removeprefix("Patient: ").split(" admitted")[0]
    assert second["text"].startswith(fake_name)  # the same fake name for the same patient


def test_deidentify_options_need_deidentify() -> None:
    with pytest.raises(ValueError, match="only with deidentify=True"):
        FinetuneSpec(model="m", train_file=Path("t.jsonl"), deidentify_mode="surrogate")
