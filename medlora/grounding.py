"""Grounding: citations that point at passages, items that the passages support, and nothing else.

- ``support`` is the one deterministic measure of "this passage says this item": the share of the item's
  content words found in the passage (medications: the drug named, by ingredient or class). Training targets
  cite by it (``ground_target``), the evaluation scores citations by it (``citation_scores``).
- ``check_grounding`` runs after generation with the safety rules: a drug an item names must be named in a
  passage that item cites, or be one of the patient's own medications, else the item is removed and reported;
  a dose or frequency must appear in a passage naming that drug, else it is set to null.
- ``ground_target`` turns a sourced target into one that cites the passages of its prompt (the RAFT examples of
  ``medlora/raft.py`` use it).
- ``extractive_target``: the training-target rules applied to retrieved passages, the baseline a fine-tuned
  model must beat.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from .drugs import resolve
from .retrieval import Hit, Passage, words
from .safety import prescribed
from .schemas import (
    MAX_CITATIONS,
    SECTION_NAMES,
    Citations,
    GroundedSections,
    Grounding,
    PatientRecord,
    SectionConfidence,
    Sections,
    UnsupportedItem,
)

SUPPORT_THRESHOLD = 0.6


def item_text(item: Any) -> str:
    """The words an item asserts: a string item, or the string fields of an object item."""
    if isinstance(item, str):
        return item
    data = item.model_dump(exclude={"citations"}) if isinstance(item, BaseModel) else dict(item)
    parts = []
    for v in data.values():
        if isinstance(v, str):
            parts.append(v)
        elif isinstance(v, list):
            parts.extend(x for x in v if isinstance(x, str))
    return " ".join(parts)


# --- drug mentions (medlora/drugs.py, the safety rules' normalisation) ---------------------------------------
# Cached: building training targets asks about the same passages and names thousands of times.
@functools.lru_cache(maxsize=1 << 16)
def _drug_mentions(text: str) -> tuple[Any, ...]:
    from .drugs import find_drugs

    return tuple(find_drugs(text))


@functools.lru_cache(maxsize=1 << 16)
def _word_set(text: str) -> frozenset[str]:
    return frozenset(words(text))


def names_drug(drug: Any, text: str, name: str = "") -> bool:
    """Does ``text`` name the drug (a ``DrugMention``)? Same ingredient; a class also matches a member drug.
    An unresolved name falls back to all of its words appearing in the text."""
    if drug is None:
        want = _word_set(name)
        return bool(want) and want <= _word_set(text)
    for m in _drug_mentions(text):
        if set(drug.ingredients) & set(m.ingredients):
            return True
        if drug.is_class and drug.classes & m.classes:
            return True
    return False


def support(item: Any, passage: Passage | str, section: str = "") -> float:
    """Share of the item's content words the passage holds; a medication counts by its drug being named."""
    text = passage if isinstance(passage, str) else passage.shown
    if section == "medications" and not isinstance(item, str):
        name = item.name if hasattr(item, "name") else item["name"]
        return 1.0 if names_drug(resolve(name), text, name) else 0.0
    want = _word_set(item_text(item))
    if not want:
        return 0.0
    return len(want & _word_set(text)) / len(want)


def supports(item: Any, passage: Passage | str, section: str = "") -> bool:
    return support(item, passage, section) >= SUPPORT_THRESHOLD


# immediate_actions in targets come from the safety rules (MedQuAD has no urgent-care answers), not from
# passages: they stay, uncited, in every target, abstentions included.
UNCITED_SECTIONS = ("immediate_actions",)


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


# --- the check after generation ----------------------------------------------------------------------------
@dataclass
class GroundingResult:
    sections: Sections
    citations: Citations
    grounding: Grounding


def _own_medication(drug: Any, name: str, record: PatientRecord) -> bool:
    for current in record.medications:
        if drug is not None and names_drug(drug, current):
            return True
        if name.strip().lower() == current.strip().lower():
            return True
    return False


def _value_in(value: str, text: str) -> bool:
    norm = lambda s: re.sub(r"\s+", " ", s.lower()).strip()  # noqa: E731
    return norm(value) in norm(text)


def check_grounding(
    record: PatientRecord, sections: Sections, citations: Citations, passages: Sequence[Passage]
) -> GroundingResult:
    """Remove items naming a drug that no passage they cite names (unless the patient already takes it); null a
    dose or frequency that no passage naming the drug states. Citations outside 1..len(passages) are dropped."""
    report = Grounding()
    data: dict[str, list] = {}
    cites_out: Citations = {}
    for name in SECTION_NAMES:
        items, cites = getattr(sections, name), citations.get(name, [])
        kept, kept_cites = [], []
        for i, it in enumerate(items):
            cited = sorted({n for n in (cites[i] if i < len(cites) else []) if 1 <= n <= len(passages)})
            cited_text = " ".join(passages[n - 1].shown for n in cited)
            if name == "medications":
                drugs = [(it.name, resolve(it.name))]
            else:
                # Advice to avoid or stop a drug needs no evidence for that drug (the safety rules' reading).
                drugs = [(m.text, m) for m in prescribed(item_text(it))]
            missing = [
                label for label, d in drugs
                if not names_drug(d, cited_text, label) and not _own_medication(d, label, record)
            ]  # fmt: skip
            if missing:
                report.unsupported.append(
                    UnsupportedItem(
                        section=name,
                        item=item_text(it)[:200],
                        reason=f"{missing[0]} is not named in a cited passage nor a current medication",
                    )
                )
                continue
            if name == "medications":
                naming = [p.shown for p in passages if names_drug(drugs[0][1], p.shown, it.name)]
                for field in ("dosage", "frequency"):
                    value = getattr(it, field)
                    if value and not any(_value_in(value, t) for t in naming):
                        report.nulled.append(f"{it.name} {field}: {value}")
                        it = it.model_copy(update={field: None})
            kept.append(it)
            kept_cites.append(cited)
        data[name] = kept
        cites_out[name] = kept_cites
    return GroundingResult(Sections.model_validate(data), cites_out, report)


def sources_for(citations: Citations, passages: Sequence[Passage]) -> list[str]:
    """URLs of the cited passages, in order of first citation; the model never writes a URL."""
    out: list[str] = []
    for name in SECTION_NAMES:
        for cites in citations.get(name, []):
            for n in cites:
                url = passages[n - 1].url if 1 <= n <= len(passages) else ""
                if url and url not in out:
                    out.append(url)
    return out


def section_confidence(
    citations: Citations, hits: Sequence[Hit], token_probs: dict[str, float | None] | None = None
) -> dict[str, SectionConfidence]:
    """Per section: the mean token probability under the constrained decoder and its cited passages' scores."""
    token_probs = token_probs or {}
    out = {}
    for name in SECTION_NAMES:
        cited = sorted({n for cites in citations.get(name, []) for n in cites if 1 <= n <= len(hits)})
        out[name] = SectionConfidence(
            mean_token_prob=token_probs.get(name),
            retrieval_scores=[round(hits[n - 1].score, 4) for n in cited],
        )
    return out


# --- the extractive baseline and the evaluation measures ----------------------------------------------------
def extractive_target(passages: Sequence[Passage]) -> BaseModel:
    """The rules that build training targets, applied to the retrieved passages, citing them."""
    from collections import defaultdict

    from .medquad import QAPair
    from .treatment_data import treatment_target

    by_qtype: dict[str, list[QAPair]] = defaultdict(list)
    for p in passages:
        by_qtype[p.qtype].append(QAPair(p.question, p.text, p.qtype, p.focus, "", p.url))
    sections = treatment_target(dict(by_qtype))[0] if passages else Sections()
    return ground_target(sections, passages)


def citation_scores(sections: Sections, citations: Citations, passages: Sequence[Passage]) -> dict[str, int]:
    """ALCE-style counts: an item is recalled when its cited passages together support it; a citation is
    precise when its passage alone supports the item. Medications: grounded when a cited passage names them.
    ``immediate_actions`` are left out: in targets they are the safety rules' actions, which cite nothing."""
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


# --- assembling the published Recommendation's grounding fields -----------------------------------------------
def realign(before: Sections, citations: Citations, after: Sections) -> Citations:
    """Citations follow their items through the safety rules (which remove items and insert emergency actions):
    an item of ``after`` keeps the citations of the equal item of ``before``; an inserted one cites nothing."""
    out: Citations = {}
    for name in SECTION_NAMES:
        pool = list(zip(getattr(before, name), citations.get(name, []), strict=False))
        row = []
        for it in getattr(after, name):
            j = next((j for j, (b, _) in enumerate(pool) if b == it), None)
            row.append(pool.pop(j)[1] if j is not None else [])
        out[name] = row
    return out


def grounding_fields(
    citations: Citations,
    hits: Sequence[Hit],
    evidence: str,
    grounding: Grounding | None = None,
    token_probs: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """The Recommendation fields grounding adds: evidence, citations, the passages in the prompt, sources (URLs
    of cited passages), what the check removed, and per-section confidence."""
    from .schemas import PassageRef

    passages = [h.passage for h in hits]
    return {
        "evidence": evidence,
        "citations": citations,
        "passages": [
            PassageRef(
                n=n,
                url=h.passage.url,
                focus=h.passage.focus,
                question=h.passage.question,
                score=round(h.score, 4),
            )
            for n, h in enumerate(hits, 1)
        ],  # fmt: skip
        "sources": sources_for(citations, passages),
        "grounding": grounding or Grounding(),
        "confidence": section_confidence(citations, hits, token_probs) if evidence == "retrieved" else {},
    }


def load_passages_file(path: str) -> list[Hit]:
    """Passages for ``--check``: a JSON list of objects with at least ``text`` (and optionally url, focus,
    question, qtype, score), numbered 1..n in file order. Raises ``ValueError`` with the problem."""
    import json

    with open(path, encoding="utf-8") as fh:
        rows = json.load(fh)
    if not isinstance(rows, list) or not all(
        isinstance(r, dict) and isinstance(r.get("text"), str) for r in rows
    ):
        raise ValueError("expected a JSON list of objects, each with a string 'text'")
    hits = []
    for i, r in enumerate(rows):
        p = Passage(i, r["text"], str(r.get("focus", "")), str(r.get("question", "")), str(r.get("qtype", "")),
                    str(r.get("url", "")), f"file-{i}", "test", 0)  # fmt: skip
        hits.append(Hit(p, float(r.get("score", 0.0)), True))
    return hits
