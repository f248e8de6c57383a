"""Treatment training examples a small model can learn from (issue 26): inference-like passages with the
comorbidities', targets the grammar can write with immediate_actions left to the rules and cut to the budget,
and a treatment-heavy mixture that favours rarely filled sections."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from medlora.common.schemas import GroundedSections, Medication, PatientRecord, Sections, to_published
from medlora.data.passages import Passage
from medlora.datasets.learnable import grammar_safe, inference_passages, learnable_target
from medlora.datasets.raft import make_grounder
from medlora.generation.base import sections_grammar
from medlora.grounding.support import support
from medlora.retrieval.index import BM25Index
from medlora.training.mixture import fill_rates, mixture, rare_weight


def passage(pid, text, focus, split="train"):
    return Passage(pid, text, focus, f"What are the treatments for {focus} ?", "treatment",
                   f"https://ex.org/{focus}/{pid}", f"qa-{focus}-{pid}", split, 40)  # fmt: skip


TEXTS = [
    ("Gout", "Attacks are treated with medicines such as colchicine and NSAIDs."),
    ("Gout", "Drink plenty of water and limit alcohol and foods high in purines such as red meat."),
    ("Gout", "Long-term treatment with allopurinol lowers uric acid."),
    ("Gouty Arthritis Mimic", "Pseudogout treatment uses rest and joint aspiration."),
    ("Asthma", "Asthma treatment uses inhalers such as albuterol."),
    ("Asthma", "Avoid asthma triggers such as smoke and dust."),
    ("Kidney Stones", "Treatment of kidney stones: drink water; uric acid stones may need allopurinol."),
    ("Migraine", "Migraine treatment includes triptans."),
]
TARGET = Sections(
    immediate_actions=["EMERGENCY: call the local emergency number."],
    medications=[Medication(name="colchicine"), Medication(name="allopurinol")],
    lifestyle=["Drink plenty of water and limit alcohol and foods high in purines such as red meat."],
)


@pytest.fixture(scope="module")
def index():
    return BM25Index.build([passage(i, t[1], t[0], *t[2:]) for i, t in enumerate(TEXTS)])


@dataclass
class Case:
    key: str
    focus: str
    record: PatientRecord
    target: Sections


def test_grammar_safe_strings_have_no_quote_backslash_or_control_character():
    assert grammar_safe('Say "no" to C:\\smoking\tnow') == "Say 'no' to C:/smoking now"


def test_learnable_target_leaves_immediate_actions_to_the_rules_and_the_grammar_can_write_it():
    g = GroundedSections.model_validate(
        {"immediate_actions": [{"citations": [], "text": "EMERGENCY: call 911."}],
         "lifestyle": [{"citations": [1], "text": 'Avoid "trigger" foods.'}]}
    )  # fmt: skip
    out = learnable_target(g)
    assert out.immediate_actions == [] and out.lifestyle[0].text == "Avoid 'trigger' foods."
    text = out.model_dump_json()
    assert "EMERGENCY" not in text and '\\"' not in text
    import xgrammar as xgr

    # The target is a sentence of the inference grammar (no escapes inside strings): the matcher accepts it.
    info = xgr.TokenizerInfo([bytes([i]) for i in range(256)], xgr.VocabType.RAW, vocab_size=256)
    matcher = xgr.GrammarMatcher(xgr.GrammarCompiler(info).compile_grammar(sections_grammar(2)))
    assert all(matcher.accept_token(b) for b in text.encode())
    assert not xgr.GrammarMatcher(
        xgr.GrammarCompiler(info).compile_grammar(sections_grammar(2))
    ).accept_string(g.model_dump_json())


def test_learnable_target_is_cut_to_the_token_budget_by_whole_items():
    g = GroundedSections.model_validate(
        {"lifestyle": [{"citations": [1], "text": f"Item number {i} is a sentence."} for i in range(6)],
         "patient_education": [{"citations": [1], "text": "One education item."}]}
    )  # fmt: skip
    chars = len(learnable_target(g).model_dump_json())
    out = learnable_target(g, count_tokens=len, max_tokens=chars - 60)
    assert len(out.model_dump_json()) <= chars - 60
    assert 1 <= len(out.lifestyle) < 6 and out.patient_education  # the fullest section loses items first
    assert [i.text for i in out.lifestyle] == [i.text for i in g.lifestyle[: len(out.lifestyle)]]


def test_train_prompts_hold_the_comorbidity_passages_and_name_the_primary_condition(index):
    record = PatientRecord(age=50, conditions=["Gout", "Asthma"])
    case = Case("gout", "Gout", record, TARGET)
    rows = [
        make_grounder(index, "train", k=4, no_relevant_share=0.3)(case, random.Random(s)) for s in range(20)
    ]
    assert 0 < sum(r["abstain"] for r in rows) < 20
    for r in rows:
        foci = [index.passages[i].focus for i in r["passages"]]
        assert "Asthma" in foci  # the comorbidity gets its slots, as retrieval gives them at inference
        assert ("Gout" in foci) != r["abstain"]
        user = r["messages"][1]["content"]
        assert '\nPrimary condition: "Gout"\n' in user
        target = GroundedSections.model_validate_json(r["messages"][-1]["content"])
        assert target.immediate_actions == []
        sections, cites = to_published(target)
        shown = [index.passages[i] for i in r["passages"]]
        for name, per_item in cites.items():
            for item, c in zip(getattr(sections, name), per_item, strict=True):
                assert c and all(support(item, shown[n - 1], name) >= 0.6 for n in c)  # still grounded
                assert all(shown[n - 1].focus == "Gout" for n in c)  # never cites the comorbidity's passage
    content = [r for r in rows if not r["abstain"]]
    assert any(json.loads(r["messages"][-1]["content"])["medications"] for r in content)


def test_test_targets_are_left_as_the_evaluation_scores_them(index):
    case = Case("gout", "Gout", PatientRecord(conditions=["Gout"]), TARGET)
    row = make_grounder(index, "test", k=4)(case, random.Random(0))
    assert GroundedSections.model_validate_json(row["messages"][-1]["content"]).immediate_actions


def test_without_comorbidity_a_distractor_takes_the_last_slot_some_of_the_time(index):
    shares = Counter()
    for s in range(40):
        ps = inference_passages(index, "Gout", ["Gout"], [], 3, random.Random(s))
        shares[any(p.focus != "Gout" for p in ps)] += 1
    assert 0 < shares[True] < 40


def _row(i, kind, filled=()):
    target = {s: ([{"citations": [1], "text": "x"}] if s in filled else []) for s in
              ("immediate_actions", "medications", "lifestyle", "follow_up", "specialist_referrals",
               "monitoring", "patient_education")}  # fmt: skip
    return {
        "id": f"{kind}-{i:04d}",
        "kind": kind,
        "messages": [{"role": "assistant", "content": json.dumps(target)}],
    }


def test_mixture_is_treatment_heavy_keeps_abstentions_and_favours_rare_sections():
    rows = [_row(i, "qa") for i in range(400)]
    rows += [_row(i, "treatment", ("patient_education",)) for i in range(300)]
    rows += [_row(300 + i, "treatment", ("follow_up", "patient_education")) for i in range(10)]
    rows += [_row(400 + i, "treatment") for i in range(80)]  # abstentions
    rates = fill_rates(rows)
    assert rare_weight(["follow_up"], rates) > rare_weight(["patient_education"], rates)
    picked = mixture(rows, 100, 0.8, rare_boost=True, seed=1)
    kinds = Counter(r["kind"] for r in picked)
    assert len(picked) == 100 and kinds["treatment"] == 80 and kinds["qa"] == 20
    abstaining = sum(r["kind"] == "treatment" and "[{" not in r["messages"][-1]["content"] for r in picked)
    assert abstaining == round(80 * 80 / 390)  # the split's share of abstentions
    follow = lambda p: sum('"follow_up": [{' in r["messages"][-1]["content"] for r in p)  # noqa: E731
    plain = mixture(rows, 100, 0.8, rare_boost=False, seed=1)
    assert follow(picked) > follow(plain)
    assert [r["id"] for r in picked] == sorted(r["id"] for r in picked)  # file order
    assert mixture(rows, 100, 0.8, rare_boost=True, seed=1) == picked  # seeded
