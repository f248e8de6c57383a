"""Evaluation metrics and their building blocks (DESIGN.md, "Metrics").

- BLEU: sacrebleu corpus BLEU (0-100); ROUGE-L: rouge-score F1 with stemming, per item, then the mean.
  Both computed by the libraries directly (``evaluate.load`` would fetch metric scripts from the Hub).
- Bootstrap 95% intervals by resampling items; BLEU is resampled from sacrebleu's per-segment sufficient
  statistics, so every resample is an exact corpus BLEU without re-tokenising.
- Multiple choice lives in ``medlora.evaluation.multiple_choice``.
- A TF-IDF retrieval baseline: the training answer whose question is most similar to the test question.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..common.progress import Progress, TokenProgress
from ..common.schemas import SECTION_NAMES, parse_any_sections
from ..common.text import plain_words
from ..data.prompts import Message, encode_prompt
from .stats import mean_ci, percentile_ci

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------- text metrics


def _bleu():
    from sacrebleu.metrics import BLEU

    return BLEU()


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def bleu_segment_stats(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-item BLEU sufficient statistics: [hyp_len, ref_len, correct_1..4, total_1..4]."""
    # sacrebleu's own per-segment statistics (what its bootstrap uses), so summed rows reproduce corpus_bleu.
    stats = _bleu()._extract_corpus_statistics(list(hypotheses), [list(references)])
    return np.asarray(stats, dtype=np.int64).reshape(len(hypotheses), -1)


def bleu_from_stats(summed: np.ndarray) -> float:
    from sacrebleu.metrics import BLEU

    order = (len(summed) - 2) // 2
    score = BLEU.compute_bleu(
        correct=[int(x) for x in summed[2 : 2 + order]],
        total=[int(x) for x in summed[2 + order :]],
        sys_len=int(summed[0]),
        ref_len=int(summed[1]),
        smooth_method="exp",  # sacrebleu's corpus_bleu default
    )
    return float(score.score)


@functools.lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


# A treatment item's section is scored against the same target for every row, raw and published, over all
# items and again per variant; many outputs are the same text (empty, the constant alarm). One pair, one score.
@functools.lru_cache(maxsize=1 << 16)
def _rouge_l(hyp: str, ref: str) -> float:
    return _rouge_scorer().score(ref, hyp)["rougeL"].fmeasure


def rouge_l_scores(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    out: list[float] = []
    bar = Progress(len(hypotheses), "ROUGE-L") if len(hypotheses) > 200 else None
    for hyp, ref in zip(hypotheses, references, strict=True):
        out.append(_rouge_l(hyp, ref))
        if bar is not None:
            bar.update()
    return out


def bleu_ci(stats: np.ndarray, idx: np.ndarray) -> list[float] | None:
    if not len(stats):
        return None
    return percentile_ci(np.array([bleu_from_stats(stats[row].sum(axis=0)) for row in idx]))


def text_scores(hypotheses: Sequence[str], references: Sequence[str], idx: np.ndarray) -> dict[str, Any]:
    """BLEU and ROUGE-L with bootstrap intervals, plus what a paired comparison needs (``_stats``, ``_rouge``)."""
    if not hypotheses:
        return {
            "bleu": None,
            "bleu_ci": None,
            "rouge_l": None,
            "rouge_l_ci": None,
            "_stats": None,
            "_rouge": [],
        }
    stats = bleu_segment_stats(hypotheses, references)
    rouge = rouge_l_scores(hypotheses, references)
    return {
        "bleu": corpus_bleu(hypotheses, references),
        "bleu_ci": bleu_ci(stats, idx),
        "rouge_l": float(np.mean(rouge)) if rouge else None,
        "rouge_l_ci": mean_ci(rouge, idx),
        "_stats": stats,
        "_rouge": rouge,
    }


def paired_difference(a: dict[str, Any], b: dict[str, Any], idx_mc: np.ndarray, idx_gen: np.ndarray) -> dict:
    """``b - a`` on the same items, each with a paired bootstrap interval (the same resample for both)."""
    out: dict[str, Any] = {}
    if a.get("_correct") is not None and len(a["_correct"]):
        d = np.asarray(b["_correct"], float) - np.asarray(a["_correct"], float)
        out["accuracy"], out["accuracy_ci"] = float(d.mean()), mean_ci(d, idx_mc)
    if a.get("_stats") is not None and len(a["_stats"]):
        sa, sb = a["_stats"], b["_stats"]
        diffs = [bleu_from_stats(sb[r].sum(0)) - bleu_from_stats(sa[r].sum(0)) for r in idx_gen]
        out["bleu"], out["bleu_ci"] = b["bleu"] - a["bleu"], percentile_ci(np.array(diffs))
        d = np.asarray(b["_rouge"]) - np.asarray(a["_rouge"])
        out["rouge_l"], out["rouge_l_ci"] = float(d.mean()), mean_ci(d, idx_gen)
    return out


# ------------------------------------------------------------------------------------------------ sampling


def seeded_order(rows: Sequence[dict[str, Any]], seed: int, salt: str) -> list[dict[str, Any]]:
    """A seeded permutation; a limit takes its first N, so a smaller limit's items are a subset of a larger's."""
    rows = list(rows)
    random.Random(f"{seed}-{salt}").shuffle(rows)
    return rows


# ------------------------------------------------------------------------------------------------ generation


def greedy_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[list[Message]],
    max_new_tokens: int,
    batch_size: int,
    desc: str = "generating",
) -> tuple[list[str], list[bool]]:
    """Greedy answers, batched with left padding and the attention mask; also whether each ended with EOS."""
    import torch
    from transformers import LogitsProcessorList

    ids = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    device = next(model.parameters()).device
    texts, ended = [""] * len(ids), [False] * len(ids)
    bar = Progress(len(order), desc)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(ids[i]) for i in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in batch], device=device)
        mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in batch], device=device)
        beat = TokenProgress(f"{desc}, batch {start // batch_size + 1}", len(batch), max_new_tokens)
        with torch.no_grad(), beat:
            out = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
                logits_processor=LogitsProcessorList([beat]),
            )
        for row, i in enumerate(batch):
            new = out[row, width:].tolist()
            ended[i] = eos in new
            if ended[i]:
                new = new[: new.index(eos)]
            texts[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
        bar.update(len(batch))
    bar.close()
    return texts, ended


def treatment_scores(texts: Sequence[str]) -> dict[str, Any]:
    """How often a raw output parses as ``Sections`` (plain, or grounded with citations as the model is trained to
    write it), and how often each section is non-empty (over all)."""
    valid, non_empty = 0, dict.fromkeys(SECTION_NAMES, 0)
    for text in texts:
        try:
            sections = parse_any_sections(json.loads(text))[0]
        # JSON and pydantic errors are ValueErrors; a JSON list or string is a TypeError.
        except (ValueError, TypeError):
            continue
        valid += 1
        for name in SECTION_NAMES:
            non_empty[name] += bool(getattr(sections, name))
    n = len(texts)
    return {
        "n_treatment": n,
        "schema_valid": valid / n if n else None,
        "section_non_empty": {k: v / n for k, v in non_empty.items()} if n else None,
    }


# ------------------------------------------------------------------------------------------------- retrieval


class TfidfRetriever:
    """Cosine similarity of TF-IDF vectors (smoothed idf, l2-normalised), with numpy and an inverted index."""

    def __init__(self, documents: Sequence[str]):
        docs = [Counter(plain_words(d)) for d in documents]
        df = Counter(t for d in docs for t in d)
        n = len(docs)
        self.idf = {t: math.log((1 + n) / (1 + c)) + 1 for t, c in df.items()}
        postings: dict[str, tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
        for j, d in enumerate(docs):
            weights = {t: c * self.idf[t] for t, c in d.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for t, w in weights.items():
                postings[t][0].append(j)
                postings[t][1].append(w / norm)
        self.postings = {t: (np.array(js), np.array(ws)) for t, (js, ws) in postings.items()}
        self.n = n

    def nearest(self, query: str) -> int:
        """Index of the most similar document (ties and no overlap: the lowest index)."""
        q = {t: c * self.idf[t] for t, c in Counter(plain_words(query)).items() if t in self.idf}
        scores = np.zeros(self.n)
        for t, w in q.items():
            js, ws = self.postings[t]
            scores[js] += w * ws  # a term appears once per document's posting list, so += is safe
        return int(np.argmax(scores))
