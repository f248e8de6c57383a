"""Evaluation counts of citations (ALCE-style), by the one support measure of ``medlora.grounding.support``."""

from __future__ import annotations

from collections.abc import Sequence

from ..common.schemas import SECTION_NAMES, UNCITED_SECTIONS, Citations, Sections
from ..data.passages import Passage
from ..grounding.support import supports


def citation_scores(sections: Sections, citations: Citations, passages: Sequence[Passage]) -> dict[str, int]:
    """An item is recalled when its cited passages together support it; a citation is precise when its passage
    alone supports the item. Medications: grounded when a cited passage gives the drug. ``immediate_actions``
    are left out: in targets they are the safety rules' actions, which cite nothing."""
    counts = {
        "items": 0,
        "items_supported": 0,
        "citations": 0,
        "citations_precise": 0,
        "meds": 0,
        "meds_grounded": 0,
    }
    for name in SECTION_NAMES:
        if name in UNCITED_SECTIONS:
            continue
        cites = citations.get(name, [])
        for i, it in enumerate(getattr(sections, name)):
            cited = [passages[n - 1] for n in (cites[i] if i < len(cites) else []) if 1 <= n <= len(passages)]
            counts["items"] += 1
            together = " ".join(p.shown for p in cited)
            ok = bool(cited) and supports(it, together, name)
            counts["items_supported"] += ok
            counts["citations"] += len(cited)
            counts["citations_precise"] += sum(supports(it, p, name) for p in cited)
            if name == "medications":
                counts["meds"] += 1
                counts["meds_grounded"] += ok
    return counts
