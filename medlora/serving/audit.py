"""``inference.py --check``: the rules applied to a recommendation written by anyone, without a model.

    python inference.py --patient examples/patients/strep_penicillin_allergy.json --check recommendation.json

The file holds the sections as people write them: each item a plain string or a cited object
(``{"text": ..., "citations": [1]}``), medications as objects (or bare names); or a bare medications list; or
a whole Recommendation (its safety block, sources and provenance are recomputed, never trusted). The checks
after generation (``grounding.check_output``) run first, then the safety rules; a previous emergency line is
dropped and re-derived, so checking an already checked file gives the same result.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ..common.cli import UsageError
from ..common.schemas import (
    RULES_ONLY_DISCLAIMER,
    SECTION_NAMES,
    GroundedSections,
    PatientRecord,
    Recommendation,
    error_line,
    to_published,
)
from ..grounding.check import check_output, grounding_fields, realign
from ..safety.rules import apply_safety
from .present import tidy, without_removed

MAX_CHECK_BYTES = 256 * 1024
_CITATIONS = TypeAdapter(dict[str, list[list[int]]])
# Fields of a whole Recommendation that code, not the checked text, decides: read past, then recomputed.
_RECOMPUTED = set(Recommendation.model_fields) - set(SECTION_NAMES) - {"citations"}
_TEXT_SECTIONS = ("immediate_actions", "lifestyle", "patient_education")
SHAPE = (
    "expected a JSON object with any of the sections "
    + ", ".join(SECTION_NAMES)
    + ", each a list; items of "
    + ", ".join(_TEXT_SECTIONS)
    + ' are strings or {"text": "...", "citations": [1]}; medications are '
    '{"name": "...", "dosage": null, "frequency": null, "side_effects": []} (citations optional); '
    'follow_up {"timing", "purpose"}, specialist_referrals {"specialty", "reason"}, monitoring '
    '{"test", "frequency"}. A bare list of medications, or a whole Recommendation, is accepted too'
)


def read_recommendation(path: str) -> tuple[dict, dict]:
    """The sections and citations in ``path``; one-line ``UsageError`` (exit 2) for anything else."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CHECK_BYTES + 1)
    except OSError as e:
        raise UsageError(f"--check: cannot read {path}: {e.strerror or e}") from None
    if len(raw) > MAX_CHECK_BYTES:
        raise UsageError(f"--check {path}: larger than the limit of {MAX_CHECK_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"--check {path}: not valid JSON ({e})") from None
    if isinstance(data, list):  # a bare medications list
        data = {"medications": data}
    if not isinstance(data, dict):
        raise UsageError(f"--check {path}: {SHAPE}")
    if not any(name in data for name in SECTION_NAMES):
        raise UsageError(f"--check {path}: holds none of the sections; {SHAPE}")
    sections = {k: v for k, v in data.items() if k not in _RECOMPUTED and k != "citations"}
    if unknown := sorted(set(sections) - set(SECTION_NAMES)):
        raise UsageError(f"--check {path}: unknown field(s) {', '.join(unknown)}; {SHAPE}")
    try:
        citations = _CITATIONS.validate_python(data.get("citations") or {})
    except ValidationError as e:
        raise UsageError(f"--check {path}: invalid citations: {error_line(e)}") from None
    return sections, citations


def as_grounded(sections: dict[str, Any], citations: dict[str, list[list[int]]]) -> dict[str, list]:
    """Every item in the cited form: a plain string becomes ``{"text"}`` (a medication's, ``{"name"}``), and an
    item without its own citations takes those of the top-level ``citations`` (a whole Recommendation's)."""
    out: dict[str, list] = {}
    for name, items in sections.items():
        if not isinstance(items, list):
            out[name] = items  # validation names the section
            continue
        cites = citations.get(name, [])
        row = []
        for i, it in enumerate(items):
            if isinstance(it, str) and name in _TEXT_SECTIONS:
                it = {"text": it}
            elif isinstance(it, str) and name == "medications":
                it = {"name": it}
            if isinstance(it, dict):
                it = {"citations": cites[i] if i < len(cites) else [], **it}
            row.append(it)
        out[name] = row
    return out


def check(record: PatientRecord, path: str, hits: list | None = None) -> Recommendation:
    """The Recommendation the rules make of the file at ``path`` for ``record``; given the passages it cites
    (``medlora.retrieval.index.Hit``, numbered 1..n), the grounding check runs too."""
    data, citations = read_recommendation(path)
    try:
        sections, cites = to_published(GroundedSections.model_validate(as_grounded(data, citations)))
    except ValidationError as e:
        raise UsageError(f"--check {path}: invalid recommendation: {error_line(e)}; {SHAPE}") from None
    passages = None if hits is None else [h.passage for h in hits]
    g = check_output(record, sections, cites, passages)
    checked = apply_safety(record, g.sections)
    checked.safety.disclaimer = RULES_ONLY_DISCLAIMER  # no model ran: the output must not say one did
    report = without_removed(g.grounding, g.sections, checked.sections)
    if hits is None:
        # Without passages there is nothing to check citations against: the sections alone are audited.
        return Recommendation(**tidy(checked.sections).model_dump(), safety=checked.safety, grounding=report)
    cites = realign(g.sections, g.citations, checked.sections)
    fields = grounding_fields(cites, hits, "retrieved" if hits else "none", report)
    return Recommendation(**tidy(checked.sections).model_dump(), safety=checked.safety, **fields)
