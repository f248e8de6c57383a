"""Answer passages: MedQuAD answers cut into windows of at most ``PASSAGE_TOKENS`` TinyLlama tokens.

Each passage is shown as ``"{focus}. {question} {text}"`` (the prefix says what the sentences answer) and keeps
its url, question type, parent pair and split.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from .medquad import SPLITS, QAPair

PASSAGE_TOKENS = 128


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
