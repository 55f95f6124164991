"""Note styles kept out of development: the detector's rules were never tuned on these.

The styles in ``styles.py`` were read while the rules were written, so a new seed of them
only changes the values, not the phrasing. These three were written afterwards and are
measured as they come, to show how the rules carry over to wording they have not seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from identifiers import Fakes
from styles import age, date, full, nm, pick, term
from vocab import DIAGNOSES, DRUGS, FACILITIES, PROCEDURES, RELATIONS

if TYPE_CHECKING:
    from collections.abc import Callable

    from generate_notes import NoteBuilder, Patient


def operative_report(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    surgeon, assistant, anesthetist = p.doctors
    title = "Mr." if p.sex == "M" else "Mrs."
    b.line("OPERATIVE REPORT")
    b.line("Date of surgery: ", date(f, p.admitted))
    b.line(
        "Surgeon: ", nm(f"{surgeon[0]} {surgeon[1]}"), ", MD;  Assistant: Dr. ", nm(assistant[1])
    )
    b.line(
        "Anesthesia: general, administered by ", nm(f"{anesthetist[0]} {anesthetist[1]}"), ", CRNA"
    )
    b.line("Preoperative diagnosis: ", term(f.rng.choice(DIAGNOSES)))
    b.line("Procedure: ", term(f.rng.choice(PROCEDURES)), "\n")
    b.line(
        f"The patient, {title} ",
        nm(p.last.upper()),
        ", a ",
        age(p.age),
        " y/o, was identified in the holding area. Consent was signed by ",
        f.rng.choice(("his", "her")),
        " ",
        f.rng.choice(RELATIONS),
        ", ",
        nm(p.relative[0]),
        ", on ",
        date(f, p.admitted, short=True),
        ". A ",
        term(f.rng.choice(PROCEDURES)),
        " was placed. Implant: lot 4471, serial ",
        ("ID", f.serial()),
        ". Specimen accession ",
        ("ID", f"S{f.digits(2)}-{f.digits(6)}"),
        " sent to pathology. EBL 150 mL.",
    )
    b.line(
        "Post-op: to PACU in stable condition; resume ",
        term(f.rng.choice(DRUGS)),
        " tomorrow. Family updated by phone at ",
        ("PHONE", p.phone),
        ".",
    )


def social_work_note(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    rel = f.rng.choice(RELATIONS)
    landlord = f.person()
    b.line("SOCIAL WORK NOTE")
    b.line(
        "SW met with pt and ",
        f.rng.choice(("her", "his")),
        f" {rel} ",
        nm(f"{p.relative[0]} {p.relative[1]}"),
        " at bedside. Pt lives alone in an apartment at ",
        ("ADDRESS", p.street),
        ", ",
        ("CITY", p.city),
        f", {p.state} ",
        ("ZIP", p.zip),
        ". Pt reports that a son moved to ",
        ("CITY", f.city()),
        f" in {f.rng.randint(2001, 2019)}.",
    )
    b.line(
        "Medicaid # ",
        ("ID", f.member_id()),
        ". Landlord, Mr. ",
        nm(landlord[1]),
        ", can be reached at ",
        ("PHONE", f.phone()),
        " or ",
        ("EMAIL", f.email(*landlord)),
        ".",
    )
    b.line(
        "Plan: SNF referral to ",
        ("FACILITY", f.rng.choice(FACILITIES)),
        "; packet faxed to ",
        ("PHONE", f.phone()),
        " on ",
        date(f, p.discharged),
        ". Pt agrees; takes ",
        term(f.rng.choice(DRUGS)),
        " for ",
        term(f.rng.choice(DIAGNOSES)),
        ".",
    )


def radiology_report(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    ordering, reader = p.doctors[0], p.doctors[1]
    dx = pick(f, DIAGNOSES, 1)[0]
    b.line("RADIOLOGY REPORT")
    b.line(
        "Exam: CT chest without contrast      Accession #: ", ("ID", f"{f.letters(2)}{f.digits(8)}")
    )
    b.line("Patient: ", full(f, p.first, p.last), " (MRN ", ("MRN", p.mrn), ")")
    b.line("Ordering provider: ", nm(f"{ordering[0]} {ordering[1]}"), ", NP")
    b.line("Clinical history: ", age(p.age), "-year-old with ", term(dx), ", cough.")
    b.line("Comparison: CT ", date(f, f.date(2010, p.admitted.year - 1)), ".")
    b.line(
        "Findings: 6 mm nodule in the right upper lobe, stable. No effusion. "
        "Impression: no acute process; follow-up per Fleischner criteria."
    )
    b.line(
        "Electronically signed by: Dr. ",
        nm(f"{reader[0]} {reader[1]}"),
        " on ",
        date(f, p.discharged),
        " at 14:22. Report viewed from ",
        ("IP", p.ip),
        ".",
    )


UNSEEN_STYLES: list[tuple[str, Callable[[NoteBuilder, Patient, Fakes], None]]] = [
    ("operative_report", operative_report),
    ("social_work_note", social_work_note),
    ("radiology_report", radiology_report),
]
