"""Red flags a clinician would recognise, from the structured vitals and from the text of the record.

``red_flags(record)`` reads the vitals, ``conditions``, ``symptoms`` and ``notes``. Text can only add a flag:
every source is evaluated on its own and the flags are united, so nothing written anywhere (a contradicting
value, "ignore the rules", "no red flags") can remove one. Findings that are negated, historical, someone
else's or hypothetical do not fire (``negation``). Each flag has a stable ``code`` (what the log keeps) and a
readable ``message``. The findings are concepts with their synonyms and shorthand, each with its source
(``red_flag_concepts``); an allergy listed with its reaction ("PCN (anaphylaxis)") is history, not a finding.

Vital-sign limits by age band (flag outside them). Children: at or beyond the edges of the PALS normal ranges
(American Heart Association, Pediatric Advanced Life Support Provider Manual, 2020, "normal heart rates" and
"normal respiratory rates"), widened to the NICE NG143 amber/red respiratory rates (fever in under 5s, 2019)
so that a crying or febrile child in range does not raise an emergency; hypotension is the PALS definition
(systolic < 60 neonate, < 70 infant, < 70 + 2 x age 1-10 years, < 90 from 10 years). Febrile infant: under 90
days with 38.0 C or more (NICE NG143 red; AAP 2021 febrile infant guideline). Pregnancy warning signs: CDC
"Hear Her" urgent maternal warning signs; pre-eclampsia with severe features: ACOG Practice Bulletin 222 (2020).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..clinical.drugs import find_drugs, resolve
from ..clinical.negation import affirmed, affirmed_matches, scopes
from ..common.schemas import PatientRecord
from .allergies import allergy_history_spans
from .patient_state import patient_state
from .red_flag_concepts import SINGLE_RULES, C
from .red_flag_more import more_flags


@dataclass(frozen=True)
class RedFlag:
    code: str  # stable: what the log records (never the patient's own words or values)
    message: str  # what the recommendation shows, with the measured value where there is one


# (band, upper age in years, heart rate low/high, respiratory rate low/high): flag when below low or above high.
AGE_BANDS: tuple[tuple[str, float, float, float, float, float], ...] = (
    ("neonate", 28 / 365.25, 90, 190, 25, 60),
    ("infant", 1, 90, 180, 20, 60),
    ("toddler", 3, 80, 160, 18, 45),
    ("preschool", 6, 70, 150, 16, 40),
    ("school age", 12, 60, 140, 14, 35),
    ("adolescent", 18, 50, 130, 10, 30),
    ("adult", 200, 40, 129, 8, 29),
)


def age_band(age: float | None) -> tuple[str, float, float, float, float, float]:
    if age is None:
        return AGE_BANDS[-1]
    return next(b for b in AGE_BANDS if age < b[1])


_NUM = r"(\d{1,3}(?:\.\d)?)"
_SEP = r"\s*(?:of|is|was|at|:|=|-|~)?\s*"
TEXT_VITALS = {
    "spo2": re.compile(
        rf"\b(?:spo2|sp02|sao2|o2 sats?|o2 saturation|o2|oxygen sat\w*|sats?|saturations?|pulse ox\w*){_SEP}{_NUM}\s*%?",
        re.I,
    ),
    "bp": re.compile(
        r"\b(?:bp|blood pressure|b/p)"
        + _SEP
        + r"(\d{2,3})\s*/\s*(\d{2,3})|(\d{2,3})\s*/\s*(\d{2,3})\s*mm\s*hg",
        re.I,
    ),
    "heart_rate": re.compile(rf"\b(?:hr|heart rate|pulse(?! ox)(?: rate)?|heart beat){_SEP}{_NUM}", re.I),
    "respiratory_rate": re.compile(
        rf"\b(?:rr|resp(?:iratory)? rate|respirations?|breathing rate){_SEP}{_NUM}", re.I
    ),
    "temperature_c": re.compile(
        rf"\b(?:temp(?:erature)?|fever(?: of| to)?|febrile to|t){_SEP}{_NUM}\s*(?:°|degrees?|deg)?\s*([cf])?\b",
        re.I,
    ),
}
_TEXT_AGE = re.compile(
    r"\b(\d{1,3})\s*[- ]?(days?|d|weeks?|wks?|w|months?|mos?|m|years?|yrs?|y)[- ]?(?:old|o)\b|\b(\d{1,3})\s*y/?o\b",
    re.I,
)
_AGE_UNIT = {"d": 1 / 365.25, "w": 7 / 365.25, "m": 1 / 12, "y": 1.0}


def text_ages(text: str) -> set[float]:
    """Ages written in text: "6-week-old", "2 mo old", "3 yo", "45 y/o"."""
    out = set()
    for m in _TEXT_AGE.finditer(text):
        if m.group(3):
            out.add(float(m.group(3)))
        else:
            out.add(int(m.group(1)) * _AGE_UNIT[m.group(2)[0].lower()])
    return out


@dataclass
class _Vitals:
    systolic_bp: float | None = None
    diastolic_bp: float | None = None
    heart_rate: float | None = None
    respiratory_rate: float | None = None
    temperature_c: float | None = None
    spo2: float | None = None


_GLUCOSE = re.compile(
    r"\b(?:fsbg|fsbs|fingerstick|finger stick|bg|bgl|bsl|cbg|poc glucose|glucose|blood (?:sugar|glucose)|sugars?)"
    r"\s*(?:level|reading)?\s*(?:of|is|was|at|:|=|-|~)?\s*(\d{1,4}(?:\.\d)?)\s*(mmol|mg)?",
    re.I,
)


def text_glucose(text: str) -> list[float]:
    """Blood glucose written in text, in mg/dL ("FSBG 38", "glucose 2.4 mmol/L", "BG 480")."""
    out = []
    for m in _GLUCOSE.finditer(text):
        v, unit = float(m.group(1)), (m.group(2) or "").lower()
        mmol = unit == "mmol" or (not unit and v < 35 and "." in m.group(1))
        if unit or mmol or v >= 20:  # a bare small integer ("sugars 3 times a day") is not a reading
            out.append(v * 18.0 if mmol else v)
    return [g for g in out if 10 <= g <= 2000]


def text_vitals(text: str) -> list[_Vitals]:
    """Vital signs written in text ("SpO2 85% on room air", "BP 190/120", "temp 103 F"), one reading each."""
    out = []
    for m in TEXT_VITALS["spo2"].finditer(text):
        if 40 <= (v := float(m.group(1))) <= 100:
            out.append(_Vitals(spo2=v))
    for m in TEXT_VITALS["bp"].finditer(text):
        s, d = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if 40 <= float(s) <= 300 and 20 <= float(d) <= 200:
            out.append(_Vitals(systolic_bp=float(s), diastolic_bp=float(d)))
    for key in ("heart_rate", "respiratory_rate"):
        for m in TEXT_VITALS[key].finditer(text):
            if 4 <= (v := float(m.group(1))) <= 300:
                out.append(_Vitals(**{key: v}))
    for m in TEXT_VITALS["temperature_c"].finditer(text):
        v, unit = float(m.group(1)), (m.group(2) or "").lower()
        if unit == "f" or (not unit and 90 <= v <= 110):
            v = round((v - 32) * 5 / 9, 1)
        if 25 <= v <= 45:
            out.append(_Vitals(temperature_c=v))
    return out


def _vital_flags(v, age: float | None, pregnant: bool, symptomatic_pregnancy: bool) -> list[RedFlag]:
    band, _, hr_lo, hr_hi, rr_lo, rr_hi = age_band(age)
    child = age is not None and age < 18
    flags = []
    spo2_min = 92 if child else 90  # BTS/NICE: SpO2 below 92% in a child is a red feature
    if v.spo2 is not None and v.spo2 < spo2_min:
        flags.append(RedFlag("low_spo2", f"SpO2 {v.spo2:g}% (below {spo2_min}%)"))
    s, d = v.systolic_bp, v.diastolic_bp
    bp = f"{'?' if s is None else f'{s:g}'}/{'?' if d is None else f'{d:g}'} mmHg"
    if (s or 0) >= 180 or (d or 0) >= 120:
        flags.append(RedFlag("hypertensive_crisis", f"blood pressure {bp} (180/120 or higher)"))
    if pregnant and ((s or 0) >= 160 or (d or 0) >= 110):
        flags.append(
            RedFlag("severe_hypertension_pregnancy", f"blood pressure {bp} in pregnancy (160/110 or higher)")
        )
    elif pregnant and symptomatic_pregnancy and ((s or 0) >= 140 or (d or 0) >= 90):
        flags.append(RedFlag("preeclampsia_signs", f"blood pressure {bp} in pregnancy with warning symptoms"))
    if s is not None:
        if age is None or age >= 10:
            low = 90
        elif age < 28 / 365.25:
            low = 60
        elif age < 1:
            low = 70
        else:
            low = 70 + 2 * int(age)
        if s < low:
            flags.append(RedFlag("hypotension", f"systolic blood pressure {s:g} mmHg (below {low:g})"))
    if v.heart_rate is not None and not hr_lo <= v.heart_rate <= hr_hi:
        flags.append(
            RedFlag(
                "abnormal_heart_rate", f"heart rate {v.heart_rate:g}/min ({band} limits {hr_lo:g}-{hr_hi:g})"
            )
        )
    if v.respiratory_rate is not None and not rr_lo <= v.respiratory_rate <= rr_hi:
        flags.append(RedFlag(
            "abnormal_respiratory_rate",
            f"respiratory rate {v.respiratory_rate:g}/min ({band} limits {rr_lo:g}-{rr_hi:g})",
        ))  # fmt: skip
    t = v.temperature_c
    if t is not None and (t >= 40.0 or t <= 35.0):
        flags.append(RedFlag("abnormal_temperature", f"temperature {t:g} °C"))
    if t is not None and t >= 38.0 and age is not None and age * 365.25 < 90:
        flags.append(RedFlag("febrile_infant", f"temperature {t:g} °C in an infant under 90 days"))
    return flags


def _metabolic_and_vascular(text: str, found: dict, readings: list, fever: bool, ages: set) -> list[RedFlag]:
    """Glucose (ADA level 2 hypoglycaemia below 54 mg/dL; a hyperglycaemic crisis by name, at 600 or more, or at
    250 or more with ketosis symptoms: Umpierrez et al., Diabetes Care 2024), pulmonary embolism (NICE NG158)
    and sepsis by qSOFA (Sepsis-3, Singer et al., JAMA 2016: two of RR >= 22, systolic <= 100, altered mentation
    with an infection; adults only)."""
    flags = []
    glucose = text_glucose(text)
    if any(g < 54 for g in glucose):
        flags.append(RedFlag("hypoglycaemia", f"blood glucose {min(glucose):g} mg/dL (below 54)"))
    if (
        found["dka"]
        or any(g >= 600 for g in glucose)
        or (any(g >= 250 for g in glucose) and found["dka_symptom"])
    ):
        flags.append(
            RedFlag("hyperglycaemic_crisis", "signs of diabetic ketoacidosis or a hyperosmolar state")
        )
    breathless = found["breathing_difficulty"] or found["pleuritic"] or found["chest_pain"]
    if found["pe_named"] or (found["dvt"] and breathless):
        flags.append(
            RedFlag("pulmonary_embolism_signs", "one-sided leg swelling with breathlessness (possible PE)")
        )
    qsofa = (
        any((v.respiratory_rate or 0) >= 22 for v in readings)
        + any(v.systolic_bp is not None and v.systolic_bp <= 100 for v in readings)
        + (found["altered_mentation"] or found["unconscious"])
    )
    if (found["infection"] or fever) and qsofa >= 2 and all(a is None or a >= 18 for a in ages):
        flags.append(RedFlag("sepsis_signs", "infection with two or more qSOFA signs (possible sepsis)"))
    return flags


def red_flags(record: PatientRecord) -> list[RedFlag]:
    """Every red flag of the record, each code once, in a fixed order (vitals first, then findings)."""
    # One item a sentence, so a negation in one item never reaches into the next.
    text = ".\n".join([*record.conditions, *record.symptoms, record.notes or ""])
    in_scope = scopes(text)
    found = {name: bool(affirmed_matches(text, pattern, in_scope)) for name, pattern in C.items()}
    # "PPD #4 s/p SVD" is a state now, though "s/p" reads as history: only negation and other people count.
    # "Allergies: PCN (anaphylaxis)" describes an allergy, not a reaction happening now.
    listed = allergy_history_spans(text)
    for name in ("airway_swelling", "hives", "lip_face_swelling", "breathing_difficulty"):
        found[name] = any(
            not any(a <= m.start() and m.end() <= b for a, b in listed)
            for m in affirmed_matches(text, C[name], in_scope)
        )
    not_history = [s for s in in_scope if s.kind != "historical"]
    found["postpartum_recent"] = bool(affirmed_matches(text, C["postpartum_recent"], not_history))
    ages = {record.age} | text_ages(text)
    if record.age is not None or len(ages) > 1:
        ages.discard(None)
    pregnant = bool(record.pregnant) or (
        record.sex != "male" and (found["pregnant"] or found["postpartum"] or found["postpartum_recent"])
    )
    symptomatic = pregnant and any(
        found[c] for c in ("severe_headache", "vision_change", "severe_abdominal_pain", "face_hand_swelling",
                           "breathing_difficulty")
    )  # fmt: skip
    readings = [record.vitals, *text_vitals(text)]
    flags: list[RedFlag] = []
    for age in sorted(ages, key=lambda a: -1 if a is None else a):
        for v in readings:
            flags.extend(_vital_flags(v, age, pregnant, symptomatic))
        if age is not None and age * 365.25 < 90 and found["fever"]:
            flags.append(RedFlag("febrile_infant", "fever in an infant under 90 days"))
    if found["swallowed_pills"] and any(a is not None and a < 12 for a in ages):
        flags.append(RedFlag("overdose_or_poisoning", "overdose or poisoning"))
    if found["lethargic_child"] and any(a is not None and a < 18 for a in ages):
        flags.append(RedFlag("altered_consciousness", "a drowsy, floppy or unresponsive child"))
    for code, message, concept in SINGLE_RULES:
        if found[concept]:
            flags.append(RedFlag(code, message))
    if found["chest_tightness"] and not found["airway_disease"]:
        flags.append(RedFlag("chest_pain", "chest pain or pressure (possible acute coronary syndrome)"))
    if found["diaphoresis"] and found["anginal_site"]:
        flags.append(RedFlag("chest_pain", "chest pain or pressure (possible acute coronary syndrome)"))
    if found["black_stool"] and not found["iron_or_bismuth"]:
        flags.append(RedFlag("major_bleeding", "signs of major bleeding"))
    if found["breathing_difficulty"] and (found["lip_face_swelling"] or found["hives"]):
        flags.append(
            RedFlag("anaphylaxis", "breathing difficulty with swelling or hives (possible anaphylaxis)")
        )
    fever = found["fever"] or any((v.temperature_c or 0) >= 38.0 for v in readings)
    flags.extend(_metabolic_and_vascular(text, found, readings, fever, ages))
    if fever and found["stiff_neck"]:
        flags.append(RedFlag("meningitis_signs", "fever with a stiff neck (possible meningitis)"))
    if fever and found["purpura"]:
        flags.append(
            RedFlag("meningitis_signs", "fever with a non-blanching rash (possible meningococcal disease)")
        )
    on_acei = any(
        "ace_inhibitors" in m.lineage for m in (resolve(x) for x in record.medications) if m is not None
    ) or any(
        "ace_inhibitors" in m.lineage and affirmed(text, (m.start, m.end), in_scope) for m in find_drugs(text)
    )
    state = patient_state(record)
    ctx = {"fever": fever, "pregnant": pregnant, "possibly_pregnant": state.possibly_pregnant, "sex": record.sex,
           "on_acei": on_acei}  # fmt: skip
    hits = {"cauda_equina": affirmed_matches(text, C["cauda_equina"], in_scope)}
    flags.extend(RedFlag(code, message) for code, message in more_flags(found, hits, ctx))
    if found["back_pain"] and found["cauda_equina"]:
        flags.append(RedFlag("cauda_equina_signs", "back pain with bladder, bowel or saddle symptoms"))
    # NICE NG126: pain with bleeding in early pregnancy, exclude ectopic; "abd pain" and "PV bleeding" count too
    early_pain = (found["pelvic_pain"] or found["abdominal_pain_any"]) and (
        found["spotting"] or found["vaginal_bleeding_any"] or found["unknown_location"]
    )
    if pregnant and (found["pregnancy_bleeding"] or found["severe_abdominal_pain"] or early_pain):
        flags.append(
            RedFlag(
                "pregnancy_bleeding_or_pain", "bleeding, leaking fluid or severe abdominal pain in pregnancy"
            )
        )
    if pregnant and (found["severe_headache"] or found["vision_change"] or found["fetal_movement"]):
        flags.append(RedFlag(
            "pregnancy_warning_signs", "severe headache, vision change or reduced fetal movement in pregnancy"
        ))  # fmt: skip
    seen, out = set(), []
    for f in flags:
        if f.code not in seen:
            seen.add(f.code)
            out.append(f)
    return out
