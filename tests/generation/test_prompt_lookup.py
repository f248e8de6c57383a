"""medlora/generation/prompt_lookup.py: drafts continue the latest earlier occurrence of the longest matching n-gram."""

from __future__ import annotations

import pytest

from medlora.generation.prompt_lookup import PromptLookup


def test_drafts_what_followed_the_latest_occurrence_of_the_longest_ngram():
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3, 7, 8], max_ngram=3, min_ngram=2, num_draft=3)
    lookup.extend([2, 3])  # "2 3" occurred twice: the latest one was followed by 7 8
    assert lookup.draft() == [7, 8, 2]
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 2, 3, 7, 8], max_ngram=3, min_ngram=2, num_draft=3)
    lookup.extend([1, 2, 3])  # the trigram "1 2 3" wins over the later bigram "2 3"
    assert lookup.draft() == [4, 5, 9]


def test_no_match_no_draft_and_limits_are_kept():
    lookup = PromptLookup([1, 2, 3, 4], min_ngram=2, num_draft=8)
    lookup.append(9)
    assert lookup.draft() == []
    lookup.extend([1, 2])
    assert lookup.draft(limit=1) == [3] and lookup.draft(limit=0) == []
    assert lookup.draft() == [3, 4, 9, 1, 2]  # generated tokens are part of the source too


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        PromptLookup([], max_ngram=1, min_ngram=2)
