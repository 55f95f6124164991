"""SYNTHETIC electronic health records for the 30-day readmission example.

    .venv/bin/python examples/ehr-readmission/generate.py OUT_DIR [--patients 400] [--seed 7]

No real clinical data is available offline, so every patient, note and outcome here is
invented (names, addresses and numbers by Faker, seeded; the clinical story by the rules
below). Nothing in this folder describes a real person. The figures this data produces say
that tunesmith's path works end to end, not how well a model would predict real readmissions.

Each patient has 1-3 hospital stays; each stay has one discharge note (three note styles)
full of identifiers: name, MRN, dates of birth, admission and discharge, age (some over 89),
street address, city, ZIP, phone numbers, an email, a health-plan member ID, sometimes an SSN,
and the names of clinicians and relatives. The outcome, readmission within 30 days, is drawn
from a logistic model of risk factors the note states in words (heart failure, COPD, prior
admissions, living alone, leaving against medical advice, missed medications, no follow-up
booked...), plus a per-patient frailty the text does not show, so a patient's stays are
correlated: that is why the example splits by patient, never by note. The identifiers are
drawn independently of the outcome.

Writes ``notes.jsonl`` (``patient_id``, ``text``, ``label``: 1 readmitted, 0 not),
``new-notes.jsonl`` (stays of patients not in ``notes.jsonl``, to score), ``identifiers.json``
(every identifier value written into the notes, so a test, or you, can check that none
survives de-identification) and ``cohort.json`` (sizes, and the AUROC of the true risk: the
best any model could score on this data).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faker import Faker

HOSPITAL = "Lakeside General Hospital"  # a facility name: not a Safe Harbor identifier
CITIES = (
    ("Springfield", "IL"), ("Dayton", "OH"), ("Toledo", "OH"), ("Madison", "WI"),
    ("Omaha", "NE"), ("Wichita", "KS"), ("Tulsa", "OK"), ("Boise", "ID"), ("Spokane", "WA"),
    ("Fresno", "CA"), ("Albany", "NY"), ("Hartford", "CT"), ("Providence", "RI"),
    ("Worcester", "MA"), ("Rochester", "NY"), ("Tucson", "AZ"), ("Lexington", "KY"),
)  # fmt: skip
BASE_LOGIT = -3.2
FRAILTY_SD = 0.7


@dataclass
class Factor:
    """A risk factor: its effect on the log-odds of readmission and ways a note states it."""

    name: str
    weight: float
    phrases: tuple[str, ...]


CONDITIONS = (
    Factor("chf", 0.9, ("congestive heart failure (EF {ef}%)", "HFrEF, EF {ef}%",
                         "chronic systolic heart failure")),
    Factor("copd", 0.6, ("COPD on home oxygen", "severe COPD", "COPD with frequent exacerbations")),
    Factor("ckd", 0.5, ("CKD stage 4", "chronic kidney disease stage 4 (Cr {cr})")),
    Factor("diabetes", 0.4, ("poorly controlled type 2 diabetes (HbA1c {a1c}%)",
                              "insulin-dependent diabetes with HbA1c {a1c}%")),
    Factor("htn", 0.05, ("hypertension", "essential hypertension")),
    Factor("oa", -0.05, ("osteoarthritis of the knees", "hypothyroidism on levothyroxine")),
)  # fmt: skip
REASONS = (
    ("acute decompensated heart failure", 0.5), ("COPD exacerbation", 0.4),
    ("community-acquired pneumonia", 0.2), ("urinary tract infection", 0.0),
    ("elective knee replacement", -0.9), ("cellulitis of the left leg", -0.2),
    ("syncope, work-up negative", -0.4), ("GI bleed requiring transfusion", 0.4),
)  # fmt: skip
STAY = (
    Factor("ama", 1.4, ("Patient left against medical advice before the plan was complete.",
                        "Discharged AMA after declining further treatment.")),
    Factor("nonadherent", 0.9, ("Reports running out of medications and missing doses at home.",
                                "Poor medication adherence; could not afford inhalers.")),
    Factor("alone", 0.6, ("Lives alone with no family support nearby.",
                          "Lives alone; no caregiver available after discharge.")),
    Factor("no_followup", 0.8, ("No follow-up appointment could be scheduled before discharge.",
                                "Follow-up not arranged; patient to call the clinic.")),
    Factor("followup", -0.7, ("Follow-up visit booked within 7 days of discharge.",
                              "Seen by the transitions-of-care nurse; clinic visit in 5 days.")),
    Factor("home_health", -0.5, ("Home health nursing arranged for medication reconciliation.",
                                 "Visiting nurse services set up for twice-weekly visits.")),
    Factor("independent", -0.4, ("Ambulating independently at discharge.",
                                 "Walked the hallway without assistance before discharge.")),
    Factor("snf", 0.3, ("Discharged to a skilled nursing facility.",
                        "Transferred to a rehabilitation facility for strengthening.")),
)  # fmt: skip
FILLER = (
    "Vital signs stable at discharge: BP {sbp}/{dbp}, HR {hr}, SpO2 {spo2}% on room air.",
    "Labs: sodium {na}, potassium {k}, creatinine {cr}, hemoglobin {hb}.",
    "Pain controlled, rated {pain}/10 at rest.",
    "Tolerating a regular diet; bowel function normal.",
    "Diuresed {fluid} L during the stay with improvement in edema.",
    "Chest x-ray showed no new infiltrate.",
    "Medications reconciled with the pharmacist; {n_meds} active medications at discharge.",
)  # fmt: skip


@dataclass
class Patient:
    """One invented patient: identifiers (independent of outcome) and a clinical history."""

    patient_id: str
    first: str
    last: str
    sex: str
    dob: dt.date
    mrn: str
    street: str
    city: str
    state: str
    zip: str
    phone: str
    email: str
    member_id: str
    ssn: str
    contact_first: str
    contact_relation: str
    contact_phone: str
    pcp: str
    conditions: list[Factor]
    frailty: float
    written: set[str] = field(default_factory=set)  # every identifier value in its notes


def make_patient(index: int, fake: Faker, rng: random.Random) -> Patient:
    sex = rng.choice(("F", "M"))
    first = fake.first_name_female() if sex == "F" else fake.first_name_male()
    last = fake.last_name()
    age = rng.randint(90, 97) if rng.random() < 0.06 else rng.randint(38, 89)
    dob = dt.date(2024 - age, rng.randint(1, 12), rng.randint(1, 28))
    city, state = rng.choice(CITIES)
    n_conditions = rng.choice((1, 2, 2, 3, 3, 4))
    return Patient(
        patient_id=f"P{index:05d}",
        first=first,
        last=last,
        sex=sex,
        dob=dob,
        mrn=str(rng.randint(1_000_000, 9_999_999)),
        street=f"{rng.randint(10, 9899)} {fake.street_name()}",
        city=city,
        state=state,
        zip=f"{rng.randint(10000, 99899):05d}",
        phone=f"({rng.randint(201, 989)}) {rng.randint(200, 989)}-{rng.randint(1000, 9999)}",
        email=f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@example.com",
        member_id=f"{rng.choice('WXYZ')}{rng.randint(100_000_000, 999_999_999)}",
        ssn=f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
        contact_first=fake.first_name(),
        contact_relation=rng.choice(("daughter", "son", "wife", "husband", "sister")),
        contact_phone=f"{rng.randint(201, 989)}-{rng.randint(200, 989)}-{rng.randint(1000, 9999)}",
        pcp=fake.last_name(),
        conditions=rng.sample(CONDITIONS, n_conditions),
        frailty=rng.gauss(0.0, FRAILTY_SD),
    )


def _values(rng: random.Random) -> dict[str, Any]:
    return {
        "ef": rng.randint(15, 40), "cr": round(rng.uniform(0.7, 3.9), 1),
        "a1c": round(rng.uniform(8.5, 12.5), 1), "sbp": rng.randint(98, 162),
        "dbp": rng.randint(55, 95), "hr": rng.randint(58, 104), "spo2": rng.randint(89, 99),
        "na": rng.randint(129, 144), "k": round(rng.uniform(3.3, 5.4), 1),
        "hb": round(rng.uniform(8.1, 14.9), 1), "pain": rng.randint(0, 6),
        "fluid": round(rng.uniform(1.0, 6.5), 1), "n_meds": rng.randint(3, 16),
    }  # fmt: skip


def _stay_factors(rng: random.Random) -> list[Factor]:
    by_name = {f.name: f for f in STAY}
    chosen = [f for f in STAY if f.name not in ("followup", "no_followup") and rng.random() < 0.3]
    follow = rng.random()
    if follow < 0.3:
        chosen.append(by_name["no_followup"])
    elif follow < 0.8:
        chosen.append(by_name["followup"])
    return chosen


def _fmt(date: dt.date, rng: random.Random) -> str:
    return rng.choice((date.strftime("%m/%d/%Y"), date.strftime("%B %-d, %Y"), date.isoformat()))


def write_note(
    patient: Patient, admitted: dt.date, prior: int, rng: random.Random
) -> tuple[str, int, float]:
    """One discharge note, its outcome (1 = readmitted within 30 days) and true risk."""
    values = _values(rng)
    reason, reason_weight = rng.choice(REASONS)
    stay = _stay_factors(rng)
    length = rng.randint(2, 12)
    discharged = admitted + dt.timedelta(days=length)
    age = (admitted - patient.dob).days // 365
    logit = (
        BASE_LOGIT + patient.frailty + reason_weight
        + sum(f.weight for f in patient.conditions) + sum(f.weight for f in stay)
        + 0.35 * min(prior, 4) + (0.3 if length > 7 else 0.0) + 0.015 * max(0, age - 65)
    )  # fmt: skip
    risk = 1 / (1 + math.exp(-logit))
    label = int(rng.random() < risk)

    title = "Mrs." if patient.sex == "F" else "Mr."
    history = ", ".join(rng.choice(f.phrases).format(**values) for f in patient.conditions)
    admissions = {0: "No admissions in the past year.", 1: "One prior admission this year."}.get(
        prior, f"{prior} prior admissions in the past 12 months."
    )
    adm, dis = _fmt(admitted, rng), _fmt(discharged, rng)
    dob = patient.dob.strftime("%m/%d/%Y")
    events = [
        *[rng.choice(f.phrases) for f in stay],
        *[s.format(**values) for s in rng.sample(FILLER, 3)],
    ]
    rng.shuffle(events)
    story = [
        f"{title} {patient.last} is a {age}-year-old {'woman' if patient.sex == 'F' else 'man'} "
        f"with {history}, admitted for {reason}.",
        admissions,
        *events,
        f"Length of stay {length} days.",
    ]
    contact = (
        f"Emergency contact: {patient.contact_relation} {patient.contact_first} {patient.last}, "
        f"{patient.contact_phone}."
    )
    style = rng.randrange(3)
    if style == 0:
        header = [
            f"DISCHARGE SUMMARY - {HOSPITAL}",
            f"Patient: {patient.first} {patient.last}    MRN: {patient.mrn}    DOB: {dob}",
            f"Admission date: {adm}    Discharge date: {dis}",
            f"Address: {patient.street}, {patient.city}, {patient.state} {patient.zip}",
            f"Phone: {patient.phone}    Email: {patient.email}",
            f"Insurance member ID: {patient.member_id}",
        ]
        footer = [contact, f"PCP: Dr. {patient.pcp}. Dictated by Dr. {patient.pcp}."]
    elif style == 1:
        header = [
            f"Nursing discharge note, {HOSPITAL}. Name: {patient.last}, {patient.first}. "
            f"MRN {patient.mrn}. DOB {dob}. Admitted {adm}, discharged {dis}.",
        ]
        footer = [
            contact,
            f"Home address {patient.street}, {patient.city}, {patient.state} {patient.zip}; "
            f"home phone {patient.phone}.",
            f"SSN: {patient.ssn}. Follow up with Dr. {patient.pcp}.",
        ]
    else:
        header = [
            f"Case management note. Patient: {patient.first} {patient.last} (MRN: {patient.mrn}), "
            f"DOB {dob}, admitted on {adm}.",
        ]
        footer = [
            f"Lives at {patient.street}, {patient.city}, {patient.state} {patient.zip}. "
            f"Best number {patient.phone}; email {patient.email}.",
            contact,
            f"Member ID: {patient.member_id}. Discharged on {dis}; PCP Dr. {patient.pcp}.",
        ]
    text = "\n".join([*header, *story, *footer])
    patient.written |= _written(patient, style, dob, adm, dis)
    return text, label, risk


def _written(patient: Patient, style: int, dob: str, adm: str, dis: str) -> set[str]:
    """The identifier values this note wrote (for checking that none survives)."""
    values = {
        f"{patient.first} {patient.last}" if style != 1 else f"{patient.last}, {patient.first}",
        f"{patient.contact_first} {patient.last}",
        patient.mrn, dob, adm, dis, patient.street, f"{patient.city}, {patient.state}",
        patient.zip, patient.phone, patient.contact_phone,
    }  # fmt: skip
    if style != 1:
        values |= {patient.email, patient.member_id}
    else:
        values.add(patient.ssn)
    return values


def write_cohort(
    out_dir: Path, *, patients: int = 400, new_patients: int = 12, seed: int = 7
) -> dict[str, Path]:
    """Write the cohort's files into ``out_dir``; returns their paths by name."""
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    cohort = [make_patient(i + 1, fake, rng) for i in range(patients + new_patients)]
    rows: list[dict[str, Any]] = []
    for patient in cohort:
        admitted = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 500))
        prior = rng.choice((0, 0, 0, 1, 1, 2, 3, 4))
        for stay in range(rng.choice((1, 1, 2, 2, 3))):
            text, label, risk = write_note(patient, admitted, prior + stay, rng)
            rows.append(
                {"patient_id": patient.patient_id, "text": text, "label": label, "risk": risk}
            )
            admitted += dt.timedelta(days=rng.randint(35, 160))
    new_ids = {p.patient_id for p in cohort[patients:]}
    paths = {
        "notes": out_dir / "notes.jsonl",
        "new_notes": out_dir / "new-notes.jsonl",
        "identifiers": out_dir / "identifiers.json",
        "cohort": out_dir / "cohort.json",
    }
    _write_jsonl(paths["notes"], [_public(r) for r in rows if r["patient_id"] not in new_ids])
    _write_jsonl(paths["new_notes"], [_public(r) for r in rows if r["patient_id"] in new_ids])
    written = sorted({v for p in cohort for v in p.written} | {p.patient_id for p in cohort})
    paths["identifiers"].write_text(json.dumps(written, indent=0) + "\n", encoding="utf-8")
    kept = [r for r in rows if r["patient_id"] not in new_ids]
    cohort_info = {
        "synthetic": True,
        "patients": patients,
        "notes": len(kept),
        "readmitted_share": round(sum(r["label"] for r in kept) / len(kept), 4),
        "oracle_auroc": round(_auroc([r["risk"] for r in kept], [r["label"] for r in kept]), 4),
        "seed": seed,
    }
    paths["cohort"].write_text(json.dumps(cohort_info, indent=2) + "\n", encoding="utf-8")
    return paths


def _auroc(scores: list[float], labels: list[int]) -> float:
    """The probability that a readmitted stay scores above one that was not (ties half)."""
    positive = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    negative = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    if not positive or not negative:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A row as a hospital extract would have it: no true risk (only the generator knows)."""
    return {k: v for k, v in row.items() if k != "risk"}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--patients", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    paths = write_cohort(args.out_dir, patients=args.patients, seed=args.seed)
    notes = paths["notes"].read_text().splitlines()
    positive = sum(json.loads(line)["label"] for line in notes)
    print(f"SYNTHETIC cohort: {len(notes)} notes, {positive / len(notes):.0%} readmitted; "
          f"files in {args.out_dir}")  # fmt: skip


if __name__ == "__main__":
    main()
