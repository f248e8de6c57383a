"""What a model writes is published only where a rule can vouch for it (run on every output, passages or not).

- Degenerate text is removed from every section and reported: text about the JSON format or the prompt itself
  ("This is a section of a JSON file..."), repetition (a phrase looping), the same sentence twice in an item,
  an item repeating an earlier one of its section.
- A ``medications`` item is kept only when its name resolves to a drug or drug class (``medlora.clinical.drugs``) or is
  one of the patient's own medications; a dosage or frequency that repeats the name or holds no dose or
  frequency is set to null.
- A ``patient_education`` item needs ``MIN_EDUCATION_WORDS`` distinct content words: a two-word fragment teaches
  nothing, however well grounded.
- ``immediate_actions`` the model wrote are kept only when passages will check them (``medlora.grounding.check``:
  cited and supported); without passages only the safety rules' actions are published.
- ``repetition_loop`` says whether a generation that ran out of tokens was stuck in a loop.

Nothing here adds content; it only removes or nulls, and says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..clinical.drugs import resolve
from ..clinical.record_drugs import RecordDrugs, record_drugs
from ..common.schemas import (
    EMERGENCY_LINE,
    SECTION_NAMES,
    Citations,
    PatientRecord,
    Sections,
    UnsupportedItem,
    item_text,
)
from ..common.text import normalised, split_sentences, tokens, words
from .support import among

# Words about the output format or the conversation, which advice for a patient never needs. Each was checked
# against every MedQuAD answer sentence (docs/grounding.md gives the count): "prompt treatment" and "nasal
# passages" are medicine, "the passages above" is not.
_META = re.compile(
    r"\bjson\b|\bschema\b|\bas an ai\b|\b(?:language|ai) model\b|\bpatient record\b|\bcitations?\b"
    r"|\b(?:the|this|your) prompt\b(?! (?:\w+ment|medical|care|attention|diagnosis|use|evaluation))"
    r"|\b(?:above|following|provided|given|cited|retrieved) passages?\b|\bpassages? (?:above|\d)"
    r"|\bthe passages? (?:says?|states?|shows?|provided|mentions?)\b|\b(?:the|this) (?:output|response|answer|text) (?:above|below)\b"
    r"|\b(?:immediate_actions|patient_education|specialist_referrals|side_effects|follow_up)\b|[{}]|\"\s*:",
    re.I,
)
# A patient_education item is a sentence that teaches something. A fragment of two content words ("Strep
# throat.", "Mononucleosis smoking.", both grounded word for word in the run-5 model's output) passes every other
# rule and teaches nothing; 25 of 6,493 target items (0.4%, mostly "Treatment is symptomatic.") are that short.
MIN_EDUCATION_WORDS = 3
_NUMBER = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|half|single|double)\b", re.I
)  # fmt: skip
_FREQUENCY = re.compile(
    r"\b(?:daily|once|twice|thrice|times?|every|each|hourly|nightly|weekly|monthly|yearly|annually|"
    r"per (?:day|week|month|year)|a (?:day|week|month|year)|bid|tid|qid|qd|qhs|qam|qpm|prn|q\d+h|as needed|"
    r"when needed|at (?:bedtime|night)|(?:in the )?(?:morning|evening)s?|(?:before|after|with) (?:meals|food|"
    r"breakfast|lunch|dinner|exercise|bedtime)|continuous(?:ly)?|weekdays|days?)\b",
    re.I,
)


def _loops(toks: list[str]) -> bool:
    """A phrase said back to back (one word 4 times, 2-8 words 3 times, 9-30 words twice), or a long text that
    keeps to a few words (under 30% distinct among 30 or more)."""
    for n in range(1, 31):
        need = 4 if n == 1 else 3 if n <= 8 else 2
        for i in range(len(toks) - n * need + 1):
            if all(toks[i + k * n : i + (k + 1) * n] == toks[i : i + n] for k in range(1, need)):
                return True
    return len(toks) >= 30 and len(set(toks)) < 0.3 * len(toks)


def degenerate(text: str) -> str | None:
    """Why ``text`` is not advice a person wrote (a reason), or None."""
    if _META.search(text):
        return "degenerate: text about the JSON format or the prompt, not advice"
    if _loops(tokens(text)):
        return "degenerate: repetition"
    said = [n for s in split_sentences(text) if (n := normalised(s))]
    if len(said) != len(set(said)):
        return "degenerate: the same sentence more than once"
    return None


_JSON_NOISE = re.compile(r'"[a-z_]+"\s*:|\[[\d,\s]*\]|\bnull\b|\btrue\b|\bfalse\b')


def repetition_loop(generated: str) -> bool:
    """Did a generation end in a loop? Its last 600 characters, keys and citations aside, repeat a phrase."""
    return _loops(tokens(_JSON_NOISE.sub(" ", generated[-600:])))


def has_dose(value: str) -> bool:
    return bool(_NUMBER.search(value))


def has_frequency(value: str) -> bool:
    return bool(_FREQUENCY.search(value))


def own_medication(name: str, record: PatientRecord, drugs: RecordDrugs | None = None) -> bool:
    """Is ``name`` one of the patient's medications (same drug, or the same words as written)? ``drugs``: the
    record's lines read once (``RecordDrugs.of(record)``), else read here."""
    drugs = record_drugs(record, drugs)
    drug, said = resolve(name), f" {normalised(name)} "
    for mentions, c in zip(drugs.mentions, drugs.normalised, strict=True):
        if drug is not None and among(drug, mentions):
            return True
        if c and f" {c} " in said:
            return True
    return False


@dataclass
class Publishable:
    sections: Sections
    citations: Citations
    removed: list[UnsupportedItem] = field(default_factory=list)
    nulled: list[str] = field(default_factory=list)
    edited: set[str] = field(default_factory=set)  # sections whose items were removed or changed


def _medication(it, record: PatientRecord, out: Publishable, checked: bool, drugs: RecordDrugs):
    """The medication to publish (fields nulled where they hold nothing), or a reason to remove it. Without
    passages (``checked`` False) nothing can vouch for a dose or frequency but the patient's own list."""
    if why := degenerate(it.name):
        return why
    if resolve(it.name) is None and not own_medication(it.name, record, drugs):
        return (
            f"{it.name!r} is not a drug or drug class the drug normalisation knows, nor a current medication"
        )
    update: dict = {}
    for name, ok in (("dosage", has_dose), ("frequency", has_frequency)):
        value = getattr(it, name)
        if value is None:
            continue
        if normalised(value) == normalised(it.name) or not ok(value) or degenerate(value):
            update[name] = None
            out.nulled.append(f"{it.name} {name}: {value} (holds no {name.replace('dosage', 'dose')})")
        elif not checked and not _in_own_list(value, record, drugs):
            update[name] = None
            out.nulled.append(
                f"{it.name} {name}: {value} (no passage to vouch for it, nor the patient's list)"
            )
    kept, seen = [], set()
    for s in it.side_effects:
        if why := degenerate(s) or ("repeats an earlier side effect" if normalised(s) in seen else None):
            out.nulled.append(f"{it.name} side effect: {s[:80]} ({why})")
        else:
            kept.append(s)
            seen.add(normalised(s))
    if len(kept) != len(it.side_effects):
        update["side_effects"] = kept
    return it.model_copy(update=update) if update else it


def _in_own_list(value: str, record: PatientRecord, drugs: RecordDrugs | None = None) -> bool:
    """Whether ``value`` appears, as whole words, in one of the patient's own medication entries."""
    v = normalised(value)
    return bool(v) and any(
        re.search(rf"(?<!\w){re.escape(v)}(?!\w)", m) for m in record_drugs(record, drugs).normalised
    )


def publishable(
    record: PatientRecord,
    sections: Sections,
    citations: Citations,
    checked: bool,
    drugs: RecordDrugs | None = None,
) -> Publishable:
    """The rules above over ``sections`` (citations, per item, follow their items). ``checked``: passages will
    check the items next, so model-written immediate actions may stay for that check to decide. ``drugs``: the
    record's medication lines read once (``RecordDrugs.of(record)``), else read here."""
    drugs = record_drugs(record, drugs)
    out = Publishable(sections, {})
    data: dict[str, list] = {}
    for name in SECTION_NAMES:
        items, cites = getattr(sections, name), citations.get(name, [])
        kept, kept_cites, seen = [], [], set()
        for i, it in enumerate(items):
            text = item_text(it)
            if name == "immediate_actions" and EMERGENCY_LINE.match(text):
                why = None  # the safety rules drop it and decide the emergency themselves
            elif name == "medications":
                result = _medication(it, record, out, checked, drugs)
                why, it = (result, it) if isinstance(result, str) else (None, result)
            else:
                fields = (
                    [text]
                    if isinstance(it, str)
                    else [v for v in it.model_dump().values() if isinstance(v, str)]
                )
                why = next((w for f in fields if (w := degenerate(f))), None)
                if (
                    why is None
                    and name == "patient_education"
                    and len(set(words(text))) < MIN_EDUCATION_WORDS
                ):
                    why = f"too short to teach anything: fewer than {MIN_EDUCATION_WORDS} content words"
            if why is None and normalised(text) in seen:
                why = "degenerate: repeats an earlier item of this section"
            if why is None and name == "immediate_actions" and not checked and not EMERGENCY_LINE.match(text):
                why = "an urgent action needs a cited passage that supports it, and none was given"
            if why is not None:
                label = it.name if name == "medications" else text  # a medication is reported by its name
                out.removed.append(UnsupportedItem(section=name, item=label[:200], reason=why))
                out.edited.add(name)
                continue
            if it is not items[i]:
                out.edited.add(name)
            seen.add(normalised(text))
            kept.append(it)
            kept_cites.append(cites[i] if i < len(cites) else [])
        data[name] = kept
        out.citations[name] = kept_cites
    out.sections = Sections.model_validate(data)
    return out
