"""Synthetic clinical notes with every identifier labelled, to measure de-identification.

    .venv/bin/python bench/deid/generate_notes.py --n 3 --seed 7          # JSONL on stdout

No real clinical data can be had offline, so these notes are invented (Faker and random
choices): each note comes with gold spans ``{start, end, type, text}`` for every Safe Harbor
identifier in it, and spans of clinical terms (``TERM``) that must survive. Facility names are
labelled ``FACILITY``: not PHI under Safe Harbor, so removing them is neither a hit nor a miss.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from dataclasses import asdict, dataclass, field

from identifiers import Fakes
from styles import STYLES
from styles_unseen import UNSEEN_STYLES

Part = str | tuple[str, str]


@dataclass
class Span:
    start: int
    end: int
    type: str
    text: str
    group: str = ""  # names: "listed" (from a locale a name list may hold) or "unlisted"


@dataclass
class Note:
    id: str
    style: str
    text: str
    spans: list[Span] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class NoteBuilder:
    """Appends text; a ``(TYPE, value)`` part becomes a labelled span, so offsets are exact."""

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._length = 0
        self.spans: list[Span] = []

    def add(self, *parts: Part) -> NoteBuilder:
        for part in parts:
            if isinstance(part, tuple):
                kind, value = part
                self.spans.append(Span(self._length, self._length + len(value), kind, value))
                part = value
            self._chunks.append(part)
            self._length += len(part)
        return self

    def line(self, *parts: Part) -> NoteBuilder:
        return self.add(*parts, "\n")

    def text(self) -> str:
        return "".join(self._chunks)


@dataclass
class Patient:
    """One invented patient and the people and numbers around them."""

    first: str
    last: str
    sex: str
    age: int
    dob: dt.date
    admitted: dt.date
    discharged: dt.date
    street: str
    city: str
    state: str
    zip: str
    phone: str
    email: str
    url: str
    ip: str
    ssn: str
    mrn: str
    account: str
    member_id: str
    licence: str
    serial: str
    doctors: list[tuple[str, str]]
    relative: tuple[str, str]


def make_patient(f: Fakes) -> Patient:
    first, last = f.person()
    age = f.rng.randint(90, 104) if f.rng.random() < 0.25 else f.rng.randint(19, 89)
    admitted = f.date()
    dob = admitted - dt.timedelta(days=age * 365 + f.rng.randint(1, 360))
    return Patient(
        first=first,
        last=last,
        sex=f.rng.choice("MF"),
        age=age,
        dob=dob,
        admitted=admitted,
        discharged=admitted + dt.timedelta(days=f.rng.randint(1, 14)),
        street=f.street(),
        city=f.city(),
        state=f.state(),
        zip=f.zip(),
        phone=f.phone(),
        email=f.email(first, last),
        url=f.url(last),
        ip=f.ip(),
        ssn=f.ssn(),
        mrn=f.mrn(),
        account=f.account(),
        member_id=f.member_id(),
        licence=f.licence(),
        serial=f.serial(),
        doctors=[f.person() for _ in range(3)],
        relative=f.person(),
    )


def generate_notes(n: int, seed: int, unseen: bool = False) -> list[Note]:
    """``n`` notes, the same ones for the same seed (styles taken in turn, then shuffled).

    ``unseen`` draws from the styles kept out of development (``styles_unseen.py``).
    """
    fakes = Fakes(seed)
    styles = UNSEEN_STYLES if unseen else STYLES
    notes = []
    for i in range(n):
        style_name, style = styles[i % len(styles)]
        builder = NoteBuilder()
        style(builder, make_patient(fakes), fakes)
        for span in builder.spans:
            if span.type == "NAME":
                parts = set(re.findall(r"\w+", span.text.lower()))
                span.group = "unlisted" if parts & fakes.unlisted else "listed"
        notes.append(Note(f"s{seed}-{i:04d}", style_name, builder.text(), builder.spans))
    fakes.rng.shuffle(notes)
    return notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--unseen", action="store_true", help="the styles kept out of development")
    args = parser.parse_args(argv)
    for note in generate_notes(args.n, args.seed, args.unseen):
        sys.stdout.write(json.dumps(note.to_dict()) + "\n")


__all__ = ["Note", "NoteBuilder", "Patient", "Span", "generate_notes"]

if __name__ == "__main__":
    main()
