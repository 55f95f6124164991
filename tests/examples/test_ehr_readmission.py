"""The EHR readmission example (examples/ehr-readmission/run.py) end to end on a tiny BERT:
every step runs, patients never straddle splits, the calibration is stored and used by
prediction, and no identifier the generator wrote reaches the data directory or the files
the model was trained and evaluated on. All records are synthetic."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from tests.helpers import save_tiny_model
from tests.phi import find_words

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ehr-readmission"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))  # run.py imports generate.py as its neighbour
    spec = importlib.util.spec_from_file_location(f"ehr_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_example_runs_end_to_end_on_a_tiny_model(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "tiny-bert", "encoder")
    work = tmp_path / "work"
    summary = _load("run").main(
        ["--work", str(work), "--model", str(model), "--patients", "24", "--new-patients", "3",
         "--epochs", "1", "--batch-size", "8", "--learning-rate", "0.001"]
    )  # fmt: skip

    assert summary["synthetic"] is True
    assert summary["deidentification"]["surviving_identifiers"] == 0
    assert summary["deidentification"]["replacements"]["NAME"] > 0
    splits = summary["splits"]
    assert sum(s["patients"] for s in splits.values()) == 24
    assert sum(s["notes"] for s in splits.values()) == summary["cohort"]["notes"]
    test = summary["test"]
    for key in ("accuracy", "precision", "recall", "f1", "auroc", "confusion_matrix"):
        assert key in test["fine_tuned"] and key in test["base_model"]
    calibration = summary["calibration"]
    assert calibration["temperature"] > 0
    assert {"test_ece_before", "test_ece_after"} <= set(calibration)
    assert summary["new_notes"]["temperature_applied"] == calibration["temperature"]

    (run,) = (work / "home" / "runs").iterdir()
    stored = json.loads((run / "calibration.json").read_text())
    assert stored["temperature"] == calibration["temperature"]
    assert json.loads((work / "summary.json").read_text())["calibration"] == calibration

    identifiers = json.loads((work / "raw" / "identifiers.json").read_text())
    assert len(identifiers) > 100
    trained_on = [work / "home", work / "deid", work / "splits", work / "summary.json"]
    assert find_words(identifiers, trained_on) == {}
    assert find_words(identifiers, [work / "raw"])  # the scan finds them where they are


def test_the_generator_keeps_new_patients_apart(tmp_path: Path) -> None:
    generate = _load("generate")
    paths = generate.write_cohort(tmp_path, patients=30, new_patients=2, seed=3)
    rows = [json.loads(line) for line in paths["notes"].read_text().splitlines()]
    new = [json.loads(line) for line in paths["new_notes"].read_text().splitlines()]
    assert {r["patient_id"] for r in rows}.isdisjoint({r["patient_id"] for r in new})
    assert len({r["patient_id"] for r in rows}) == 30
    assert all(r["label"] in (0, 1) for r in rows)
    assert "SYNTHETIC" in (EXAMPLE / "README.md").read_text()
