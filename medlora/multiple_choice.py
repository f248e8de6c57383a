"""Multiple choice that measures knowledge, not word matching (DESIGN.md, "Metrics": accuracy).

An item is a held-out question, its true answer and three distractors: answers of the same question type about
other foci, with their disease's names (the focus name and its variants, the abbreviation the answers define
for it) replaced by the question's disease (and its abbreviation). Without that rewrite the question's disease
name gives the answer away: picking the option that shares most words with the question scored 82.0% on the
default items. ``shortcut_baseline`` is that word-overlap picker, reported beside the models; it must sit near
chance (25%).

Models pick the option with the highest log-likelihood per character (lm-evaluation-harness ``acc_norm``).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .medquad import focus_key
from .metrics import mean_ci, seeded_order
from .prompts import IGNORE_INDEX, Message, encode_example
from .text import word_set


@dataclass
class MCItem:
    id: str
    prompt: list[Message]
    options: list[str]
    answer_index: int
    focus: str
    qtype: str
    distractor_foci: list[str] = field(default_factory=list)
    option_ids: list[str] = field(default_factory=list)  # the row each option was taken from


# ---------------------------------------------------------------------------------------- disease names

_GENERIC = re.compile(r"\b(?:diseases?|disorders?|syndromes?|conditions?)\b", re.I)
_POSSESSIVE = re.compile(r"['\u2019]s\b")
_PAREN = re.compile(r"\s*\(([^()]{1,40})\)\s*")
_ABBREV = re.compile(r"^[A-Z][A-Za-z0-9-]{1,9}$")


def name_variants(focus: str) -> list[str]:
    """Ways the answers write a focus: as given, without a parenthetical, possessive or generic word."""
    base = _PAREN.sub(" ", focus).strip()
    out = {focus.strip(), base}
    for v in list(out):
        out.add(_POSSESSIVE.sub("", v))
        out.add(re.sub(r"\s+", " ", _GENERIC.sub(" ", v)).strip(" ,-"))
        out.add(re.sub(r"\s+", " ", _GENERIC.sub(" ", _POSSESSIVE.sub("", v))).strip(" ,-"))
    # a variant of one or two letters ("C" of "C syndrome") would rewrite ordinary words
    return sorted((v for v in out if len(v) >= 3), key=len, reverse=True)


def abbreviations(focus: str, answers: Sequence[str]) -> list[str]:
    """Abbreviations defined for the focus: "Chronic obstructive pulmonary disease (COPD)" in a name or answer."""
    found = [m.group(1) for m in _PAREN.finditer(focus) if _ABBREV.match(m.group(1))]
    names = "|".join(re.escape(v) for v in name_variants(focus))
    if names:
        rx = re.compile(rf"(?:{names})\s*\(([A-Z][A-Za-z0-9-]{{1,9}})\)", re.I)
        for text in answers:
            found += [m.group(1) for m in rx.finditer(text) if any(c.isupper() for c in m.group(1))]
    return sorted(set(found), key=found.index)


@dataclass
class FocusNames:
    display: str
    variants: list[str]
    abbrevs: list[str]


def focus_names(rows: Sequence[dict[str, Any]]) -> dict[str, FocusNames]:
    """Per focus key: its display name, name variants and abbreviations (from all of its answers)."""
    texts: dict[str, list[str]] = defaultdict(list)
    display: dict[str, str] = {}
    for r in rows:
        if r["kind"] == "qa":
            k = focus_key(r["focus"])
            texts[k].append(r["messages"][-1]["content"])
            display.setdefault(k, r["focus"])
    return {
        k: FocusNames(display[k], name_variants(display[k]), abbreviations(display[k], texts[k]))
        for k in texts
    }


def rewrite(answer: str, source: FocusNames, target: FocusNames) -> str:
    """``answer`` (about ``source``) with every name of ``source`` replaced by ``target``'s."""
    target_name = _PAREN.sub(" ", target.display).strip()
    target_abbrev = target.abbrevs[0] if target.abbrevs else target_name
    subs = [(v, target_name) for v in source.variants] + [(a, target_abbrev) for a in source.abbrevs]
    subs.sort(key=lambda s: len(s[0]), reverse=True)
    if not subs:
        return answer
    table = {s.lower(): t for s, t in subs}
    # Abbreviations match case-sensitively ("AD" is not "ad"); names ignore case.
    parts = [rf"(?i:{re.escape(v)})" for v, _ in subs if v not in source.abbrevs] + [
        re.escape(a) for a in source.abbrevs
    ]
    rx = re.compile(r"(?<![\w-])(?:" + "|".join(parts) + r")(?:['\u2019]s)?(?![\w-])")

    def replace(m: re.Match) -> str:
        name = table.get(_POSSESSIVE.sub("", m.group(0)).lower(), table.get(m.group(0).lower(), target_name))
        before = answer[: m.start()].rstrip()
        # A lower-case focus ("dyserythropoietic anemia") starting a sentence would mark the option as edited.
        return name[0].upper() + name[1:] if not before or before[-1] in ".!?:" else name

    return rx.sub(replace, answer)


# ------------------------------------------------------------------------------------------------- items


def _answers_by_qtype_focus(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[dict]]]:
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["kind"] == "qa":
            out[r["qtype"]][focus_key(r["focus"])].append(r)
    return out


def build_mc_items(
    test_rows: Sequence[dict[str, Any]],
    fallback_rows: Sequence[dict[str, Any]],
    limit: int,
    seed: int,
    n_options: int = 4,
    rewrite_names: bool = True,
) -> tuple[list[MCItem], int]:
    """Up to ``limit`` items from the test split's qa rows, and how many were skipped for lack of distractors.

    Distractors: answers of the same qtype from other foci, one per focus, drawn from the test split first and
    from ``fallback_rows`` (train) only when the test split has too few foci of that qtype, each rewritten to
    name the question's disease (``rewrite_names=False`` gives the old, word-matchable construction, kept only
    to report how much it leaked). An option whose text equals another is never offered twice.
    """
    pools = [_answers_by_qtype_focus(test_rows), _answers_by_qtype_focus(fallback_rows)]
    names = focus_names([*fallback_rows, *test_rows])
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
                choices = []
                for r in by_focus[f]:
                    text = r["messages"][-1]["content"]
                    if rewrite_names:
                        text = rewrite(text, names[f], names[own])
                    if text.strip() not in seen_text:
                        choices.append((r["id"], text))
                if choices:
                    rid, pick = rng.choice(choices)
                    distractors.append((f, rid, pick))
                    seen_text.add(pick.strip())
                    seen_foci.add(f)
        if len(distractors) < n_options - 1:
            skipped += 1
            continue
        options = [true] + [a for *_, a in distractors]
        ids = [row["id"]] + [rid for _, rid, _ in distractors]
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
                distractor_foci=[f for f, *_ in distractors],
                option_ids=[ids[i] for i in order],
            )
        )
    return items, skipped


# ---------------------------------------------------------------------------------------------- shortcut


def _words(text: str) -> set[str]:
    return word_set(text)


def shortcut_scores(items: Sequence[MCItem]) -> list[float]:
    """Per item, the credit of picking the option sharing most distinct words with the question: 1 when it is
    the true answer alone, 1/k when the true answer ties with k-1 others (a fair coin among the tied), else 0."""
    out = []
    for it in items:
        question = _words(it.prompt[-1]["content"])
        overlap = [len(question & _words(o)) for o in it.options]
        best = [i for i, n in enumerate(overlap) if n == max(overlap)]
        out.append(1 / len(best) if it.answer_index in best else 0.0)
    return out


def shortcut_baseline(
    items: Sequence[MCItem], plain_items: Sequence[MCItem], idx: np.ndarray
) -> dict[str, Any]:
    """The word-overlap shortcut on the evaluated items (must sit near chance), and on the same questions with
    distractors not rewritten: the old construction's figure, kept only to show what the rewrite removed."""
    scores = shortcut_scores(items)
    old = shortcut_scores(plain_items)
    return {
        "accuracy": float(np.mean(scores)) if scores else None,
        "accuracy_ci": mean_ci(scores, idx),
        "n_mc": len(scores),
        "method": "pick the option sharing most distinct words with the question (ties share the credit)",
        "old_construction_for_contrast_only": {
            "accuracy": float(np.mean(old)) if old else None,
            "n_mc": len(old),
            "note": "distractors not rewritten to the question's disease; not a measure of knowledge",
        },
    }


# ---------------------------------------------------------------------------------------------- the scorer


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
