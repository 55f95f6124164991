"""Clinical words that look like names or places and must survive de-identification.

Two defences, because no list is complete: a list of eponyms and drug names known to fool name
recognisers ("Foley", "Lasix"), and the head nouns that follow an eponym ("... disease",
"... sign", "... catheter"), which catch the eponyms the list lacks. A title ("Dr. Parkinson")
still marks a person: the list only vetoes guesses, never explicit context.
"""

from __future__ import annotations

import re


def word_set(text: str) -> frozenset[str]:
    """A word list written as one string, words separated by white space."""
    return frozenset(text.split())


EPONYMS = word_set(
    """
    addison adie alzheimer apgar arnold asperger babinski baker barrett becker bell bence
    billroth bishop bouchard boutonniere bowen brachial brown brudzinski brugada buerger
    burkitt chagas charcot cheyne chiari chvostek colles conn creutzfeldt crigler crohn
    cullen curling cushing dandy dejerine dubin duchenne dupuytren edwards ehlers epley erb
    ewing fabry fallot fanconi felty foley fowler friedreich gaucher gilbert glasgow gleason
    goodpasture gram graves grey guillain hartmann hashimoto heberden heimlich henoch
    hickman hirschsprung hodgkin holter homan homans horner hunter huntington hurler jackson
    jakob kaposi kawasaki kehr kernig klinefelter korsakoff krukenberg kussmaul lachman
    langerhans lewy lhermitte lou lyme mallory marfan mcburney mcmurray meckel meigs meniere
    ménière mohs murphy nissen nikolsky ortner osgood osler paget pancoast parkinson phalen
    pott prinzmetal raynaud reiter reye richter romberg roux rovsing schatzki schlatter
    seldinger sezary sheehan shy sjogren sjögren stein stevens stokes swan ganz takotsubo
    tay sachs tinel tourette trendelenburg trousseau turner valsalva virchow von willebrand
    waldenstrom wegener weiss wells wenckebach wernicke whipple wilms wilson wolff white
    zenker zollinger ellison down johnson guillain barre barré doppler bristol apley
    finkelstein spurling thompson mini mental westergren kegel
    """
)

DRUGS = word_set(
    """
    tylenol lasix coumadin eliquis xarelto pradaxa lipitor zocor crestor pravachol norvasc
    lopressor toprol coreg tenormin cardizem lanoxin keflex zosyn rocephin unasyn vancomycin
    zofran phenergan ativan valium klonopin xanax haldol zyprexa seroquel risperdal abilify
    dilaudid percocet vicodin norco oxycontin ultram motrin advil aleve toradol celebrex
    protonix nexium prilosec pepcid zantac synthroid levoxyl glucophage lantus levemir
    humalog novolog januvia jardiance farxiga invokana ozempic trulicity victoza mounjaro
    plavix brilinta effient prednisone medrol solu-medrol decadron augmentin cipro levaquin
    flagyl bactrim zithromax doxycycline macrobid diflucan tamiflu zoloft prozac paxil
    celexa lexapro cymbalta effexor wellbutrin trazodone ambien lunesta flomax proscar
    aricept namenda sinemet requip mirapex keppra dilantin depakote lamictal tegretol
    topamax neurontin lyrica flexeril robaxin lovenox heparin narcan benadryl claritin
    zyrtec allegra singulair spiriva advair symbicort ventolin proair albuterol atrovent
    colace senna senokot miralax dulcolax imdur isordil nitrostat lisinopril losartan cozaar
    diovan hydralazine entresto aldactone spironolactone bumex demadex hctz metoprolol
    carvedilol amlodipine atorvastatin simvastatin metformin warfarin apixaban rivaroxaban
    gabapentin ondansetron reglan compazine tums maalox mylanta kayexalate epogen procrit
    neupogen humira remicade enbrel keytruda opdivo herceptin
    """
)

# Nouns that follow an eponym: "Bell's palsy", "Foley catheter", "Murphy sign".
CLINICAL_HEADS = word_set(
    """
    disease diseases syndrome sign signs test tests score scale scales palsy catheter
    catheters line drain tube procedure operation maneuver manoeuvre position reflex
    reflexes phenomenon lymphoma sarcoma tumor tumour carcinoma cyst contracture node nodes
    point respirations breathing breath esophagus diverticulum tear fracture encephalopathy
    dementia thyroiditis cardiomyopathy classification criteria monitor ultrasound technique
    fundoplication bypass murmur block law triad ulcer ulcers body bodies cells cell stain
    stockings hose bag mask protocol exam criteria rule rules regimen pump valve shunt
    """
)

# Capitalised words common at the start of note lines that recognisers take for names.
NOTE_WORDS = word_set(
    """
    patient pt name date age sex dob mrn ssn hpi pmh psh ros cc ap plan assessment
    impression admission discharge diagnosis diagnoses allergies meds medications vitals
    labs neuro cardiac pulm abd ext skin heent gu gi msk psych echo ekg ecg cxr ct mri bmp
    cbc inr pt/inr rn md np pa do dr mr mrs ms miss signed attending pcp triage nursing note
    progress summary history hospital course follow-up followup contact address phone email
    cbc inr pt/inr rn md np pa do dr mr mrs ms miss signed attending pcp triage nursing note
    progress summary history hospital course follow-up followup contact address phone email
    fax tel home cell work insurance member account license licence serial device pacemaker
    portal ip url sincerely dear re subject from to sent thanks regards hi hello ems ed er
    icu or rtc dea npi id sn bp hr rr temp spo2 o2 wt ht bmi sob cp n/v prn po iv im sq bid
    tid qid qd qhs stat
    """
)

# After a candidate: an optional possessive, an optional hyphenated chain of more eponyms
# ("-Parkinson-White"), then the word that decides.
_NEXT_WORD = re.compile(r"(?:['’]s?)?(?:[-–][A-Z][\w'’]*)*[\s-]*([A-Za-z]+)")


# Medical word endings no name has: "Pulmonology", "arthritis", "cholecystectomy".
_MEDICAL_ENDING = re.compile(
    r"(?:ology|ologist|ologic|iatry|iatric|itis|osis|ectomy|otomy|ostomy|plasty|emia|pathy"
    r"|algia|oma|scopy|gram|graphy|ics)$"
)


def is_clinical_word(word: str) -> bool:
    """A single word that is a known eponym, drug or note heading (any case, possessive too),
    or that has a medical ending."""
    w = re.sub(r"['’]s?$", "", word.lower())
    return w in EPONYMS or w in DRUGS or w in NOTE_WORDS or bool(_MEDICAL_ENDING.search(w))


def followed_by_clinical_head(text: str, end: int) -> bool:
    """True when the word right after ``end`` names a clinical thing ("'s disease", " sign")."""
    m = _NEXT_WORD.match(text, end)
    return m is not None and m.group(1).lower() in CLINICAL_HEADS
