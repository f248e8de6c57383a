"""``inference.py --check``: the safety rules applied to a recommendation written by anyone, without a model.

    python inference.py --patient examples/patients/strep_penicillin_allergy.json --check recommendation.json

The recommendation file holds the seven sections (as a model writes them, with or without citations) or a whole
Recommendation (its safety block, sources and provenance are recomputed, never trusted). A previous
emergency line is dropped and re-derived, so checking an already checked file gives the same result.
"""

from __future__ import annotations

import json

from pydantic import TypeAdapter, ValidationError

from .cli import UsageError
from .safety import apply_safety
from .schemas import SECTION_NAMES, PatientRecord, Recommendation, error_line, parse_any_sections

MAX_CHECK_BYTES = 256 * 1024
_CITATIONS = TypeAdapter(dict[str, list[list[int]]])
# Fields of a whole Recommendation that code, not the checked text, decides: read past, then recomputed.
_RECOMPUTED = set(Recommendation.model_fields) - set(SECTION_NAMES) - {"citations"}


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
    if not isinstance(data, dict):
        raise UsageError(f"--check {path}: expected a JSON object with the recommendation's sections")
    if not any(name in data for name in SECTION_NAMES):
        raise UsageError(f"--check {path}: holds none of the sections {', '.join(SECTION_NAMES)}")
    citations = data.get("citations") or {}
    sections = {k: v for k, v in data.items() if k not in _RECOMPUTED and k != "citations"}
    return sections, citations


def check(record: PatientRecord, path: str, hits: list | None = None) -> Recommendation:
    """The Recommendation the safety rules make of the file at ``path`` for ``record``; given the passages it
    cites (``medlora.retrieval.Hit``, numbered 1..n), the grounding check runs first."""
    data, citations = read_recommendation(path)
    try:
        sections, parsed_cites = parse_any_sections(data)
    except ValidationError as e:
        raise UsageError(f"--check {path}: invalid recommendation: {error_line(e)}") from None
    if hits is not None:
        from .grounding import check_grounding, grounding_fields, realign

        try:
            cites = parsed_cites or _CITATIONS.validate_python(citations)
        except ValidationError as e:
            raise UsageError(f"--check {path}: invalid citations: {error_line(e)}") from None
        g = check_grounding(record, sections, cites, [h.passage for h in hits])
        checked = apply_safety(record, g.sections)
        cites = realign(g.sections, g.citations, checked.sections)
        fields = grounding_fields(cites, hits, "retrieved" if hits else "none", g.grounding)
        return Recommendation(**checked.sections.model_dump(), safety=checked.safety, **fields)
    # Without passages there is nothing to check citations against: the sections alone are audited.
    checked = apply_safety(record, sections)
    return Recommendation(**checked.sections.model_dump(), safety=checked.safety)
