"""Deterministic safety rules, applied in plain code after generation and never left to the model.

``apply_safety(record, sections)`` returns the sections to publish and the ``Safety`` block:

- red flags (``red_flags``: vitals by age band, findings with negation scope, combinations) put one emergency
  action first in ``immediate_actions`` and are listed with their codes in ``safety.red_flags``; an emergency
  line the model wrote itself is dropped, so only code decides whether there is an emergency;
- every field of every item is scanned for drugs (``drugs``: brand names, abbreviations, combination products,
  misspellings); the record's allergies come from every field with their reactions (``allergies``). A true
  allergy removes an item naming the drug or its class; an intolerance or side effect ("statin - myalgia") only
  cautions; a low-risk cross-reactivity (penicillin and cephalosporins) cautions, unless the reaction was severe
  and the two share a beta-lactam side chain; each finding says which reaction decided it. Advice to avoid a
  drug ("your NSAID allergy: avoid ibuprofen") is not a prescription and is never removed;
- a recommended drug that duplicates a current one (same drug or class, or dual renin-angiotensin blockade), or
  another recommended one, is flagged in ``safety.duplicate_medications``;
- pairs that must never pass silently (``interactions``: dual renin-angiotensin blockade, the Phansalkar 2012
  high-priority list) are reported with a stable code in ``safety.interactions``; nothing is removed for them;
- the disclaimer is part of ``Safety`` and cannot be left out.

Text can add allergies and flags, never remove either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..clinical.claims import prescribed_in_field
from ..clinical.drugs import DrugMention, find_drugs, resolve, same_therapy
from ..clinical.record_drugs import RecordDrugs, record_drugs
from ..common.schemas import (
    EMERGENCY_HEAD,
    EMERGENCY_LINE,
    MAX_ITEMS,
    SECTION_NAMES,
    AllergyConflict,
    ContraindicationFinding,
    DuplicateTherapy,
    InteractionFinding,
    PatientRecord,
    RedFlagItem,
    Safety,
    Sections,
    item_fields,
)
from ..common.text import plain_words
from .allergies import Allergy, match, record_allergies
from .contraindications import contraindications, honey_for_infant
from .interactions import interactions
from .patient_state import PatientState, patient_state
from .red_flags import RedFlag, red_flags


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


# "Continue metformin", "increase lisinopril to 20 mg": the current drug itself, not a second prescription of it.
_CONTINUED = re.compile(
    r"\b(?:continue|continuing|keep taking|keep on|remain on|stay on|maintain|current|currently|already "
    r"(?:taking|on)|adjust|titrate|increase|decrease|reduce|lower|raise|taper|review|monitor|check|switch from|"
    r"dose of|levels? of)\b[^.;:]{0,50}$",
    re.I,
)


def stated_allergies(record: PatientRecord) -> list[str]:
    """The record's allergy list, then allergens stated in any other field ("allergic to sulfa", "PCN allergy",
    "throat swelled up after Bactrim"), as written."""
    out = list(record.allergies)
    for a in record_allergies(record):
        if a.written not in out and not any(a.written in entry for entry in record.allergies):
            out.append(a.written)
    return out


# What the safety rules read from a record, read once: its medication lines, its allergies, its red flags and
# its state (pregnancy, age band, kidney and liver function).
#
# ``apply_safety`` needs the same three facts for every output about one patient; a caller that scores or checks
# several outputs for one record (the evaluation: raw and published, every row) reads them once with
# ``SafetyFacts.of(record)`` and hands them down. They are what ``record_allergies``, ``red_flags``,
# ``patient_state`` and ``RecordDrugs.of`` return for the record, unchanged.
@dataclass(frozen=True, eq=False)
class SafetyFacts:
    drugs: RecordDrugs
    allergies: tuple[Allergy, ...]
    flags: tuple[RedFlag, ...]
    state: PatientState

    @classmethod
    def of(cls, record: PatientRecord, drugs: RecordDrugs | None = None) -> SafetyFacts:
        return cls(
            drugs if drugs is not None else RecordDrugs.of(record),
            tuple(record_allergies(record)),
            tuple(red_flags(record)),
            patient_state(record),
        )


@dataclass
class SafetyResult:
    sections: Sections
    safety: Safety
    flag_codes: list[str] = field(default_factory=list)
    duplicates: list[DuplicateTherapy] = field(default_factory=list)


def apply_safety(record: PatientRecord, sections: Sections, facts: SafetyFacts | None = None) -> SafetyResult:
    """The published sections and the safety block for one record; a pure function of its inputs. ``facts``:
    the record's drugs, allergies and red flags read once (``SafetyFacts.of(record)``), else read here."""
    facts = facts if facts is not None else SafetyFacts.of(record)
    out = sections.model_copy(deep=True)
    allergies = facts.allergies
    state = facts.state
    conflicts: list[AllergyConflict] = []
    cautions: list[AllergyConflict] = []
    contra: list[ContraindicationFinding] = []

    def check(item, section: str) -> bool:
        """Record the item's allergy and contraindication findings; True when it must be removed."""
        texts = item_fields(item)
        whole = " ".join(t for _, t in texts)  # a medication's dose and frequency are its own fields
        drugs = [d for f, t in texts for d in prescribed_in_field(t, f)]
        found = contraindications(state, drugs, whole, section)
        if (honey := honey_for_infant(state, whole, section)) is not None:
            found.append(honey)
        contra.extend(ContraindicationFinding(**vars(f)) for f in found)
        remove = any(f.action == "removed" for f in found)
        for field_name, text in texts:
            for drug in prescribed_in_field(text, field_name):
                found = [(a, m) for a in allergies if (m := match(drug, a)) is not None]
                removed = [(a, m) for a, m in found if m.action == "removed"]
                seen = set()
                for allergy, m in removed or found:  # a removal says enough; cautions only when none
                    if (allergy.written, m.rule) in seen:
                        continue
                    seen.add((allergy.written, m.rule))
                    entry = AllergyConflict(
                        medication=drug.text.strip(), ingredient=drug.label, allergy=allergy.written, rule=m.rule,
                        action=m.action, section=section, reaction=allergy.reaction, reaction_kind=allergy.kind,
                        reason=f"{m.rule.replace('_', ' ')} ({m.detail})"
                        + ("; item removed" if m.action == "removed" else "; kept, review before use"),
                    )  # fmt: skip
                    (conflicts if m.action == "removed" else cautions).append(entry)
                remove = remove or bool(removed)
        return remove

    for section in SECTION_NAMES:
        items = getattr(out, section)
        if section == "immediate_actions":
            items = [i for i in items if not EMERGENCY_LINE.match(i)]
        setattr(out, section, [item for item in items if not check(item, section)])

    duplicates = duplicate_therapy(record, out, facts.drugs)
    found = [
        InteractionFinding(**vars(f))
        for f in interactions(
            _current(record, out, facts.drugs), [d for d, _ in _recommended(out, record)], state
        )
    ]
    recommended = {f.medication.lower() for f in contra}
    for med, drug in zip(facts.drugs.lines, facts.drugs.resolved, strict=True):  # reported, not removed
        if drug is not None:
            contra.extend(
                ContraindicationFinding(**vars(f))
                for f in contraindications(state, [drug], med, "current_medications", current=True)
                if (f.code, f.medication.lower()) not in {(c.code, c.medication.lower()) for c in contra}
                and f.medication.lower() not in recommended
            )
    flags = list(facts.flags)
    if flags:
        out.immediate_actions = [emergency_action(flags), *out.immediate_actions][:MAX_ITEMS]
    safety = Safety(
        red_flags=[RedFlagItem(code=f.code, message=f.message) for f in flags],
        allergy_conflicts=conflicts,
        cautions=cautions,
        duplicate_medications=duplicates,
        interactions=found,
        contraindications=contra,
    )
    return SafetyResult(out, safety, [f.code for f in flags], duplicates)


# "Stop lisinopril", "switch from lisinopril to losartan": the current drug is on its way out.
_STOPPED = re.compile(
    r"\b(?:stop(?:ping)?|discontinu\w*|switch\w* (?:\w+ )?from|chang\w* (?:\w+ )?from|replac\w*|instead of|in place of|"
    r"rather than|taper\w* (?:off )?|wean\w* (?:off )?|come off|cease|hold(?:ing)?)\b[^.;:]{0,60}$",
    re.I,
)


def _stopped(sections: Sections) -> set[str]:
    """Ingredients the recommendation stops or replaces anywhere."""
    return {
        i for s in SECTION_NAMES for item in getattr(sections, s) for _, text in item_fields(item)
        for m in find_drugs(text) if _STOPPED.search(text[: m.start]) for i in m.ingredients
    }  # fmt: skip


def _current(
    record: PatientRecord, sections: Sections | None = None, drugs: RecordDrugs | None = None
) -> list[DrugMention]:
    """Current medications, less those the recommendation stops."""
    stopped = _stopped(sections) if sections is not None else set()
    return [
        m for m in record_drugs(record, drugs).resolved
        if m is not None and not (m.ingredients and set(m.ingredients) <= stopped)
    ]  # fmt: skip


# "Continue metformin", "increase sertraline to 150 mg": the current drug at another dose, not a second one.
_DOSE_CHANGE = re.compile(
    r"\b(?:continue|current|increase|decrease|reduce|titrate|adjust|uptitrate|downtitrate|taper)", re.I
)


def _words(text: str) -> str:
    return " ".join(plain_words(text))


def _own_line(name: str, record: PatientRecord | None) -> bool:
    """The patient's own medication named back ("Albuterol inhaler as needed," for "albuterol inhaler as
    needed"): continuing it, not a second course. Another product of the same drug still counts as a duplicate."""
    name = _words(name)
    return (
        bool(name)
        and record is not None
        and any(
            (line := _words(c)) and (f" {name} " in f" {line} " or f" {line} " in f" {name} ")
            for c in record.medications
        )
    )


def _recommended(sections: Sections, record: PatientRecord | None = None) -> list[tuple[DrugMention, bool]]:
    """(drug, named in ``medications``) for every drug the sections start; continuing a current one is not."""
    named = [
        m for med in sections.medications
        if (m := resolve(med.name)) is not None and not _DOSE_CHANGE.search(med.name)
        and not _own_line(med.name, record)
    ]  # fmt: skip
    in_text = [
        d for s in SECTION_NAMES if s != "medications" for item in getattr(sections, s)
        for _, text in item_fields(item) for d in prescribed_in_field(text, "") if not _CONTINUED.search(text[: d.start])
    ]  # fmt: skip
    return [(d, True) for d in named] + [(d, False) for d in in_text]


_RAAS = frozenset({"ace_inhibitors", "arbs", "renin_inhibitors"})


def _dual_raas(a: DrugMention, b: DrugMention) -> str | None:
    """Two different renin-angiotensin blockers (KDIGO 2021: never combine ACEi, ARB, aliskiren)."""
    ca, cb = a.lineage & _RAAS, b.lineage & _RAAS
    if ca and cb and ca != cb and not (ca & cb):
        return f"dual renin-angiotensin blockade ({sorted(ca)[0]} with {sorted(cb)[0]})"
    return None


def duplicate_therapy(
    record: PatientRecord, sections: Sections, drugs: RecordDrugs | None = None
) -> list[DuplicateTherapy]:
    """Recommended drugs that repeat a current medication, or each other, by ingredient or class, or that add a
    second renin-angiotensin blocker. ``drugs``: the record's medication lines read once, else read here."""
    drugs = record_drugs(record, drugs)
    kept = {id(m) for m in _current(record, sections, drugs)}
    current = [
        (c, m) for c, m in zip(drugs.lines, drugs.resolved, strict=True) if m is not None and id(m) in kept
    ]
    recommended = _recommended(sections, record)
    named = [d for d, is_named in recommended if is_named]
    out, seen = [], set()
    for i, drug in enumerate(d for d, _ in recommended):
        # Against current medications always; against another recommended one only within `medications`.
        others = [(c, m, "already taking") for c, m in current]
        if i < len(named):
            others += [(o.text, o, "also recommended") for o in named[:i]]
        for written, other, where in others:
            why = same_therapy(drug, other) or _dual_raas(drug, other)
            key = (drug.label, written.lower())
            if why is None or key in seen:
                continue
            seen.add(key)
            rule = (
                "same_drug"
                if why.startswith("same drug")
                else "same_class"
                if why.startswith("same")
                else ("dual_raas_blockade")
            )
            out.append(DuplicateTherapy(
                medication=drug.text.strip(), current=written, rule=rule, reason=f"{why}: {where} {written}"
            ))  # fmt: skip
    return out
