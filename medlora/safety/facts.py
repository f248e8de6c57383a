"""What the safety rules read from a record, read once: its medication lines, its allergies and its red flags.

``apply_safety`` needs the same three facts for every output about one patient; a caller that scores or checks
several outputs for one record (the evaluation: raw and published, every row) reads them once with
``SafetyFacts.of(record)`` and hands them down. They are what ``record_allergies``, ``red_flags`` and
``RecordDrugs.of`` return for the record, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clinical.record_drugs import RecordDrugs
from ..common.schemas import PatientRecord
from .allergies import Allergy, record_allergies
from .red_flags import RedFlag, red_flags


@dataclass(frozen=True, eq=False)
class SafetyFacts:
    drugs: RecordDrugs
    allergies: tuple[Allergy, ...]
    flags: tuple[RedFlag, ...]

    @classmethod
    def of(cls, record: PatientRecord, drugs: RecordDrugs | None = None) -> SafetyFacts:
        return cls(
            drugs if drugs is not None else RecordDrugs.of(record),
            tuple(record_allergies(record)),
            tuple(red_flags(record)),
        )
