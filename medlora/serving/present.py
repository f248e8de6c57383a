"""The last touches before a recommendation is shown, after the checks and the safety rules have decided what
stays: nothing here adds, removes or changes what an item says.

- ``tidy``: a trailing comma, semicolon or colon left by a model that meant to go on ("Albuterol inhaler as
  needed,") is dropped from every string of every item.
- ``without_removed``: notes about fields of an item the safety rules then removed whole ("Emptied: amoxicillin
  frequency" beside "Removed for allergy: amoxicillin") go; the removal says all there is to say.
- ``format_text``: the recommendation as a person reads it at a terminal (``inference.py --format text``).
"""

from __future__ import annotations

import re
from typing import Any

from ..common.schemas import SECTION_NAMES, Grounding, Recommendation, Sections

_TRAILING = re.compile(r"[\s,;:]+$")


def _tidy(value: Any) -> Any:
    if isinstance(value, str):
        return _TRAILING.sub("", value) or value
    if isinstance(value, list):
        return [_tidy(v) for v in value]
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    return value


def tidy(sections: Sections) -> Sections:
    return Sections.model_validate(_tidy(sections.model_dump()))


def without_removed(grounding: Grounding, checked: Sections, published: Sections) -> Grounding:
    """``grounding`` less its notes on medications present after the checks (``checked``) but gone after the
    safety rules (``published``): the notes name a medication by its name, as the checks saw it."""
    removed = {m.name for m in checked.medications} - {m.name for m in published.medications}
    nulled = [n for n in grounding.nulled if not any(n.startswith(f"{name} ") for name in removed)]
    return grounding.model_copy(update={"nulled": nulled})


def format_text(rec: Recommendation) -> str:
    """The recommendation as sections a person reads at a terminal."""
    # Every content section empty: said, never shown as an answer.
    blank = rec.unsupported_reason is not None
    lines = ["NO RECOMMENDATION" if rec.status == "unsupported" else "TREATMENT RECOMMENDATION"]
    if rec.safety.red_flags:
        lines.append("!! RED FLAGS: " + "; ".join(f.message for f in rec.safety.red_flags))
    if blank:
        lines.append(f"!! {rec.status_message}.")
        lines.append(
            "!! This does not mean that nothing needs doing: a qualified professional must assess the patient."
        )
    if rec.truncated:
        why = rec.truncated_reason or "generation stopped at --max-new-tokens"
        lines.append(f"!! INCOMPLETE: {why}; items cut mid-way were dropped")
    for name in SECTION_NAMES:
        items = getattr(rec, name)
        if blank and not items:
            continue  # seven "(none)" would read like a finished answer
        lines.append(f"\n{name.replace('_', ' ').capitalize()}:")
        for item in items:
            if isinstance(item, str):
                lines.append(f"  - {item}")
            else:
                data = item.model_dump(exclude_none=True)
                lines.append("  - " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in data.items() if v))
        if not items:
            lines.append("  (none)")
    for c in rec.safety.allergy_conflicts:
        lines.append(f"\nRemoved for allergy ({c.allergy}): {c.medication}, {c.reason}")
    for c in rec.safety.cautions:
        lines.append(f"\nCaution ({c.allergy}): {c.medication}, {c.reason}")
    for d in rec.safety.duplicate_medications:
        lines.append(f"\nPossible duplicate therapy: {d.medication}, {d.reason}")
    for i in rec.safety.interactions:
        lines.append(f"\nInteraction [{i.code}]: {i.medication} with {i.other}, {i.message} ({i.source})")
    for c in rec.safety.contraindications:
        what = "Removed" if c.action == "removed" else "Caution"
        lines.append(f"\n{what} [{c.code}] ({c.state}): {c.medication}, {c.message} ({c.source})")
    for u in rec.grounding.unsupported:
        lines.append(f"\nRemoved ({u.section}): {u.item}, {u.reason}")
    for n in rec.grounding.nulled:
        lines.append(f"\nEmptied: {n}")
    for url in rec.sources:
        lines.append(f"Source: {url}")
    model = rec.model
    if model is not None:
        lines.append(
            f"\nModel: {model.base} @ {model.revision or 'unknown'}, adapter: {model.adapter or 'none'}"
        )
    lines.append(f"\n{rec.safety.disclaimer}")
    return "\n".join(lines)
