"""Prompt-lookup drafting: candidate next tokens copied from where the latest n-gram of the sequence occurred
before, in the prompt (the record and its passages, which treatment outputs quote) or in the output so far.

The drafts are only proposals: the backend verifies them in one forward pass and keeps a drafted token only
where greedy constrained decoding picks that same token, so the output does not change (llama_backend.py).
"""

from __future__ import annotations

from collections.abc import Sequence


class PromptLookup:
    """N-gram index of a growing token sequence: ``draft`` proposes what followed the latest earlier
    occurrence of the sequence's last ``max_ngram`` tokens (or fewer, down to ``min_ngram``)."""

    def __init__(self, prompt: Sequence[int], max_ngram: int = 3, min_ngram: int = 2, num_draft: int = 8):
        if not 1 <= min_ngram <= max_ngram or num_draft < 1:
            raise ValueError("need 1 <= min_ngram <= max_ngram and num_draft >= 1")
        self.max_ngram, self.min_ngram, self.num_draft = max_ngram, min_ngram, num_draft
        self.seq: list[int] = []
        # n-gram -> position just after its latest occurrence that is followed by at least one token
        self._next: dict[tuple[int, ...], int] = {}
        self.extend(prompt)

    def append(self, token: int) -> None:
        p = len(self.seq)
        for n in range(self.min_ngram, self.max_ngram + 1):
            if p >= n:
                self._next[tuple(self.seq[p - n : p])] = p
        self.seq.append(token)

    def extend(self, tokens: Sequence[int]) -> None:
        for t in tokens:
            self.append(t)

    def draft(self, limit: int | None = None) -> list[int]:
        """Up to ``num_draft`` (and ``limit``) tokens that followed the longest matching n-gram; [] if none."""
        k = self.num_draft if limit is None else min(self.num_draft, limit)
        if k < 1:
            return []
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(self.seq) < n:
                continue
            start = self._next.get(tuple(self.seq[-n:]))
            if start is not None:
                return self.seq[start : start + k]
        return []
