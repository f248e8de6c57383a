"""Synthetic patients for the treatment examples: seeded, plausible, and consistent with what MedQuAD says.

A patient is built for one focus (the condition) from the focus's own answers: age from what the text says
about who has it ("infants", "children", "adults over 50"), sex from sex-specific anatomy or wording
("prostate", "ovarian", "occurs only in males"), then common comorbidities with their usual current
medications, allergies from the commonest reported allergy labels (spelled as records spell them: brand
names, abbreviations), vitals (mostly normal for the age, a share abnormal enough to raise red flags),
pregnancy for some women of child-bearing age, for half the patients a few of the focus's common findings as
symptoms, and for half a line or two of free-text notes (now and then one that reads as an instruction).

The patient is context, never a source: no clinical fact about the focus is taken from here into a target.
Targets are the focus's sourced sections transformed by the same deterministic rules as at inference
(``medlora.datasets.treatment``). Every draw uses the ``random.Random`` it is given, so a seed fixes everything.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..common.schemas import PatientRecord, Vitals
from ..common.text import plain_words
from .patient_context import NOTES_SHARE, SYMPTOMS_SHARE, notes_text, symptom_terms

# ------------------------------------------------------------------------------------------------------- age

# (label, pattern, age range in years). Read from the answers that describe who has the condition, or from the
# focus name itself, which wins when it has a cue ("Childhood Acute Lymphoblastic Leukemia").
AGE_CUES: tuple[tuple[str, str, tuple[float, float]], ...] = (
    ("newborn", r"newborns?|neonat\w*|at birth|first (?:few )?(?:days|weeks) of life", (0.0, 0.2)),
    ("infant", r"infan(?:ts?|cy|tile)|bab(?:y|ies)", (0.1, 2.0)),
    ("child", r"child(?:ren|hood)?|p(?:a)?ediatric|juvenile|school-age|toddlers?", (2.0, 12.0)),
    ("adolescent", r"adolescen\w*|teen(?:s|agers?)?|puberty", (12.0, 18.0)),
    ("young adult", r"young adults?|young (?:wo)?men", (18.0, 35.0)),
    ("middle age", r"middle[- ]age[d]?", (40.0, 65.0)),
    ("older adult", r"older (?:adults|people|persons|individuals|men|women)|elderly|seniors?", (65.0, 90.0)),
)
_AGE_RES = [(label, re.compile(rf"\b(?:{pat})\b", re.I), span) for label, pat, span in AGE_CUES]
# "adults over 50", "after age 60", "people older than 40", "age 65 and older"
_OVER_AGE = re.compile(
    r"\b(?:over|older than|after|above) (?:the )?(?:age )?(?:of )?(\d{2})\b|\bage (\d{2}) (?:and|or) (?:older|over)\b",
    re.I,
)
ADULT = (20.0, 85.0)
# Question types whose answers say who has a condition; inheritance answers ("each child of an affected
# parent...") would make every genetic condition paediatric.
DESCRIPTIVE_QTYPES = ("information", "symptoms", "susceptibility", "frequency", "outlook")


@lru_cache(maxsize=4096)  # a focus's patients share its text; the regexes need not run per patient
def age_bands(focus: str, text: str) -> list[tuple[str, tuple[float, float], int]]:
    """The age bands the focus name, else the descriptive text, points to, with how often; adult when none."""
    for source in (focus, text):
        found: Counter = Counter()
        spans: dict[str, tuple[float, float]] = {}
        for label, rx, span in _AGE_RES:
            if n := len(rx.findall(source)):
                found[label], spans[label] = n, span
        for m in _OVER_AGE.finditer(source):
            low = float(m.group(1) or m.group(2))
            if 18 <= low <= 80:
                label = f"over {int(low)}"
                found[label] += 1
                spans[label] = (low, min(low + 25, 95))
        if found:
            return [(label, spans[label], n) for label, n in sorted(found.items())]
    return [("adult", ADULT, 1)]


# ------------------------------------------------------------------------------------------------------- sex

_FEMALE_ANATOMY = re.compile(
    r"\b(ovar\w*|uter\w*|cervix|cervical cancer|vagin\w*|vulv\w*|endometri\w*|menstru\w*|menopaus\w*|"
    r"pregnan\w*|gestation\w*|pre-?eclampsia|eclampsia|placent\w*|breast cancer|fallopian|turner syndrome)",
    re.I,
)
_MALE_ANATOMY = re.compile(
    r"\b(prostat\w*|testic\w*|testes|testis|scrot\w*|penile|penis|erectile|klinefelter)", re.I
)
_ONLY_SEX = re.compile(
    r"\b(?:only|almost exclusively|exclusively|almost always)\s+(?:\w+\s+){0,2}?(males?|men|boys|females?|women|girls)\b",
    re.I,
)


@lru_cache(maxsize=4096)
def sex_constraint(focus: str, text: str) -> str | None:
    """ "female" or "male" for a sex-specific condition, else None (either sex)."""
    if _FEMALE_ANATOMY.search(focus):
        return "female"
    if _MALE_ANATOMY.search(focus):
        return "male"
    if m := _ONLY_SEX.search(text):
        return "female" if m.group(1).lower() in ("female", "females", "women", "girls") else "male"
    return None


_PREGNANCY_CONDITION = re.compile(
    r"\b(pregnan\w*|gestational|pre-?eclampsia|eclampsia|hellp|hyperemesis|placent\w*|miscarriage)", re.I
)

# ------------------------------------------------------------------------------------ comorbidities and drugs


@dataclass(frozen=True)
class Comorbidity:
    condition: str
    medications: tuple[str, ...]  # usual current medications as records write them; one is drawn
    ages: tuple[float, float]
    weight: float  # rough relative prevalence; only the order of magnitude matters
    sex: str | None = None


# First-line maintenance drugs from the guideline named beside each row; brand names appear as records show them.
COMORBIDITIES: tuple[Comorbidity, ...] = (
    # Whelton et al. 2017 ACC/AHA hypertension guideline: thiazide, ACE inhibitor, ARB or calcium channel blocker
    Comorbidity(
        "hypertension",
        (
            "lisinopril 10 mg daily",
            "amlodipine 5 mg daily",
            "hydrochlorothiazide 25 mg daily",
            "losartan 50 mg daily",
            "Zestril 20 mg daily",
        ),
        (30, 95),
        10,
    ),
    # ADA Standards of Care in Diabetes 2024, section 9: metformin first
    Comorbidity(
        "type 2 diabetes",
        ("metformin 500 mg twice daily", "metformin 1000 mg twice daily", "Glucophage 500 mg twice daily"),
        (30, 95),
        6,
    ),
    # Grundy et al. 2018 AHA/ACC cholesterol guideline: statins
    Comorbidity(
        "hyperlipidemia",
        (
            "atorvastatin 20 mg daily",
            "simvastatin 40 mg nightly",
            "Lipitor 40 mg daily",
            "rosuvastatin 10 mg daily",
        ),
        (35, 95),
        8,
    ),
    # Jonklaas et al. 2014 ATA hypothyroidism guideline: levothyroxine
    Comorbidity("hypothyroidism", ("levothyroxine 75 mcg daily", "levothyroxine 100 mcg daily"), (18, 95), 3),
    # Katz et al. 2022 ACG GERD guideline: proton pump inhibitors
    Comorbidity(
        "gastroesophageal reflux disease",
        ("omeprazole 20 mg daily", "pantoprazole 40 mg daily", "Prilosec 20 mg daily"),
        (18, 95),
        4,
    ),
    # APA 2010 major depressive disorder guideline: SSRIs first
    Comorbidity(
        "depression",
        (
            "sertraline 50 mg daily",
            "escitalopram 10 mg daily",
            "fluoxetine 20 mg daily",
            "Zoloft 100 mg daily",
        ),
        (13, 95),
        4,
    ),
    # APA 2009 / NICE CG113 anxiety: SSRIs
    Comorbidity(
        "generalized anxiety disorder", ("escitalopram 10 mg daily", "sertraline 50 mg daily"), (13, 95), 2
    ),
    # GINA 2023: as-needed reliever, inhaled corticosteroid controller
    Comorbidity(
        "asthma",
        (
            "albuterol inhaler as needed",
            "fluticasone inhaler twice daily",
            "budesonide-formoterol inhaler twice daily",
        ),
        (2, 95),
        4,
    ),
    # Dykewicz et al. 2020 AAAAI/ACAAI rhinitis update: oral antihistamines, intranasal corticosteroids
    Comorbidity(
        "allergic rhinitis",
        (
            "cetirizine 10 mg daily",
            "loratadine 10 mg daily",
            "fluticasone nasal spray daily",
            "Zyrtec 10 mg daily",
        ),
        (2, 95),
        4,
    ),
    # Eichenfield et al. 2014 AAD atopic dermatitis guideline: topical corticosteroids
    Comorbidity("atopic dermatitis", ("hydrocortisone 1% cream twice daily",), (0.5, 60), 2),
    # Wolraich et al. 2019 AAP ADHD guideline: stimulants for school-age children and adolescents
    Comorbidity("ADHD", ("methylphenidate 18 mg daily", "Adderall XR 10 mg daily"), (6, 17), 3),
    # Kolasinski et al. 2019 ACR osteoarthritis guideline: acetaminophen, topical or oral NSAIDs
    Comorbidity(
        "osteoarthritis",
        ("acetaminophen 500 mg as needed", "Tylenol 650 mg as needed", "naproxen 220 mg as needed"),
        (50, 95),
        4,
    ),
    # Joglar et al. 2023 ACC/AHA/ACCP/HRS atrial fibrillation guideline: anticoagulation, rate control
    Comorbidity(
        "atrial fibrillation",
        (
            "apixaban 5 mg twice daily",
            "metoprolol succinate 50 mg daily",
            "warfarin 5 mg daily",
            "Eliquis 5 mg twice daily",
        ),
        (55, 95),
        2,
    ),
    # Virani et al. 2023 AHA/ACC chronic coronary disease guideline: low-dose aspirin, statin
    Comorbidity("coronary artery disease", ("aspirin 81 mg daily", "clopidogrel 75 mg daily"), (45, 95), 3),
    # GOLD 2024 report: long-acting bronchodilators, short-acting reliever
    Comorbidity("COPD", ("tiotropium inhaler daily", "albuterol inhaler as needed"), (45, 95), 2),
    # Eastell et al. 2019 Endocrine Society osteoporosis guideline: bisphosphonates
    Comorbidity("osteoporosis", ("alendronate 70 mg weekly",), (50, 95), 2, "female"),
    # FitzGerald et al. 2020 ACR gout guideline: allopurinol
    Comorbidity("gout", ("allopurinol 300 mg daily",), (30, 95), 1),
    # Ailani et al. 2021 AHS consensus statement on migraine: triptans for attacks
    Comorbidity("migraine", ("sumatriptan 50 mg as needed",), (12, 70), 2),
)


def comorbidity_count(age: float, rng: random.Random) -> int:
    # Multimorbidity rises with age (Barnett et al. 2012, Lancet: most people over 65 have two or more).
    if age < 18:
        weights = (75, 22, 3, 0)
    elif age < 60:
        weights = (45, 33, 17, 5)
    else:
        weights = (20, 35, 30, 15)
    return rng.choices(range(4), weights=weights)[0]


# The commonest documented drug allergies (Zhou et al. 2016, Allergy 71:1305, 2.7 million patients: penicillins
# 12.8%, sulfonamide antibiotics 4.3%, opioids 3.8%, NSAIDs/aspirin 3.5%, cephalosporins 1.3%, macrolides 1.2%,
# ...), in the spellings records use, plus common non-drug allergies that the drug rules must leave alone.
ALLERGY_LABELS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("penicillin", "PCN", "amoxicillin", "Augmentin", "penicillins"), 12.8),
    (("sulfa drugs", "Bactrim", "sulfamethoxazole", "TMP-SMX", "sulfa"), 4.3),
    (("codeine", "morphine", "Tylenol #3", "hydrocodone"), 3.8),
    (("NSAIDs", "ibuprofen", "aspirin", "ASA", "Motrin", "naproxen"), 3.5),
    (("cephalexin", "Keflex", "cephalosporins"), 1.3),
    (("erythromycin", "azithromycin", "Z-Pak"), 1.2),
    (("ciprofloxacin", "Cipro", "levofloxacin"), 0.8),
    (("lisinopril", "ACE inhibitors"), 0.5),
    (("doxycycline", "tetracycline"), 0.5),
    (("latex", "peanuts", "shellfish", "bee stings"), 3.0),
)
ALLERGY_SHARE = 0.3  # Zhou et al. 2016: 35.5% of patients had at least one documented drug allergy

# ------------------------------------------------------------------------------------------------- vitals

# Normal ranges by age (heart and breathing rates: Fleming et al. 2011, Lancet 377:1011, central centiles;
# adult: the usual clinical normal ranges). (upper age, heart rate, respiratory rate, systolic, diastolic)
VITAL_BANDS: tuple[tuple[float, tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]], ...] = (
    (1, (110, 160), (30, 50), (70, 95), (40, 60)),
    (2, (100, 150), (25, 40), (80, 100), (45, 65)),
    (5, (90, 140), (22, 34), (85, 105), (50, 68)),
    (12, (75, 120), (18, 30), (90, 115), (55, 75)),
    (18, (60, 100), (12, 20), (100, 125), (60, 80)),
    (200, (60, 100), (12, 20), (105, 135), (65, 85)),
)
ABNORMAL_VITALS_SHARE = 0.15
VITALS_RECORDED_SHARE = 0.8  # the rest of the records carry no vitals, as many referral letters do


def _band(age: float):
    return next(b for b in VITAL_BANDS if age < b[0])


def normal_vitals(age: float, rng: random.Random) -> dict[str, float]:
    _, hr, rr, sbp, dbp = _band(age)
    return {
        "systolic_bp": float(rng.randint(*sbp)),
        "diastolic_bp": float(rng.randint(*dbp)),
        "heart_rate": float(rng.randint(*hr)),
        "respiratory_rate": float(rng.randint(*rr)),
        "temperature_c": round(rng.uniform(36.3, 37.4), 1),
        "spo2": float(rng.randint(95, 100)),
    }


def abnormal_vitals(age: float, vitals: dict[str, float], rng: random.Random) -> dict[str, float]:
    """One vital moved well past an emergency threshold for the age (what red-flag rules exist to catch)."""
    _, hr, rr, _, _ = _band(age)
    kinds = ["spo2", "heart_rate", "respiratory_rate"] + (["blood_pressure"] if age >= 18 else ["fever"])
    if age < 0.25:
        kinds.append("fever")  # a febrile infant under 90 days is an emergency on temperature alone
    kind = rng.choice(kinds)
    out = dict(vitals)
    if kind == "spo2":
        out["spo2"] = float(rng.randint(82, 88))
    elif kind == "heart_rate":
        out["heart_rate"] = float(hr[1] + rng.randint(35, 55))
    elif kind == "respiratory_rate":
        out["respiratory_rate"] = float(rr[1] + rng.randint(12, 20))
    elif kind == "blood_pressure":
        out["systolic_bp"], out["diastolic_bp"] = float(rng.randint(185, 210)), float(rng.randint(110, 128))
    else:
        out["temperature_c"] = round(rng.uniform(38.3, 39.5), 1)
        out["heart_rate"] = float(hr[1] + rng.randint(35, 50))
    return out


# ----------------------------------------------------------------------------------------------- patients


def descriptive_text(answers: dict) -> str:
    """The answers that describe who has the condition (``{qtype: [QAPair]}``)."""
    return " ".join(p.answer for qt in DESCRIPTIVE_QTYPES for p in answers.get(qt, []))


def _same_condition(a: str, b: str) -> bool:
    generic = {"disease", "disorder", "syndrome"}
    return bool((set(plain_words(a)) - generic) & (set(plain_words(b)) - generic))


def make_patient(
    focus: str,
    answers: dict,
    rng: random.Random,
    extra_allergies: list[str] | None = None,
    extra_medications: list[str] | None = None,
) -> PatientRecord:
    """One plausible patient who has ``focus``. ``extra_*`` put a given allergy or current drug on the record."""
    text = descriptive_text(answers)
    bands = age_bands(focus, text)
    _, (lo, hi), _ = rng.choices(bands, weights=[n for *_, n in bands])[0]
    age = round(rng.uniform(lo, hi), 2 if hi <= 2 else 0)
    pregnancy_condition = bool(_PREGNANCY_CONDITION.search(focus))
    sex = sex_constraint(focus, text)
    if pregnancy_condition:
        sex, age = "female", float(rng.randint(18, 42))
    sex = sex or rng.choice(("female", "male"))

    conditions = [focus]
    medications: list[str] = []
    fits = [
        c
        for c in COMORBIDITIES
        if c.ages[0] <= age <= c.ages[1] and c.sex in (None, sex) and not _same_condition(c.condition, focus)
    ]
    for _ in range(min(comorbidity_count(age, rng), len(fits))):
        c = rng.choices(fits, weights=[c.weight for c in fits])[0]
        fits.remove(c)
        conditions.append(c.condition)
        medications.append(rng.choice(c.medications))
    medications += [m for m in extra_medications or [] if m not in medications]

    allergies: list[str] = []
    if rng.random() < ALLERGY_SHARE:
        groups = list(ALLERGY_LABELS)
        for _ in range(rng.choices((1, 2), weights=(80, 20))[0]):
            labels, _w = rng.choices(groups, weights=[w for _, w in groups])[0]
            groups = [g for g in groups if g[0] is not labels]
            allergies.append(rng.choice(labels))
    allergies += [a for a in extra_allergies or [] if a not in allergies]

    vitals = None
    if rng.random() < VITALS_RECORDED_SHARE:
        vitals = normal_vitals(age, rng)
        if rng.random() < ABNORMAL_VITALS_SHARE:
            vitals = abnormal_vitals(age, vitals, rng)

    pregnant = None
    if sex == "female" and 15 <= age <= 45:
        pregnant = pregnancy_condition or rng.random() < 0.1
    terms = symptom_terms(answers)
    symptoms = (
        rng.sample(terms, min(len(terms), rng.choice((1, 2, 3)))) if rng.random() < SYMPTOMS_SHARE else []
    )
    notes = notes_text(rng) if rng.random() < NOTES_SHARE else None
    return PatientRecord(
        age=age,
        sex=sex,
        conditions=conditions,
        symptoms=symptoms,
        notes=notes,
        medications=medications,
        allergies=allergies,
        vitals=Vitals(**vitals) if vitals else Vitals(),
        pregnant=pregnant,
    )


def abnormal(record: PatientRecord) -> bool:
    """Whether a vital lies outside the normal range for the age (the share reported in stats.json)."""
    v = record.vitals
    if record.age is None or v.heart_rate is None:
        return False
    _, hr, rr, sbp, dbp = _band(record.age)
    return not (
        hr[0] - 15 <= v.heart_rate <= hr[1] + 15
        and rr[0] - 6 <= (v.respiratory_rate or rr[0]) <= rr[1] + 6
        and (v.spo2 or 100) >= 92
        and (v.systolic_bp or sbp[0]) <= sbp[1] + 30
        and (v.temperature_c or 37) < 38.0
    )


# ------------------------------------------------------------------------------------ conditions as written

REWORD_KINDS = ("synonym", "abbreviation", "lay", "misspelling")


def reworded_condition(focus: str, lexicon: Any, rng: random.Random) -> tuple[str, str] | None:
    """``focus`` written as people write it: one of its MedQuAD synonyms, an abbreviation its answers define,
    a lay name, or a misspelling (one or two typing slips); ``(text, kind)``, or None when none differs from it.

    ``lexicon`` is a ``medlora.clinical.conditions.Lexicon``: its names for the focus are the aliases to draw from."""
    from ..clinical.spelling import misspell
    from ..data.medquad import focus_key

    key = focus_key(focus)
    by_kind: dict[str, list[str]] = {}
    for name, foci in lexicon.names.items():
        kind = lexicon.kind.get(name)
        # Only names of this focus alone: an alias several foci share tests tie-breaking, not the wording.
        if foci == {key} and kind in REWORD_KINDS and name != key and len(name) > 1:
            by_kind.setdefault(kind, []).append(name.upper() if kind == "abbreviation" else name)
    typo = misspell(focus, rng, edits=rng.choice((1, 1, 2)))
    if focus_key(typo) != key:
        by_kind["misspelling"] = [typo]
    if not by_kind:
        return None
    kind = rng.choice(sorted(by_kind))
    return rng.choice(sorted(by_kind[kind])), kind
