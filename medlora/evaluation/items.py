"""A test row read once: the evaluation's item.

Every row of ``medlora.evaluation.rows`` (no-model, base, fine-tuned, each GGUF) and every scorer
(``evaluation.treatment``, ``evaluation.grounding``) reads the same things from a treatment row: its
validated ``PatientRecord``, its prompt passages, its parsed target, its input variant, the record's safety
facts, which of its passages concern the primary condition or the complaint (what the grounding check is given at
inference), and its distractor-only copy (passages about other foci, found by BM25). ``build_items`` reads them
once per row; the scorers take items (a plain row still works: ``as_items`` reads it on the spot).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..common.schemas import (
    SECTION_NAMES,
    UNCITED_SECTIONS,
    Citations,
    PatientRecord,
    Sections,
    parse_any_sections,
)
from ..data.passages import Passage
from ..retrieval.index import BM25Index, condition_query
from ..safety.rules import SafetyFacts

CONTENT_SECTIONS = tuple(s for s in SECTION_NAMES if s not in UNCITED_SECTIONS)
DISTRACTORS_K = 4


def has_content(sections: Sections) -> bool:
    """Anything beyond the safety rules' actions (which every target carries, abstentions included); its
    negation is "every cited section empty", what abstention means."""
    return any(getattr(sections, s) for s in CONTENT_SECTIONS)


def parse_target(row: Mapping[str, Any]) -> tuple[Sections, Citations]:
    """The row's target (the assistant message) as ``Sections`` and its citations."""
    return parse_any_sections(json.loads(row["messages"][-1]["content"]))


def variant_of(row: Mapping[str, Any]) -> str:
    """The test row's kind of input (issue 17): "exact", "reworded" or "no_evidence"; absent means "exact"."""
    return str(row.get("variant") or "exact")


def record_of(row: Mapping[str, Any]) -> PatientRecord | None:
    """The row's patient record; rows written before records were stored hold it as JSON after
    "Patient record: " in the prompt; a row with neither (a grounding-only fixture) has none."""
    if "record" in row:
        return PatientRecord.model_validate(row["record"])
    if "messages" not in row:
        return None
    user = row["messages"][1]["content"]
    return PatientRecord.model_validate(json.loads(user.split("\n", 1)[0].removeprefix("Patient record: ")))


@dataclass(frozen=True, eq=False)
class EvalItem:
    """One test row as every row and scorer reads it."""

    row: Mapping[str, Any]  # the test row as stored (id, focus, messages)
    passages: tuple[Passage, ...]  # the prompt passages (the distractors, for a distractor copy)
    record: PatientRecord | None
    target: Sections | None
    target_citations: Citations
    variant: str
    abstain: bool  # the right output abstains (no evidence in the passages)
    has_flag: bool  # the row lists red flags for its record
    facts: SafetyFacts | None  # the record's drugs, allergies and red flags (``apply_safety``'s input)
    distractors: EvalItem | None = None  # the same item with passages about other foci only
    # Per passage, whether it concerns the primary condition or the complaint (``medlora.retrieval.subject``):
    # what inference gives the grounding check; None where that cannot be judged (no index).
    concerns: tuple[bool, ...] | None = None

    @property
    def evidence(self) -> bool:
        """Whether the passages support some target item (a row without a stored target: whether its passages
        are about its focus)."""
        return has_content(self.target) if self.target is not None else not self.abstain

    @property
    def prompt(self) -> list[dict[str, str]]:
        return self.row["messages"][:-1]


def read_item(row: Mapping[str, Any], passages: Sequence[Passage] = ()) -> EvalItem:
    """``row`` read once, with its prompt passages (``row["passages"]`` resolved by the caller)."""
    target, cites = parse_target(row) if "messages" in row else (None, {})
    record = record_of(row)
    return EvalItem(
        row=row,
        passages=tuple(passages),
        record=record,
        target=target,
        target_citations=cites,
        variant=variant_of(row),
        abstain=bool(row.get("abstain")),
        has_flag=bool(row.get("red_flags")),
        facts=SafetyFacts.of(record) if record is not None else None,
    )


def row_passages(row: Mapping[str, Any], index: BM25Index) -> list[Passage]:
    return [index.passages[i] for i in row.get("passages", [])]


def distractor_passages(focus: str, index: BM25Index, k: int = DISTRACTORS_K) -> list[Passage]:
    """The condition query's best BM25 hits about other foci: RAFT's distractor-only case."""
    return [h.passage for h in index.search(condition_query(focus), k, exclude_focus=focus)]


# ``medlora.retrieval.subject.concerns``: given by the caller (evaluate_model.py), so that this module, which every
# scorer imports, stays one import above the index.
Judge = Callable[[BM25Index, PatientRecord, Sequence[Passage]], "list[bool] | None"]


def with_concerns(item: EvalItem, index: BM25Index, judge: Judge | None) -> EvalItem:
    """The item with ``concerns`` judged for its passages by ``judge``, as inference judges them."""
    if judge is None or item.concerns is not None or item.record is None:
        return item
    judged = judge(index, item.record, item.passages)
    return replace(item, concerns=tuple(judged)) if judged is not None else item


def with_distractors(
    item: EvalItem, index: BM25Index, k: int = DISTRACTORS_K, judge: Judge | None = None
) -> EvalItem:
    """The item with its distractor-only copy attached (found once; an item that has one keeps it)."""
    if item.distractors is not None:
        return item
    passages = tuple(distractor_passages(item.row["focus"], index, k))
    copy = replace(item, passages=passages, abstain=True, concerns=None)
    return replace(item, distractors=with_concerns(copy, index, judge))


def build_items(
    rows: Sequence[Mapping[str, Any]], index: BM25Index, distractors: bool = True, judge: Judge | None = None
) -> list[EvalItem]:
    """Every row read once, with its passages, (``judge``) what they concern and (``distractors``) its
    distractor-only copy."""
    items = [with_concerns(read_item(r, row_passages(r, index)), index, judge) for r in rows]
    return [with_distractors(it, index, judge=judge) for it in items] if distractors else items


def as_items(rows: Sequence[Any], index: BM25Index | None = None) -> list[EvalItem]:
    """Items as they are; plain rows read now (passages from ``index``, none without one; what the passages
    concern is judged by ``build_items`` only)."""
    return [
        r if isinstance(r, EvalItem) else read_item(r, row_passages(r, index) if index is not None else ())
        for r in rows
    ]


def distractor_items(items: Sequence[EvalItem], index: BM25Index) -> list[EvalItem]:
    """Each item's distractor-only copy (found now for an item built without one)."""
    return [with_distractors(it, index).distractors for it in items]  # type: ignore[misc]
