"""Evaluation metrics and their building blocks (DESIGN.md, "Metrics").

- BLEU: sacrebleu corpus BLEU (0-100); ROUGE-L: rouge-score F1 with stemming, per item, then the mean.
  Both computed by the libraries directly (``evaluate.load`` would fetch metric scripts from the Hub).
- Bootstrap 95% intervals by resampling items; BLEU is resampled from sacrebleu's per-segment sufficient
  statistics, so every resample is an exact corpus BLEU without re-tokenising.
- Multiple choice: the true answer and distractors of the same question type from other foci, scored by the
  log-likelihood of the answer tokens divided by the answer's length in characters (lm-evaluation-harness
  ``acc_norm``).
- A TF-IDF retrieval baseline: the training answer whose question is most similar to the test question.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from .medquad import focus_key
from .prompts import IGNORE_INDEX, Message, encode_example, encode_prompt
from .schemas import SECTION_NAMES, parse_sections

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


def rouge_l_scores(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [
        scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hypotheses, references, strict=True)
    ]


# ------------------------------------------------------------------------------------------------- bootstrap


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Resampled item indices, shape (n_boot, n); reuse one draw for paired comparisons on the same items."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n)) if n else np.zeros((n_boot, 0), dtype=np.int64)


def percentile_ci(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [float(lo), float(hi)]


def mean_ci(values: Sequence[float], idx: np.ndarray) -> list[float] | None:
    v = np.asarray(values, dtype=np.float64)
    return percentile_ci(v[idx].mean(axis=1)) if len(v) else None


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


# ------------------------------------------------------------------------------------------- multiple choice


@dataclass
class MCItem:
    id: str
    prompt: list[Message]
    options: list[str]
    answer_index: int
    focus: str
    qtype: str
    distractor_foci: list[str] = field(default_factory=list)


def seeded_order(rows: Sequence[dict[str, Any]], seed: int, salt: str) -> list[dict[str, Any]]:
    """A seeded permutation; a limit takes its first N, so a smaller limit's items are a subset of a larger's."""
    rows = list(rows)
    random.Random(f"{seed}-{salt}").shuffle(rows)
    return rows


def _answers_by_qtype_focus(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["kind"] == "qa":
            out[r["qtype"]][focus_key(r["focus"])].append(r["messages"][-1]["content"])
    return out


def build_mc_items(
    test_rows: Sequence[dict[str, Any]],
    fallback_rows: Sequence[dict[str, Any]],
    limit: int,
    seed: int,
    n_options: int = 4,
) -> tuple[list[MCItem], int]:
    """Up to ``limit`` items from the test split's qa rows, and how many were skipped for lack of distractors.

    Distractors: answers of the same qtype from other foci, one per focus, drawn from the test split first and
    from ``fallback_rows`` (train) only when the test split has too few foci of that qtype. An answer whose
    text equals the true answer is never a distractor, so the true answer is never offered twice.
    """
    pools = [_answers_by_qtype_focus(test_rows), _answers_by_qtype_focus(fallback_rows)]
    items, skipped = [], 0
    for row in seeded_order([r for r in test_rows if r["kind"] == "qa"], seed, "mc"):
        if len(items) >= limit:
            break
        # One generator per item: its options do not depend on which other items were drawn.
        rng = random.Random(f"{seed}-mc-{row['id']}")
        true, own = row["messages"][-1]["content"], focus_key(row["focus"])
        seen_text, seen_foci, distractors = {true.strip()}, {own}, []
        for pool in pools:
            by_focus = pool.get(row["qtype"], {})
            foci = sorted(f for f in by_focus if f not in seen_foci)
            rng.shuffle(foci)
            for f in foci:
                if len(distractors) == n_options - 1:
                    break
                choices = [a for a in by_focus[f] if a.strip() not in seen_text]
                if choices:
                    pick = rng.choice(choices)
                    distractors.append((f, pick))
                    seen_text.add(pick.strip())
                    seen_foci.add(f)
        if len(distractors) < n_options - 1:
            skipped += 1
            continue
        options = [true] + [a for _, a in distractors]
        order = list(range(n_options))
        rng.shuffle(order)
        items.append(
            MCItem(
                id=row["id"],
                prompt=row["messages"][:-1],
                options=[options[i] for i in order],
                answer_index=order.index(0),
                focus=row["focus"],
                qtype=row["qtype"],
                distractor_foci=[f for f, _ in distractors],
            )
        )
    return items, skipped


def truncate_to_tokens(tokenizer: Any, text: str, max_tokens: int) -> str:
    """The longest prefix of ``text`` of at most ``max_tokens`` tokens, cut at a token boundary."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= max_tokens:
        return text
    return text[: enc["offset_mapping"][max_tokens - 1][1]].rstrip()


def _answer_sequence(tokenizer: Any, prompt: list[Message], answer: str) -> tuple[list[int], int]:
    """Token ids of prompt + answer (without the closing EOS) and how many trailing ids are the answer's.

    Tokenised by the training code path (``encode_example``), so the answer is scored as training saw it.
    """
    enc = encode_example(tokenizer, [*prompt, {"role": "assistant", "content": answer}], max_length=10**9)
    answer_pos = [i for i, lab in enumerate(enc.labels) if lab != IGNORE_INDEX]
    if enc.input_ids[-1] != tokenizer.eos_token_id:
        raise ValueError("expected the conversation to end with the EOS token")
    return enc.input_ids[:-1], len(answer_pos) - 1


def answer_loglikelihoods(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[list[Message], str]],
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Sum of log-probabilities of each answer's tokens given its prompt; batched, left-padded."""
    import torch

    seqs = [_answer_sequence(tokenizer, p, a) for p, a in pairs]
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))  # similar lengths share a batch
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    out = np.zeros(len(seqs), dtype=np.float64)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(seqs[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            n = len(seqs[i][0])
            ids[row, width - n :] = torch.tensor(seqs[i][0])
            mask[row, width - n :] = 1
        n_ans = torch.tensor([seqs[i][1] for i in batch])
        keep = int(n_ans.max()) + 1  # answers end every row, so only the last logits are needed
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = (
                model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                    logits_to_keep=keep,
                )
                .logits[:, :-1]
                .float()
            )
        targets = ids[:, width - keep + 1 :].to(device)
        token_lp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
        col = torch.arange(keep - 1, device=device).unsqueeze(0)
        is_answer = col >= (keep - 1 - n_ans.to(device)).unsqueeze(1)
        sums = (token_lp * is_answer).sum(-1).cpu().numpy()
        for row, i in enumerate(batch):
            out[i] = sums[row]
        if progress:
            progress(len(batch))
    return out


def choose_options(
    model: Any,
    tokenizer: Any,
    items: Sequence[MCItem],
    batch_size: int,
    max_answer_tokens: int,
    progress: Callable[[int], None] | None = None,
) -> list[int]:
    """The option with the highest log-likelihood per character (acc_norm) for each item."""
    options = [[truncate_to_tokens(tokenizer, o, max_answer_tokens) for o in it.options] for it in items]
    pairs = [(it.prompt, o) for it, opts in zip(items, options, strict=True) for o in opts]
    lls = answer_loglikelihoods(model, tokenizer, pairs, batch_size, progress)
    norm = lls / np.array([max(len(o), 1) for _, o in pairs])
    n = len(items[0].options) if items else 0
    return [int(np.argmax(norm[k * n : (k + 1) * n])) for k in range(len(items))]


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
    from tqdm import tqdm

    ids = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    device = next(model.parameters()).device
    texts, ended = [""] * len(ids), [False] * len(ids)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=None):
        batch = order[start : start + batch_size]
        width = max(len(ids[i]) for i in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in batch], device=device)
        mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in batch], device=device)
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
            )
        for row, i in enumerate(batch):
            new = out[row, width:].tolist()
            ended[i] = eos in new
            if ended[i]:
                new = new[: new.index(eos)]
            texts[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
    return texts, ended


def treatment_scores(texts: Sequence[str]) -> dict[str, Any]:
    """How often a raw output parses as ``Sections``, and how often each section is non-empty (over all)."""
    valid, non_empty = 0, dict.fromkeys(SECTION_NAMES, 0)
    for text in texts:
        try:
            sections = parse_sections(text)
        except ValidationError:
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

_WORD = re.compile(r"[a-z0-9]+")


def _terms(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class TfidfRetriever:
    """Cosine similarity of TF-IDF vectors (smoothed idf, l2-normalised), with numpy and an inverted index."""

    def __init__(self, documents: Sequence[str]):
        docs = [Counter(_terms(d)) for d in documents]
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
        q = {t: c * self.idf[t] for t, c in Counter(_terms(query)).items() if t in self.idf}
        scores = np.zeros(self.n)
        for t, w in q.items():
            js, ws = self.postings[t]
            scores[js] += w * ws  # a term appears once per document's posting list, so += is safe
        return int(np.argmax(scores))
