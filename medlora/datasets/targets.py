"""Training targets that cite their prompt's passages, and the same rules as a no-model baseline.

- ``ground_target`` turns a sourced target into one that cites the passages supporting each item
  (``medlora.grounding.support``); the RAFT examples of ``medlora/datasets/raft.py`` use it.
- ``extractive_target``: the training-target rules applied to retrieved passages, the baseline a fine-tuned
  model must beat.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel

from ..common.schemas import MAX_CITATIONS, SECTION_NAMES, UNCITED_SECTIONS, GroundedSections, Sections
from ..data.medquad import QAPair
from ..data.passages import Passage
from ..grounding.support import SUPPORT_THRESHOLD, support
from .treatment import treatment_target


def ground_target(sections: Sections, passages: Sequence[Passage]) -> BaseModel:
    """A training target citing the passages that support each item (best first); unsupported items are dropped,
    so a target never asks the model to say what its prompt does not hold. No passages: only the safety
    actions remain (the abstention)."""
    data: dict[str, list] = {}
    for name in SECTION_NAMES:
        kept = []
        for it in getattr(sections, name):
            scored = [(support(it, p, name), n) for n, p in enumerate(passages, 1)]
            cites = [n for s, n in sorted(scored, key=lambda x: (-x[0], x[1])) if s >= SUPPORT_THRESHOLD]
            if name in UNCITED_SECTIONS and isinstance(it, str):
                kept.append({"citations": [], "text": it})
            elif cites:
                body = {"text": it} if isinstance(it, str) else it.model_dump()
                kept.append({"citations": sorted(cites[:MAX_CITATIONS]), **body})
        data[name] = kept
    return GroundedSections.model_validate(data)


def extractive_target(passages: Sequence[Passage]) -> BaseModel:
    """The rules that build training targets, applied to the retrieved passages, citing them."""
    by_qtype: dict[str, list[QAPair]] = defaultdict(list)
    for p in passages:
        by_qtype[p.qtype].append(QAPair(p.question, p.text, p.qtype, p.focus, "", p.url))
    sections = treatment_target(dict(by_qtype))[0] if passages else Sections()
    return ground_target(sections, passages)
