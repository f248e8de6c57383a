"""The patient's own medication lines, read once per record.

The check after generation (``medlora.grounding``) and the safety rules (``medlora.safety.rules``) both
ask, per item and per field, which of the record's lines name a drug, what each line resolves to, and
whether a value appears in a line. ``RecordDrugs.of(record)`` reads the lines once and each rule asks it
instead of re-reading ``record.medications``; the answers are those of ``drugs.resolve``,
``drugs.find_drugs`` and ``text.normalised`` on each line, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..common.schemas import PatientRecord
from ..common.text import normalised
from .drugs import DrugMention, find_drugs, resolve


@dataclass(frozen=True)
class RecordDrugs:
    lines: tuple[str, ...]  # record.medications as written
    resolved: tuple[DrugMention | None, ...]  # each line as one mention (drugs.resolve)
    mentions: tuple[tuple[DrugMention, ...], ...]  # every drug each line names (drugs.find_drugs)
    normalised: tuple[str, ...]  # each line's normalised text

    @classmethod
    def of(cls, record: PatientRecord) -> RecordDrugs:
        lines = tuple(record.medications)
        return cls(
            lines,
            tuple(resolve(c) for c in lines),
            tuple(tuple(find_drugs(c)) for c in lines),
            tuple(normalised(c) for c in lines),
        )


def record_drugs(record: PatientRecord, drugs: RecordDrugs | None) -> RecordDrugs:
    """``drugs`` when a caller read them already (they must be this record's), else read now."""
    return drugs if drugs is not None else RecordDrugs.of(record)
