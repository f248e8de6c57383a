"""medlora.evaluation.metrics: each metric against hand-computed values, batched greedy generation, the retrieval
baseline. The multiple-choice builder and scorer are tested in test_multiple_choice.py."""

from __future__ import annotations

import numpy as np
import pytest

from medlora.common.schemas import Medication, Sections, sections_json
from medlora.evaluation import metrics, stats

# ------------------------------------------------------------------------------------------------ BLEU, ROUGE


def test_bleu_perfect_unrelated_and_hand_computed():
    assert metrics.corpus_bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
    assert metrics.corpus_bleu(["zebra quantum violin"], ["the cat sat on a mat"]) < 1
    # 1- to 4-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths, so no brevity penalty.
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert metrics.corpus_bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(
        expected
    )


def test_bleu_brevity_penalty():
    # hypothesis 4 words, reference 8: every n-gram matches, BP = exp(1 - 8/4)
    hyp, ref = "one two three four", "one two three four five six seven eight"
    assert metrics.corpus_bleu([hyp], [ref]) == pytest.approx(100 * np.exp(1 - 8 / 4))


def test_bleu_from_segment_stats_reproduces_corpus_bleu():
    hyps = ["the cat sat on the mat", "a dog barked loudly at night", "nothing in common here"]
    refs = ["the cat sat on a mat", "the dog barked at night", "entirely different words used"]
    stats = metrics.bleu_segment_stats(hyps, refs)
    assert stats.shape == (3, 10)
    assert metrics.bleu_from_stats(stats.sum(0)) == pytest.approx(metrics.corpus_bleu(hyps, refs))


def test_rouge_l_hand_computed_with_stemming():
    scores = metrics.rouge_l_scores(
        ["the cat sat on the mat", "police the gunman", "zebra quantum", "the cats were running"],
        ["the cat sat on the mat", "police killed the gunman", "the cat sat", "the cat was running"],
    )
    # LCS 3 of 3 and 4 words: P = 1, R = 3/4; stemming makes cats/cat and running/run match (LCS 3 of 4).
    assert scores == pytest.approx([1.0, 2 * 0.75 / 1.75, 0.0, 0.75])


# -------------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_seeded_and_brackets_the_mean():
    a = stats.bootstrap_indices(50, 200, seed=1)
    assert (a == stats.bootstrap_indices(50, 200, seed=1)).all()
    assert not (a == stats.bootstrap_indices(50, 200, seed=2)).all()
    values = np.random.default_rng(0).random(50)
    lo, hi = stats.mean_ci(values, a)
    assert lo < values.mean() < hi
    assert stats.mean_ci([0.5] * 50, a) == pytest.approx([0.5, 0.5])
    assert stats.mean_ci([], stats.bootstrap_indices(0, 10, 0)) is None


def test_ratio_ci_is_a_rate_over_a_subset_with_its_interval():
    idx = stats.bootstrap_indices(4, 300, seed=0)
    hits, subset = np.array([1, 0, 1, 1]), np.array([1, 1, 0, 0])
    value, ci = stats.ratio_ci(hits * subset, subset, idx)
    assert value == 0.5 and 0.0 <= ci[0] < 0.5 < ci[1] <= 1.0
    assert stats.ratio_ci(hits, np.zeros(4), idx) == (None, None)  # nobody in the subset: no figure
    assert stats.ratio_ci([], [], stats.bootstrap_indices(0, 10, 0)) == (None, None)
    # resamples that draw nobody of the subset are left out, not counted as 0
    value, ci = stats.ratio_ci([1, 0, 0, 0], [1, 0, 0, 0], idx)
    assert value == 1.0 and ci == [1.0, 1.0]


def test_text_scores_and_paired_difference():
    # every item has 4-grams, so every resample of the perfect corpus scores 100
    hyps = ["the cat sat on the mat", "a dog barked at night", "zebra crossing is here today"]
    idx = stats.bootstrap_indices(3, 100, 0)
    perfect = metrics.text_scores(hyps, hyps, idx)
    assert perfect["bleu"] == pytest.approx(100) and perfect["bleu_ci"] == pytest.approx([100, 100])
    assert perfect["rouge_l"] == pytest.approx(1.0) and perfect["rouge_l_ci"] == pytest.approx([1, 1])
    worse = metrics.text_scores(["unrelated words"] * 3, hyps, idx)
    perfect["_correct"], worse["_correct"] = [1, 1, 0], [0, 1, 0]
    diff = metrics.paired_difference(worse, perfect, idx, idx)
    assert diff["accuracy"] == pytest.approx(1 / 3)
    assert diff["rouge_l"] == pytest.approx(1 - worse["rouge_l"])
    assert diff["bleu_ci"][0] <= diff["bleu"] <= diff["bleu_ci"][1]
    assert metrics.text_scores([], [], stats.bootstrap_indices(0, 10, 0))["bleu"] is None


# ------------------------------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from medlora.model.loading import load_model

    model, tokenizer, _ = load_model(tiny_model, device="cpu", precision="fp32")
    return model, tokenizer


# ------------------------------------------------------------------------------------------------- generation


def _biased_copy(model, token_id: int):
    """The tiny model with its output layer replaced so greedy decoding always picks ``token_id``."""
    import copy

    import torch

    biased = copy.deepcopy(model)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[token_id] = 10.0
    biased.lm_head = head
    return biased


def test_greedy_generate_batched_equals_one_by_one_and_detects_eos(tiny):
    from medlora.data.prompts import qa_messages

    model, tok = tiny
    prompts = [qa_messages("What is asthma?"), qa_messages("A much longer question about gout and diet?")]
    batched, ended = metrics.greedy_generate(model, tok, prompts, max_new_tokens=6, batch_size=2)
    single = [metrics.greedy_generate(model, tok, [p], 6, 1)[0][0] for p in prompts]
    assert batched == single and len(ended) == 2
    stops, ended = metrics.greedy_generate(_biased_copy(model, tok.eos_token_id), tok, prompts, 6, 2)
    assert stops == ["", ""] and ended == [True, True]
    letter = tok.convert_tokens_to_ids("a")
    runs, ended = metrics.greedy_generate(_biased_copy(model, letter), tok, prompts, 5, 2)
    assert runs == ["aaaaa", "aaaaa"] and ended == [False, False]


def test_treatment_scores():
    good = sections_json(Sections(medications=[Medication(name="aspirin")], lifestyle=["rest"]))
    empty = sections_json(Sections())
    scores = metrics.treatment_scores([good, empty, "not json", '{"unknown": []}'])
    assert scores["n_treatment"] == 4 and scores["schema_valid"] == 0.5
    assert scores["section_non_empty"]["medications"] == 0.25
    assert scores["section_non_empty"]["monitoring"] == 0.0
    assert metrics.treatment_scores([])["schema_valid"] is None


# -------------------------------------------------------------------------------------------------- retrieval


def test_tfidf_retriever_finds_the_question_sharing_rare_terms():
    docs = [
        "What is diabetes ?",
        "What is asthma ?",
        "What are the treatments for asthma ?",
        "What is gout ?",
    ]
    r = metrics.TfidfRetriever(docs)
    assert r.nearest("What are the treatments for Asthma?") == 2
    assert r.nearest("what is GOUT") == 3
    assert r.nearest("zebra") == 0  # no overlap: the first document, deterministically
