"""Retrieval of MedQuAD answer passages for a patient record: the BM25 index, the evidence rule, the record rules.

Passages (``medlora.data.passages``) are indexed with ``bm25s`` and saved beside the splits in ``data/medquad/index/``
with a ``meta.json`` holding the hash of the split files it was built with (an index built from other data is
refused with the command that rebuilds it), the rules chosen on val, and ``lexicon.json`` (``medlora.clinical.conditions``).

Evidence (``BM25Index._hit``): a hit is evidence when its BM25 score, divided by the most the query's words
could score (``reach``), reaches the threshold chosen on val for its route (the passages of a focus the condition
names, or a BM25 search) and the length of what was asked (1, 2, or 3+ words), and the passage is about what was
asked: its focus or question names it, or its text names it at least twice.

Retrieval for a record (``retrieve_for_record``): each condition is normalised (``medlora.clinical.conditions``); a name
of answered foci takes their passages (ties between foci go to the one with the strongest evidence), otherwise
BM25; either way only evidence is kept. When the conditions find nothing, the symptoms are queried, then the
condition names the notes mention, when no condition was recognised (notes are untrusted text: they are
searched, never followed). At most one passage per parent pair, ``k`` passages and ``max_tokens`` tokens.
Training prompts retrieve from train-split passages only; evaluation and inference from all.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..clinical.conditions import Lexicon, Match
from ..common.cli import UsageError
from ..common.files import make_temp_dir, replace_dir, sha256_files, write_json
from ..common.schemas import MAX_PASSAGES
from ..common.text import words
from ..data.medquad import SPLITS, focus_key
from ..data.passages import Passage
from .hits import DEFAULT_K, DEFAULT_MAX_CONTEXT_TOKENS, Hit

log = logging.getLogger(__name__)

INDEX_DIR = "index"
INDEX_VERSION = 2
REBUILD_COMMAND = "python download_model.py --skip-model --medquad <your MedQuAD source>"
# Used only when meta.json carries no rule chosen on the val split (an index built without a val split):
# a share of the reach by query length (1, 2, 3+ content words).
FALLBACK_EVIDENCE = {f"{route}:{band}": 0.5 for route in ("focus", "bm25") for band in ("1", "2", "3+")}
# A passage names a condition "more than in passing" when its text holds the name at least this many times.
MENTIONS_ABOUT = 2


def length_band(query: str) -> str:
    """The evidence rule's query-length band: content words of the query, "treatment" not counted."""
    n = len([w for w in dict.fromkeys(words(query)) if w != "treatment"])
    return "1" if n <= 1 else "2" if n == 2 else "3+"


def _phrase_count(seq: list[str], phrase: list[str]) -> int:
    n = len(phrase)
    return sum(seq[i : i + n] == phrase for i in range(len(seq) - n + 1)) if n else 0


def is_about(passage: Passage, names: Iterable[str], foci: Iterable[str] = ()) -> bool:
    """The passage is about one of ``names``: its focus is one of ``foci`` (those whose names a condition
    spells out), its focus or question holds every word of the name, or its text holds the name, a phrase of
    two or more words, at least ``MENTIONS_ABOUT`` times; one mention in passing is not enough."""
    if foci and focus_key(passage.focus) in set(foci):
        return True
    prefix = set(words(f"{passage.focus} {passage.question}"))
    text = None
    for name in names:
        need = words(name)
        if not need:
            continue
        if set(need) <= prefix:
            return True
        if len(need) < 2:
            continue  # one word repeated is often a drug or test listed twice, not the passage's subject
        text = text if text is not None else words(passage.text)
        if _phrase_count(text, need) >= MENTIONS_ABOUT:
            return True
    return False


class BM25Index:
    """BM25 over passages, with the passages, their focus lookup, the condition lexicon, the evidence rule chosen
    on val and the data hash it was built for."""

    def __init__(
        self,
        passages: list[Passage],
        bm25: Any,
        data_hash: str,
        meta: dict[str, Any] | None = None,
        lexicon: Lexicon | None = None,
    ):
        self.passages, self.bm25, self.data_hash = passages, bm25, data_hash
        self.meta = dict(meta or {})
        self.by_focus: dict[str, list[int]] = defaultdict(list)
        for p in passages:
            self.by_focus[focus_key(p.focus)].append(p.pid)
        # Without MedQuAD's synonyms (tests, tabular sources) the focus names alone are the lexicon.
        self.lexicon = lexicon or Lexicon.build(sorted({p.focus for p in passages}))
        self.split_of = np.array([SPLITS.index(p.split) for p in passages], dtype=np.int8)
        # The most each word can add to a passage's score: a query's reach is their sum over its words.
        data, indptr = np.asarray(bm25.scores["data"]), np.asarray(bm25.scores["indptr"])
        self._term_max = np.zeros(len(indptr) - 1, dtype=np.float64)
        nonempty = np.diff(indptr) > 0
        if data.size:
            self._term_max[nonempty] = np.maximum.reduceat(data, indptr[:-1][nonempty])
        self._vocab_words: Any = None
        # ``medlora.retrieval.hybrid.DenseSide`` when the encoder and the passage vectors are at hand.
        self.dense: Any = None

    @property
    def evidence_rule(self) -> dict[str, float]:
        """Score-share thresholds per route ("focus": passages of a focus the condition names; "bm25": a search)
        and length band of what was asked ("1", "2", "3+" words), chosen on val."""
        return {**FALLBACK_EVIDENCE, **self.meta.get("evidence", {}).get("thresholds", {})}

    @classmethod
    def build(cls, passages: list[Passage], data_hash: str = "", lexicon: Lexicon | None = None) -> BM25Index:
        import bm25s

        start = time.perf_counter()
        bm25 = bm25s.BM25()
        bm25.index([words(p.shown) for p in passages], show_progress=False)
        meta = {"version": INDEX_VERSION, "passages": len(passages), "build_s": time.perf_counter() - start}
        return cls(passages, bm25, data_hash, meta, lexicon)

    def save(self, directory: str | Path) -> None:
        """Written into a temporary directory beside ``directory`` and swapped in: never half-written."""
        directory = Path(directory)
        tmp = make_temp_dir(directory)
        self.bm25.save(str(tmp / "bm25"), show_progress=False)
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            for p in self.passages:
                fh.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
        write_json(tmp / "lexicon.json", self.lexicon.to_json())
        write_json(tmp / "meta.json", {**self.meta, "data_hash": self.data_hash})
        if self.dense is not None:  # the passage vectors live with the index they were computed for
            self.dense.vectors.save(tmp)
        replace_dir(tmp, directory)

    @classmethod
    def load(cls, directory: str | Path, data_hash: str | None = None) -> BM25Index:
        """Raises ``UsageError`` naming the rebuild command when the index is missing, unreadable or stale."""
        import bm25s

        directory = Path(directory)
        meta_path = directory / "meta.json"
        if not meta_path.is_file():
            raise UsageError(f"no passage index at {directory}: build it with `{REBUILD_COMMAND}`")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            with open(directory / "passages.jsonl", encoding="utf-8") as fh:
                passages = [Passage(**json.loads(line)) for line in fh if line.strip()]
            bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False)
            lex_path = directory / "lexicon.json"
            lexicon = (
                Lexicon.from_json(json.loads(lex_path.read_text(encoding="utf-8")))
                if lex_path.is_file()
                else None
            )
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise UsageError(
                f"passage index at {directory} is unreadable ({type(e).__name__}): rebuild it with `{REBUILD_COMMAND}`"
            ) from None
        if meta.get("version") != INDEX_VERSION or len(passages) != bm25.scores["num_docs"]:
            raise UsageError(
                f"passage index at {directory} is from another version: rebuild it with `{REBUILD_COMMAND}`"
            )
        if data_hash is not None and meta.get("data_hash") != data_hash:
            raise UsageError(
                f"passage index at {directory} is stale (built from other data than the splits beside it): "
                f"rebuild it with `{REBUILD_COMMAND}`"
            )
        return cls(passages, bm25, meta.get("data_hash", ""), meta, lexicon)

    def _tokens(self, query: str) -> list[str]:
        """The query's words the index knows; an unknown word is replaced by the nearest known word within the
        val-chosen edit distance ("antiphosoholipid" -> "antiphospholipid")."""
        from ..clinical.spelling import FuzzyIndex

        out = []
        for w in words(query):
            if w in self.bm25.vocab_dict:
                out.append(w)
                continue
            limit = self.lexicon.rule.max_edits(w)
            if limit and not w.isdigit():
                if self._vocab_words is None:
                    self._vocab_words = FuzzyIndex(
                        k for k in self.bm25.vocab_dict if isinstance(k, str) and k
                    )
                found = self._vocab_words.lookup(w, limit)
                if found:
                    out.append(found[0][1])
        return out

    def rare_word(self, word: str) -> bool:
        """The word is in at most ``NOTE_WORD_MAX_SHARE`` of the passages (and at least one)."""
        ws = words(word)
        if len(ws) != 1 or ws[0] not in self.bm25.vocab_dict:
            return False
        t = self.bm25.vocab_dict[ws[0]]
        indptr = self.bm25.scores["indptr"]
        return 0 < indptr[t + 1] - indptr[t] <= NOTE_WORD_MAX_SHARE * len(self.passages)

    def _spelled(self, names: list[str]) -> list[str]:
        """Names as the index spells them (misspelled words corrected), for the "about" test; a name with a word
        the index neither knows nor can correct stays as written (dropping the word would widen the name)."""
        out = list(names)
        for n in names:
            toks = self._tokens(n)
            if len(toks) == len(words(n)):
                out.append(" ".join(toks))
        return list(dict.fromkeys(out))

    def _scores(self, query: str) -> tuple[np.ndarray | None, float]:
        toks = list(dict.fromkeys(self._tokens(query)))  # a repeated word would score past the reach
        if not toks:
            return None, 0.0
        reach = float(sum(self._term_max[self.bm25.vocab_dict[t]] for t in dict.fromkeys(toks)))
        return self.bm25.get_scores(toks), reach

    def _mask(self, scores: np.ndarray, splits: Iterable[str] | None) -> np.ndarray:
        if splits is None:
            return scores
        keep = np.isin(self.split_of, [SPLITS.index(s) for s in splits])
        return np.where(keep, scores, 0.0)

    def _hit(
        self, i: int, score: float, reach: float, band: str, names: list[str] | None, foci: Iterable[str] = ()
    ) -> Hit:
        """The evidence rule: the score's share of the reach at or above the val-chosen threshold of the query's
        length band, and the passage about one of ``names`` or ``foci`` (no names: the score alone decides)."""
        p, share = self.passages[i], float(score) / reach if reach else 0.0
        about = names is None or is_about(p, self._spelled(names), foci)
        return Hit(p, float(score), about and share >= self.evidence_rule.get(band, 0.5), share, about, band)

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        splits: Iterable[str] | None = None,
        exclude_focus: str | None = None,
        require: str | Iterable[str] | None = None,
        about_foci: Iterable[str] = (),
        asked: str | None = None,
    ) -> list[Hit]:
        """The top ``k`` passages with a positive score; an unknown or empty query gives ``[]``.

        A hit is ``relevant`` (evidence) when it passes ``evidence`` for the names in ``require`` (a condition's
        name or names): "gout" is not evidence from a pseudogout passage that mentions gout once. ``asked``: the
        text whose length sets the band (default: the query)."""
        scores, reach = self._scores(query)
        if scores is None or k <= 0:
            return []
        scores = self._mask(scores, splits)
        if exclude_focus is not None:
            scores = scores.copy()
            scores[self.by_focus.get(focus_key(exclude_focus), [])] = 0.0
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        names = [require] if isinstance(require, str) else list(require) if require is not None else None
        band = "bm25:" + length_band(asked or query)
        return [self._hit(i, scores[i], reach, band, names, about_foci) for i in top if scores[i] > 0]

    def lookup(self, condition: str) -> Match:
        return self.lexicon.lookup(condition)

    def match_foci(self, condition: str) -> list[str]:
        """The foci a condition names as a whole (name, synonym, abbreviation, lay name, or a misspelling of one;
        a shared word is no match). Among several, those whose passages score best for the condition as written:
        ties are resolved by evidence, never by spelling, and an unresolved tie keeps every tied focus."""
        foci = [f for f in self.lookup(condition).foci if f in self.by_focus]
        if len(foci) <= 1:
            return foci
        scores, _ = self._scores(condition_query(condition))
        if scores is None:
            return foci
        best = {f: float(max(scores[i] for i in self.by_focus[f])) for f in foci}
        top = max(best.values())
        return [f for f in foci if best[f] == top]

    def match_focus(self, condition: str) -> str | None:
        """The focus a condition names (``match_foci``); the first of a tie."""
        foci = self.match_foci(condition)
        return foci[0] if foci else None

    def focus_passages(self, focus: str, query: str, splits: Iterable[str] | None = None) -> list[Hit]:
        """The passages of the focus a condition names (``match_focus``), ranked by BM25 for ``query`` plus the
        focus's name; each still passes the evidence rule (about the focus, and a score share high enough)."""
        keys = self.match_foci(focus)
        pids = [i for key in keys for i in self.by_focus[key]]
        if splits is not None:
            allowed = set(splits)
            pids = [i for i in pids if self.passages[i].split in allowed]
        if not pids:
            return []
        names = [n for n in self.lookup(focus).names if n] + keys
        q = " ".join([query, *(self.lexicon.display.get(key, key) for key in keys)])
        scores, reach = self._scores(q)
        if scores is None:
            return []
        band = "focus:" + length_band(focus)
        ranked = sorted(pids, key=lambda i: (-scores[i], i))
        return [self._hit(i, scores[i], reach, band, names) for i in ranked]


def recognised(index: BM25Index, condition: str) -> bool:
    """The lexicon knows the condition (a focus, an alias, a drug) or some focus's names spell it out."""
    m = index.lookup(condition)
    return m.how != "none" or bool(m.named_by)


def condition_query(condition: str) -> str:
    # The prompt asks for treatment: the question prefix of treatment passages says "treatments for X".
    return f"{condition} treatment"


def condition_hits(
    index: BM25Index, condition: str, splits: Iterable[str] | None = None, depth: int = 20
) -> list[Hit]:
    """Hits for one condition: the passages of the focus it names, else BM25 for its names (``search_hits``),
    each marked by the evidence rule."""
    return index.focus_passages(condition, condition_query(condition), splits) or search_hits(
        index, condition, splits, depth
    )


def search_hits(
    index: BM25Index, condition: str, splits: Iterable[str] | None = None, depth: int = 20
) -> list[Hit]:
    """BM25 for a condition and the names the lexicon gives it (a drug's generic names included); a passage is
    about it when it names the condition or is of a focus whose names spell it out (``Match.named_by``)."""
    m = index.lookup(condition)
    query = " ".join(dict.fromkeys([condition, *m.names]))
    return index.search(
        condition_query(query),
        depth,
        splits,
        require=m.names or [condition],
        about_foci=m.named_by,
        asked=condition,
    )


_NOTE_SPAN = 6


# A one-word name in a note counts only when at most this share of passages holds the word: "uveitis" is a
# topic, "heart" or "mouth" in a note is a word of everyday speech.
NOTE_WORD_MAX_SHARE = 0.005


_FAMILY_HISTORY = re.compile(
    r"\b(?:family history|fhx?|fh)\b[^.;\n]*|\b(?:mother|father|sister|brother|parent|grandmother|grandfather)"
    r"(?:'s)? (?:has|had|with|died of)\b[^.;\n]*",
    re.I,
)


def note_conditions(index: BM25Index, note: str, conditions: Iterable[str] = (), limit: int = 3) -> list[str]:
    """Names of answered foci that a free-text note mentions (longest first): two or more words, or one rare
    word (``NOTE_WORD_MAX_SHARE``) or abbreviation that is a focus name or alias. A name whose words all come
    from the record's own conditions is skipped: those were judged already, and a word of an unrecognised
    condition ("giant cell vasculitis") must not come back through the note as a shared-word match. A pointer
    for retrieval only: nothing in the note is followed; a family history ("FHx of diabetes", "mother had breast
    cancer") names a relative's condition, not the patient's, and is skipped."""
    # A relative's condition is not the patient's: "Family history of heart disease" names none of theirs.
    note = _FAMILY_HISTORY.sub(" ", note)
    toks = re.findall(r"[A-Za-z0-9']+", note)
    own = {w for c in conditions for w in words(c)}
    found: list[str] = []
    covered: set[int] = set()
    for n in range(_NOTE_SPAN, 0, -1):
        for i in range(len(toks) - n + 1):
            if covered & set(range(i, i + n)):
                continue
            span = " ".join(toks[i : i + n])
            key = focus_key(span)
            if key not in index.lexicon.names or (own and set(words(span)) <= own):
                continue
            if n == 1 and not (span.isupper() and len(key) >= 2) and not index.rare_word(key):
                continue
            found.append(span)
            covered |= set(range(i, i + n))
    return found[:limit]


def retrieve_for_record(
    record: Any,
    index: BM25Index,
    k: int = DEFAULT_K,
    max_tokens: int = DEFAULT_MAX_CONTEXT_TOKENS,
    splits: Iterable[str] | None = None,
    depth: int = 20,
) -> list[Hit]:
    """Passages for a record, round-robin over the primary condition (the first), the presenting complaint (the
    symptoms), then the comorbidities; when they find no evidence and no condition was recognised at all, the
    condition names the notes mention, and with the encoder the note read as a question. Only evidence is kept:
    an empty list means abstain. With the encoder (``medlora.retrieval.hybrid``) the complaint is one query by meaning and
    a condition without lexical evidence is searched by meaning; without it, each symptom is searched by BM25
    when the conditions found nothing, as before the encoder."""
    from .hybrid import complaint, condition_fallback
    from .hybrid import search as hybrid_search

    splits = tuple(splits) if splits is not None else None
    k = min(k, MAX_PASSAGES)  # the grammar can cite at most this many

    def conditions_and_complaint() -> list[list[Hit]]:
        lists = [condition_fallback(index, c, condition_hits(index, c, splits, depth), splits, depth)
                 for c in record.conditions]  # fmt: skip
        if index.dense is None or not record.symptoms:
            return lists
        return lists[:1] + [hybrid_search(index, complaint(record.symptoms), depth, splits)] + lists[1:]

    def symptoms() -> list[list[Hit]]:
        # BM25 alone: a symptom is evidence only from a passage about it, and only when the conditions found none
        # (one symptom word matched lexically is weak evidence beside a condition's own passages).
        return (
            []
            if index.dense is not None
            else [index.search(s, depth, splits, require=[s]) for s in record.symptoms]
        )

    def notes() -> list[list[Hit]]:
        # A condition the lexicon knows (a focus, an alias, a drug) but with no evidence is an honest "nothing
        # here": the note is read only when no condition was recognised at all.
        if any(recognised(index, c) for c in record.conditions):
            return []
        lists = [
            condition_hits(index, c, splits, depth)
            for c in note_conditions(index, record.notes or "", record.conditions)
        ]
        if index.dense is not None and (record.notes or "").strip():
            lists.append(hybrid_search(index, record.notes or "", depth, splits))
        return lists

    stages = [conditions_and_complaint, symptoms, notes]
    out: list[Hit] = []
    seen_pairs: set[str] = set()
    used = 0
    for stage in stages:
        if out:
            break
        iters = [iter(h) for h in stage()]
        while iters and len(out) < k:
            for it in list(iters):
                hit = next(it, None)
                while hit is not None and (
                    not hit.relevant
                    or hit.passage.pair_id in seen_pairs
                    or used + hit.passage.n_tokens > max_tokens
                ):
                    hit = next(it, None)
                if hit is None:
                    iters.remove(it)
                    continue
                out.append(hit)
                seen_pairs.add(hit.passage.pair_id)
                used += hit.passage.n_tokens
                if len(out) >= k:
                    break
    return out


def held_out_passages_in_prompts(index: BM25Index, rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    """How many prompts of ``rows`` show a val or test passage (a numbered line equal to one): must be 0 for train."""
    held = {p.shown for p in index.passages if p.split != "train"}
    line = re.compile(r"^\[\d+\] (.*)$", re.M)
    prompts = shown = 0
    for r in rows:
        user = next((m["content"] for m in r["messages"] if m["role"] == "user"), "")
        found = [x for x in line.findall(user) if x in held]
        prompts += bool(found)
        shown += len(found)
    return {"prompts_with_val_or_test_passages": prompts, "val_or_test_passages_shown": shown}


def data_hash(data_dir: str | Path) -> str:
    """The hash an index is checked against: the split files it was built beside."""
    files = [Path(data_dir) / f"{s}.jsonl" for s in SPLITS]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"split file {missing[0]} not found: build the data with `{REBUILD_COMMAND}`")
    return sha256_files(files)


def load_index(data_dir: str | Path, index_dir: str | Path | None = None, dense: bool = True) -> BM25Index:
    """The index beside the splits in ``data_dir``, checked against them (exit 2 when missing or stale), with the
    sentence encoder and the passage vectors stored with it when both are at hand (``medlora.retrieval.hybrid.attach``;
    BM25 alone otherwise, said once)."""
    directory = index_dir or Path(data_dir) / INDEX_DIR
    index = BM25Index.load(directory, data_hash(data_dir))
    if dense:
        from .hybrid import attach

        attach(index, directory)
    return index
