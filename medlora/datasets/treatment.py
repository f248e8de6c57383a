"""The custom treatment data: for each focus with a treatment answer, several synthetic patients
(``medlora.datasets.patients``), each with a target built from the focus's own MedQuAD answers.

The sourced sections are extracted, never written: sentences and names taken from the focus's answers in the
same split (see the README's mapping table); a medication name is kept only when the drug normalisation
(``medlora.clinical.drugs``) resolves it to a drug or a drug class. Each patient's target is those sections transformed
by the same deterministic rules as inference (``medlora.safety.rules.apply_safety``: allergy conflicts removed, the
emergency action first on a red flag), minus any medication that duplicates one the patient already takes.
``build_examples`` turns one split's pairs into the chat-format rows of the data contract.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..clinical import drugs
from ..clinical.claims import not_a_treatment
from ..common.progress import progress
from ..common.schemas import (
    SECTION_NAMES,
    FollowUp,
    Medication,
    Monitoring,
    PatientRecord,
    Referral,
    Sections,
)
from ..common.text import split_sentences
from ..data.medquad import QAPair, example_id, focus_key, qa_example
from ..data.prompts import treatment_messages
from ..safety.rules import apply_safety, duplicate_therapy
from . import patients

# Which MedQuAD question types fill which section. Every item is a sentence (or a name) taken from the
# focus's own answers; nothing is written that a source does not say. See the README's mapping table.
SECTION_QTYPES = {
    "medications": ("treatment",),
    "lifestyle": ("prevention", "considerations"),
    "follow_up": ("treatment", "outlook", "considerations", "prevention", "exams and tests"),
    "specialist_referrals": ("treatment", "exams and tests", "information"),
    "monitoring": ("exams and tests",),
    "patient_education": ("treatment", "outlook", "complications"),
}
TREATMENT_QTYPES = ("treatment",)
ITEMS_PER_SECTION = 3
MAX_SENTENCE_CHARS = 280

_DRUGS = re.compile(
    r"\b(?:drugs?|medicines?|medications?)\s+(?:called|such as|including|like)\s+([^.;:()]+)", re.I
)
_SPECIALISTS = re.compile(
    r"\b(\w*(?:ologists?|iatrists?|icians?)|genetic counselors?|surgeons?|dietitians?|therapists?)\b", re.I
)
_NOT_SPECIALISTS = {"technician", "technicians", "physician", "physicians", "clinician", "clinicians"}
_INTERVAL = re.compile(
    r"\b(every \w+(?: to \w+)? (?:days?|weeks?|months?|years?)|once a (?:day|week|month|year)|"
    r"(?:annually|yearly|monthly|weekly|daily)|each (?:day|week|month|year))\b",
    re.I,
)

# Follow-up as MedQuAD writes it: "Regular follow-up exams are important.", "Lifelong follow-up is needed.",
# "Follow-up tests may be needed." (most answers never mention it: see docs/evaluation.md for the fill rate).
_FOLLOW_UP = re.compile(
    r"\bfollow[- ]?up\b|\bcheck-?ups?\b|\bregular (?:visits?|exams?|examinations?|appointments?)\b", re.I
)
_ADVICE = re.compile(r"\b(?:needed|important|should|recommended|need|must|may|will|have)\b", re.I)
_NOT_FOLLOW_UP = re.compile(r"\bstud(?:y|ies)\b|\bresearch\b|\bfound during\b|\bdiagnos\w*", re.I)
_TIMING_WORDS = re.compile(
    r"\b(lifelong|lifetime|long-term|regular|frequent|periodic|close|after treatment)\b", re.I
)
FOLLOW_UP_TIMING_UNSTATED = "not stated in the source"


def follow_up_item(sentence: str) -> FollowUp | None:
    """A follow-up item when the sentence advises follow-up visits (timing: the interval or the word the sentence
    gives, else says it states none), or states an interval of checks or visits."""
    interval = _INTERVAL.search(sentence)
    if interval and re.search(r"follow|check|visit|appointment|see", sentence, re.I):
        return FollowUp(timing=interval.group(1).lower(), purpose=sentence)
    if not _FOLLOW_UP.search(sentence) or not _ADVICE.search(sentence) or _NOT_FOLLOW_UP.search(sentence):
        return None
    word = _TIMING_WORDS.search(sentence)
    return FollowUp(timing=word.group(1).lower() if word else FOLLOW_UP_TIMING_UNSTATED, purpose=sentence)


def sentences(text: str) -> list[str]:
    # Questions and list fragments are headings, not content.
    return [s for s in split_sentences(text) if 20 <= len(s) <= MAX_SENTENCE_CHARS and s[-1] in ".!"]


# Conjunctions and fillers the list split leaves at an edge ("or NSAIDs", "such as aspirin", "colchicine and").
_EDGE_WORDS = re.compile(
    r"^(?:(?:and/or|and|or|plus|such as|including|like|other|the|a|an|notably)\s+)+|\s+(?:and|or)$", re.I
)


def clean_candidate(part: str) -> str:
    return _EDGE_WORDS.sub("", part.strip().strip('"')).strip()


def medication_candidates(sentence: str) -> list[str]:
    """Names after "drugs/medicines/medications called / such as / including / like", before any check."""
    names = []
    for m in _DRUGS.finditer(sentence):
        for part in re.split(r",\s*|\s+(?:and|or)\s+", m.group(1)):
            part = clean_candidate(part)
            if 2 < len(part) <= 60 and len(part.split()) <= 4:
                names.append(part)
    return names


def medication_name(candidate: str) -> str | None:
    """The drug or class a candidate names, as written, or None when the drug normalisation resolves nothing
    in it ("thymic carcinoma", "swelling", "reduce inflammation"). Words around the drug are dropped
    ("naproxen may be used" -> "naproxen"); a combination keeps its span ("diphenoxylate with atropine")."""
    if drugs.resolve(candidate) is None:
        return None
    if drugs.is_drug_name(candidate):
        return candidate.strip('"')
    mentions = drugs.find_drugs(candidate)
    # resolve() also matches a misspelling ("pentoxyfilline") that find_drugs() does not: keep it as written.
    return candidate[mentions[0].start : mentions[-1].end] if mentions else candidate


# A sentence about treatment names the drugs it gives; one about harms, interactions or what to avoid names drugs
# the patient should not be given, and one about body chemistry names substances, not prescriptions.
_TREATMENT_CUE = re.compile(
    r"\b(treat\w*|therap\w*|prescri\w*|medications?|medicines?|drugs?|given|taken|take|used|relieve\w*|"
    r"manage\w*|control\w*|help\w*)\b",
    re.I,
)


def sentence_medications(sentence: str) -> list[str]:
    """The drugs and drug classes a treatment sentence gives, as written: names after "drugs called / such as"
    that the drug normalisation resolves, then every other mention it finds in the sentence."""
    if not _TREATMENT_CUE.search(sentence) or not_a_treatment(sentence):
        return []
    names = [n for c in medication_candidates(sentence) if (n := medication_name(c))]
    return names + [m.text for m in drugs.find_drugs(sentence)]


def drug_keys(name: str) -> set[tuple[str, str]]:
    """What a name prescribes (its ingredients, or the classes it names): two names sharing a key are one therapy,
    so "levodopa (Sinemet)" gives one medication, not two."""
    m = drugs.resolve(name)
    if m is None:
        return {("name", name.lower())}
    return {("drug", i) for i in m.ingredients} or {("class", c) for c in m.classes}


def treatment_target(answers: dict[str, list[QAPair]]) -> tuple[Sections, list[str]]:
    """Sections for one focus from its answers, grouped by question type. Returns the target and its sources."""
    by_type = {qt: [s for p in ps for s in sentences(p.answer)] for qt, ps in answers.items()}
    pick = lambda *qts: [s for qt in qts for s in by_type.get(qt, [])]  # noqa: E731

    meds, seen = [], set()
    for s in pick(*SECTION_QTYPES["medications"]):
        for name in sentence_medications(s):
            keys = drug_keys(name)
            if not keys & seen and len(meds) < ITEMS_PER_SECTION:
                seen |= keys
                meds.append(Medication(name=name, dosage=None, frequency=None))
    referrals, seen = [], set()
    for s in pick(*SECTION_QTYPES["specialist_referrals"]):
        for m in _SPECIALISTS.finditer(s):
            spec = m.group(1).lower()
            if spec not in seen and spec not in _NOT_SPECIALISTS and len(referrals) < ITEMS_PER_SECTION:
                seen.add(spec)
                referrals.append(Referral(specialty=spec, reason=s))
    follow_up, seen_purposes = [], set()
    for s in pick(*SECTION_QTYPES["follow_up"]):
        if (item := follow_up_item(s)) and s not in seen_purposes:
            seen_purposes.add(s)
            follow_up.append(item)
    monitoring = []
    for s in pick(*SECTION_QTYPES["monitoring"])[:ITEMS_PER_SECTION]:
        m = _INTERVAL.search(s)
        monitoring.append(Monitoring(test=s, frequency=m.group(1).lower() if m else None))
    sections = Sections(
        medications=meds,
        lifestyle=pick(*SECTION_QTYPES["lifestyle"])[:ITEMS_PER_SECTION],
        follow_up=follow_up[:ITEMS_PER_SECTION],
        specialist_referrals=referrals,
        monitoring=monitoring,
        patient_education=pick(*SECTION_QTYPES["patient_education"])[:ITEMS_PER_SECTION],
    )
    used = {qt for qts in SECTION_QTYPES.values() for qt in qts}
    sources = sorted({p.url for qt, ps in answers.items() if qt in used for p in ps if p.url})
    return sections, sources


@dataclass
class TreatmentCase:
    """One (focus, patient) example before it becomes chat messages; what a ``ground`` callable receives."""

    key: str  # focus_key
    focus: str  # display name
    index: int  # patient number within the focus
    record: PatientRecord
    target: Sections  # after the safety rules and duplicate removal
    sources: list[str]
    answers: dict[str, list[QAPair]]
    red_flags: list[str] = field(default_factory=list)  # codes
    allergy_conflicts: int = 0
    duplicates_removed: int = 0
    variant: str = "exact"  # exact | reworded | no_evidence (the condition as written; see ``reword``)
    reworded_kind: str | None = None  # synonym | abbreviation | lay | misspelling


def personalised_target(record: PatientRecord, sections: Sections) -> tuple[Sections, Any, int]:
    """The inference rules applied to sourced sections, then current medications not prescribed again.

    Returns the target, the ``SafetyResult`` and how many items were dropped as duplicate therapy: a
    medication, or an item of another section, that the duplicate rule flags (the rule reads every item, so the
    target must pass it, or the evaluation would count the reference itself as a duplicate)."""
    result = apply_safety(record, sections)
    duplicated = {d.medication.lower() for d in result.duplicates}
    out = result.sections.model_copy(deep=True)
    removed = 0
    for name in SECTION_NAMES:
        items = getattr(out, name)
        if name == "medications":
            kept = [m for m in items if m.name.lower() not in duplicated]
        elif name == "immediate_actions" or not record.medications:
            continue
        else:
            kept = [i for i in items if not duplicate_therapy(record, Sections(**{name: [i]}))]
        removed += len(items) - len(kept)
        setattr(out, name, kept)
    return out, result, removed


# Shares of patients who get an allergy to, or a current prescription of, one of the focus's own target drugs:
# without them the rules would rarely act in training and the model would never see them act.
TARGET_ALLERGY_SHARE = 0.2
TARGET_CURRENT_MED_SHARE = 0.2


def _patient(focus: str, answers: dict, sections: Sections, rng: random.Random) -> PatientRecord:
    resolved = [(m.name, drugs.resolve(m.name)) for m in sections.medications]
    resolved = [(name, r) for name, r in resolved if r is not None]
    extra_allergies, extra_meds = [], []
    if resolved and rng.random() < TARGET_ALLERGY_SHARE:
        name, mention = rng.choice(resolved)
        extra_allergies.append(
            name if mention.is_class or not mention.ingredients else mention.ingredients[0]
        )
    singles = [r for _, r in resolved if not r.is_class and r.ingredients]
    if singles and rng.random() < TARGET_CURRENT_MED_SHARE:
        extra_meds.append(rng.choice(singles).ingredients[0])
    return patients.make_patient(focus, answers, rng, extra_allergies, extra_meds)


# Share of val/test patients whose condition is written as people write it (``patients.reworded_condition``).
REWORD_SHARE = 0.5


def reword(case: TreatmentCase, lexicon: Any, seed: int, share: float = REWORD_SHARE) -> TreatmentCase:
    """A ``share`` of cases get their first condition written as people write it: variant "reworded"."""
    rng = random.Random(f"{seed}-reword-{case.key}-{case.index}")
    if rng.random() >= share or (found := patients.reworded_condition(case.focus, lexicon, rng)) is None:
        return case
    text, kind = found
    record = case.record.model_copy(update={"conditions": [text, *case.record.conditions[1:]]})
    return replace(case, record=record, variant="reworded", reworded_kind=kind)


def no_evidence_cases(topics: list[str], seed: int = 42) -> list[TreatmentCase]:
    """One patient per real topic that has no evidence in the index (``retrieval_rules.no_evidence_topics``):
    variant "no_evidence"; the target holds only what the safety rules add, since nothing sources more."""
    out = []
    for topic in topics:
        rng = random.Random(f"{seed}-no-evidence-{focus_key(topic)}")
        record = patients.make_patient(topic, {}, rng)
        target, result, removed = personalised_target(record, Sections())
        out.append(
            TreatmentCase(
                focus_key(topic), topic, 0, record, target, [], {}, list(result.flag_codes),
                len(result.safety.allergy_conflicts), removed, "no_evidence",
            )
        )  # fmt: skip
    return out


def treatment_cases(pairs: list[QAPair], seed: int = 42, patients_per_focus: int = 3) -> list[TreatmentCase]:
    """``patients_per_focus`` cases per focus that has a treatment answer and a non-empty sourced target."""
    by_focus: dict[str, dict[str, list[QAPair]]] = defaultdict(lambda: defaultdict(list))
    display: dict[str, str] = {}
    for p in pairs:
        k = focus_key(p.focus)
        by_focus[k][p.qtype].append(p)
        display.setdefault(k, p.focus)
    out = []
    for k in progress(sorted(by_focus), "synthetic patients and targets", unit="foci"):
        answers = dict(by_focus[k])
        if not any(qt in answers for qt in TREATMENT_QTYPES):
            continue
        sections, sources = treatment_target(answers)
        if not any(getattr(sections, name) for name in Sections.model_fields):
            continue  # an all-empty target would teach the model to say nothing
        for i in range(patients_per_focus):
            # One generator per patient: a focus's patients do not change when other foci come or go.
            rng = random.Random(f"{seed}-patient-{k}-{i}")
            record = _patient(display[k], answers, sections, rng)
            target, result, removed = personalised_target(record, sections)
            if not any(getattr(target, name) for name in Sections.model_fields):
                continue
            out.append(
                TreatmentCase(
                    k,
                    display[k],
                    i,
                    record,
                    target,
                    sources,
                    answers,
                    list(result.flag_codes),
                    len(result.safety.allergy_conflicts),
                    removed,
                )
            )
    return out


def treatment_examples(
    pairs: list[QAPair],
    seed: int = 42,
    patients_per_focus: int = 3,
    ground: Callable[[TreatmentCase, random.Random], dict[str, Any]] | None = None,
    lexicon: Any = None,
    no_evidence: list[str] | None = None,
) -> list[dict[str, Any]]:
    """The rows of the treatment cases; ``ground`` (``medlora.grounding.check``) adds passages to prompt and target.

    With a ``lexicon`` (val/test), ``REWORD_SHARE`` of the cases get a reworded condition; ``no_evidence`` topics
    add one abstaining case each. Every row says its ``variant``."""
    cases = treatment_cases(pairs, seed, patients_per_focus)
    if lexicon is not None:
        cases = [reword(c, lexicon, seed) for c in cases]
    cases += no_evidence_cases(no_evidence or [], seed)
    out = []
    for case in progress(cases, "treatment examples (prompts, passages)", unit="examples"):
        first = next(iter(case.answers.values()), [None])[0]
        row = {
            "id": example_id(
                "treatment", case.key, str(case.index), *([case.variant] * (case.variant == "no_evidence"))
            ),
            "kind": "treatment",
            "focus": case.focus,
            "qtype": "treatment",
            "source": first.source if first else "",
            "url": case.sources[0] if case.sources else "",
            "sources": case.sources,
            "record": case.record.model_dump(exclude_none=True),
            "red_flags": case.red_flags,
            "allergy_conflicts": case.allergy_conflicts,
            "duplicates_removed": case.duplicates_removed,
            "messages": treatment_messages(case.record, case.target),
            "variant": case.variant,
        }
        if case.reworded_kind:
            row["reworded_kind"] = case.reworded_kind
        if ground is not None:
            row.update(ground(case, random.Random(f"{seed}-ground-{case.key}-{case.index}")))
        out.append(row)
    return out


def build_examples(
    split: list[QAPair],
    seed: int = 42,
    patients_per_focus: int = 3,
    ground: Callable[[TreatmentCase, random.Random], dict[str, Any]] | None = None,
    lexicon: Any = None,
    no_evidence: list[str] | None = None,
) -> list[dict[str, Any]]:
    rows = [qa_example(p) for p in split] + treatment_examples(
        split, seed, patients_per_focus, ground, lexicon, no_evidence
    )
    return sorted(rows, key=lambda r: r["id"])


def section_fill_rates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per section, the share of treatment targets with at least one item (stats.json, per split): a section the
    sources rarely fill is rarely in a target, and a model trained on them rarely writes it."""
    import json

    from ..common.schemas import parse_any_sections

    treat = [r for r in rows if r["kind"] == "treatment"]
    if not treat:
        return {}
    targets = [parse_any_sections(json.loads(r["messages"][-1]["content"]))[0] for r in treat]
    return {
        name: round(sum(bool(getattr(t, name)) for t in targets) / len(treat), 4) for name in SECTION_NAMES
    }


def patient_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares of the treatment examples' patients with each kind of context (stats.json, per split)."""
    treat = [r for r in rows if r["kind"] == "treatment"]
    if not treat:
        return {"treatment_examples": 0}
    records = [PatientRecord.model_validate(r["record"]) for r in treat]
    n = len(treat)
    share = lambda k: round(k / n, 4)  # noqa: E731
    ages = Counter(
        "under 2"
        if r.age < 2
        else "2-11"
        if r.age < 12
        else "12-17"
        if r.age < 18
        else "18-64"
        if r.age < 65
        else "65+"
        for r in records
    )
    return {
        "treatment_examples": n,
        "foci": len({focus_key(r["focus"]) for r in treat}),
        "share_with_allergies": share(sum(bool(r.allergies) for r in records)),
        "share_with_current_medications": share(sum(bool(r.medications) for r in records)),
        "share_with_comorbidities": share(sum(len(r.conditions) > 1 for r in records)),
        "share_with_abnormal_vitals": share(sum(patients.abnormal(r) for r in records)),
        "share_pregnant": share(sum(bool(r.pregnant) for r in records)),
        "share_with_red_flags": share(sum(bool(r["red_flags"]) for r in treat)),
        "share_with_allergy_conflicts_removed": share(sum(r["allergy_conflicts"] > 0 for r in treat)),
        "share_with_duplicate_medications_removed": share(sum(r["duplicates_removed"] > 0 for r in treat)),
        "sex": dict(sorted(Counter(r.sex for r in records).items())),
        "age": {k: ages[k] for k in ("under 2", "2-11", "12-17", "18-64", "65+")},
        "section_fill_rates": section_fill_rates(treat),
    }
