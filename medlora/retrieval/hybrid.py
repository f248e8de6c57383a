"""Hybrid retrieval: BM25 fused with the embedded sentence encoder, and evidence judged by meaning.

What people write ("my tummy hurts after meals", "chest pain radiating to the left arm") shares few words with
MedQuAD's answers; the encoder (``medlora.retrieval.dense``) places both near each other. A query is ranked by BM25 and by
cosine similarity to each answer's opening passage; the two rankings are fused by reciprocal rank (Cormack et al.
2009: ``1 / (RRF_K + rank)`` summed, no score scales to calibrate), the encoder's ranking weighted by
``DENSE_WEIGHT``, chosen on the val consumer questions.

Evidence by meaning: a hit of a free-text query (a question, the presenting complaint, a condition no known name
covers) is evidence when its cosine similarity reaches the threshold of its route ("question" or "condition"); a
question asking for what MedQuAD never answers (a price, a product, an animal's care, one drug's dose or use:
``medlora.retrieval.intents``) has no evidence,
chosen on val for a stated false-grounding rate (``medlora.retrieval.hybrid_rules``) and stored in the index's
``meta.json``. A cosine does not depend on which tokenizer cut the passages, as a BM25 share does.

Without the encoder or without passage vectors matching the index, everything here answers BM25 alone: said
once in the log (``attach``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import dense, intents
from .hits import Hit

if TYPE_CHECKING:  # the index imports this module when it searches: no import back at run time
    from .index import BM25Index

log = logging.getLogger(__name__)

RRF_K = 60
# Candidates taken from each ranking before fusion.
DEPTH = 50
DENSE_WEIGHT = 1.0
ROUTES = ("question", "condition")
# Used only when meta.json carries no threshold chosen on val: strict, so that an unchosen rule grounds little.
FALLBACK_THRESHOLDS = {"question": 0.6, "condition": 0.7}
# The question rule abstains on intents MedQuAD never answers (``medlora.retrieval.intents``) before the cosine is
# weighed; a threshold chosen without that rule (an index built before it, ``meta["dense"]`` without
# ``"intents"``) is replaced by this one, chosen on the val consumer questions of the full build under the same
# objective (``python bench/retrieval_quality.py --data-dir data/medquad --split val --consumer val
# --choose-question``). A rebuild stores its own choice.
INTENTS_VERSION = 1
QUESTION_THRESHOLD_WITH_INTENTS = 0.46
ENV_ENCODER = "MEDLORA_ENCODER_DIR"
_said: set[str] = set()


def _once(key: str, msg: str, *args: Any) -> None:
    if key not in _said:
        _said.add(key)
        log.warning(msg, *args)


@dataclass
class DenseSide:
    """The encoder, the answer vectors and the answer row of every passage."""

    encoder: Any
    vectors: dense.Vectors
    row_of: np.ndarray

    def sims(self, text: str) -> np.ndarray:
        """Cosine similarity of ``text`` with every passage (through its answer's opening)."""
        q = self.encoder.encode([text])[0]
        return self.vectors.scores(q)[self.row_of]


def encoder_dir(default: str | Path | None = None) -> Path:
    return Path(os.environ.get(ENV_ENCODER) or default or dense.DEFAULT_DIR)


def attach(index: BM25Index, directory: str | Path | None, encoder: Any = None) -> bool:
    """Give ``index`` its dense side from the vectors stored in ``directory`` (the index folder) and the encoder
    (loaded from ``encoder_dir()`` unless given). False, said once, when either is missing or they do not match
    the passages and the weights: retrieval is then BM25 alone."""
    if encoder is None:
        encoder = dense.load_encoder(encoder_dir())
        if encoder is None:
            return False  # load_encoder said so
    texts, row_of = dense.answer_openings(index.passages)
    vectors = (
        dense.Vectors.load(Path(directory), dense.texts_hash(texts), encoder.digest) if directory else None
    )
    if vectors is None:
        _once(
            f"vectors:{directory}",
            "no passage embeddings for this index and encoder in %s: retrieval is BM25 alone (rebuild the index "
            "with the encoder present: `python download_model.py --skip-model --medquad <source>`)",
            directory,
        )
        return False
    index.dense = DenseSide(encoder, vectors, row_of)
    return True


def thresholds(index: BM25Index) -> dict[str, float]:
    chosen = index.meta.get("dense", {})
    out = {**FALLBACK_THRESHOLDS, **chosen.get("thresholds", {})}
    if (
        "chosen_on" in chosen and chosen.get("intents") != INTENTS_VERSION
    ):  # chosen on val, before the intents
        out["question"] = QUESTION_THRESHOLD_WITH_INTENTS
    return out


def _top(scores: np.ndarray, depth: int, tiebreak: np.ndarray | None = None) -> np.ndarray:
    depth = min(depth, len(scores))
    if depth <= 0:
        return np.zeros(0, dtype=np.int64)
    if tiebreak is None:
        top = np.argpartition(-scores, depth - 1)[:depth]
        return top[np.argsort(-scores[top], kind="stable")]
    # Passages of one answer share its cosine: BM25 orders them. Sorting only the passages at or above the
    # depth-th cosine keeps this a partition, not a sort of every passage.
    kth = np.partition(scores, len(scores) - depth)[len(scores) - depth]
    cand = np.flatnonzero(scores >= kth)
    return cand[np.lexsort((-tiebreak[cand], -scores[cand]))][:depth]


def _keep(index: BM25Index, splits: Iterable[str] | None) -> np.ndarray | None:
    if splits is None:
        return None
    from ..data.medquad import SPLITS

    return np.isin(index.split_of, [SPLITS.index(s) for s in splits])


def search(
    index: BM25Index,
    text: str,
    k: int = 20,
    splits: Iterable[str] | None = None,
    route: str = "question",
    mode: str = "hybrid",
    depth: int = DEPTH,
) -> list[Hit]:
    """The top ``k`` passages for free text, fused (``mode`` "hybrid"), by the encoder alone ("dense") or by BM25
    alone ("bm25"); a hit is evidence when its cosine reaches the ``route``'s threshold. Without a dense side
    the ranking is BM25's and nothing is evidence by meaning (the caller's lexical rule still applies)."""
    side: DenseSide | None = getattr(index, "dense", None)
    bm25, _ = index._scores(text)
    keep = _keep(index, splits)
    bm25 = np.zeros(len(index.passages)) if bm25 is None else np.asarray(bm25, dtype=np.float64)
    sims = None if side is None else side.sims(text)
    if keep is not None:  # a passage of another split is out of both rankings
        bm25 = np.where(keep, bm25, 0.0)
        sims = None if sims is None else np.where(keep, sims, -2.0)
    if sims is None or mode == "bm25":
        ranked = [int(i) for i in _top(bm25, k) if bm25[i] > 0]
    else:
        dense_top = [i for i in _top(sims, depth if mode == "hybrid" else k, tiebreak=bm25) if sims[i] > -2.0]
        if mode == "dense":
            ranked = [int(i) for i in dense_top]
        else:
            fused: dict[int, float] = {}
            for r, i in enumerate(dense_top):
                fused[int(i)] = DENSE_WEIGHT / (RRF_K + r + 1)
            for r, i in enumerate(i for i in _top(bm25, depth) if bm25[i] > 0):
                fused[int(i)] = fused.get(int(i), 0.0) + 1.0 / (RRF_K + r + 1)
            ranked = sorted(fused, key=lambda i: (-fused[i], -float(sims[i]), i))[:k]
    limit = thresholds(index).get(route, 1.0)
    if route == "question" and intents.out_of_scope(text):
        limit = float("inf")  # asks for what MedQuAD never answers: ranked, never evidence
    out = []
    for i in ranked:
        sim = float(sims[i]) if sims is not None else None
        relevant = sim is not None and sim >= limit
        out.append(Hit(index.passages[i], float(bm25[i]), relevant, sim or 0.0, True, f"dense:{route}", sim))
    return out


def complaint(symptoms: Sequence[str]) -> str:
    """The presenting complaint as one query: the symptoms together say more than each alone (chest pain with
    sweating and breathlessness is a heart attack, chest pain alone many things)."""
    return "; ".join(s.strip() for s in symptoms if s and s.strip())


def condition_fallback(
    index: BM25Index, condition: str, hits: list[Hit], splits: Iterable[str] | None, depth: int
) -> list[Hit]:
    """A condition whose lexical hits hold no evidence (no known name, words MedQuAD does not use) is searched
    by meaning; its hits are evidence only above the "condition" threshold."""
    if getattr(index, "dense", None) is None or any(h.relevant for h in hits):
        return hits
    return search(index, condition, depth, splits, route="condition")


def retrieve_for_question(
    index: BM25Index, text: str, k: int = 4, splits: Iterable[str] | None = None, mode: str = "hybrid"
) -> list[Hit]:
    """Evidence for a free-text question: at most one passage per answer, an empty list means abstain."""
    out: list[Hit] = []
    pairs: set[str] = set()
    for h in search(index, text, max(20, 4 * k), splits, "question", mode):
        if h.relevant and h.passage.pair_id not in pairs:
            out.append(h)
            pairs.add(h.passage.pair_id)
            if len(out) >= k:
                break
    return out
