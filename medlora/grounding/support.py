"""Does a passage support an item? The one deterministic answer, shared by the training targets
(``grounded_targets``), the check after generation (``grounding``) and the evaluation (``citation_counts``).

- A medication (or any drug an item prescribes) is supported by a passage sentence that names it (same
  ingredient; a class also matches a member drug) and does not forbid or warn against it: a sentence the
  training-target rules read as "not a treatment" (``treatment_data.not_a_treatment``: "should not", "never",
  "avoid", "side effects", "interacts" ...) never supports prescribing the drugs it names.
- A dose or frequency is stated when its tokens appear, whole and in order, in such a sentence: "5 mg" is not
  in "25 mg".
- Any other item is supported by the share of its content words the passage holds (``SUPPORT_THRESHOLD``).
- What an item claims about drugs (``drug_claims``: prescribes, only describes, or forbids) and whether it
  reverses the passage clause it repeats (``reverses``) are read clause by clause.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from ..clinical.claims import not_a_treatment, prescribed
from ..clinical.drugs import DrugMention, find_drugs, resolve
from ..common.schemas import item_text
from ..common.text import TOKEN, split_sentences, tokens, words
from ..data.passages import Passage

SUPPORT_THRESHOLD = 0.6


# Cached: building training targets asks about the same passages and names thousands of times.
@functools.lru_cache(maxsize=1 << 16)
def _word_set(text: str) -> frozenset[str]:
    return frozenset(words(text))


@functools.lru_cache(maxsize=1 << 16)
def giving_sentences(text: str) -> tuple[tuple[str, tuple[DrugMention, ...]], ...]:
    """The sentences of ``text`` that may give a drug, each with the drugs it names; prohibitions and
    warnings are left out."""
    return tuple(
        (s, tuple(find_drugs(s))) for s in split_sentences(text) if not not_a_treatment(s)
    )  # fmt: skip


def _same_drug(drug: DrugMention, m: DrugMention) -> bool:
    return bool(set(drug.ingredients) & set(m.ingredients)) or (
        drug.is_class and bool(drug.classes & m.classes)
    )


def names_drug(drug: DrugMention | None, text: str, name: str = "") -> bool:
    """Does ``text`` name the drug anywhere (prohibitions included)? For the patient's own medication list.
    An unresolved name falls back to all of its words appearing in the text."""
    if drug is None:
        want = _word_set(name)
        return bool(want) and want <= _word_set(text)
    return among(drug, find_drugs(text))


def among(drug: DrugMention, mentions: Sequence[DrugMention]) -> bool:
    """Is ``drug`` one of ``mentions`` (a text's ``find_drugs``, read once: ``RecordDrugs.mentions``)?"""
    return any(_same_drug(drug, m) for m in mentions)


def giving(drug: DrugMention | None, text: str) -> list[str]:
    """The sentences of ``text`` that name the drug and do not forbid or warn against it."""
    if drug is None:
        return []
    return [s for s, mentions in giving_sentences(text) if any(_same_drug(drug, m) for m in mentions)]


def _found(value: str, sentence: str) -> list[tuple[int, int]]:
    """Character spans where ``sentence`` holds ``value``'s tokens whole and in order."""
    want = tokens(value)
    have = list(TOKEN.finditer(sentence.lower()))
    n = len(want)
    return [
        (have[i].start(), have[i + n - 1].end())
        for i in range(len(have) - n + 1)
        if n and [m.group() for m in have[i : i + n]] == want
    ]


def states(value: str, sentence: str, drug: DrugMention | None = None) -> bool:
    """Does ``sentence`` hold ``value``'s tokens whole and in order? Given a ``drug``, the nearest drug the
    sentence names must be that one: in "colchicine 0.5 mg and allopurinol 100 mg", "100 mg" is allopurinol's."""
    spans = _found(value, sentence)
    if drug is None or not spans:
        return bool(spans)
    mentions = find_drugs(sentence)
    if not mentions:
        return True
    for a, b in spans:
        gaps = [(max(m.start - b, a - m.end, 0), m) for m in mentions]
        nearest = min(g for g, _ in gaps)  # a tie ("... or 1 mg of colchicine") may go either way
        if any(g == nearest and _same_drug(drug, m) for g, m in gaps):
            return True
    return False


def _passage_text(passage: Passage | str) -> str:
    return passage if isinstance(passage, str) else passage.shown


def support(item: Any, passage: Passage | str, section: str = "") -> float:
    """Share of the item's content words the passage holds; a medication counts (1.0) when a sentence of the
    passage gives its drug."""
    text = _passage_text(passage)
    if section == "medications" and not isinstance(item, str):
        name = item.name if hasattr(item, "name") else item["name"]
        # A name that resolves to no drug is supported by nothing: "Family History" is not a medication.
        return 1.0 if giving(resolve(name), text) else 0.0
    want = _word_set(item_text(item))
    if not want:
        return 0.0
    return len(want & _word_set(text)) / len(want)


def supports(item: Any, passage: Passage | str, section: str = "") -> bool:
    return support(item, passage, section) >= SUPPORT_THRESHOLD


# Words that turn advice into its opposite: "Exercise during an attack" shares every content word with "Avoid
# exercise during an attack".
_NEGATING = re.compile(
    r"\b(?:avoid\w*|do not|don't|never|should not|shouldn't|must not|not recommended|contraindicated)\b", re.I
)
# A clause ends at punctuation or a contrast, not at the dots of "i.e." or "e.g." nor inside a number.
_CLAUSE_END = re.compile(r"[;:,!?]|(?<![\s.(][a-z])\.(?!\d)|\b(?:but|while|whereas|although)\b", re.I)


def _clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE_END.split(text) if c and c.strip()]


def drug_claims(text: str) -> list[tuple[DrugMention, bool]]:
    """The drugs a free text names without forbidding them, each with whether it prescribes it. The safety rules'
    reading drops drugs after "avoid", "stop", "instead of" ...; a drug whose clause forbids it ("Aspirin should
    never be given") is dropped too; one whose clause only describes it ("deficiency of vitamin B12", "may
    interact with warfarin": the training-target rule ``not_a_treatment``) is named, not prescribed."""
    out = []
    for m in prescribed(text):
        start = max((c.end() for c in _CLAUSE_END.finditer(text, 0, m.start)), default=0)
        after = _CLAUSE_END.search(text, m.end)
        clause = text[start : after.start() if after else len(text)]
        if not _NEGATING.search(clause):
            out.append((m, not not_a_treatment(clause)))
    return out


def reverses(item: Any, passages: list[str]) -> str | None:
    """The cited clause that a clause of the item mostly repeats with the opposite polarity (exactly one of the
    two forbids or warns), or None."""
    cited = [c for t in passages for c in _clauses(t)]
    for clause in _clauses(item_text(item)):
        want = _word_set(clause) - _word_set(" ".join(_NEGATING.findall(clause)))
        if not want or not cited:
            continue
        best = max(cited, key=lambda c: len(want & _word_set(c)))
        close = len(want & _word_set(best)) >= SUPPORT_THRESHOLD * len(want)
        if close and bool(_NEGATING.search(clause)) != bool(_NEGATING.search(best)):
            return best.strip()
    return None
