"""``tunesmith data deidentify`` and ``tunesmith finetune --deidentify``: counts, never values;
the end-of-run evaluation reads the de-identified validation copy; nothing identifying is left
under the data directory. The notes are invented (tests/phi.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import invoke
from tests.helpers import save_tiny_model, write_jsonl
from tests.phi import VALUES, find_values, note_rows


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("encoder"), "encoder")


def test_data_deidentify_prints_counts_and_never_values(tmp_path: Path) -> None:
    rows = [{"patient_id": f"P-{i % 3}", **row} for i, row in enumerate(note_rows(17))]
    src = write_jsonl(tmp_path / "notes.jsonl", rows)
    out, report = tmp_path / "clean" / "notes.jsonl", tmp_path / "report.json"
    code, output = invoke(
        "data", "deidentify", str(src), str(out),
        "--report", str(report), "--record-key-field", "patient_id",
        "--data-dir", str(tmp_path / "home"),
    )  # fmt: skip
    assert code == 0, output
    assert "NAME" in output and "PHONE" in output and "total" in output
    assert find_values(VALUES, [out.parent, report]) == {}
    assert not [v for v in VALUES if v in output]
    saved = json.loads(report.read_text())
    assert saved["records"] == 17 and saved["total"] > 17
    pseudonyms = {json.loads(line)["patient_id"] for line in out.read_text().splitlines()}
    assert len(pseudonyms) == 3 and all(p.startswith("rec-") for p in pseudonyms)
    assert (tmp_path / "home" / "deid-salt").is_file()  # the data directory's salt


def test_data_deidentify_refuses_writing_over_its_input(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "notes.jsonl", note_rows(3))
    code, output = invoke("data", "deidentify", str(src), str(src), "--data-dir", str(tmp_path))
    assert code != 0 and "must differ" in output


def test_finetune_deidentify_trains_and_evaluates_on_the_copies(
    encoder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunesmith.evaluation import evaluate as evaluation

    scored: list[Path] = []
    real = evaluation.evaluate

    def spy(model: Any, data: Any, **kwargs: Any) -> Any:
        scored.append(Path(data))
        return real(model, data, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", spy)
    extract = tmp_path / "extract"
    extract.mkdir()
    train = write_jsonl(extract / "train.jsonl", note_rows(34))
    valid = write_jsonl(extract / "valid.jsonl", note_rows(10, offset=100))
    home = tmp_path / "home"
    code, output = invoke(
        "finetune", "--model", str(encoder), "--train", str(train), "--validation", str(valid),
        "--method", "full", "--epochs", "1", "--batch-size", "8", "--learning-rate", "0.001",
        "--deidentify", "--data-dir", str(home),
    )  # fmt: skip
    assert code == 0, output
    (run,) = (home / "runs").iterdir()
    assert scored == [run / "data" / "validation.jsonl"]
    assert "accuracy" in output  # the evaluation table was printed (its examples included)
    assert not [v for v in VALUES if v in output]
    assert find_values(VALUES, [home]) == {}
