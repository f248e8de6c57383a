"""Retrieval of MedQuAD answer passages for a patient record: passages, the BM25 index, and the query rules.

Passages are answer sentences grouped into windows of at most ``PASSAGE_TOKENS`` TinyLlama tokens, each shown
as ``"{focus}. {question} {text}"`` (the prefix says what the sentences answer) and keeping its url, question
type, parent pair and split. The index is ``bm25s`` over those texts, saved beside the splits in
``data/medquad/index/`` with a ``meta.json`` that holds the hash of the split files it was built with: an index
built from other data is stale and refused with the command that rebuilds it.

Retrieval for a record (``retrieve_for_record``): conditions first (a condition whose normalised name is a
MedQuAD focus takes that focus's passages, otherwise BM25), then symptoms; ``notes`` are never used. At most one
passage per parent pair, at most ``k`` passages and ``max_tokens`` tokens. Training prompts retrieve from
train-split passages only; evaluation and inference from all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .cli import UsageError
from .files import make_temp_dir, replace_dir, sha256_files, write_json
from .medquad import SPLITS, QAPair, focus_key
from .schemas import MAX_PASSAGES

log = logging.getLogger(__name__)

PASSAGE_TOKENS = 128
DEFAULT_K = 4
# MedRAG caps retrieved snippets at about half of a 2,048-token context.
DEFAULT_MAX_CONTEXT_TOKENS = 1024
INDEX_DIR = "index"
INDEX_VERSION = 1
REBUILD_COMMAND = "python download_model.py --skip-model --medquad <your MedQuAD source>"
# Used only when meta.json carries no threshold chosen on the val split (an index built without a val split).
FALLBACK_THRESHOLD = 8.0

# A short English stop list: BM25 weighs common words down anyway, this only keeps queries and indexes small.
_STOP_WORDS = (
    "a an and are as at be by can do does for from has have how i in is it its may of on or that the their "
    "there these they this to was what when which who will with you your"
)
_STOP = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case word tokens without stop words; a plural ``s`` is dropped so "treatments" finds "treatment"."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in _STOP:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        out.append(w)
    return out


@dataclass(frozen=True)
class Passage:
    pid: int
    text: str
    focus: str
    question: str
    qtype: str
    url: str
    pair_id: str
    split: str
    n_tokens: int

    @property
    def shown(self) -> str:
        """The passage as BM25 indexes it and the prompt shows it."""
        prefix = " ".join(x for x in (f"{self.focus}." if self.focus else "", self.question) if x)
        return f"{prefix} {self.text}" if prefix else self.text


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    relevant: bool


def pair_id(p: QAPair) -> str:
    # The same id the QA example of this pair carries, so a passage can be traced to its training row.
    return "qa-" + hashlib.sha1(f"{p.question}\x1f{p.answer}".encode()).hexdigest()[:16]


_SENTENCE = re.compile(r"(?<=[.!?:])\s+|\s+-\s+")


def _token_counts(tokenizer: Any, texts: list[str]) -> list[int]:
    counts: list[int] = []
    for i in range(0, len(texts), 2048):
        counts.extend(
            len(ids) for ids in tokenizer(texts[i : i + 2048], add_special_tokens=False)["input_ids"]
        )
    return counts


def _hard_cut(tokenizer: Any, sentence: str, budget: int) -> list[tuple[str, int]]:
    """An overlong sentence cut into pieces of at most ``budget`` tokens, at token boundaries (with counts)."""
    enc = tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    pieces = []
    for i in range(0, len(offsets), budget):
        chunk = offsets[i : i + budget]
        pieces.append((sentence[chunk[0][0] : chunk[-1][1]].strip(), len(chunk)))
    return [(p, n) for p, n in pieces if p]


def _sentence_counts(tokenizer: Any, answers: list[str]) -> list[list[tuple[str, int]]]:
    """Each answer's sentences with their token counts, from one tokenisation of the whole answer (a token
    belongs to the sentence holding its last character; separators such as " - " are dropped)."""
    out = []
    for i in range(0, len(answers), 1024):
        chunk = answers[i : i + 1024]
        enc = tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True)
        for answer, offsets in zip(chunk, enc["offset_mapping"], strict=True):
            spans, pos = [], 0
            for m in _SENTENCE.finditer(answer):
                spans.append((pos, m.start()))
                pos = m.end()
            spans.append((pos, len(answer)))
            ends = sorted(e - 1 for b, e in offsets if e > b)
            sents, j = [], 0
            for b, e in spans:
                n = 0
                while j < len(ends) and ends[j] < e:
                    n += ends[j] >= b
                    j += 1
                if answer[b:e].strip():
                    sents.append((answer[b:e], n))
            out.append(sents)
    return out


def build_passages(
    split_pairs: dict[str, list[QAPair]], tokenizer: Any, max_tokens: int = PASSAGE_TOKENS
) -> list[Passage]:
    """Every answer cut into passages of at most ``max_tokens`` tokens (prefix included), in split order.

    ``n_tokens`` is an upper bound of the shown passage's length: each sentence is counted with one token of
    slack for the join, so the cap holds although separately tokenised pieces are not exactly additive."""
    rows: list[tuple[str, QAPair]] = [(s, p) for s in SPLITS for p in split_pairs.get(s, [])]
    prefixes = [f"{p.focus}. {p.question}" for _, p in rows]
    prefix_counts = _token_counts(tokenizer, prefixes)
    out: list[Passage] = []
    for row, (sents, n_prefix) in enumerate(
        zip(_sentence_counts(tokenizer, [p.answer for _, p in rows]), prefix_counts, strict=True)
    ):
        split, pair = rows[row]
        budget = max(16, max_tokens - n_prefix - 1)
        groups: list[tuple[list[str], int]] = [([], 0)]
        for sent, n in sents:
            pieces = [(sent, n)] if n + 1 <= budget else _hard_cut(tokenizer, sent, budget - 1)
            for piece, m in pieces:
                if groups[-1][0] and groups[-1][1] + m + 1 > budget:
                    groups.append(([], 0))
                groups[-1] = ([*groups[-1][0], piece], groups[-1][1] + m + 1)
        for texts, used in groups:
            if texts:
                out.append(
                    Passage(len(out), " ".join(texts), pair.focus, pair.question, pair.qtype, pair.url,
                            pair_id(pair), split, n_prefix + 1 + used)
                )  # fmt: skip
    return out


class BM25Index:
    """BM25 over passages, with the passages, their focus lookup and the data hash it was built for."""

    def __init__(
        self, passages: list[Passage], bm25: Any, data_hash: str, meta: dict[str, Any] | None = None
    ):
        self.passages, self.bm25, self.data_hash = passages, bm25, data_hash
        self.meta = dict(meta or {})
        self.by_focus: dict[str, list[int]] = defaultdict(list)
        for p in passages:
            self.by_focus[focus_key(p.focus)].append(p.pid)
        self._focus_words: list[tuple[frozenset[str], str]] | None = None
        self.split_of = np.array([SPLITS.index(p.split) for p in passages], dtype=np.int8)

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", FALLBACK_THRESHOLD))

    @classmethod
    def build(cls, passages: list[Passage], data_hash: str = "") -> BM25Index:
        import bm25s

        start = time.perf_counter()
        bm25 = bm25s.BM25()
        bm25.index([words(p.shown) for p in passages], show_progress=False)
        meta = {"version": INDEX_VERSION, "passages": len(passages), "build_s": time.perf_counter() - start}
        return cls(passages, bm25, data_hash, meta)

    def save(self, directory: str | Path) -> None:
        """Written into a temporary directory beside ``directory`` and swapped in: never half-written."""
        directory = Path(directory)
        tmp = make_temp_dir(directory)
        self.bm25.save(str(tmp / "bm25"), show_progress=False)
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            for p in self.passages:
                fh.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
        write_json(tmp / "meta.json", {**self.meta, "data_hash": self.data_hash})
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
        return cls(passages, bm25, meta.get("data_hash", ""), meta)

    def _scores(self, query: str) -> np.ndarray | None:
        toks = [t for t in words(query) if t in self.bm25.vocab_dict]
        if not toks:
            return None
        return self.bm25.get_scores(toks)

    def _mask(self, scores: np.ndarray, splits: Iterable[str] | None) -> np.ndarray:
        if splits is None:
            return scores
        keep = np.isin(self.split_of, [SPLITS.index(s) for s in splits])
        return np.where(keep, scores, 0.0)

    def search(
        self,
        query: str,
        k: int = DEFAULT_K,
        splits: Iterable[str] | None = None,
        exclude_focus: str | None = None,
        require: str | None = None,
    ) -> list[Hit]:
        """The top ``k`` passages with a positive score; an unknown or empty query gives ``[]``.

        A hit is ``relevant`` (evidence) when its score reaches the threshold and the passage holds every
        content word of ``require`` (a condition's name): "gout" is not evidence from a pseudogout passage."""
        scores = self._scores(query)
        if scores is None or k <= 0:
            return []
        scores = self._mask(scores, splits)
        if exclude_focus is not None:
            scores = scores.copy()
            scores[self.by_focus.get(focus_key(exclude_focus), [])] = 0.0
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        need = set(words(require)) if require else set()
        return [
            Hit(
                self.passages[i],
                float(scores[i]),
                float(scores[i]) >= self.threshold and need <= set(words(self.passages[i].shown)),
            )
            for i in top
            if scores[i] > 0
        ]

    def match_focus(self, condition: str) -> str | None:
        """The focus a condition names: its normalised name, else the focus with the most words all of which
        the condition holds ("acute gout flare" -> gout, "type 2 diabetes mellitus" -> type 2 diabetes)."""
        key = focus_key(condition)
        if key in self.by_focus:
            return key
        if self._focus_words is None:
            self._focus_words = [(frozenset(words(k)), k) for k in sorted(self.by_focus)]
        have = set(words(condition))
        found = [(len(w), k) for w, k in self._focus_words if w and w <= have]
        return max(found)[1] if found else None

    def focus_passages(self, focus: str, query: str, splits: Iterable[str] | None = None) -> list[Hit]:
        """All passages of the focus a condition names (``match_focus``), ranked by BM25 for ``query``;
        relevant by definition."""
        key = self.match_focus(focus)
        pids = self.by_focus.get(key, []) if key else []
        if splits is not None:
            allowed = set(splits)
            pids = [i for i in pids if self.passages[i].split in allowed]
        if not pids:
            return []
        scores = self._scores(query)
        ranked = sorted(pids, key=lambda i: (-(scores[i] if scores is not None else 0.0), i))
        return [Hit(self.passages[i], float(scores[i]) if scores is not None else 0.0, True) for i in ranked]


def condition_query(condition: str) -> str:
    # The prompt asks for treatment: the question prefix of treatment passages says "treatments for X".
    return f"{condition} treatment"


def retrieve_for_record(
    record: Any,
    index: BM25Index,
    k: int = DEFAULT_K,
    max_tokens: int = DEFAULT_MAX_CONTEXT_TOKENS,
    splits: Iterable[str] | None = None,
    depth: int = 20,
) -> list[Hit]:
    """Passages for a record: conditions first (round-robin), then symptoms; never ``notes``.

    Only relevant hits are kept (a focus match, or a BM25 score at or above the index's threshold chosen on the
    val split): an empty list means there is no evidence, and the caller abstains.
    """
    splits = tuple(splits) if splits is not None else None
    k = min(k, MAX_PASSAGES)  # the grammar can cite at most this many
    lists: list[list[Hit]] = []
    for c in record.conditions:
        hits = index.focus_passages(c, condition_query(c), splits) or index.search(
            condition_query(c), depth, splits, require=c
        )
        lists.append(hits)
    symptom_lists = [index.search(s, depth, splits) for s in record.symptoms]
    out: list[Hit] = []
    seen_pairs: set[str] = set()
    used = 0
    for group in (lists, symptom_lists):
        iters = [iter(h) for h in group]
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


class ApproxTokenizer:
    """Word-and-punctuation pieces, for building passages when no TinyLlama tokenizer is at hand (tests, data-only
    runs without --tokenizer). TinyLlama averages about 1.3 tokens per word, so the cap is scaled by that."""

    name_or_path = "approximate (no TinyLlama tokenizer at hand)"
    _PIECE = re.compile(r"\w+|[^\w\s]")

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        texts = [text] if isinstance(text, str) else text
        ids, offsets = [], []
        for t in texts:
            # Every third piece counts twice: about 1.3 tokens per word.
            spans = [
                sp for i, m in enumerate(self._PIECE.finditer(t)) for sp in [m.span()] * (1 + (i % 3 == 2))
            ]
            ids.append([0] * len(spans))
            offsets.append(spans)
        if isinstance(text, str):
            return {"input_ids": ids[0], **({"offset_mapping": offsets[0]} if return_offsets_mapping else {})}
        return {"input_ids": ids, **({"offset_mapping": offsets} if return_offsets_mapping else {})}


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


def load_index(data_dir: str | Path, index_dir: str | Path | None = None) -> BM25Index:
    """The index beside the splits in ``data_dir``, checked against them (exit 2 when missing or stale)."""
    return BM25Index.load(index_dir or Path(data_dir) / INDEX_DIR, data_hash(data_dir))
