"""Doses read from a recommendation's own text, for the rules whose threshold is a dose.

``daily_grams("acetaminophen 1 g q6h")`` is 4: the most the text says is taken in a day (an explicit daily
maximum wins; else one dose times the doses a day its frequency allows, the shortest interval of a range
"q4-6h"). ``low_dose_aspirin`` is aspirin at 75-100 mg or written "low-dose"/"baby aspirin": the FDA 2020
NSAID-in-pregnancy limit and the NSAID kidney rules do not apply to it.
"""

from __future__ import annotations

import re

from .drugs import DrugMention

_LOW_DOSE_ASPIRIN = re.compile(r"\b(?:81|75|100)\s*mg\b|\blow[- ]dose\b|\bbaby aspirin\b|\bldasa?\b", re.I)


def low_dose_aspirin(drug: DrugMention, text: str) -> bool:
    return drug.ingredients == ("aspirin",) and bool(_LOW_DOSE_ASPIRIN.search(text))


_GRAMS = re.compile(r"(\d+(?:[.,]\d+)?)\s*(mg|g|gm|grams?)\b", re.I)
_MAX_DAY = re.compile(
    r"(?:max(?:imum)?|up to|no more than|not (?:to )?exceed|≤|<=)\s*(\d+(?:[.,]\d+)?)\s*(mg|g|gm|grams?)\s*"
    r"(?:/|per|a|in|each)\s*(?:day|24\s*h)|(\d+(?:[.,]\d+)?)\s*(mg|g|gm|grams?)\s*(?:/|per|a)\s*(?:day|24\s*h)",
    re.I,
)
_PER_DAY = (
    (re.compile(r"\bq\.?\s*(\d{1,2})\s*(?:-\s*\d{1,2}\s*)?h", re.I), None),
    (re.compile(r"every (\d{1,2})\s*(?:(?:-|to)\s*\d{1,2}\s*)?hours?", re.I), None),
    (re.compile(r"\b(?:qid|q\.i\.d\.?|four times (?:a|per|daily))", re.I), 4),
    (re.compile(r"\b(?:tid|t\.i\.d\.?|three times (?:a|per|daily))", re.I), 3),
    (re.compile(r"\b(?:bid|b\.i\.d\.?|twice (?:a|per|daily))", re.I), 2),
    (re.compile(r"\b(?:daily|once (?:a |per )?day|qd|q\.d\.?|od|nightly|qhs|at bedtime)\b", re.I), 1),
)


def daily_grams(text: str) -> float | None:
    """The most a text says is taken in a day ("1 g q6h" 4, "650 mg TID" 1.95, "max 2 g/day" 2), or None."""
    m = _MAX_DAY.search(text)
    if m:
        n, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        return float(n.replace(",", ".")) / (1000 if unit.lower() == "mg" else 1)
    dose = _GRAMS.search(text)
    if not dose:
        return None
    grams = float(dose.group(1).replace(",", ".")) / (1000 if dose.group(2).lower() == "mg" else 1)
    for pattern, times in _PER_DAY:
        if f := pattern.search(text):
            return grams * (times if times is not None else 24 / max(1, int(f.group(1))))
    return None
