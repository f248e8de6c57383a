"""The last touches before a recommendation is shown, after the checks and the safety rules have decided what
stays: nothing here adds, removes or changes what an item says.

- ``tidy``: a trailing comma, semicolon or colon left by a model that meant to go on ("Albuterol inhaler as
  needed,") is dropped from every string of every item.
- ``without_removed``: notes about fields of an item the safety rules then removed whole ("Emptied: amoxicillin
  frequency" beside "Removed for allergy: amoxicillin") go; the removal says all there is to say.
"""

from __future__ import annotations

import re
from typing import Any

from ..common.schemas import Grounding, Sections

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
