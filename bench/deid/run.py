"""Benchmark of tunesmith's de-identification on synthetic clinical notes.

    make bench-deid                                   # the held-out seed, 200 notes
    .venv/bin/python bench/deid/run.py --seed 1       # the seed the rules were developed on

Prints recall per identifier type, precision per predicted type, the share of clinical terms
kept, the time per note, then one JSON line with the same figures. The notes are synthetic
(bench/deid/generate_notes.py): no real clinical data is available offline, and figures on
real notes will be lower. Names are also reported by whether every part of them is in the
detector's name lists ("NAME/listed") or not ("NAME/unlisted").
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import STRUCTURED, Predicted, Scores, examples, format_table, score_note
from generate_notes import generate_notes

from tunesmith.data.deid import Deidentifier, load_engine

TARGETS = {"structured": 0.99, "NAME": 0.95, "ADDRESS": 0.95, "precision": 0.9}


def run(n: int, seed: int, show_errors: bool, unseen: bool = False) -> dict[str, object]:
    start = time.perf_counter()
    engine = load_engine()
    load_s = time.perf_counter() - start
    lex = engine.lexicons
    notes = generate_notes(n, seed, unseen)
    scores = Scores()
    for note in notes:
        t0 = time.perf_counter()
        findings = engine.detect(note.text)
        scores.seconds += time.perf_counter() - t0
        scores.notes += 1
        predicted = [Predicted(f.start, f.end, f.type.value) for f in findings]
        groups = {
            s.text: "listed"
            if all(lex.is_name(w) for w in re.findall(r"[^\W\d_]+", s.text))
            else "unlisted"
            for s in note.spans
            if s.type == "NAME"
        }
        score_note(note.text, [s.__dict__ for s in note.spans], predicted, scores, groups)
    deid = Deidentifier(mode="placeholder", engine=engine)
    t0 = time.perf_counter()
    for note in notes:
        deid.deidentify_text(note.text, record_key=note.id)
    end_to_end_ms = 1000 * (time.perf_counter() - t0) / max(1, len(notes))

    label = "styles kept out of development" if unseen else "development styles"
    print(format_table(f"tunesmith de-identification, seed {seed}, {label}", scores))
    print(f"end to end (detect + replace): {end_to_end_ms:.1f} ms/note; engine load {load_s:.1f} s")
    if show_errors:
        print("misses:", examples(scores.misses, 30))
        print("false alarms:", examples(scores.false_alarms, 30))
    result = {
        "seed": seed,
        "styles": "unseen" if unseen else "development",
        **scores.to_dict(),
        "end_to_end_ms_per_note": round(end_to_end_ms, 1),
        "load_s": round(load_s, 1),
        "model": engine.model_name,
        "machine": f"{platform.machine()}, python {platform.python_version()}",
    }
    result["targets_met"] = targets_met(scores)
    return result


def targets_met(scores: Scores) -> dict[str, bool]:
    structured = sum(scores.found[k] for k in STRUCTURED) / max(
        1, sum(scores.gold[k] for k in STRUCTURED)
    )
    return {
        "structured_recall>=0.99": structured >= TARGETS["structured"],
        "name_recall>=0.95": scores.recall("NAME") >= TARGETS["NAME"],
        "address_recall>=0.95": scores.recall("ADDRESS") >= TARGETS["ADDRESS"],
        "precision>=0.9": scores.precision() >= TARGETS["precision"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument(
        "--seed", type=int, default=2, help="2 is held out; rules were developed on 1"
    )
    parser.add_argument(
        "--errors", action="store_true", help="print the commonest misses and false alarms"
    )
    args = parser.parse_args()
    results = [
        run(args.n, args.seed, args.errors),
        run(args.n // 2, args.seed, args.errors, unseen=True),
    ]
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
