"""Scoring of predicted identifier spans against the generator's gold spans.

Recall is what privacy needs: a gold identifier counts as found only when every letter and
digit of it lies inside some predicted span (of any type: ``[ID]`` for an MRN still hides it);
a partial hit leaks the rest. Precision is per predicted span: a hit when it overlaps an
identifier (or a facility name, which is neutral), a false alarm otherwise. Clinical terms
(``TERM`` spans) survive when no predicted span touches them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PHI_TYPES = (
    "NAME",
    "DATE",
    "AGE",
    "PHONE",
    "EMAIL",
    "SSN",
    "MRN",
    "ID",
    "URL",
    "IP",
    "ADDRESS",
    "CITY",
    "ZIP",
)
STRUCTURED = ("PHONE", "EMAIL", "SSN", "MRN", "DATE")
NEUTRAL = ("FACILITY",)


@dataclass(frozen=True)
class Predicted:
    start: int
    end: int
    type: str


@dataclass
class Scores:
    found: Counter[str] = field(default_factory=Counter)
    gold: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    predicted: Counter[str] = field(default_factory=Counter)
    terms_kept: int = 0
    terms: int = 0
    seconds: float = 0.0
    notes: int = 0
    misses: list[tuple[str, str]] = field(default_factory=list)
    false_alarms: list[tuple[str, str]] = field(default_factory=list)

    def recall(self, kind: str) -> float:
        return self.found[kind] / self.gold[kind] if self.gold[kind] else float("nan")

    def precision(self, kind: str | None = None) -> float:
        hits = sum(self.hits.values()) if kind is None else self.hits[kind]
        total = sum(self.predicted.values()) if kind is None else self.predicted[kind]
        return hits / total if total else float("nan")

    def to_dict(self) -> dict[str, object]:
        kinds = [k for k in self.gold if k in PHI_TYPES or k.startswith("NAME/")]
        return {
            "recall": {k: round(self.recall(k), 4) for k in sorted(kinds)},
            "precision": {k: round(self.precision(k), 4) for k in sorted(self.predicted)},
            "precision_all": round(self.precision(), 4),
            "recall_structured": round(
                sum(self.found[k] for k in STRUCTURED)
                / max(1, sum(self.gold[k] for k in STRUCTURED)),
                4,
            ),
            "terms_kept": round(self.terms_kept / self.terms, 4) if self.terms else None,
            "ms_per_note": round(1000 * self.seconds / max(1, self.notes), 1),
            "notes": self.notes,
        }


def _covered(spans: Iterable[Predicted], length: int) -> list[bool]:
    mask = [False] * length
    for span in spans:
        for i in range(max(0, span.start), min(length, span.end)):
            mask[i] = True
    return mask


def score_note(
    text: str,
    gold: Sequence[dict],
    predicted: Sequence[Predicted],
    scores: Scores,
    name_group: dict[str, str] | None = None,
) -> None:
    """Add one note's counts to ``scores``. ``name_group`` may relabel names (see run.py)."""
    mask = _covered(predicted, len(text))
    for span in gold:
        kind, start, end = span["type"], span["start"], span["end"]
        if kind in NEUTRAL:
            continue
        if kind == "TERM":
            scores.terms += 1
            scores.terms_kept += not any(mask[start:end])
            continue
        ok = all(mask[i] for i in range(start, end) if text[i].isalnum())
        kinds = [kind]
        if kind == "NAME":
            group = (name_group or {}).get(span["text"], span.get("group") or "listed")
            kinds.append(f"NAME/{group}")
        for k in kinds:
            scores.gold[k] += 1
            scores.found[k] += ok
        if not ok:
            scores.misses.append((kind, span["text"]))
    targets = [(s["start"], s["end"]) for s in gold if s["type"] != "TERM"]
    for pred in predicted:
        hit = any(pred.start < end and start < pred.end for start, end in targets)
        scores.predicted[pred.type] += 1
        scores.hits[pred.type] += hit
        if not hit:
            scores.false_alarms.append((pred.type, text[pred.start : pred.end]))


def format_table(name: str, scores: Scores) -> str:
    """A plain-text table: recall per gold type, precision per predicted type."""
    lines = [
        f"== {name}: {scores.notes} notes, "
        f"{1000 * scores.seconds / max(1, scores.notes):.1f} ms/note"
    ]
    lines.append(f"{'type':<16}{'gold':>6}{'recall':>9}")
    kinds = sorted(k for k in scores.gold if k in PHI_TYPES or k.startswith("NAME/"))
    lines += [f"{k:<16}{scores.gold[k]:>6}{scores.recall(k):>9.3f}" for k in kinds]
    lines.append(f"{'predicted type':<16}{'spans':>6}{'precision':>10}")
    lines += [
        f"{k:<16}{scores.predicted[k]:>6}{scores.precision(k):>10.3f}"
        for k in sorted(scores.predicted)
    ]
    kept = scores.terms_kept / scores.terms if scores.terms else float("nan")
    lines.append(f"precision (all) {scores.precision():.3f}   clinical terms kept {kept:.3f}")
    return "\n".join(lines)


def examples(pairs: list[tuple[str, str]], limit: int = 12) -> str:
    """The most frequent misses or false alarms, to read while improving a detector."""
    counts = Counter(pairs).most_common(limit)
    by_type: dict[str, list[str]] = defaultdict(list)
    for (kind, text), n in counts:
        by_type[kind].append(f"{text!r}x{n}")
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in by_type.items())
