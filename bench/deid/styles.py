"""Note styles for the synthetic generator: each writes one note through a ``NoteBuilder``.

Identifiers appear in headers, tables, lists, letters and free text, in varied formats, beside
look-alikes that are not PHI (years alone, ages up to 89, doses, vital signs, scores), so both
recall and precision are exercised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from identifiers import Fakes
from vocab import DIAGNOSES, DRUGS, FACILITIES, PROCEDURES, RELATIONS, SIGNS, SPECIALTIES

if TYPE_CHECKING:
    from collections.abc import Callable

    from generate_notes import NoteBuilder, Patient


def nm(text: str) -> tuple[str, str]:
    return ("NAME", text)


def term(text: str) -> tuple[str, str]:
    return ("TERM", text)


def age(value: int) -> tuple[str, str] | str:
    """Ages over 89 are identifiers; younger ones are plain text that must survive."""
    return ("AGE", str(value)) if value > 89 else str(value)


def full(f: Fakes, first: str, last: str) -> tuple[str, str]:
    form = f.rng.choice(("{f} {l}", "{f} {l}", "{l}, {f}", "{L}, {F}", "{f0}. {l}", "{F} {L}"))
    return nm(form.format(f=first, l=last, F=first.upper(), L=last.upper(), f0=first[0]))


def date(f: Fakes, day, short: bool = False) -> tuple[str, str]:
    return ("DATE", f.date_text(day, short))


def pick(f: Fakes, items: tuple[str, ...], k: int = 1) -> list[str]:
    return f.rng.sample(items, k)


def pronoun(p: Patient) -> tuple[str, str, str]:
    return ("He", "his", "man") if p.sex == "M" else ("She", "her", "woman")


def address_line(b: NoteBuilder, p: Patient) -> None:
    b.add(("ADDRESS", p.street), ", ", ("CITY", p.city), ", ", p.state, " ", ("ZIP", p.zip))


def discharge_summary(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    he, _, man = pronoun(p)
    dx1, dx2 = pick(f, DIAGNOSES, 2)
    d1, d2, d3 = pick(f, DRUGS, 3)
    doc1, doc2, doc3 = p.doctors
    b.line("DISCHARGE SUMMARY")
    b.line(
        "Patient: ",
        full(f, p.first, p.last),
        "    MRN: ",
        ("MRN", p.mrn),
        "    DOB: ",
        date(f, p.dob),
    )
    b.line("Admission Date: ", date(f, p.admitted), "    Discharge Date: ", date(f, p.discharged))
    b.line(
        "Attending: Dr. ",
        nm(f"{doc1[0]} {doc1[1]}"),
        "    PCP: ",
        nm(f"{doc2[0]} {doc2[1]}"),
        ", MD",
    )
    b.line("Facility: ", ("FACILITY", f.rng.choice(FACILITIES)), "\n")
    b.line("HISTORY OF PRESENT ILLNESS:")
    title = "Mr." if p.sex == "M" else "Ms."
    b.line(
        f"{title} ",
        nm(p.last),
        " is a ",
        age(p.age),
        f"-year-old {man} with a history of ",
        term(dx1),
        " and ",
        term(dx2),
        f" (diagnosed in {f.rng.randint(1995, 2014)}) who presented on ",
        date(f, p.admitted, short=True),
        " with two days of dyspnea. "
        f"{he} was seen by {f.rng.choice(SPECIALTIES)} in {f.rng.randint(2000, 2014)}.",
    )
    b.line("\nHOSPITAL COURSE:")
    b.line(
        f"{he} was started on ",
        term(d1),
        " 40 mg IV BID. A ",
        term(f.rng.choice(PROCEDURES)),
        " was placed on ",
        date(f, p.admitted, short=True),
        ". BP 132/84, HR 88, SpO2 94% on 2L. Cr 1.4 (baseline 1.1). ",
        term(f.rng.choice(SIGNS)),
        " was negative. Echo on ",
        date(f, p.admitted),
        " showed EF 35%.",
    )
    b.line("\nDISCHARGE MEDICATIONS:")
    for i, drug in enumerate((d1, d2, d3), 1):
        b.line(f"{i}. ", term(drug), f" {f.rng.choice((5, 10, 20, 25, 40))} mg daily")
    b.line("\nFOLLOW-UP:")
    b.line(
        "- ",
        f.rng.choice(SPECIALTIES).title(),
        " with Dr. ",
        nm(doc3[1]),
        " on ",
        date(f, p.discharged, short=True),
        " at 10:30 AM, phone ",
        ("PHONE", f.phone()),
    )
    b.line("- PCP Dr. ", nm(doc2[1]), " within 1 week.")
    rel = f.rng.choice(RELATIONS)
    b.line(f"Contact: {rel} ", nm(f"{p.relative[0]} {p.relative[1]}"), ", ", ("PHONE", p.phone))
    b.add("Address on file: ")
    address_line(b, p)
    b.line()


def nursing_note(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    d1, d2 = pick(f, DRUGS, 2)
    rel = f.rng.choice(RELATIONS)
    b.line("Nursing Note - ", date(f, p.admitted), " day shift")
    b.line(
        "0700: Received pt from night RN. A&Ox3. Pt is ",
        age(p.age),
        " yo ",
        p.sex,
        ", admitted for ",
        term(f.rng.choice(DIAGNOSES)),
        ".",
    )
    b.line(
        "0930: ",
        term(d1),
        " 650 mg PO given for pain 6/10. ",
        term(f.rng.choice(PROCEDURES)),
        " in place, draining clear yellow urine.",
    )
    first = p.relative[0] if f.rng.random() < 0.7 else p.relative[0].lower()
    b.line(
        f"1100: Pt's {rel} ",
        nm(first),
        " at bedside, updated on plan of care. ",
        nm(first),
        " can be reached at ",
        ("PHONE", p.phone),
        ".",
    )
    b.line(
        "1400: Called Dr. ",
        nm(p.doctors[0][1]),
        " re: BP 168/92, new order for ",
        term(d2),
        ". Pt ambulated 2x in hall with walker, steady gait.",
    )
    b.line(
        '1630: Pt states "I want to go home to ', ("CITY", p.city), '". Fall risk, bed alarm on.'
    )
    b.line("Signed: ", nm(f"{p.doctors[2][0]} {p.doctors[2][1]}"), ", RN")


def referral_letter(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    she, her, woman = pronoun(p)
    doc, me = p.doctors[0], p.doctors[1]
    dx, drug = f.rng.choice(DIAGNOSES), f.rng.choice(DRUGS)
    b.line(("FACILITY", f.rng.choice(FACILITIES)))
    b.line(("ADDRESS", f.street()))
    b.line(("CITY", f.city()), ", ", f.state(), " ", ("ZIP", f.zip()))
    b.line("Tel: ", ("PHONE", f.phone()), "   Fax: ", ("PHONE", f.phone()))
    b.line()
    b.line(date(f, p.discharged))
    b.line()
    b.line("Dr. ", nm(f"{doc[0]} {doc[1]}"))
    b.line(f.rng.choice(SPECIALTIES).title(), " Clinic\n")
    b.line("Dear Dr. ", nm(doc[1]), ",\n")
    b.line("Re: ", full(f, p.first, p.last), ", DOB ", date(f, p.dob), ", MRN ", ("MRN", p.mrn))
    b.line()
    b.line(
        "Thank you for seeing my patient, a pleasant ",
        age(p.age),
        f" year old {woman} with ",
        term(dx),
        f". {she} was last seen here on ",
        date(f, p.admitted, short=True),
        f" when {her} ",
        term(drug),
        " was increased. Since 2019 ",
        she.lower(),
        " has lived with ",
        her,
        " ",
        f.rng.choice(RELATIONS),
        " at ",
        ("ADDRESS", p.street),
        " in ",
        ("CITY", p.city),
        ". ",
        term(f.rng.choice(SIGNS)),
        " was positive today.",
    )
    b.line()
    b.line("Sincerely,\n")
    b.line(nm(f"{me[0]} {me[1]}"), ", MD")
    b.line(("EMAIL", f.email(me[0], me[1])))


def face_sheet(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    rel = f.rng.choice(RELATIONS)
    rows: list[tuple[str, list]] = [
        ("Name", [full(f, p.first, p.last)]),
        ("Date of birth", [date(f, p.dob)]),
        ("Age", [age(p.age)]),
        ("SSN", [("SSN", p.ssn)]),
        ("MRN", [("MRN", p.mrn)]),
        ("Account #", [("ID", p.account)]),
        ("Health plan", ["BlueCross member ID ", ("ID", p.member_id)]),
        ("Driver's license", [("ID", p.licence), f" ({p.state})"]),
        (
            "Address",
            [("ADDRESS", p.street), ", ", ("CITY", p.city), f", {p.state} ", ("ZIP", p.zip)],
        ),
        ("Home phone", [("PHONE", p.phone)]),
        ("Email", [("EMAIL", p.email)]),
        (
            "Emergency contact",
            [nm(f"{p.relative[0]} {p.relative[1]}"), f" ({rel}) ", ("PHONE", f.phone())],
        ),
        ("Patient portal", [("URL", p.url)]),
        ("Last login from IP", [("IP", p.ip)]),
        ("Allergies", ["penicillin (rash), ", term(f.rng.choice(DRUGS))]),
    ]
    f.rng.shuffle(rows)
    table = f.rng.random() < 0.5
    b.line("REGISTRATION FACE SHEET")
    if table:
        b.line("| Field | Value |\n|---|---|")
    for label, value in rows:
        b.line(f"| {label} | ", *value, " |") if table else b.line(f"{label + ':':<20}", *value)


def progress_note(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    dx1, dx2 = pick(f, DIAGNOSES, 2)
    d1, d2 = pick(f, DRUGS, 2)
    rel, rel_name = f.rng.choice(RELATIONS), p.relative[0]
    b.line("PROGRESS NOTE  ", date(f, p.admitted))
    b.line(
        "S: ",
        age(p.age),
        f"yo {p.sex} seen in {f.rng.choice(SPECIALTIES)} clinic f/u ",
        term(dx1),
        f". Reports fatigue. {rel.title()} ",
        nm(rel_name),
        " states pt is more forgetful since ",
        date(f, p.admitted, short=True),
        ".",
    )
    b.line(
        "O: T 98.6, BP 128/76, HR 72, RR 16. Grade 2/6 murmur. Pacemaker interrogated "
        "(Medtronic, serial no. ",
        ("ID", p.serial),
        "). ",
        term(f.rng.choice(SIGNS)),
        " absent.",
    )
    b.line(
        "A/P: 1. ",
        term(dx1),
        " - continue ",
        term(d1),
        " 25 mg. 2. ",
        term(dx2),
        " - start ",
        term(d2),
        "; repeat BMP on ",
        date(f, p.discharged, short=True),
        ".",
    )
    b.line(
        "Insulin pump SN: ",
        ("ID", f.serial()),
        ". DEA # ",
        ("ID", f"{f.letters(2)}{f.digits(7)}"),
        ". NPI ",
        ("ID", f.npi()),
        ".",
    )
    b.line("RTC 3 months. ", nm(f"{p.doctors[0][0]} {p.doctors[0][1]}"), ", MD")


def portal_message(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    doc = p.doctors[0]
    drug = f.rng.choice(DRUGS)
    b.line("From: ", ("EMAIL", p.email))
    b.line("Sent: ", date(f, p.admitted), " 9:41 AM")
    b.line("To: ", ("EMAIL", f.email(doc[0], doc[1])))
    b.line("Subject: refill request\n")
    b.line(
        "Hi Dr. ",
        nm(doc[1]),
        ", this is ",
        nm(f"{p.first} {p.last}"),
        " (DOB ",
        date(f, p.dob),
        "). I need a refill of my ",
        term(drug),
        ". My new number is ",
        ("PHONE", p.phone),
        " and my insurance member ID is ",
        ("ID", p.member_id),
        ". I tried the link ",
        ("URL", p.url),
        " but it says account ",
        ("ID", p.account),
        " is locked.",
    )
    b.line("Thanks, ", nm(p.first), "\n---")
    b.line(
        "Telephone encounter ",
        date(f, p.discharged),
        ": spoke with pt at ",
        ("PHONE", p.phone),
        ", identity verified (SSN ",
        ("SSN", p.ssn),
        "). Refill of ",
        term(drug),
        " sent. Message logged from IP ",
        ("IP", p.ip),
        ".",
    )


def triage_list(b: NoteBuilder, p: Patient, f: Fakes) -> None:
    dx1, dx2 = pick(f, DIAGNOSES, 2)
    b.line("ED TRIAGE")
    b.line("- Name: ", nm(f"{p.first.upper()} {p.last.upper()}"))
    b.line(
        "- Arrived: ",
        date(f, p.admitted),
        " 22:14 by EMS from home (",
        ("ADDRESS", p.street),
        ", ",
        ("CITY", p.city),
        ")",
    )
    b.line("- Age: ", age(p.age), "    Sex: ", p.sex)
    b.line("- CC: chest pain x2 days, 7/10")
    b.line("- PMH: ", term(dx1), ", ", term(dx2))
    b.line("- Meds: ", term(f.rng.choice(DRUGS)), ", aspirin 81 mg")
    b.line("- MVC earlier today; vehicle plate ", ("ID", f.plate()), ", airbags deployed")
    b.line("- Triage RN: ", nm(f"{p.doctors[2][0]} {p.doctors[2][1]}"))
    b.line(
        "IMPRESSION: No acute cardiopulmonary process. Compared with prior study dated ",
        date(f, f.date(2012, p.admitted.year - 1)),
        ". Dictated by ",
        nm(f"{p.doctors[0][0]} {p.doctors[0][1]}"),
        ", MD on ",
        date(f, p.discharged),
        ".",
    )


STYLES: list[tuple[str, Callable[[NoteBuilder, Patient, Fakes], None]]] = [
    ("discharge_summary", discharge_summary),
    ("nursing_note", nursing_note),
    ("referral_letter", referral_letter),
    ("face_sheet", face_sheet),
    ("progress_note", progress_note),
    ("portal_message", portal_message),
    ("triage_list", triage_list),
]
