"""The readmission example through the OpenAI-compatible API, on SYNTHETIC records.

    .venv/bin/python examples/ehr-readmission/api.py [--patients 1200] [--epochs 3] [--keep]

The hospital's side holds the identified extract (here: invented by ``generate.py``; no real
clinical data is available offline). It splits it by patient, then hands it to a tunesmith
server that must never store an identifier:

1. starts ``tunesmith serve`` (one worker) on a temporary data folder and makes an API key;
2. uploads the training and validation splits with ``deidentify=true`` and
   ``record_key_field=patient_id`` (tunesmith's extension, sent with the SDK's ``extra_body``):
   the server de-identifies each file while it streams in and stores only the result;
3. creates a classification job on ``all-minilm-l6-v2`` with
   ``method.classification.deidentify = true`` (the job refuses files stored as sent), and
   prints its events until it ends;
4. de-identifies the held-out patients' notes through the same upload (purpose
   ``user_data``, read back, then deleted), scores them with ``POST /v1/classifications`` and
   prints AUROC, F1 and the confusion matrix;
5. scans every file under the server's data folder for the identifiers the generator wrote:
   none may be there.

``--keep`` leaves the data folder (and prints where) instead of deleting it.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from openai import OpenAI
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))  # generate.py
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # api_demo.py's server helpers
from api_demo import create_key, serve
from generate import write_cohort
from leaks import identifiers_in

MODEL = "all-minilm-l6-v2"
DEID = {"deidentify": "true", "record_key_field": "patient_id"}  # placeholders (the default)


def main() -> None:
    parser = argparse.ArgumentParser(description="The readmission example through the API.")
    parser.add_argument("--patients", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tunesmith-ehr-api-"))
    try:
        splits, identifiers = hospital_side(work / "hospital", args.patients)
        data_dir = work / "server"
        data_dir.mkdir()
        with serve(data_dir) as base_url:
            client = OpenAI(base_url=base_url, api_key=create_key(data_dir), timeout=1800)
            model = fine_tune(client, splits, args.epochs)
            score(client, model, splits["test"])
        check_nothing_stored(data_dir, identifiers)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def hospital_side(folder: Path, patients: int) -> tuple[dict[str, Path], list[str]]:
    """The identified extract, split 70/15/15 by (real) patient id before anything leaves."""
    paths = write_cohort(folder, patients=patients, new_patients=0)
    rows = [json.loads(line) for line in paths["notes"].read_text().splitlines()]
    ids = sorted({r["patient_id"] for r in rows})
    random.Random(0).shuffle(ids)
    cut1, cut2 = round(0.7 * len(ids)), round(0.85 * len(ids))
    groups = {"train": ids[:cut1], "validation": ids[cut1:cut2], "test": ids[cut2:]}
    splits = {}
    for name, members in groups.items():
        chosen = set(members)
        splits[name] = folder / f"{name}.jsonl"
        splits[name].write_text(
            "".join(json.dumps(r) + "\n" for r in rows if r["patient_id"] in chosen)
        )
    print(f"SYNTHETIC extract: {len(rows)} notes of {patients} patients, split by patient")
    return splits, json.loads(paths["identifiers"].read_text())


def upload(client: OpenAI, path: Path, purpose: str = "fine-tune") -> Any:
    """Upload with de-identification on; the server stores only the de-identified text."""
    with path.open("rb") as handle:
        stored = client.files.create(file=handle, purpose=purpose, extra_body=DEID)  # type: ignore[arg-type]
    counts = (stored.model_extra or {})["deidentification"]
    print(f"uploaded {path.name} as {stored.id}: {counts['total']} identifiers replaced "
          f"{counts['replacements']}")  # fmt: skip
    return stored


def fine_tune(client: OpenAI, splits: dict[str, Path], epochs: int) -> str:
    train, valid = upload(client, splits["train"]), upload(client, splits["validation"])
    hyperparameters: Any = {"n_epochs": epochs, "batch_size": 16, "learning_rate": 1e-4}
    method: Any = {
        "type": "classification",
        "classification": {
            "hyperparameters": hyperparameters,
            "training_method": "full",
            "deidentify": True,
        },
    }
    job = client.fine_tuning.jobs.create(
        model=MODEL, training_file=train.id, validation_file=valid.id, method=method,
        suffix="readmission",
    )  # fmt: skip
    print(f"created {job.id} ({job.status}); method {job.method}")
    seen: set[str] = set()
    while job.status not in ("succeeded", "failed", "cancelled"):
        time.sleep(5)
        job = client.fine_tuning.jobs.retrieve(job.id)
        for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=50).data):
            if event.id not in seen and event.type == "message":
                seen.add(event.id)
                print(f"  [{event.level}] {event.message}")
    if job.status != "succeeded" or not job.fine_tuned_model:
        raise SystemExit(f"the job {job.status}: {job.error}")
    return job.fine_tuned_model


def score(client: OpenAI, model: str, test: Path) -> None:
    """Held-out patients' notes, de-identified by the server like the training data."""
    stored = upload(client, test, purpose="user_data")
    rows = [json.loads(line) for line in client.files.content(stored.id).text.splitlines()]
    client.files.delete(stored.id)
    body = {"model": model, "input": [r["text"] for r in rows]}
    result: Any = client.post("/classifications", cast_to=object, body=body)
    probabilities = [item["probabilities"]["1"] for item in result["data"]]
    truth = [r["label"] for r in rows]
    predicted = [int(p >= 0.5) for p in probabilities]
    auroc, f1 = roc_auc_score(truth, probabilities), f1_score(truth, predicted)
    matrix = confusion_matrix(truth, predicted).tolist()
    print(f"{model} on {len(rows)} notes of held-out patients: AUROC {auroc:.3f}, F1 {f1:.3f}, "
          f"confusion matrix (rows: true 0/1) {matrix}")  # fmt: skip


def check_nothing_stored(data_dir: Path, identifiers: list[str]) -> None:
    """Every file under the server's data folder (database, uploads, runs, logs), as bytes.
    Tensor files are read where text can live: a safetensors file's JSON header, and every
    member of a torch checkpoint archive but its raw tensor storages (``*/data/N``); scanning
    gigabytes of weights once per value took many minutes."""
    # a saved tokenizer.json lists the base model's vocabulary with token ids, which look like
    # ZIP codes: where the vocabulary is the base's unchanged, it is left out of the search
    base_vocab = _vocab(_base_model_dir(data_dir) / "tokenizer.json")
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    leaks = []
    for path in files:
        leaks += [
            (path, v) for v in identifiers_in(_searchable_bytes(path, base_vocab), identifiers)
        ]
    print(f"scanned {len(files)} files under the data folder for {len(identifiers)} identifier "
          f"values: {len(leaks)} found")  # fmt: skip
    if leaks:
        raise SystemExit(f"identifiers found: {leaks[:5]}")


def _base_model_dir(data_dir: Path) -> Path:
    from tunesmith.models.registry import resolve_model
    from tunesmith.settings import Settings

    return Path(resolve_model(MODEL, Settings(data_dir=data_dir)).path)


def _vocab(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]


def _searchable_bytes(path: Path, base_vocab: Any) -> bytes:
    if path.name == "tokenizer.json":
        tokenizer = json.loads(path.read_text(encoding="utf-8"))
        if tokenizer["model"]["vocab"] == base_vocab:
            del tokenizer["model"]["vocab"]
        return json.dumps(tokenizer).encode()
    if path.suffix == ".safetensors":
        return _safetensors_header(path)
    if path.suffix == ".pt" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not re.search(r"/data/\d+$", n)]
            return b"\n".join(archive.read(n) for n in names)
    return path.read_bytes()


def _safetensors_header(path: Path) -> bytes:
    """The JSON header of a safetensors file: an 8-byte little-endian length, then the JSON."""
    with path.open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        return handle.read(size)


if __name__ == "__main__":
    main()
