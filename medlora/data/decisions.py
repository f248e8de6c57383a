"""The fill-or-empty decisions of a treatment output, in training, measurement and decoding (issue 26).

After ``"section":[`` the next character decides whether a section is empty (``]``) or filled (``{`` or ``"``):
seven decisions per output, 3.7% of the supervised tokens, and the ones an undertrained model gets wrong by
reproducing base rates (every section empty).

- ``decision_tokens``: which token of a tokenised target carries each decision; the training loss can weight
  them (``training.WeightedCollator``, ``train_model.py --decision-weight``).
- ``decision_margins``: teacher-forced on target rows, per section the margin
  ``log P(empty) - log P(fill)`` at the decision, restricted to the continuations the grammar allows there
  (``P(empty)`` in reports is that restricted probability). ``bench/decision_probs.py`` reports it for filled
  and empty targets: a model that has learned the decisions puts clearly less on empty where the target fills.
- ``choose_bias``: a per-section bias ``b`` chosen on val: decoding subtracts ``b`` from the logits of the
  tokens that close the array, so a section is filled where ``margin < b``; abstaining rows whose passages
  concern nothing of the primary condition must stay silent (``medlora.retrieval.subject.mark_concerns``: the
  grounding check sees to it). Stored with the adapter
  (``decoding.json``) and applied by ``EmptyBias`` in the generator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common.schemas import SECTION_NAMES, GroundedSections

DECODING_FILE = "decoding.json"
# Sections decided by the safety rules, not the model: trained always empty, never biased.
NOT_BIASED = ("immediate_actions",)
# The largest share of val rows (the target abstains, passages in the prompt) the chosen biases may make write.
MAX_FALSE_WRITE = 0.15


class Pieces:
    """Each token's text, and for a text already written inside the deciding token, which next tokens close
    the array (empty) and which open an item (filled)."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        special = set(getattr(tokenizer, "all_special_ids", []))
        self.text = [
            "" if i in special else tokenizer.decode([i], clean_up_tokenization_spaces=False)
            for i in range(vocab_size)
        ]
        self._sets: dict[str, tuple[list[int], list[int]]] = {}

    def sets(self, head: str = "") -> tuple[list[int], list[int]]:
        """(empty ids, fill ids) of tokens starting with ``head`` + ``]`` and ``head`` + ``{`` / ``"``."""
        if head not in self._sets:
            e, f = head + "]", (head + "{", head + '"')
            self._sets[head] = (
                [i for i, t in enumerate(self.text) if t.startswith(e)],
                [i for i, t in enumerate(self.text) if t.startswith(f)],
            )
        return self._sets[head]


def margin(logits: Any, empty: list[int], fill: list[int]) -> float:
    """log P(empty) - log P(fill) from one position's logits."""
    import torch

    lse = lambda ids: torch.logsumexp(logits[ids].float(), 0).item()  # noqa: E731
    return lse(empty) - lse(fill)


def decision_margins(
    model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]], max_length: int = 1536, prefix: str = "gold"
) -> list[dict[str, Any]]:
    """Teacher-forced, per row with passages: per section ``(margin, target filled)``; rows without passages
    are left out (the grammar allows only empty sections there). ``prefix`` "gold": the sections before each
    decision are the target's; "silent": they are all empty, the state a decoder that has written nothing yet
    is in (one forward over the all-empty answer gives every section's decision in that state)."""
    import torch

    from .prompts import encode_example

    vocab = model.get_output_embeddings().weight.shape[0]
    pieces = Pieces(tokenizer, vocab)
    device = next(model.parameters()).device
    out = []
    for row in rows:
        if not row.get("passages"):
            continue
        messages = row["messages"]
        if prefix == "silent":
            empty = GroundedSections().model_dump_json()  # every section empty, in the order the model writes
            messages = [*messages[:-1], {"role": "assistant", "content": empty}]
        enc = encode_example(tokenizer, messages, max_length, kind="treatment")
        if enc is None or not enc.decisions:
            continue
        target = json.loads(row["messages"][-1]["content"])
        ids = torch.tensor([enc.input_ids], device=device)
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0]
        item: dict[str, Any] = {"id": row["id"], "abstain": bool(row.get("abstain")), "sections": {}}
        for name, t in enc.decisions.items():
            text = pieces.text[enc.input_ids[t]]
            # What the deciding token writes before the decisive character: "" for "]", "[" for "[]", ...
            cut = max(text.rfind("["), -1) + 1 if "[" in text else 0
            empty, fill = pieces.sets(text[:cut])
            if not empty or not fill:
                continue
            item["sections"][name] = {
                "margin": round(margin(logits[t - 1], empty, fill), 4),
                "filled": bool(target.get(name)),
            }
        out.append(item)
    return out


def p_empty(m: float) -> float:
    return 1.0 / (1.0 + math.exp(-m))


def _auc(pos: list[float], neg: list[float]) -> float | None:
    """P(a filled target's P(empty) is below an empty target's): 0.5 is no separation."""
    if not pos or not neg:
        return None
    wins = sum((p < n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 4)


def summarise(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean P(empty) where the target fills the section and where it leaves it empty, per section and over
    all sections (immediate_actions apart), with the separation (AUC)."""
    out: dict[str, Any] = {}
    all_f: list[float] = []
    all_e: list[float] = []
    for name in SECTION_NAMES:
        f = [
            p_empty(it["sections"][name]["margin"])
            for it in items
            if it["sections"].get(name, {}).get("filled")
        ]
        e = [
            p_empty(it["sections"][name]["margin"])
            for it in items
            if name in it["sections"] and not it["sections"][name]["filled"]
        ]
        out[name] = {
            "n_filled": len(f), "n_empty": len(e),
            "p_empty_where_filled": round(sum(f) / len(f), 4) if f else None,
            "p_empty_where_empty": round(sum(e) / len(e), 4) if e else None,
            "auc": _auc(f, e),
        }  # fmt: skip
        if name not in NOT_BIASED:
            all_f += f
            all_e += e
    out["all_content_sections"] = {
        "n_filled": len(all_f), "n_empty": len(all_e),
        "p_empty_where_filled": round(sum(all_f) / len(all_f), 4) if all_f else None,
        "p_empty_where_empty": round(sum(all_e) / len(all_e), 4) if all_e else None,
        "auc": _auc(all_f, all_e),
    }  # fmt: skip
    return out


def _decide(items: Sequence[dict[str, Any]], bias: dict[str, float]) -> dict[str, float]:
    """The share of abstaining rows that must stay silent and do so in every section under ``bias``. A row
    whose passages concern nothing of the patient's primary condition or complaint must, and is (the grounding
    check removes what is written); a row whose passages concern it is not held to silence (its target abstains
    when the target's own items are not in the passages; grounded advice from them is not a false write);
    a row not judged (``concerned`` None or absent: ``medlora.retrieval.subject.mark_concerns``) must be silent by
    the model's own margins."""
    stats: dict[str, float] = {}
    silent = [
        it.get("concerned") is False
        or all(s["margin"] > bias.get(n, 0.0) for n, s in it["sections"].items() if n not in NOT_BIASED)
        for it in items
        if it["abstain"] and it.get("concerned") is not True
    ]
    stats["abstention"] = sum(silent) / len(silent) if silent else 1.0
    return stats


# A section whose val margins separate filled from empty targets less than this (AUC) is not biased: without
# separation a bias only trades silence for writing at random (measured: AUC 0.20-0.64 after the CPU run).
MIN_AUC = 0.6
# Nor is a section filled in fewer val targets than this: a balanced accuracy over one or two filled targets is
# noise (run 5: specialist_referrals, 2 of 64, got +1.89 and would have been filled nearly everywhere).
MIN_FILLED = 5


def choose_bias(
    items: Sequence[dict[str, Any]], max_false_write: float = MAX_FALSE_WRITE, min_auc: float = MIN_AUC
) -> dict[str, Any]:
    """Per section the bias maximising balanced accuracy of the fill decision on ``items`` (teacher-forced
    margins), 0 where the margins separate filled from empty targets with an AUC below ``min_auc``; then all
    lowered together in steps of 0.25 until abstaining rows stay silent in every section at least
    ``1 - max_false_write`` of the time."""
    bias: dict[str, float] = {}
    per: dict[str, Any] = {}
    for name in SECTION_NAMES:
        if name in NOT_BIASED:
            continue
        f = [it["sections"][name]["margin"] for it in items if it["sections"].get(name, {}).get("filled")]
        e = [
            it["sections"][name]["margin"]
            for it in items
            if name in it["sections"] and not it["sections"][name]["filled"]
        ]
        auc = _auc(f, e)  # filled targets should have the lower margins
        if len(f) < MIN_FILLED or not e or auc is None or auc < min_auc:
            why = f"fewer than {MIN_FILLED} filled targets" if len(f) < MIN_FILLED else "AUC below min_auc"
            bias[name] = 0.0
            per[name] = {"auc": auc, "n_filled": len(f), "n_empty": len(e), "not_biased": why}
            continue
        best = (-1.0, 0.0)
        values = sorted({*f, *e})
        # Candidates halfway between observed margins (and beyond both ends): a rounded bias never ties one.
        mids = [(a + c) / 2 for a, c in zip(values, values[1:], strict=False)]
        for b in [values[0] - 1, *mids, values[-1] + 1]:
            tpr = sum(m < b for m in f) / len(f)
            tnr = sum(m >= b for m in e) / len(e)
            if (tpr + tnr) / 2 > best[0]:
                best = ((tpr + tnr) / 2, b)
        bias[name] = round(best[1], 4)
        per[name] = {
            "balanced_accuracy": round(best[0], 4),
            "auc": auc,
            "n_filled": len(f),
            "n_empty": len(e),
        }
    shift = 0.0
    while _decide(items, bias)["abstention"] < 1 - max_false_write and shift < 20:
        bias = {n: round(b - 0.25, 4) for n, b in bias.items()}
        shift += 0.25
    return {
        "empty_bias": bias,
        "lowered_by": shift,
        "abstention_on_val": round(_decide(items, bias)["abstention"], 4),
        "per_section": per,
        "rule": "decoding subtracts empty_bias[section] from the logits of tokens that close the section's array; "
        f"chosen on val (teacher-forced margins): balanced accuracy per section where the AUC is at least {min_auc} "
        f"and at least {MIN_FILLED} targets fill it (else 0), then lowered together until abstaining val rows stay silent at least "
        f"{1 - max_false_write:.2f} of the time (a row whose passages concern nothing of its primary condition or "
        "complaint is silent by the grounding check; one whose passages concern it is not held to silence)",
    }


def load_bias(adapter_dir: str | Path | None) -> dict[str, float] | None:
    """The adapter's chosen biases (``decoding.json``), or None without one."""
    if adapter_dir is None:
        return None
    path = Path(adapter_dir) / DECODING_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): float(v) for k, v in data.get("empty_bias", {}).items()}


class EmptyBias:
    """A logits processor (after the grammar's): where a row's text ends with ``"section":[`` it subtracts the
    section's bias from the tokens that start with ``]``; where it ends with ``"section":`` from those that
    start with ``[]``. A positive bias makes a section less likely to stay empty."""

    def __init__(self, tokenizer: Any, pieces: Pieces, bias: dict[str, float], prompt_len: int):
        self.tokenizer, self.pieces, self.prompt_len = tokenizer, pieces, prompt_len
        self.bias = {n: b for n, b in bias.items() if b}
        self.keys = {f'"{n}":': n for n in self.bias}

    def rule(self, tail: str) -> tuple[list[int], float] | None:
        """For generated text ending in ``tail``: the token ids to lower and by how much, or None. Both
        backends call it (the llama.cpp one on its own vocabulary's ``Pieces``)."""
        for key, name in self.keys.items():
            if tail.endswith(key + "["):
                return self.pieces.sets("")[0], self.bias[name]
            if tail.endswith(key):
                return self.pieces.sets("[")[0], self.bias[name]
        return None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if not self.bias or input_ids.shape[1] <= self.prompt_len:
            return scores
        for row in range(input_ids.shape[0]):
            tail = self.tokenizer.decode(
                input_ids[row, max(self.prompt_len, input_ids.shape[1] - 32) :].tolist(),
                skip_special_tokens=True, clean_up_tokenization_spaces=False,
            )  # fmt: skip
            if (hit := self.rule(tail)) is not None:
                scores[row, hit[0]] -= hit[1]
        return scores


def weighted_trainer(base: type) -> type:
    """A ``transformers.Trainer`` subclass whose training loss weights each label token by the batch's
    ``weights`` (``training.objective.PadCollator(decision_weight=...)``). Logits are computed only where some row of the
    batch has a label (the prompt's positions need none: a fifth of a forward pass at SmolLM2's vocabulary).
    Evaluation keeps the plain loss, so eval_loss stays comparable across runs."""

    class DecisionWeightedTrainer(base):  # type: ignore[misc, valid-type]
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            import torch.nn.functional as F

            weights = inputs.pop("weights", None)
            if weights is None or not model.training:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            shifted = labels[:, 1:]
            keep = (shifted != -100).any(0).nonzero().squeeze(1)
            out = model(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], logits_to_keep=keep
            )
            target = shifted[:, keep]
            w = weights[:, 1:][:, keep].to(out.logits.device)
            mask = target != -100
            ce = F.cross_entropy(out.logits[mask].float(), target[mask], reduction="none")
            # Normalised as the Trainer normalises the plain loss: by the accumulated batch's label count.
            denom = (
                num_items_in_batch
                if num_items_in_batch is not None and self.model_accepts_loss_kwargs
                else mask.sum()
            )
            loss = (ce * w[mask]).sum() / denom
            return (loss, out) if return_outputs else loss

    return DecisionWeightedTrainer
