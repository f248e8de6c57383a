"""The check after generation: what a model wrote is published only where the passages it cites vouch for it.

``check_output`` is the one path every output takes (``Recommender`` and ``inference.py --check``):
``medlora.grounding.publishable`` first (degenerate text, names that are no drug, empty dose fields, urgent actions with
no evidence), then, given the passages that were in the prompt, ``check_grounding``:

- every item cites at least one passage in the prompt (a medication the patient already takes excepted: the
  record vouches for it) and, where retrieval can tell (``medlora.retrieval.subject``), one that concerns the
  primary condition or the presenting complaint: the prompt says to ignore passages about other conditions, and
  here that is a rule; only such passages vouch for the item and stay among its citations;
- a non-medication item's cited passages together hold most of its content words
  (``medlora.grounding.support``), and no clause of it says the opposite of the cited clause it repeats;
- every drug any field of any item names is vouched for: one it prescribes ("switch to oxycodone" in
  ``side_effects``) by a cited sentence giving it (a sentence forbidding or warning against it does not count),
  one it only describes by a cited passage naming it, one it forbids by nothing; a current medication always;
  otherwise the item is removed (a medication's name, a free-text item), the side effect dropped, or the dose
  field nulled, and reported;
- a medication's dose or frequency appears, as whole tokens, in a cited sentence giving the drug (or in the
  patient's own line for it), else null.

docs/grounding.md says exactly what this guarantees and what it does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..clinical.drugs import resolve
from ..clinical.record_drugs import RecordDrugs, record_drugs
from ..common.schemas import (
    EMERGENCY_LINE,
    SECTION_NAMES,
    Citations,
    Grounding,
    PatientRecord,
    SectionConfidence,
    Sections,
    UnsupportedItem,
    item_fields,
    item_text,
)
from ..data.passages import Passage
from ..retrieval.hits import Hit
from .publishable import own_medication, publishable
from .support import (
    SUPPORT_THRESHOLD,
    among,
    drug_claims,
    giving,
    names_drug,
    reverses,
    states,
    support,
)


@dataclass
class GroundingResult:
    sections: Sections
    citations: Citations
    grounding: Grounding
    edited: set[str] = field(default_factory=set)  # sections whose items were removed or changed


def _drugs(section: str, field_name: str, text: str) -> list[tuple[str, Any, bool]]:
    """(as written, mention, prescribed) of each drug a field names without forbidding it; a medication's name
    is one drug, whole and prescribed. Advice to avoid or never give a drug needs no evidence for that drug."""
    if section == "medications" and field_name == "name":
        return [(text, resolve(text), True)]
    return [(m.text, m, given) for m, given in drug_claims(text)]


def _own_lines(drug: Any, drugs: RecordDrugs) -> list[str]:
    return [
        c for c, m in zip(drugs.lines, drugs.mentions, strict=True) if drug is not None and among(drug, m)
    ]


class Removal(str):
    """Why an item is removed (a plain ``str`` is a text item to publish)."""


OTHER_CONDITIONS = (
    "its cited passages are about other conditions: the recommendation is for the primary condition "
    "and the presenting complaint"
)


def _check_item(
    section: str, it: Any, cited: list[Passage], record: PatientRecord, report: Grounding, drugs: RecordDrugs
):
    """The item to publish (fields nulled or dropped where unsupported), or the ``Removal`` saying why not."""
    texts = [p.shown for p in cited]
    own = section == "medications" and own_medication(it.name, record, drugs)
    if not cited and not own:  # the patient's own medication: the record vouches for it
        return Removal("cites no passage in the prompt")
    label = it.name if section == "medications" else item_text(it)[:60]
    update: dict[str, Any] = {}
    dropped: list[str] = []
    for field_name, text in item_fields(it):
        if field_name != "name" and any(states(text, t) for t in texts):
            continue  # a cited passage says it word for word: it names its drugs as the source does
        for written, drug, prescribed in _drugs(section, field_name, text):
            # Prescribing needs a cited sentence giving the drug; describing it, a cited passage naming it.
            found = giving if prescribed else names_drug
            if any(found(drug, t) for t in texts) or own_medication(written, record, drugs):
                continue
            why = (
                f"{written} is not given by a cited passage (a prohibition or warning does not count)"
                if prescribed
                else f"{written} is named in no cited passage"
            )
            if section != "medications" or field_name == "name":
                return Removal(why + " nor a current medication")
            if field_name == "side_effects":
                dropped.append(text)
                report.nulled.append(f"{label} side effect: {text[:80]} ({why})")
            elif field_name not in update:
                update[field_name] = None
                report.nulled.append(f"{label} {field_name}: {text} ({why})")
    if section != "medications":
        share = support(it, " ".join(texts), section)
        if share < SUPPORT_THRESHOLD:
            return Removal(
                f"its cited passages hold {share:.0%} of its words (at least {SUPPORT_THRESHOLD:.0%})"
            )
        if opposite := reverses(it, texts):
            return Removal(f"says the opposite of its cited sentence: {opposite[:120]}")
        return it
    # A dose is vouched for by a cited sentence giving the drug, or by the patient's own medication line.
    drug = resolve(it.name)
    given = [s for t in texts for s in giving(drug, t)]
    for field_name in ("dosage", "frequency"):
        value = update.get(field_name, getattr(it, field_name))
        if not value:
            continue
        own = _own_lines(drug, drugs)
        if not any(states(value, s, drug) for s in given) and not any(states(value, s) for s in own):
            update[field_name] = None
            report.nulled.append(
                f"{label} {field_name}: {value} (not stated as whole words where the drug is given)"
            )
    if dropped:
        update["side_effects"] = [s for s in it.side_effects if s not in dropped]
    return it.model_copy(update=update) if update else it


def check_grounding(
    record: PatientRecord,
    sections: Sections,
    citations: Citations,
    passages: Sequence[Passage],
    drugs: RecordDrugs | None = None,
    concerns: Sequence[bool] | None = None,
) -> GroundingResult:
    """The rules of the module docstring, item by item. Citations outside 1..len(passages) are dropped.
    ``drugs``: the record's medication lines read once (``RecordDrugs.of(record)``), else read here.
    ``concerns``: per passage, whether it concerns the primary condition or the complaint
    (``medlora.retrieval.subject``); given, only those passages can vouch for an item or be cited by it."""
    drugs = record_drugs(record, drugs)
    report = Grounding()
    data: dict[str, list] = {}
    cites_out: Citations = {}
    edited: set[str] = set()
    for name in SECTION_NAMES:
        items, cites = getattr(sections, name), citations.get(name, [])
        kept, kept_cites = [], []
        for i, it in enumerate(items):
            cited = sorted({n for n in (cites[i] if i < len(cites) else []) if 1 <= n <= len(passages)})
            elsewhere = concerns is not None and bool(cited) and not any(concerns[n - 1] for n in cited)
            if concerns is not None:
                cited = [n for n in cited if concerns[n - 1]]
            if name == "immediate_actions" and EMERGENCY_LINE.match(it):
                out = it  # the safety rules drop it and decide the emergency themselves
            elif elsewhere and not (name == "medications" and own_medication(it.name, record, drugs)):
                out = Removal(OTHER_CONDITIONS)
            else:
                out = _check_item(name, it, [passages[n - 1] for n in cited], record, report, drugs)
            if isinstance(out, Removal):
                label = it.name if name == "medications" else item_text(it)
                report.unsupported.append(UnsupportedItem(section=name, item=label[:200], reason=out))
                edited.add(name)
                continue
            if out is not it:
                edited.add(name)
            kept.append(out)
            kept_cites.append(cited)
        data[name] = kept
        cites_out[name] = kept_cites
    return GroundingResult(Sections.model_validate(data), cites_out, report, edited)


def check_output(
    record: PatientRecord,
    sections: Sections,
    citations: Citations,
    passages: Sequence[Passage] | None,
    drugs: RecordDrugs | None = None,
    concerns: Sequence[bool] | None = None,
) -> GroundingResult:
    """Every output's path to publication: ``publishable``, then ``check_grounding`` when passages are given
    (``None``: no retrieval, nothing to check citations against; ``[]`` would remove every item). ``drugs``: the
    record's medication lines read once for both (``RecordDrugs.of(record)``), else read here once.
    ``concerns``: which passages concern the primary condition or the complaint (``check_grounding``)."""
    drugs = record_drugs(record, drugs)
    pub = publishable(record, sections, citations, checked=passages is not None, drugs=drugs)
    report = Grounding(unsupported=list(pub.removed), nulled=list(pub.nulled))
    if passages is None:
        return GroundingResult(pub.sections, pub.citations, report, pub.edited)
    g = check_grounding(record, pub.sections, pub.citations, passages, drugs, concerns)
    report.unsupported += g.grounding.unsupported
    report.nulled += g.grounding.nulled
    return GroundingResult(g.sections, g.citations, report, pub.edited | g.edited)


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
    citations: Citations,
    hits: Sequence[Hit],
    token_probs: dict[str, float | None] | None = None,
    edited: set[str] | frozenset[str] = frozenset(),
) -> dict[str, SectionConfidence]:
    """Per section, over its published items: the mean token probability under the constrained decoder and its
    cited passages' scores. The decoder's mean covers every item generated, so a section the rules ``edited``
    (removed or changed an item) has none: it would speak for items that are not published."""
    token_probs = token_probs or {}
    out = {}
    for name in SECTION_NAMES:
        cited = sorted({n for cites in citations.get(name, []) for n in cites if 1 <= n <= len(hits)})
        out[name] = SectionConfidence(
            mean_token_prob=None if name in edited else token_probs.get(name),
            retrieval_scores=[round(hits[n - 1].score, 4) for n in cited],
        )
    return out


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
    edited: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The Recommendation fields grounding adds: evidence, citations, the passages in the prompt, sources (URLs
    of cited passages), what the check removed, and per-section confidence."""
    from ..common.schemas import PassageRef

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
        "confidence": section_confidence(citations, hits, token_probs, edited)
        if evidence == "retrieved"
        else {},
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
