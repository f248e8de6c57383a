"""medlora.evaluation.multiple_choice: distractors rewritten to name the question's disease, the word-overlap shortcut
near chance, the builder's guarantees, the log-likelihood scorer against a plain unbatched forward pass, and a
random model's accuracy near chance."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import shared_path

from medlora.common.files import read_jsonl
from medlora.data.medquad import focus_key
from medlora.evaluation import multiple_choice

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
    rows, i = [], 5000 if prefix else 0  # ids unique across the two splits
    for f in range(n_foci):
        for qtype in ("treatment", "symptoms"):
            for _ in range(rng.randint(1, 2)):
                rows.append(
                    _row(i, f"{prefix}Focus {f}", qtype, " ".join(rng.choices(words, k=8)) + f" {i}.")
                )
                i += 1
    return rows


def _check_item(item: multiple_choice.MCItem, rows_by_id: dict[str, dict]) -> None:
    rows = [rows_by_id[i] for i in item.option_ids]
    assert rows[item.answer_index]["id"] == item.id
    assert item.options[item.answer_index] == rows[item.answer_index]["messages"][-1]["content"]
    assert len(item.options) == 4 and len(set(o.strip() for o in item.options)) == 4
    foci = [focus_key(r["focus"]) for r in rows]
    assert len(set(foci)) == 4, "one distractor per focus, none from the question's own focus"
    assert {r["qtype"] for r in rows} == {item.qtype}


def test_mc_builder_on_fixture_data_uses_train_when_test_is_short(tiny_data):
    test, train = read_jsonl(tiny_data / "test.jsonl"), read_jsonl(tiny_data / "train.jsonl")
    by_id = {r["id"]: r for r in test + train if r["kind"] == "qa"}
    items, skipped = multiple_choice.build_mc_items(test, train, 100, seed=0)
    assert items and len(items) + skipped == sum(r["kind"] == "qa" for r in test)
    test_foci = {focus_key(r["focus"]) for r in test}
    for item in items:
        _check_item(item, by_id)
        # the fixture's test split has three foci: at most two distractors can come from it
        assert any(f not in test_foci for f in item.distractor_foci)


def test_mc_builder_prefers_test_distractors_and_is_seeded():
    test, train = _synthetic_split(12, seed=1), _synthetic_split(12, seed=2, prefix="Train ")
    by_id = {r["id"]: r for r in test + train}
    items, skipped = multiple_choice.build_mc_items(test, train, 1000, seed=3)
    assert skipped == 0 and len(items) == len(test)
    test_foci = {focus_key(r["focus"]) for r in test}
    for item in items:
        _check_item(item, by_id)
        assert set(item.distractor_foci) <= test_foci
    again, _ = multiple_choice.build_mc_items(test, train, 1000, seed=3)
    assert [(i.id, i.options, i.answer_index) for i in again] == [
        (i.id, i.options, i.answer_index) for i in items
    ]
    other, _ = multiple_choice.build_mc_items(test, train, 1000, seed=4)
    assert [(i.id, i.options) for i in other] != [(i.id, i.options) for i in items]
    # a smaller limit takes a prefix of the same items: results at two limits are comparable
    few, _ = multiple_choice.build_mc_items(test, train, 5, seed=3)
    assert [(i.id, i.options) for i in few] == [(i.id, i.options) for i in items[:5]]
    # the true answer sits at every position across items, not always first
    assert len({i.answer_index for i in items}) == 4


def test_mc_builder_never_offers_the_true_answer_twice_and_skips_without_distractors():
    shared_text = "Identical boilerplate answer."
    test = [
        _row(0, "Alpha", "outlook", shared_text),
        _row(1, "Beta", "outlook", shared_text),  # same text under another focus: not a valid distractor
        _row(2, "Gamma", "outlook", "gamma outlook is fair"),
        _row(3, "Delta", "outlook", "delta outlook is poor"),
        _row(4, "Epsilon", "outlook", "epsilon outlook is good"),
        _row(5, "Alpha", "stages", "alpha stages"),  # the only 'stages' answer anywhere: cannot be built
    ]
    items, skipped = multiple_choice.build_mc_items(test, [], 100, seed=0)
    assert skipped == 1
    for item in items:
        assert len({o.strip() for o in item.options}) == 4
        if item.id in ("qa-0000", "qa-0001"):
            assert sum(o == shared_text for o in item.options) == 1
            assert not {"alpha", "beta"} & set(item.distractor_foci)


def test_name_variants_and_abbreviations():
    assert "Parkinson" in multiple_choice.name_variants("Parkinson's Disease")
    assert "Parkinson's" in multiple_choice.name_variants("Parkinson's Disease")
    assert multiple_choice.abbreviations(
        "Chronic Obstructive Pulmonary Disease", ["Chronic obstructive pulmonary disease (COPD) is common."]
    ) == ["COPD"]
    assert multiple_choice.abbreviations("Asthma", ["Asthma (a chronic disease) is common."]) == []


def test_rewrite_replaces_the_distractors_disease_names_and_abbreviation():
    source = multiple_choice.FocusNames(
        "Alzheimer Disease", multiple_choice.name_variants("Alzheimer Disease"), ["AD"]
    )
    target = multiple_choice.FocusNames(
        "Parkinson's Disease", multiple_choice.name_variants("Parkinson's Disease"), ["PD"]
    )
    text = "Alzheimer disease (AD) affects memory. People with Alzheimer's often need help; AD is common. Add salt."
    assert multiple_choice.rewrite(text, source, target) == (
        "Parkinson's Disease (PD) affects memory. People with Parkinson's Disease often need help; PD is common. "
        "Add salt."
    )
    lower = multiple_choice.FocusNames("gout", ["gout"], [])
    assert multiple_choice.rewrite(
        "Alzheimer disease is common. It is not Alzheimer disease.", source, lower
    ) == ("Gout is common. It is not gout.")
    plain = multiple_choice.FocusNames("Gout", ["Gout"], [])
    assert multiple_choice.rewrite("Gout is painful. Gouty joints swell.", plain, target) == (
        "Parkinson's Disease is painful. Gouty joints swell."
    )


def _named_split(n_foci: int) -> list[dict]:
    """Answers that name their own disease, as MedQuAD's do: the case the rewrite exists for."""
    rng = random.Random(5)
    rows = []
    for f in range(n_foci):
        name = f"Disorder{chr(65 + f)} syndrome"
        for qtype in ("treatment", "outlook"):
            body = " ".join(rng.choices(WORDS, k=10))
            rows.append(_row(len(rows), name, qtype, f"{name} is treated with {body}. {name} lasts."))
    for r in rows:
        r["messages"][0]["content"] = f"What are the treatments for {r['focus']} ?"
    return rows


def test_shortcut_wins_on_plain_distractors_and_sits_at_chance_on_rewritten_ones():
    test = _named_split(20)
    plain, _ = multiple_choice.build_mc_items(test, [], 1000, seed=0, rewrite_names=False)
    rewritten, _ = multiple_choice.build_mc_items(test, [], 1000, seed=0)
    assert np.mean(multiple_choice.shortcut_scores(plain)) == 1.0
    assert np.mean(multiple_choice.shortcut_scores(rewritten)) == pytest.approx(0.25)
    for item in rewritten:
        assert all(item.focus in o for o in item.options), "every option names the question's disease"


def test_shortcut_credit_is_shared_among_tied_options():
    item = multiple_choice.MCItem(
        "x", [{"role": "user", "content": "alpha beta ?"}], ["alpha", "beta", "c", "d"], 0, "f", "t"
    )
    assert multiple_choice.shortcut_scores([item]) == [0.5]
    item.answer_index = 2
    assert multiple_choice.shortcut_scores([item]) == [0.0]


@pytest.mark.integration
def test_shortcut_is_near_chance_on_the_full_medquad_test_split():
    """The acceptance figure: on the default items (evaluate_model.py: 1000 items, seed 42) of the full
    collection's seed-42 split, word overlap with the question must not beat 35%."""
    from medlora.data import medquad

    root = shared_path("data", "medquad")
    pairs, _ = medquad.deduplicate(medquad.read_source(root, medquad.ReadReport()))
    split = medquad.split_by_focus(pairs, 0.05, 0.10, seed=42)
    test = [medquad.qa_example(p) for p in split["test"]]
    train = [medquad.qa_example(p) for p in split["train"]]
    items, _ = multiple_choice.build_mc_items(test, train, 1000, seed=42)
    plain, _ = multiple_choice.build_mc_items(test, train, 1000, seed=42, rewrite_names=False)
    assert len(items) == 1000
    assert np.mean(multiple_choice.shortcut_scores(items)) <= 0.35
    assert np.mean(multiple_choice.shortcut_scores(plain)) >= 0.8  # the old construction, for contrast


# ----------------------------------------------------------------------------------------------- the scorer


@pytest.fixture(scope="module")
def tiny(tiny_model):
    from medlora.model.loading import load_model

    model, tokenizer, _ = load_model(tiny_model, device="cpu", precision="fp32")
    return model, tokenizer


def test_truncate_to_tokens(tiny):
    _, tok = tiny
    text = "Aspirin lowers fever. " * 20
    cut = multiple_choice.truncate_to_tokens(tok, text, 15)
    assert text.startswith(cut) and 0 < len(tok(cut, add_special_tokens=False)["input_ids"]) <= 15
    assert multiple_choice.truncate_to_tokens(tok, "short", 15) == "short"


def test_loglikelihoods_match_an_unbatched_forward_pass(tiny):
    import torch

    from medlora.data.prompts import encode_prompt, qa_messages

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
        got = multiple_choice.answer_loglikelihoods(model, tok, pairs, batch_size)
        assert got == pytest.approx(expected, abs=1e-3)


def test_choose_options_takes_the_best_per_character_score(tiny):
    from medlora.data.prompts import qa_messages

    model, tok = tiny
    items = [
        multiple_choice.MCItem(
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
    picks = multiple_choice.choose_options(model, tok, items, batch_size=3, max_answer_tokens=64)
    # The expected pick from a plain forward pass per option (not from the scorer under test): the byte-level
    # tokenizer gives one token per character, so the per-character score is the mean token log-probability.
    import torch

    from medlora.data.prompts import encode_prompt

    raw_differs = False
    for item, pick in zip(items, picks, strict=True):
        lls = []
        for option in item.options:
            p_ids, a_ids = encode_prompt(tok, item.prompt), tok(option, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                lp = torch.log_softmax(model(torch.tensor([p_ids + a_ids])).logits[0].float(), -1)
            lls.append(sum(lp[len(p_ids) + k - 1, t].item() for k, t in enumerate(a_ids)))
        per_char = np.array(lls) / np.array([len(o) for o in item.options])
        assert pick == int(np.argmax(per_char))
        raw_differs |= int(np.argmax(lls)) != pick
    assert raw_differs, "the items must tell a per-character scorer from a summed one"


def test_random_model_accuracy_is_near_chance(tiny):
    """A random-weight model knows nothing: over 300 items its accuracy stays in a wide band around 25%."""
    model, tok = tiny
    rng = random.Random(0)
    words = WORDS
    items = []
    for k in range(300):
        options = [" ".join(rng.choices(words, k=rng.randint(3, 8))) for _ in range(4)]
        items.append(
            multiple_choice.MCItem(
                id=str(k),
                prompt=[{"role": "user", "content": f"Q{k}: what about {rng.choice(words)}?"}],
                options=options,
                answer_index=rng.randrange(4),
                focus="f",
                qtype="t",
            )
        )
    picks = multiple_choice.choose_options(model, tok, items, batch_size=64, max_answer_tokens=64)
    accuracy = np.mean([p == it.answer_index for p, it in zip(picks, items, strict=True)])
    assert 0.15 <= accuracy <= 0.35
    assert len(set(picks)) == 4, "a scorer stuck on one position would pass a band test by luck only"
