"""Which passages concern what a recommendation is for: the primary condition or the presenting complaint.

The prompt names the primary condition (``PatientRecord.primary``) and tells the model to ignore passages about
other conditions, yet retrieval brings the comorbidities' passages too (round-robin), and a prompt can hold
passages that only look related (RAFT's distractors: laryngeal cancer for a sore throat). An instruction in a
prompt is not a rule; ``concerns`` is that instruction as code, for the grounding check
(``medlora.grounding.check``): an item is published only when a passage that concerns the primary condition or
the complaint vouches for it.

A passage concerns them when retrieval keeps it as evidence for them (the primary condition's hits, searched by
meaning where the lexical search finds none, and the complaint's), or when the evidence rule's ``is_about`` finds
it about one of their names (a focus, synonym, abbreviation or lay name the lexicon gives).

When no condition of the record is recognised, retrieval reads the notes (``retrieve_for_record``): the
conditions the notes name (not a relative's) then count as what the recommendation is for, and what the note read
as a question found does not. No judgement (``None``) only without an index.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..data.passages import Passage
from .index import BM25Index, condition_hits, is_about, note_conditions, recognised

DEPTH = 20


def concerns(
    index: BM25Index | None,
    record: Any,
    passages: Sequence[Passage],
    splits: Iterable[str] | None = None,
    depth: int = DEPTH,
) -> list[bool] | None:
    """Per passage, whether it concerns the record's primary condition or presenting complaint (or, when no
    condition is recognised, a condition its notes name); ``None`` without an index or passages."""
    from .hybrid import complaint, condition_fallback
    from .hybrid import search as hybrid_search

    if index is None or not passages:
        return None
    splits = tuple(splits) if splits is not None else None
    subjects = [record.conditions[0]] if record.conditions else []
    if record.conditions and not any(recognised(index, c) for c in record.conditions):
        # Retrieval read the notes: the conditions they name stand for the unrecognised one. What the note read
        # as a question found ("symptoms worse at night": lymphoma, narcolepsy) concerns nothing of the patient.
        subjects += note_conditions(index, record.notes or "", record.conditions)
    lists = [
        condition_fallback(index, c, condition_hits(index, c, splits, depth), splits, depth) for c in subjects
    ]
    if record.symptoms:
        subjects += list(record.symptoms)
        if index.dense is not None:
            lists.append(hybrid_search(index, complaint(record.symptoms), depth, splits))
        lists += [index.search(s, depth, splits, require=[s]) for s in record.symptoms]
    kept = {h.passage.pid for hits in lists for h in hits if h.relevant}
    names = [n for s in subjects for n in (s, *index.lookup(s).names) if n]
    foci = [f for s in subjects for f in index.match_foci(s)]
    return [p.pid in kept or is_about(p, names, foci) for p in passages]


def mark_concerns(items: list[dict[str, Any]], rows: Sequence[dict[str, Any]], index: BM25Index) -> None:
    """Add ``concerned`` to each item of ``medlora.data.decisions.decision_margins`` (of the treatment ``rows``):
    True when some prompt passage concerns the row's primary condition or complaint, False when none does (the
    grounding check then removes whatever is written), None when that cannot be judged."""
    from ..common.schemas import PatientRecord

    by_id = {r["id"]: r for r in rows}
    for it in items:
        row = by_id[it["id"]]
        record = PatientRecord.model_validate(row["record"]) if "record" in row else None
        passages = [index.passages[i] for i in row.get("passages", [])]
        judged = None if record is None else concerns(index, record, passages)
        it["concerned"] = None if judged is None else any(judged)
