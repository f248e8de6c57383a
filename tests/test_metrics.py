"""medlora.metrics: each metric against hand-computed values, the multiple-choice builder's guarantees, the
log-likelihood scorer against a plain unbatched forward pass, and a random model's accuracy near chance."""

from __future__ import annotations

import random

import numpy as np
import pytest

from medlora import metrics
from medlora.files import read_jsonl
from medlora.medquad import focus_key
from medlora.schemas import Medication, Sections, sections_json

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
    a = metrics.bootstrap_indices(50, 200, seed=1)
    assert (a == metrics.bootstrap_indices(50, 200, seed=1)).all()
    assert not (a == metrics.bootstrap_indices(50, 200, seed=2)).all()
    values = np.random.default_rng(0).random(50)
    lo, hi = metrics.mean_ci(values, a)
    assert lo < values.mean() < hi
    assert metrics.mean_ci([0.5] * 50, a) == pytest.approx([0.5, 0.5])
    assert metrics.mean_ci([], metrics.bootstrap_indices(0, 10, 0)) is None


def test_text_scores_and_paired_difference():
    # every item has 4-grams, so every resample of the perfect corpus scores 100
    hyps = ["the cat sat on the mat", "a dog barked at night", "zebra crossing is here today"]
    idx = metrics.bootstrap_indices(3, 100, 0)
    perfect = metrics.text_scores(hyps, hyps, idx)
    assert perfect["bleu"] == pytest.approx(100) and perfect["bleu_ci"] == pytest.approx([100, 100])
    assert perfect["rouge_l"] == pytest.approx(1.0) and perfect["rouge_l_ci"] == pytest.approx([1, 1])
    worse = metrics.text_scores(["unrelated words"] * 3, hyps, idx)
    perfect["_correct"], worse["_correct"] = [1, 1, 0], [0, 1, 0]
    diff = metrics.paired_difference(worse, perfect, idx, idx)
    assert diff["accuracy"] == pytest.approx(1 / 3)
    assert diff["rouge_l"] == pytest.approx(1 - worse["rouge_l"])
    assert diff["bleu_ci"][0] <= diff["bleu"] <= diff["bleu_ci"][1]
    assert metrics.text_scores([], [], metrics.bootstrap_indices(0, 10, 0))["bleu"] is None


# -------------------------------------------------------------------------------------------- multiple choice


def _row(i: int, focus: str, qtype: str, answer: str) -> dict:
    return {
        "id": f"qa-{i:04d}",
        "kind": "qa",
        "focus": focus,
        "qtype": qtype,
        "messages": [
            {"role": "user", "content": f"question {i} about {focus}?"},
            {"role": "assistant", "content": answer},
        ],
    }


WORDS = [f"term{i}" for i in range(16)]  # content is irrelevant: the model and the builder see only text


def _synthetic_split(n_foci: int, seed: int, prefix: str = "") -> list[dict]:
    rng = random.Random(seed)
    words = WORDS
    rows, i = [], 0
    for f in range(n_foci):
        for qtype in ("treatment", "symptoms"):
            for _ in range(rng.randint(1, 2)):
                rows.append(
                    _row(i, f"{prefix}Focus {f}", qtype, " ".join(rng.choices(words, k=8)) + f" {i}.")
                )
                i += 1
    return rows


def _check_item(item: metrics.MCItem, rows_by_answer: dict[str, dict]) -> None:
    true_row = rows_by_answer[item.options[item.answer_index]]
    assert true_row["id"] == item.id
    assert len(item.options) == 4 and len(set(o.strip() for o in item.options)) == 4
    assert sum(o == true_row["messages"][-1]["content"] for o in item.options) == 1
    foci = [focus_key(rows_by_answer[o]["focus"]) for o in item.options]
    assert len(set(foci)) == 4, "one distractor per focus, none from the question's own focus"
    assert {rows_by_answer[o]["qtype"] for o in item.options} == {item.qtype}


def test_mc_builder_on_fixture_data_uses_train_when_test_is_short(tiny_data):
    test, train = read_jsonl(tiny_data / "test.jsonl"), read_jsonl(tiny_data / "train.jsonl")
    by_answer = {r["messages"][-1]["content"]: r for r in test + train if r["kind"] == "qa"}
    items, skipped = metrics.build_mc_items(test, train, 100, seed=0)
    assert items and len(items) + skipped == sum(r["kind"] == "qa" for r in test)
    test_foci = {focus_key(r["focus"]) for r in test}
    for item in items:
        _check_item(item, by_answer)
        # the fixture's test split has three foci: at most two distractors can come from it
        assert any(f not in test_foci for f in item.distractor_foci)


def test_mc_builder_prefers_test_distractors_and_is_seeded():
    test, train = _synthetic_split(12, seed=1), _synthetic_split(12, seed=2, prefix="Train ")
    by_answer = {r["messages"][-1]["content"]: r for r in test + train}
    items, skipped = metrics.build_mc_items(test, train, 1000, seed=3)
    assert skipped == 0 and len(items) == len(test)
    test_foci = {focus_key(r["focus"]) for r in test}
    for item in items:
        _check_item(item, by_answer)
        assert set(item.distractor_foci) <= test_foci
    again, _ = metrics.build_mc_items(test, train, 1000, seed=3)
    assert [(i.id, i.options, i.answer_index) for i in again] == [
        (i.id, i.options, i.answer_index) for i in items
    ]
    other, _ = metrics.build_mc_items(test, train, 1000, seed=4)
    assert [(i.id, i.options) for i in other] != [(i.id, i.options) for i in items]
    # a smaller limit takes a prefix of the same items: results at two limits are comparable
    few, _ = metrics.build_mc_items(test, train, 5, seed=3)
    assert [(i.id, i.options) for i in few] == [(i.id, i.options) for i in items[:5]]
    # the true answer sits at every position across items, not always first
    assert len({i.answer_index for i in items}) == 4


def test_mc_builder_never_offers_the_true_answer_twice_and_skips_without_distractors():
    shared_text = "Identical boilerplate answer."
    test = [
        _row(0, "Alpha", "outlook", shared_text),
        _row(1, "Beta", "outlook", shared_text),  # same text under another focus: not a valid distractor
        _row(2, "Gamma", "outlook", "gamma outlook"),
        _row(3, "Delta", "outlook", "delta outlook"),
        _row(4, "Epsilon", "outlook", "epsilon outlook"),
        _row(5, "Alpha", "stages", "alpha stages"),  # the only 'stages' answer anywhere: cannot be built
    ]
    items, skipped = metrics.build_mc_items(test, [], 100, seed=0)
    assert skipped == 1
    for item in items:
        assert len({o.strip() for o in item.options}) == 4
        if item.id in ("qa-0000", "qa-0001"):
            assert sum(o == shared_text for o in item.options) == 1
            assert not {"alpha", "beta"} & set(item.distractor_foci)


# ----------------------------------------------------------------------------------------------- the scorer


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from medlora.modeling import load_model

    model, tokenizer, _ = load_model(tiny_model, device="cpu", precision="fp32")
    return model, tokenizer


def test_truncate_to_tokens(tiny):
    _, tok = tiny
    text = "Aspirin lowers fever. " * 20
    cut = metrics.truncate_to_tokens(tok, text, 15)
    assert text.startswith(cut) and 0 < len(tok(cut, add_special_tokens=False)["input_ids"]) <= 15
    assert metrics.truncate_to_tokens(tok, "short", 15) == "short"


def test_loglikelihoods_match_an_unbatched_forward_pass(tiny):
    import torch

    from medlora.prompts import encode_prompt, qa_messages

    model, tok = tiny
    pairs = [
        (qa_messages("What is asthma?"), "A disease of the airways."),
        (qa_messages("How is gout treated?"), "With rest."),
        (qa_messages("Why?"), "Because the long answer goes on and on for a while before it stops."),
    ]
    expected = []
    for prompt, answer in pairs:
        # the byte-level tokenizer maps one character to one token, so the answer's ids are easy to state
        p_ids = encode_prompt(tok, prompt)
        a_ids = tok(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + a_ids])
        with torch.no_grad():
            lp = torch.log_softmax(model(ids).logits[0].float(), -1)
        expected.append(sum(lp[len(p_ids) + k - 1, t].item() for k, t in enumerate(a_ids)))
    for batch_size in (1, 2, 3):
        got = metrics.answer_loglikelihoods(model, tok, pairs, batch_size)
        assert got == pytest.approx(expected, abs=1e-3)


def test_choose_options_takes_the_best_per_character_score(tiny):
    from medlora.prompts import qa_messages

    model, tok = tiny
    items = [
        metrics.MCItem(
            id=str(k),
            prompt=qa_messages(f"Question {k}?"),
            options=opts,
            answer_index=0,
            focus="f",
            qtype="t",
        )
        for k, opts in enumerate(
            [["aaaa", "bb", "a longer option text", "x"], ["yes", "no", "maybe", "unknown"]]
        )
    ]
    picks = metrics.choose_options(model, tok, items, batch_size=3, max_answer_tokens=64)
    for item, pick in zip(items, picks, strict=True):
        lls = metrics.answer_loglikelihoods(model, tok, [(item.prompt, o) for o in item.options], 8)
        assert pick == int(np.argmax(lls / np.array([len(o) for o in item.options])))


def test_random_model_accuracy_is_near_chance(tiny):
    """A random-weight model knows nothing: over 300 items its accuracy stays in a wide band around 25%."""
    model, tok = tiny
    rng = random.Random(0)
    words = WORDS
    items = []
    for k in range(300):
        options = [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(4)]
        items.append(
            metrics.MCItem(
                id=str(k),
                prompt=[{"role": "user", "content": f"Q{k}: what about {rng.choice(words)}?"}],
                options=options,
                answer_index=rng.randrange(4),
                focus="f",
                qtype="t",
            )
        )
    picks = metrics.choose_options(model, tok, items, batch_size=64, max_answer_tokens=64)
    accuracy = np.mean([p == it.answer_index for p, it in zip(picks, items, strict=True)])
    assert 0.15 <= accuracy <= 0.35
    assert len(set(picks)) == 4, "a scorer stuck on one position would pass a band test by luck only"


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
    from medlora.prompts import qa_messages

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
