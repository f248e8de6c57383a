"""MedQuAD: reading every published form of it, cleaning, splitting by focus, and building examples.

Sources: the original XML collection (a directory or the GitHub zip), the Hub dataset ``lavita/MedQuAD``, or a
CSV/JSONL with question/answer[/qtype/focus/url/source] columns. Pairs without an answer are skipped and
counted, whitespace is normalised, exact duplicate (question, answer) pairs are dropped. The split is by focus:
a focus (and any focus that shares an exact question or answer with it) lands in exactly one of train/val/test.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import random
import re
import unicodedata
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from ..common.cli import UsageError
from ..common.progress import progress
from .prompts import qa_messages

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


_POSSESSIVE = re.compile(r"['\u2019]s\b")
# "Parkinson's Disease" (NIHSeniorHealth) and "Parkinson disease" (GHR) are one disease. Dropping these words
# also joins a few foci that are not one ("metabolic syndrome" and "metabolic disorders"): for the split that
# errs on the safe side (a larger group never leaks), and such pairs are rare.
_GENERIC_WORDS = re.compile(r"\b(?:diseases?|disorders?|syndromes?)\b")


# Memoised: choosing the retrieval rules on val compares the same few thousand foci millions of times (131 of the
# data step's 300 s went here); bounded because the server also keys free text.
@functools.lru_cache(maxsize=1 << 16)
def focus_key(focus: str) -> str:
    """Foci differ in case, punctuation, accents, possessives and the words "disease", "disorder", "syndrome"
    across MedQuAD's sources; the split must treat them as one."""
    text = unicodedata.normalize("NFKD", focus.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[^a-z0-9']+", " ", _POSSESSIVE.sub("", text.replace("\u2019", "'")))
    key = re.sub(r"\s+", " ", _GENERIC_WORDS.sub(" ", text.replace("'", " "))).strip()
    # "Syndrome" alone, or a focus of only such words, keeps its words rather than becoming empty.
    return key or re.sub(r"\s+", " ", text.replace("'", " ")).strip()


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
    # Most files are <Document source url><Focus/><QAPairs><QAPair><Question qtype/><Answer/>; four NINDS
    # files use <doc corpus url><doctitle-focus/><qaPairs><pair><question qtype/><answer/> instead.
    if root.tag == "doc":
        focus, source, pair_tag, q_tag, a_tag = (
            root.findtext("doctitle-focus"),
            root.get("corpus", ""),
            "pair",
            "question",
            "answer",
        )
    else:
        focus, source, pair_tag, q_tag, a_tag = (
            root.findtext("Focus"),
            root.get("source", ""),
            "QAPair",
            "Question",
            "Answer",
        )
    url = root.get("url", "")
    for pair in root.iter(pair_tag):
        q = pair.find(q_tag)
        _add(
            report,
            out,
            q.text if q is not None else "",
            pair.findtext(a_tag),
            q.get("qtype", "") if q is not None else "",
            focus,
            source,
            url,
        )


@dataclass(frozen=True)
class FocusInfo:
    """One XML document's focus with its ``<Synonyms>`` and whether any of its pairs has an answer (the ADAM,
    Drugs and Herbs subsets of MedlinePlus had their answers removed)."""

    focus: str
    synonyms: tuple[str, ...]
    source: str
    answered: bool


def _focus_info(data: bytes) -> FocusInfo | None:
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None  # read_source already reports malformed files
    focus = clean(root.findtext("Focus") or root.findtext("doctitle-focus"))
    if not focus:
        return None
    syns = tuple(dict.fromkeys(clean(s.text) for s in root.iter("Synonym") if clean(s.text)))
    answered = any(clean(a.text) for tag in ("Answer", "answer") for a in root.iter(tag))
    return FocusInfo(focus, syns, root.get("source", root.get("corpus", "")), answered)


def read_focus_annotations(path: Path) -> list[FocusInfo]:
    """Every document's focus, synonyms and answered flag from the XML collection (a directory or the zip);
    ``[]`` for the tabular sources, which carry no synonyms."""
    datas: list[bytes] = []
    if path.is_dir():
        datas = [f.read_bytes() for f in sorted(path.rglob("*.xml"))]
    elif path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                names = sorted(n for n in zf.namelist() if n.endswith(".xml") and "__MACOSX" not in n)
                datas = [zf.read(n) for n in names]
        except zipfile.BadZipFile:
            raise UsageError(f"{path} is not a valid zip file") from None
    return [info for d in datas if (info := _focus_info(d)) is not None]


def synonyms_by_focus(infos: list[FocusInfo]) -> dict[str, list[str]]:
    """Focus (as written) -> its synonyms, merged over documents of the same focus."""
    out: dict[str, list[str]] = defaultdict(list)
    for info in infos:
        out[info.focus] = list(dict.fromkeys([*out[info.focus], *info.synonyms]))
    return dict(out)


def read_xml_dir(path: Path, report: ReadReport) -> list[QAPair]:
    out: list[QAPair] = []
    for f in progress(sorted(path.rglob("*.xml")), "reading MedQuAD XML", unit="files"):
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


# An answer repeated under more foci than this is boilerplate ("This condition is inherited in an autosomal
# recessive pattern...", under 348 GHR foci), not knowledge of one disease: joining its foci would make one group
# of a fifth of the collection. Below it, a shared answer means the foci are one disease (Noonan syndrome 1-6).
MAX_FOCI_PER_ANSWER = 5


def template_answers(pairs: list[QAPair]) -> set[str]:
    """Answers (lower-cased) that appear under more than ``MAX_FOCI_PER_ANSWER`` foci."""
    foci: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        foci[p.answer.lower()].add(focus_key(p.focus))
    return {a for a, fs in foci.items() if len(fs) > MAX_FOCI_PER_ANSWER}


def drop_templates_outside_train(split: dict[str, list[QAPair]]) -> int:
    """Remove val/test pairs whose answer is a template that training also holds, verbatim; returns how many.

    Such an item scores copying, not knowledge (the retrieval baseline would answer it perfectly)."""
    templates = template_answers([p for rows in split.values() for p in rows])
    in_train = {p.answer.lower() for p in split["train"]} & templates
    dropped = 0
    for name in ("val", "test"):
        kept = [p for p in split[name] if p.answer.lower() not in in_train]
        dropped += len(split[name]) - len(kept)
        split[name] = kept
    return dropped


def split_by_focus(
    pairs: list[QAPair], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[QAPair]]:
    """Seeded, deterministic split of whole focus groups; foci that share an exact question, or an exact answer
    that is not a template (``MAX_FOCI_PER_ANSWER``), are one group. Templates: ``drop_templates_outside_train``."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    templates = template_answers(pairs)
    first_focus_of_text: dict[tuple[str, str], str] = {}
    for p in pairs:
        k = focus_key(p.focus)
        find(k)
        texts = [("q", p.question.lower())]
        if p.answer.lower() not in templates:
            texts.append(("a", p.answer.lower()))
        for text in texts:
            other = first_focus_of_text.setdefault(text, k)
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


def example_id(kind: str, *parts: str) -> str:
    return f"{kind}-" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:16]


def qa_example(p: QAPair) -> dict[str, Any]:
    return {
        "id": example_id("qa", p.question, p.answer),
        "kind": "qa",
        "focus": p.focus,
        "qtype": p.qtype,
        "source": p.source,
        "url": p.url,
        "messages": qa_messages(p.question, p.answer),
    }


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
    answers = {
        s: {r["messages"][2]["content"].lower() for r in rows if r["kind"] == "qa"}
        for s, rows in splits.items()
    }
    pairs = [("train", "val"), ("train", "test"), ("val", "test")]
    return {
        "foci_shared_between_splits": sum(len(foci[a] & foci[b]) for a, b in pairs),
        "questions_shared_between_splits": sum(len(questions[a] & questions[b]) for a, b in pairs),
        "answers_shared_between_splits": sum(len(answers[a] & answers[b]) for a, b in pairs),
    }
