"""Deterministic safety rules, applied in plain code after generation and never left to the model.

``apply_safety(record, sections)`` returns the sections to publish and the ``Safety`` block:

- red flags (``red_flags``: vitals by age band, findings with negation scope, combinations) put one emergency
  action first in ``immediate_actions`` and are listed with their codes in ``safety.red_flags``; an emergency
  line the model wrote itself is dropped, so only code decides whether there is an emergency;
- every field of every item is scanned for drugs (``drugs``: brand names, abbreviations, combination products,
  misspellings); an item naming a drug that meets an allergy by the same drug or the same class is removed and
  reported (drug as written, resolved ingredient, allergy, rule); a low-risk cross-reactivity (penicillin and
  cephalosporins) is kept and reported in ``safety.cautions``; advice to avoid a drug is not a prescription;
- a recommended drug that duplicates a current one (same drug or class), or another recommended one, is flagged
  in ``safety.duplicate_medications``;
- the disclaimer is part of ``Safety`` and cannot be left out.

The allergy list is the record's, plus allergies stated in ``conditions`` or ``notes`` ("allergic to
sulfa"): text can add to the list and add flags, never remove either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .drugs import DrugMention, allergy_match, find_drugs, resolve, same_therapy
from .negation import affirmed
from .red_flags import RedFlag, red_flags
from .schemas import (
    MAX_ITEMS,
    SECTION_NAMES,
    AllergyConflict,
    DuplicateTherapy,
    PatientRecord,
    RedFlagItem,
    Safety,
    Sections,
)

EMERGENCY_HEAD = "EMERGENCY: call the local emergency number or go to the nearest emergency department now"
_EMERGENCY_LINE = re.compile(r"^\s*EMERGENCY\b", re.I)


def emergency_action(flags: list[RedFlag]) -> str:
    tail = (
        " Do not leave the person alone; contact a crisis line."
        if any(f.code in ("suicidal_ideation", "overdose_or_poisoning") for f in flags)
        else ""
    )
    # The action must fit the 600-character item limit whatever fires; safety.red_flags keeps the full list.
    for k in range(len(flags), 0, -1):
        more = f"; {len(flags) - k} more in safety.red_flags" if k < len(flags) else ""
        action = f"{EMERGENCY_HEAD} (red flags: {'; '.join(f.message for f in flags[:k])}{more}).{tail}"
        if len(action) <= 600:
            return action
    return f"{EMERGENCY_HEAD} (see safety.red_flags).{tail}"


# "Avoid ibuprofen", "do not take aspirin", "instead of codeine": the drug is being ruled out, not prescribed.
_AVOIDED = re.compile(
    r"\b(?:avoid(?:ing)?|do not (?:take|use|give|start|prescribe)|don't (?:take|use|give|start)|never (?:take|use|"
    r"give)|not (?:to )?(?:take|use|be given)|stop(?:ping)?|discontinu\w*|hold(?:ing)?|withh[oe]ld\w*|"
    r"instead of|rather than|in place of|allergic to|allergy to|contraindicated|without)\b[^.;:]{0,60}$",
    re.I,
)
# "Continue metformin", "increase lisinopril to 20 mg": the current drug itself, not a second prescription of it.
_CONTINUED = re.compile(
    r"\b(?:continue|continuing|keep taking|keep on|remain on|stay on|maintain|current|currently|already "
    r"(?:taking|on)|adjust|titrate|increase|decrease|reduce|lower|raise|taper|review|monitor|check|switch from|"
    r"dose of|levels? of)\b[^.;:]{0,50}$",
    re.I,
)
_STATED_ALLERGY = re.compile(
    r"\b(?:allergic to|allergy to|allergies to|allergies:|allergy:|intolerant of|intolerance to|reaction to)\s*"
    r"([^.;\n]{2,120})|([\w\- ]{3,40}?)\s+(?:allergy|allergies|intolerance)\b",
    re.I,
)


def stated_allergies(record: PatientRecord) -> list[str]:
    """The record's allergies, then any stated in conditions or notes ("allergic to sulfa", "PCN allergy")."""
    out = list(record.allergies)
    for text in [*record.conditions, record.notes or ""]:
        for m in _STATED_ALLERGY.finditer(text):
            if not affirmed(text, m.span()):
                continue
            for part in re.split(r",|\band\b|\bor\b|/", m.group(1) or m.group(2) or ""):
                if resolve(part.strip()) is not None and part.strip() not in out:
                    out.append(part.strip())
    return out


def _texts(item) -> list[tuple[str, str]]:
    """(field, text) of every string in an item: the item itself, or each str and list-of-str field."""
    if isinstance(item, str):
        return [("", item)]
    out = []
    for name, value in item.model_dump().items():
        values = value if isinstance(value, list) else [value]
        out.extend((name, v) for v in values if isinstance(v, str))
    return out


def prescribed(text: str) -> list[DrugMention]:
    """Drugs a free-text item recommends: "avoid NSAIDs" or "stop aspirin" names a drug without prescribing it."""
    return _prescribed(text, "")


def _prescribed(text: str, field_name: str) -> list[DrugMention]:
    """The drugs a text recommends: every mention except those it says to avoid; a medication name is whole."""
    if field_name == "name":
        found = resolve(text)
        return [found] if found is not None else []
    return [m for m in find_drugs(text) if not _AVOIDED.search(text[: m.start])]


@dataclass
class SafetyResult:
    sections: Sections
    safety: Safety
    flag_codes: list[str] = field(default_factory=list)
    duplicates: list[DuplicateTherapy] = field(default_factory=list)


def apply_safety(record: PatientRecord, sections: Sections) -> SafetyResult:
    """The published sections and the safety block for one record; a pure function of its inputs."""
    out = sections.model_copy(deep=True)
    allergies = [(a, m) for a in stated_allergies(record) if (m := resolve(a)) is not None]
    conflicts: list[AllergyConflict] = []
    cautions: list[AllergyConflict] = []

    def check(item, section: str) -> bool:
        """Record the item's allergy findings; True when it must be removed."""
        remove = False
        for field_name, text in _texts(item):
            for drug in _prescribed(text, field_name):
                for written, allergy in allergies:
                    match = allergy_match(drug, allergy)
                    if match is None:
                        continue
                    entry = AllergyConflict(
                        medication=drug.text.strip(), ingredient=drug.label, allergy=written, rule=match.rule,
                        action=match.action, section=section,
                        reason=f"{match.rule.replace('_', ' ')} ({match.detail})"
                        + ("; item removed" if match.action == "removed" else "; kept, review before use"),
                    )  # fmt: skip
                    (conflicts if match.action == "removed" else cautions).append(entry)
                    remove = remove or match.action == "removed"
        return remove

    for section in SECTION_NAMES:
        items = getattr(out, section)
        if section == "immediate_actions":
            items = [i for i in items if not _EMERGENCY_LINE.match(i)]
        setattr(out, section, [item for item in items if not check(item, section)])

    duplicates = duplicate_therapy(record, out)
    flags = red_flags(record)
    if flags:
        out.immediate_actions = [emergency_action(flags), *out.immediate_actions][:MAX_ITEMS]
    safety = Safety(
        red_flags=[RedFlagItem(code=f.code, message=f.message) for f in flags],
        allergy_conflicts=conflicts,
        cautions=cautions,
        duplicate_medications=duplicates,
    )
    return SafetyResult(out, safety, [f.code for f in flags], duplicates)


def duplicate_therapy(record: PatientRecord, sections: Sections) -> list[DuplicateTherapy]:
    """Recommended drugs that repeat a current medication, or each other, by ingredient or class."""
    current = [(c, m) for c in record.medications if (m := resolve(c)) is not None]
    named = [
        m for med in sections.medications
        if (m := resolve(med.name)) is not None and not re.search(r"\b(?:continue|current)", med.name, re.I)
    ]  # fmt: skip
    in_text = [
        d for s in SECTION_NAMES if s != "medications" for item in getattr(sections, s)
        for _, text in _texts(item) for d in _prescribed(text, "") if not _CONTINUED.search(text[: d.start])
    ]  # fmt: skip
    out, seen = [], set()
    for i, drug in enumerate([*named, *in_text]):
        # Against current medications always; against another recommended one only within `medications`.
        others = [(c, m, "already taking") for c, m in current]
        if i < len(named):
            others += [(o.text, o, "also recommended") for o in named[:i]]
        for written, other, where in others:
            why = same_therapy(drug, other)
            key = (drug.label, written.lower())
            if why is None or key in seen:
                continue
            seen.add(key)
            rule = "same_drug" if why.startswith("same drug") else "same_class"
            out.append(DuplicateTherapy(
                medication=drug.text.strip(), current=written, rule=rule, reason=f"{why}: {where} {written}"
            ))  # fmt: skip
    return out
