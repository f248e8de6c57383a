"""Deterministic safety rules, applied in plain code after generation and never left to the model.

``apply_safety(record, sections)`` returns the sections to publish and the ``Safety`` block:

- red flags from vitals and from the structured symptom and condition lists put one emergency action first in
  ``immediate_actions`` and are listed in ``safety.red_flags``;
- a recommended medication that matches an allergy directly or by drug class is removed (from ``medications``
  and any item of another section whose text names it) and recorded in ``safety.allergy_conflicts``;
- a recommended medication that duplicates a current one (same drug or same class) is flagged in
  ``safety.duplicate_medications``;
- the disclaimer is part of ``Safety`` and cannot be left out.

The free-text ``notes`` are never read here, so nothing written in them can switch a rule off. Symptom
matching is deliberately literal (no negation handling): "no chest pain" in a symptom list still fires, as
over-escalation is the safe error for a tool whose every output a clinician reviews.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .schemas import MAX_ITEMS, SECTION_NAMES, AllergyConflict, PatientRecord, Safety, Sections


@dataclass(frozen=True)
class RedFlag:
    code: str  # a fixed name: what the log records (never the patient's own words or values)
    message: str  # what the recommendation shows, with the measured value where there is one


# (code, label, pattern) over symptoms and conditions; word-initial matches, case-insensitive.
SYMPTOM_RULES: tuple[tuple[str, str, str], ...] = (
    (
        "chest_pain",
        "chest pain or pressure (possible acute coronary syndrome)",
        r"chest (pain|pressure|tightness|discomfort)|crushing chest|heart attack|myocardial infarction",
    ),
    (
        "stroke_signs",
        "signs of stroke",
        r"stroke|facial droop|face drooping|slurred speech|hemiparesis|(one|1)[- ]sided (weakness|numbness)"
        r"|unilateral (weakness|numbness)|sudden (numbness|confusion|vision loss|loss of vision)|aphasia",
    ),
    (
        "anaphylaxis",
        "signs of anaphylaxis",
        r"anaphyla|(throat|tongue|lip) (swelling|tightness)|swelling of the (throat|tongue|lips)|angioedema",
    ),
    (
        "suicidal_ideation",
        "suicidal ideation or self-harm",
        r"suicid|self[- ]harm|kill (myself|himself|herself|themself|themselves)|wants? to die",
    ),
    (
        "severe_breathing",
        "severe breathing difficulty",
        r"severe (shortness of breath|dyspnea|dyspnoea|breathing difficulty)|respiratory distress"
        r"|(cannot|can't|unable to) breathe|cyanosis|blue lips",
    ),
    (
        "altered_consciousness",
        "loss or alteration of consciousness or a seizure",
        r"unconscious|unresponsive|loss of consciousness|seizure|convulsion|fainted|syncope",
    ),
    (
        "major_bleeding",
        "signs of major bleeding",
        r"vomiting blood|coughing up blood|haematemesis|hematemesis|hemoptysis|haemoptysis|severe bleeding"
        r"|black,? tarry stool|melena",
    ),
    (
        "meningitis_signs",
        "signs of meningitis or sepsis",
        r"stiff neck with fever|neck stiffness and fever|meningitis|sepsis|septic",
    ),
)
_SYMPTOM_RES = [(code, label, re.compile(rf"\b({pat})", re.I)) for code, label, pat in SYMPTOM_RULES]
_PREGNANCY_BLEEDING = re.compile(r"\b(vaginal bleeding|bleeding in pregnancy|severe abdominal pain)", re.I)


def red_flags(record: PatientRecord) -> list[RedFlag]:
    """Red flags from the structured fields only, in a fixed order."""
    v, flags = record.vitals, []
    if v.spo2 is not None and v.spo2 < 90:
        flags.append(RedFlag("low_spo2", f"SpO2 {v.spo2:g}% (below 90%)"))
    if (v.systolic_bp is not None and v.systolic_bp >= 180) or (
        v.diastolic_bp is not None and v.diastolic_bp >= 120
    ):
        flags.append(RedFlag("hypertensive_crisis", f"blood pressure {_bp(record)} (180/120 or higher)"))
    elif record.pregnant and (
        (v.systolic_bp or 0) >= 160 or (v.diastolic_bp or 0) >= 110
    ):  # severe-range blood pressure in pregnancy (possible pre-eclampsia) is urgent at lower values
        flags.append(RedFlag("severe_hypertension_pregnancy", f"blood pressure {_bp(record)} in pregnancy"))
    if v.systolic_bp is not None and v.systolic_bp < 90:
        flags.append(RedFlag("hypotension", f"systolic blood pressure {v.systolic_bp:g} mmHg (below 90)"))
    # Children's normal heart and breathing rates are far higher than adults': separate limits below 12.
    child = record.age is not None and record.age < 12
    hr_hi, hr_lo, rr_hi, rr_lo = (180, 60, 50, 10) if child else (130, 40, 30, 8)
    if v.heart_rate is not None and not hr_lo < v.heart_rate < hr_hi:
        flags.append(RedFlag("abnormal_heart_rate", f"heart rate {v.heart_rate:g}/min"))
    if v.respiratory_rate is not None and not rr_lo < v.respiratory_rate < rr_hi:
        flags.append(RedFlag("abnormal_respiratory_rate", f"respiratory rate {v.respiratory_rate:g}/min"))
    if v.temperature_c is not None and not 35.0 < v.temperature_c < 40.0:
        flags.append(RedFlag("abnormal_temperature", f"temperature {v.temperature_c:g} °C"))
    complaints = [*record.symptoms, *record.conditions]
    for code, label, pattern in _SYMPTOM_RES:
        if any(pattern.search(c) for c in complaints):
            flags.append(RedFlag(code, label))
    if record.pregnant and any(_PREGNANCY_BLEEDING.search(c) for c in record.symptoms):
        flags.append(RedFlag("pregnancy_bleeding_or_pain", "bleeding or severe abdominal pain in pregnancy"))
    return flags


def _bp(record: PatientRecord) -> str:
    s, d = record.vitals.systolic_bp, record.vitals.diastolic_bp
    return f"{'?' if s is None else f'{s:g}'}/{'?' if d is None else f'{d:g}'} mmHg"


def emergency_action(flags: list[RedFlag]) -> str:
    head = "EMERGENCY: call the local emergency number or go to the nearest emergency department now"
    tail = (
        " Do not leave the person alone; contact a crisis line."
        if any(f.code == "suicidal_ideation" for f in flags)
        else ""
    )
    # The action must fit the 600-character item limit whatever fires; safety.red_flags keeps the full list.
    for k in range(len(flags), 0, -1):
        more = f"; {len(flags) - k} more in safety.red_flags" if k < len(flags) else ""
        action = f"{head} (red flags: {'; '.join(f.message for f in flags[:k])}{more}).{tail}"
        if len(action) <= 600:
            return action
    return f"{head} (see safety.red_flags).{tail}"


# Drug classes and members (generic and common brand names, lower case). An allergy to the class or to any
# member rules out the whole class; CROSS_REACTIVE adds classes a class allergy also rules out.
DRUG_CLASSES: dict[str, tuple[str, ...]] = {
    "penicillins": (
        "penicillin",
        "amoxicillin",
        "ampicillin",
        "piperacillin",
        "dicloxacillin",
        "nafcillin",
        "oxacillin",
        "flucloxacillin",
        "augmentin",
        "amoxil",
        "co-amoxiclav",
    ),
    "cephalosporins": (
        "cephalosporin",
        "cephalexin",
        "cefalexin",
        "cefazolin",
        "cefuroxime",
        "ceftriaxone",
        "cefdinir",
        "cefepime",
        "cefixime",
        "cefpodoxime",
        "cefadroxil",
        "ceftazidime",
        "cefaclor",
        "cefprozil",
        "cefotaxime",
        "ceftaroline",
        "keflex",
    ),
    "sulfonamides": (
        "sulfa",
        "sulfonamide",
        "sulfamethoxazole",
        "co-trimoxazole",
        "cotrimoxazole",
        "bactrim",
        "septra",
        "sulfasalazine",
        "sulfadiazine",
    ),
    "nsaids": (
        "nsaid",
        "non-steroidal anti-inflammatory",
        "ibuprofen",
        "naproxen",
        "aspirin",
        "acetylsalicylic acid",
        "diclofenac",
        "celecoxib",
        "indomethacin",
        "ketorolac",
        "meloxicam",
        "ketoprofen",
        "etodolac",
        "nabumetone",
        "piroxicam",
        "advil",
        "motrin",
        "aleve",
    ),
    "macrolides": ("macrolide", "erythromycin", "azithromycin", "clarithromycin", "zithromax"),
    "fluoroquinolones": (
        "fluoroquinolone",
        "quinolone",
        "ciprofloxacin",
        "levofloxacin",
        "moxifloxacin",
        "ofloxacin",
    ),
    "tetracyclines": ("tetracycline", "doxycycline", "minocycline"),
    "opioids": (
        "opioid",
        "opiate",
        "morphine",
        "codeine",
        "oxycodone",
        "hydrocodone",
        "hydromorphone",
        "fentanyl",
        "tramadol",
        "tapentadol",
        "methadone",
    ),
    "ace_inhibitors": (
        "ace inhibitor",
        "lisinopril",
        "enalapril",
        "ramipril",
        "captopril",
        "benazepril",
        "quinapril",
        "perindopril",
    ),
}
CROSS_REACTIVE: dict[str, tuple[str, ...]] = {"penicillins": ("cephalosporins",)}


def _word(terms: str) -> str:
    # Whole words, plural allowed ("penicillins"); a hyphen separates ("trimethoprim-sulfamethoxazole").
    return rf"(?<!\w)({terms})(?:s|es)?(?!\w)"


def _mentions(text: str, term: str) -> bool:
    return re.search(_word(re.escape(term)), text, re.I) is not None


def _core(text: str) -> str:
    """The drug part of a medication line: "lisinopril 20 mg daily" -> "lisinopril"."""
    return re.split(r"[\d(]", text, maxsplit=1)[0].strip(" ,;:-") or text


def same_drug(a: str, b: str) -> bool:
    a, b = _core(a), _core(b)
    return _mentions(a, b) or _mentions(b, a)


_CLASS_RES = {cls: re.compile(_word("|".join(map(re.escape, ms))), re.I) for cls, ms in DRUG_CLASSES.items()}


def drug_classes(name: str) -> set[str]:
    return {cls for cls, pattern in _CLASS_RES.items() if pattern.search(name)}


def allergy_reason(medication: str, allergy: str) -> str | None:
    """Why ``medication`` conflicts with ``allergy``, or None."""
    if same_drug(medication, allergy):
        return "matches the allergy directly"
    med_classes = drug_classes(medication)
    for cls in drug_classes(allergy):
        if cls in med_classes:
            return f"same drug class ({cls})"
        for other in CROSS_REACTIVE.get(cls, ()):
            if other in med_classes:
                return f"possible cross-reactivity ({cls} allergy, {other})"
    return None


_ANY_DRUG = re.compile(_word("|".join(re.escape(m) for ms in DRUG_CLASSES.values() for m in ms)), re.I)


def _named_drugs(text: str) -> list[str]:
    """Drugs of the class table named in free text (advice to avoid a food or latex is not a drug)."""
    return [m.group(1) for m in _ANY_DRUG.finditer(text)]


@dataclass
class SafetyResult:
    sections: Sections
    safety: Safety
    flag_codes: list[str] = field(default_factory=list)


def apply_safety(record: PatientRecord, sections: Sections) -> SafetyResult:
    """The published sections and the safety block for one record; a pure function of its inputs."""
    out = sections.model_copy(deep=True)
    conflicts: list[AllergyConflict] = []

    def conflict(name: str, where: str) -> bool:
        hit = False
        for allergy in record.allergies:
            reason = allergy_reason(name, allergy)
            if reason:
                conflicts.append(
                    AllergyConflict(medication=name, allergy=allergy, reason=f"{reason}; {where}")
                )
                hit = True
        return hit

    out.medications = [m for m in sections.medications if not conflict(m.name, "removed from medications")]
    for section in SECTION_NAMES:
        if section == "medications":
            continue
        kept = []
        for item in getattr(out, section):
            # A free-text item that names a ruled-out drug goes too: half a sentence could still mislead.
            text = (
                item
                if isinstance(item, str)
                else " ".join(v for v in item.model_dump().values() if isinstance(v, str))
            )
            named = [d for d in _named_drugs(text) if any(allergy_reason(d, a) for a in record.allergies)]
            if not (named and conflict(named[0], f"removed an item from {section}")):
                kept.append(item)
        setattr(out, section, kept)

    duplicates = []
    for med in out.medications:
        for current in record.medications:
            if same_drug(med.name, current):
                duplicates.append(f"{med.name}: already taking {current}")
            elif shared := drug_classes(med.name) & drug_classes(current):
                duplicates.append(
                    f"{med.name}: same class ({', '.join(sorted(shared))}) as current {current}"
                )

    flags = red_flags(record)
    if flags:
        out.immediate_actions = [emergency_action(flags), *out.immediate_actions][:MAX_ITEMS]
    safety = Safety(
        red_flags=[f.message for f in flags], allergy_conflicts=conflicts, duplicate_medications=duplicates
    )
    return SafetyResult(out, safety, [f.code for f in flags])
