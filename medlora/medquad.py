"""MedQuAD: reading every published form of it, cleaning, splitting by focus, and building examples.

Sources: the original XML collection (a directory or the GitHub zip), the Hub dataset ``lavita/MedQuAD``, or a
CSV/JSONL with question/answer[/qtype/focus/url/source] columns. Pairs without an answer are skipped and
counted, whitespace is normalised, exact duplicate (question, answer) pairs are dropped. The split is by focus:
a focus (and any focus that shares an exact question with it) lands in exactly one of train/val/test.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import re
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from .cli import UsageError
from .prompts import qa_messages, treatment_messages
from .schemas import FollowUp, Medication, Monitoring, PatientRecord, Referral, Sections

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str
    qtype: str
    focus: str
    source: str = ""
    url: str = ""


@dataclass
class ReadReport:
    records_read: int = 0
    skipped_no_answer: int = 0
    malformed_files: list[str] = field(default_factory=list)


_WS = re.compile(r"\s+")


def clean(text: str | None) -> str:
    return _WS.sub(" ", text or "").strip()


def focus_key(focus: str) -> str:
    """Foci differ in case and punctuation across MedQuAD's sources; the split must treat them as one."""
    return re.sub(r"[^a-z0-9]+", " ", focus.lower()).strip()


_QUESTION_FOCUS = [
    re.compile(r"^what (?:is|are) \(are\) (.+?) \?$", re.I),
    re.compile(
        r"^(?:what|how|who|is|are|do|does|can|how many) .*? (?:for|of|with|to|by|about|from|get) (.+?) \?$",
        re.I,
    ),
]


def focus_from_question(question: str) -> str:
    """For sources without a focus column: MedQuAD's question templates name it; otherwise the question is it."""
    for pattern in _QUESTION_FOCUS:
        m = pattern.match(question)
        if m:
            return m.group(1)
    return question


def _add(report: ReadReport, out: list[QAPair], question, answer, qtype, focus, source, url) -> None:
    report.records_read += 1
    q, a = clean(question), clean(answer)
    if not q or not a:
        report.skipped_no_answer += 1
        return
    out.append(
        QAPair(
            q,
            a,
            clean(qtype).lower() or "unknown",
            clean(focus) or focus_from_question(q),
            clean(source),
            clean(url),
        )
    )


def _parse_xml(data: bytes, name: str, report: ReadReport, out: list[QAPair]) -> None:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        log.warning("skipping malformed XML file %s: %s", name, e)
        report.malformed_files.append(name)
        return
    focus, source, url = root.findtext("Focus"), root.get("source", ""), root.get("url", "")
    for pair in root.iter("QAPair"):
        q = pair.find("Question")
        _add(
            report,
            out,
            q.text if q is not None else "",
            pair.findtext("Answer"),
            q.get("qtype", "") if q is not None else "",
            focus,
            source,
            url,
        )


def read_xml_dir(path: Path, report: ReadReport) -> list[QAPair]:
    out: list[QAPair] = []
    for f in sorted(path.rglob("*.xml")):
        _parse_xml(f.read_bytes(), str(f.relative_to(path)), report, out)
    return out


def read_zip(path: Path, report: ReadReport) -> list[QAPair]:
    out: list[QAPair] = []
    try:
        with zipfile.ZipFile(path) as zf:
            for name in sorted(n for n in zf.namelist() if n.endswith(".xml") and "__MACOSX" not in n):
                _parse_xml(zf.read(name), name, report, out)
    except zipfile.BadZipFile:
        raise UsageError(f"{path} is not a valid zip file") from None
    return out


_COLUMNS = {
    "question": ("question",),
    "answer": ("answer",),
    "qtype": ("qtype", "question_type"),
    "focus": ("focus", "question_focus"),
    "url": ("url", "document_url"),
    "source": ("source", "document_source"),
}


def _read_rows(rows: list[dict[str, Any]], origin: str, report: ReadReport) -> list[QAPair]:
    if not rows:
        return []
    cols = {k.strip().lower(): k for k in rows[0]}
    pick = {}
    for want, names in _COLUMNS.items():
        pick[want] = next((cols[n] for n in names if n in cols), None)
    missing = [c for c in ("question", "answer") if pick[c] is None]
    if missing:
        raise UsageError(
            f"{origin} lacks the column(s) {', '.join(missing)} (found: {', '.join(cols) or 'none'})"
        )
    out: list[QAPair] = []
    for row in rows:
        get = lambda k, row=row: row.get(pick[k]) if pick[k] else ""  # noqa: E731
        _add(
            report, out, get("question"), get("answer"), get("qtype"), get("focus"), get("source"), get("url")
        )
    return out


def read_csv(path: Path, report: ReadReport) -> list[QAPair]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            return []
        rows = list(reader)
        if not rows:
            # A header without rows is an empty source, but a header lacking columns is the more useful error.
            _read_rows([dict.fromkeys(reader.fieldnames, "")], str(path), ReadReport())
    return _read_rows(rows, str(path), report)


def read_jsonl(path: Path, report: ReadReport) -> list[QAPair]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise UsageError(f"{path} line {i} is not valid JSON") from None
    return _read_rows(rows, str(path), report)


def read_hf(dataset: Any, report: ReadReport) -> list[QAPair]:
    """``lavita/MedQuAD`` as loaded by ``datasets`` (a DatasetDict or Dataset); same metadata as the XML."""
    splits = dataset.values() if hasattr(dataset, "values") else [dataset]
    rows = [row for split in splits for row in split]
    return _read_rows(rows, "lavita/MedQuAD", report)


def read_source(path: Path, report: ReadReport) -> list[QAPair]:
    if not path.exists():
        raise UsageError(f"MedQuAD source not found: {path}")
    if path.is_dir():
        pairs = read_xml_dir(path, report)
    elif path.suffix.lower() == ".zip":
        pairs = read_zip(path, report)
    elif path.suffix.lower() == ".csv":
        pairs = read_csv(path, report)
    elif path.suffix.lower() in (".jsonl", ".json"):
        pairs = read_jsonl(path, report)
    else:
        raise UsageError(
            f"unsupported MedQuAD source {path}: expected an XML directory, .zip, .csv or .jsonl"
        )
    if not pairs:
        raise UsageError(f"MedQuAD source {path} holds no question-answer pairs with an answer")
    return pairs


def deduplicate(pairs: list[QAPair]) -> tuple[list[QAPair], int]:
    seen: set[tuple[str, str]] = set()
    out = []
    for p in pairs:
        key = (p.question, p.answer)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out, len(pairs) - len(out)


def split_by_focus(
    pairs: list[QAPair], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[QAPair]]:
    """Seeded, deterministic split of whole focus groups; foci that share an exact question are one group."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_focus_of_question: dict[str, str] = {}
    for p in pairs:
        k = focus_key(p.focus)
        find(k)
        other = first_focus_of_question.setdefault(p.question.lower(), k)
        if other != k:
            parent[find(k)] = find(other)
    groups: dict[str, list[QAPair]] = defaultdict(list)
    for p in pairs:
        groups[find(focus_key(p.focus))].append(p)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    targets = {"test": test_fraction * len(pairs), "val": val_fraction * len(pairs)}
    out: dict[str, list[QAPair]] = {s: [] for s in SPLITS}
    for g in order:
        dest = next((s for s in ("test", "val") if len(out[s]) < targets[s]), "train")
        out[dest].extend(groups[g])
    return out


# --- the custom treatment data ----------------------------------------------------------------------------
# Which MedQuAD question types fill which section. Every item is a sentence (or a name) taken from the
# focus's own answers; nothing is written that a source does not say. See the README's mapping table.
SECTION_QTYPES = {
    "medications": ("treatment",),
    "lifestyle": ("prevention", "considerations"),
    "follow_up": ("treatment", "outlook"),
    "specialist_referrals": ("treatment", "exams and tests", "information"),
    "monitoring": ("exams and tests",),
    "patient_education": ("treatment", "outlook", "complications"),
}
TREATMENT_QTYPES = ("treatment",)
ITEMS_PER_SECTION = 3
MAX_SENTENCE_CHARS = 280

_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])|\s+-\s+")
_DRUGS = re.compile(
    r"\b(?:drugs?|medicines?|medications?)\s+(?:called|such as|including|like)\s+([^.;:()]+)", re.I
)
_SPECIALISTS = re.compile(
    r"\b(\w*(?:ologists?|iatrists?|icians?)|genetic counselors?|surgeons?|dietitians?|therapists?)\b", re.I
)
_NOT_SPECIALISTS = {"technician", "technicians", "physician", "physicians", "clinician", "clinicians"}
_INTERVAL = re.compile(
    r"\b(every \w+(?: to \w+)? (?:days?|weeks?|months?|years?)|once a (?:day|week|month|year)|"
    r"(?:annually|yearly|monthly|weekly|daily)|each (?:day|week|month|year))\b",
    re.I,
)


def sentences(text: str) -> list[str]:
    out = []
    for s in _SENT.split(text):
        s = s.strip(" -")
        # Questions and list fragments are headings, not content.
        if 20 <= len(s) <= MAX_SENTENCE_CHARS and s[-1] in ".!":
            out.append(s)
    return out


def _drug_names(sentence: str) -> list[str]:
    names = []
    for m in _DRUGS.finditer(sentence):
        for part in re.split(r",\s*|\s+(?:and|or)\s+", m.group(1)):
            part = part.strip()
            if 2 < len(part) <= 60 and len(part.split()) <= 4:
                names.append(part)
    return names


def treatment_target(answers: dict[str, list[QAPair]]) -> tuple[Sections, list[str]]:
    """Sections for one focus from its answers, grouped by question type. Returns the target and its sources."""
    by_type = {qt: [s for p in ps for s in sentences(p.answer)] for qt, ps in answers.items()}
    pick = lambda *qts: [s for qt in qts for s in by_type.get(qt, [])]  # noqa: E731

    meds, seen = [], set()
    for s in pick(*SECTION_QTYPES["medications"]):
        for name in _drug_names(s):
            if name.lower() not in seen and len(meds) < ITEMS_PER_SECTION:
                seen.add(name.lower())
                meds.append(Medication(name=name, dosage=None, frequency=None))
    referrals, seen = [], set()
    for s in pick(*SECTION_QTYPES["specialist_referrals"]):
        for m in _SPECIALISTS.finditer(s):
            spec = m.group(1).lower()
            if spec not in seen and spec not in _NOT_SPECIALISTS and len(referrals) < ITEMS_PER_SECTION:
                seen.add(spec)
                referrals.append(Referral(specialty=spec, reason=s))
    follow_up = [
        FollowUp(timing=m.group(1).lower(), purpose=s)
        for s in pick(*SECTION_QTYPES["follow_up"])
        if (m := _INTERVAL.search(s)) and re.search(r"follow|check|visit|appointment|see", s, re.I)
    ]
    monitoring = []
    for s in pick(*SECTION_QTYPES["monitoring"])[:ITEMS_PER_SECTION]:
        m = _INTERVAL.search(s)
        monitoring.append(Monitoring(test=s, frequency=m.group(1).lower() if m else None))
    sections = Sections(
        medications=meds,
        lifestyle=pick(*SECTION_QTYPES["lifestyle"])[:ITEMS_PER_SECTION],
        follow_up=follow_up[:ITEMS_PER_SECTION],
        specialist_referrals=referrals,
        monitoring=monitoring,
        patient_education=pick(*SECTION_QTYPES["patient_education"])[:ITEMS_PER_SECTION],
    )
    used = {qt for qts in SECTION_QTYPES.values() for qt in qts}
    sources = sorted({p.url for qt, ps in answers.items() if qt in used for p in ps if p.url})
    return sections, sources


def _example_id(kind: str, *parts: str) -> str:
    return f"{kind}-" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


def qa_example(p: QAPair) -> dict[str, Any]:
    return {
        "id": _example_id("qa", p.question, p.answer),
        "kind": "qa",
        "focus": p.focus,
        "qtype": p.qtype,
        "source": p.source,
        "url": p.url,
        "messages": qa_messages(p.question, p.answer),
    }


def treatment_examples(pairs: list[QAPair]) -> list[dict[str, Any]]:
    """One example per focus that has a treatment answer: a patient with that condition, a sourced target."""
    by_focus: dict[str, dict[str, list[QAPair]]] = defaultdict(lambda: defaultdict(list))
    display: dict[str, str] = {}
    for p in pairs:
        k = focus_key(p.focus)
        by_focus[k][p.qtype].append(p)
        display.setdefault(k, p.focus)
    out = []
    for k in sorted(by_focus):
        answers = by_focus[k]
        if not any(qt in answers for qt in TREATMENT_QTYPES):
            continue
        sections, sources = treatment_target(answers)
        if not any(getattr(sections, name) for name in Sections.model_fields):
            continue  # an all-empty target would teach the model to say nothing
        # Only the condition is known; age, sex and vitals are not invented for the synthetic patient.
        record = PatientRecord(conditions=[display[k]])
        first = next(iter(answers.values()))[0]
        out.append(
            {
                "id": _example_id("treatment", k),
                "kind": "treatment",
                "focus": display[k],
                "qtype": "treatment",
                "source": first.source,
                "url": sources[0] if sources else "",
                "sources": sources,
                "messages": treatment_messages(record, sections),
            }
        )
    return out


def build_examples(split: list[QAPair]) -> list[dict[str, Any]]:
    rows = [qa_example(p) for p in split] + treatment_examples(split)
    return sorted(rows, key=lambda r: r["id"])


def split_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = Counter(r["kind"] for r in rows)
    return {
        "examples": len(rows),
        "qa": kinds["qa"],
        "treatment": kinds["treatment"],
        "foci": len({focus_key(r["focus"]) for r in rows}),
        "qtypes": dict(sorted(Counter(r["qtype"] for r in rows if r["kind"] == "qa").items())),
    }


def leakage(splits: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    foci = {s: {focus_key(r["focus"]) for r in rows} for s, rows in splits.items()}
    questions = {
        s: {r["messages"][1]["content"].lower() for r in rows if r["kind"] == "qa"}
        for s, rows in splits.items()
    }
    pairs = [("train", "val"), ("train", "test"), ("val", "test")]
    return {
        "foci_shared_between_splits": sum(len(foci[a] & foci[b]) for a, b in pairs),
        "questions_shared_between_splits": sum(len(questions[a] & questions[b]) for a, b in pairs),
    }
