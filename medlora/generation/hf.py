"""Schema-constrained generation of ``Sections``: whatever the weights, the text parses.

Decoding is masked by xgrammar (its ``transformers`` logits processor) with a grammar derived from the
Sections JSON schema (``sections_grammar``), compact like the training targets (``sections_json``), so even a
random model writes JSON that ``parse_sections`` accepts. xgrammar's own schema conversion leaves two gaps
that the derived grammar closes: pydantic strips whitespace before checking ``min_length`` (so a string must
start with a visible character), and JSON forbids raw control characters inside strings. When ``max_new_tokens`` runs out before the object closes, the text is cut back to its last complete item and
closed (``finish="budget"``); if nothing survives, the result is an empty but valid ``Sections``.

Prompts are the training prompts (``treatment_messages`` + ``encode_prompt``); a batch is padded on the left
with an attention mask; decoding is greedy, so the same record and weights give the same output.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..common.progress import TokenProgress
from ..common.schemas import (
    PatientRecord,
)
from .base import DEFAULT_MAX_NEW_TOKENS, Generated, GrammarGenerator, bytes_tokenizer_info, finish_row

log = logging.getLogger(__name__)


def tokenizer_info(tokenizer: Any, vocab_size: int, eos_id: int) -> Any:
    """xgrammar's view of the vocabulary: the tokenizer's, less its special tokens (``<|im_start|>``, ``<s>``,
    ``<file_sep>``...), which xgrammar's conversion takes for literal text a JSON string could hold; EOS is the
    only stop token. The llama.cpp path sees the same (its control tokens render as nothing)."""
    import xgrammar as xgr

    base = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=[eos_id])
    special = set(tokenizer.all_special_ids)
    special |= {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if t.special}
    pieces = [b"" if i in special else piece for i, piece in enumerate(base.decoded_vocab)]
    return bytes_tokenizer_info(pieces, vocab_size, eos_id, base.add_prefix_space)


class SectionsGenerator(GrammarGenerator):
    """Compiles the grammar once for a model and tokenizer; ``generate`` runs batches of records."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        empty_bias: dict[str, float] | None = None,
    ):
        import xgrammar as xgr

        self.model, self.max_new_tokens = model, max_new_tokens
        # Per-section bias against "[]" chosen on val and stored with the adapter (``data.decisions``);
        # ``model.loading.load_model`` puts it on the model it loads.
        self.empty_bias = empty_bias if empty_bias is not None else getattr(model, "empty_bias", None)
        self._pieces: Any = None
        self.eos_id = tokenizer.eos_token_id
        # Left padding needs a pad id; the attention mask hides it, so EOS is acceptable when none is set.
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        # The mask must cover the model's output width, which can exceed the tokenizer's vocabulary.
        vocab = model.get_output_embeddings().weight.shape[0]
        super().__init__(xgr.GrammarCompiler(tokenizer_info(tokenizer, vocab, self.eos_id)), tokenizer)

    def generate(
        self,
        records: Sequence[PatientRecord],
        batch_size: int = 8,
        do_sample: bool = False,
        passages: Sequence[Sequence[Any]] | None = None,
    ) -> list[Generated]:
        """Greedy by default; ``do_sample`` (seed torch yourself) explores other paths through the grammar.
        ``passages[i]`` are record i's numbered passages (``medlora.retrieval.index.Passage``); none by default."""
        passages = passages if passages is not None else [()] * len(records)
        out: list[Generated] = []
        for start in range(0, len(records), batch_size):
            chunk = slice(start, start + batch_size)
            prompts = [self.prompt_ids(r, ps) for r, ps in zip(records[chunk], passages[chunk], strict=True)]
            out.extend(self._batch(prompts, do_sample, [len(ps) for ps in passages[chunk]]))
        return out

    def _batch(self, prompts: list[list[int]], do_sample: bool, n_passages: list[int]) -> list[Generated]:
        import torch
        from transformers import LogitsProcessorList
        from xgrammar.contrib.hf import LogitsProcessor

        width = max(len(p) for p in prompts)
        probs = TokenProbs()
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        device = next(self.model.parameters()).device
        # A slow CPU takes minutes per batch: the heartbeat says tokens so far, rate and time left meanwhile.
        beat = TokenProgress("generating", len(prompts), self.max_new_tokens)
        processors: list[Any] = [LogitsProcessor([self.grammar(n) for n in n_passages])]
        if self.empty_bias:
            from ..data.decisions import EmptyBias, Pieces

            if self._pieces is None:
                self._pieces = Pieces(self.tokenizer, self.model.get_output_embeddings().weight.shape[0])
            processors.append(EmptyBias(self.tokenizer, self._pieces, self.empty_bias, width))
        with torch.inference_mode(), beat:
            seqs = self.model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=self.max_new_tokens,
                do_sample=do_sample,
                # A grammar matcher holds per-call state: one processor per generate() call, one grammar per row.
                logits_processor=LogitsProcessorList([*processors, probs, beat]),
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_id,
            )
        rows = seqs[:, width:].tolist()
        chosen = probs.finish(seqs[:, width:])
        out = [
            finish_row(self.tokenizer, r, len(p), self.eos_id, grounded=True, probs=c)
            for p, r, c in zip(prompts, rows, chosen, strict=True)
        ]
        if cut := sum(g.finish == "budget" for g in out):
            log.warning("%d of %d generations used all max_new_tokens=%d", cut, len(out), self.max_new_tokens)
        return out


class TokenProbs:
    """A logits processor placed after the grammar's: it keeps the probability the constrained decoder gave
    each chosen token, and whether the grammar left a choice at that step (more than one allowed token).

    Only one step's distribution is held at a time (the token it chose is read from ``input_ids`` at the next
    call, or from the finished sequences): memory stays at batch x vocabulary, not x steps."""

    def __init__(self) -> None:
        self.last: Any = None  # the latest step's probabilities [batch, vocab]
        self.choice: Any = None
        self.steps: list[tuple[list[float], list[bool]]] = []

    def _record(self, chosen: Any) -> None:
        probs = self.last.gather(1, chosen.view(-1, 1).to(self.last.device)).squeeze(1)
        self.steps.append((probs.tolist(), self.choice.tolist()))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.last is not None:
            self._record(input_ids[:, -1])
        self.last = torch.softmax(scores.float(), dim=-1)
        self.choice = (scores > float("-inf")).sum(-1) > 1
        return scores

    def finish(self, new_tokens: Any) -> list[list[tuple[float, bool]]]:
        """Per row, (probability, had a choice) of each generated token."""
        if self.last is not None and len(self.steps) < new_tokens.shape[1]:
            self._record(new_tokens[:, len(self.steps)])
            self.last = None
        out: list[list[tuple[float, bool]]] = [[] for _ in range(new_tokens.shape[0])]
        for probs, choices in self.steps[: new_tokens.shape[1]]:
            for b, (prob, c) in enumerate(zip(probs, choices, strict=True)):
                out[b].append((prob, c))
        return out
