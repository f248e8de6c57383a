"""Does a sentence give a drug, forbid it, or only mention it? Read the same way by the training targets, the
grounding check and the safety rules, so a drug that one of them reads as prescribed, all of them do.
"""

from __future__ import annotations

import re

from .drugs import DrugMention, find_drugs, resolve

_NOT_A_TREATMENT = re.compile(
    r"\b(avoid\w*|should not|do not|don't|never|not recommended|contraindicated|caus\w+|induced|side effects?|"
    r"interact\w*|levels? of|deficien\w*|neurotransmitters?|toxicity|overdose|allerg\w*|rather than|"
    r"instead of|without success|resistan\w*|not effective|ineffective)\b",
    re.I,
)


def not_a_treatment(sentence: str) -> bool:
    """Does the sentence forbid, warn against or only mention a drug (harms, interactions, levels) rather than
    give it? Such a sentence never yields a target medication, nor supports one (medlora/grounding/support.py)."""
    return bool(_NOT_A_TREATMENT.search(sentence))


# "Avoid ibuprofen", "do not take aspirin", "instead of codeine": the drug is being ruled out, not prescribed;
# a later "take" starts a prescription again ("avoid heavy lifting and take ibuprofen").
_AVOIDED = re.compile(
    r"\b(?:avoid(?:ing)?|do not (?:take|use|give|start|prescribe)|don't (?:take|use|give|start)|never (?:take|use|"
    r"give)|not (?:to )?(?:take|use|be given)|stop(?:ping)?|discontinu\w*|hold(?:ing)?|withh[oe]ld\w*|"
    r"instead of|rather than|in place of|allergic to|allergy to|allergies to|reaction to|reacted to|anaphylaxis to|"
    r"intoleran\w* (?:of|to)|sensitive to|contraindicated|without|alternatives? to|other than|substitutes? for|"
    r"stay away from|steer clear of|keep away from|should not (?:take|use|be given)|shouldn'?t (?:take|use)|must not "
    r"(?:take|use)|no more|not safe)\b(?:\s+(?:taking|using|giving|starting|any|the|all))*(?:(?!\b(?:take|taking|use|using|start|starting|give|try|begin|prescribe|switch to|then)\b)[^.;:]){0,80}$",
    re.I,
)
# "your NSAID allergy", "ibuprofen is contraindicated", "aspirin should be avoided": named to be ruled out.
_AVOIDED_AFTER = re.compile(
    r"^[\s,]*(?:(?:\w+\s+){0,2}(?:allerg\w*|intoleran\w*|sensitivity|hypersensitivity|reaction|rxn)\b|(?:is|are|"
    r"was|were|should be|must be|has been|have been)\s+(?:\w+\s+)?(?:avoided|contraindicated|not recommended|not safe|"
    r"unsafe|stopped|discontinued|held)\b|-?\s*free\b)",
    re.I,
)


def prescribed(text: str) -> list[DrugMention]:
    """Drugs a free-text item recommends: "avoid NSAIDs" or "stop aspirin" names a drug without prescribing it."""
    return prescribed_in_field(text, "")


def prescribed_in_field(text: str, field_name: str) -> list[DrugMention]:
    """The drugs a text recommends: every mention except those it says to avoid; a medication name is whole."""
    if field_name == "name":
        found = resolve(text)
        return [found] if found is not None else []
    return [
        m for m in find_drugs(text)
        if not _AVOIDED.search(text[: m.start]) and not _AVOIDED_AFTER.match(text[m.end :])
    ]  # fmt: skip
