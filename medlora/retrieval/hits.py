"""A retrieved passage with its scores: what every retrieval route (BM25, focus match, the encoder) returns."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.passages import Passage

# Passages per prompt, and their token budget: MedRAG caps retrieved snippets at about half of a 2,048-token
# context. Here, not in the index, so a caller that only needs the defaults (inference.py --check) stays light.
DEFAULT_K = 4
DEFAULT_MAX_CONTEXT_TOKENS = 1024


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    relevant: bool
    share: float = 0.0  # score / reach of the query
    about: bool = True  # the passage is about what was asked (``is_about``)
    band: str = "bm25:1"  # route (focus match or BM25) and the length band of what was asked
    similarity: float | None = (
        None  # cosine with the query (``medlora.retrieval.hybrid``); None without the encoder
    )
