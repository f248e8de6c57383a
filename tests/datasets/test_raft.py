"""RAFT training examples: relevant passages plus distractors, shuffled and seeded; distractor-only cases abstain;
train prompts use train passages only, val/test prompts what inference would retrieve."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from medlora.common.schemas import GroundedSections, Medication, PatientRecord, Sections, to_published
from medlora.data.passages import Passage
from medlora.datasets.raft import make_grounder, raft_example
from medlora.grounding.support import support
from medlora.retrieval.index import BM25Index


def passage(pid, text, focus, split="train"):
    return Passage(pid, text, focus, f"What are the treatments for {focus} ?", "treatment",
                   f"https://ex.org/{focus}/{pid}", f"qa-{focus}-{pid}", split, 40)  # fmt: skip


TEXTS = [
    ("Gout", "Attacks are treated with medicines such as colchicine and NSAIDs."),
    ("Gout", "Drink plenty of water and limit alcohol and foods high in purines such as red meat."),
    ("Gout", "Long-term treatment with allopurinol lowers uric acid."),
    ("Gouty Arthritis Mimic", "Pseudogout treatment uses rest and joint aspiration."),
    ("Asthma", "Asthma treatment uses inhalers such as albuterol."),
    ("Kidney Stones", "Treatment of kidney stones: drink water; uric acid stones may need allopurinol."),
    ("Migraine", "Migraine treatment includes triptans."),
    ("Gout", "Held-out gout text about febuxostat treatment.", "test"),
]
TARGET = Sections(
    immediate_actions=["EMERGENCY: call the local emergency number."],
    medications=[Medication(name="colchicine"), Medication(name="allopurinol")],
    lifestyle=["Drink plenty of water and limit alcohol and foods high in purines such as red meat."],
)


@pytest.fixture(scope="module")
def index():
    return BM25Index.build([passage(i, t[1], t[0], *t[2:]) for i, t in enumerate(TEXTS)])


def test_relevant_passages_and_distractors_shuffled_and_seeded(index):
    passages, g = raft_example(index, "Gout", TARGET, 4, random.Random(0))
    foci = [p.focus for p in passages]
    assert len(passages) == 4 and 1 <= foci.count("Gout") <= 3 and set(foci) - {"Gout"}
    assert all(p.split == "train" for p in passages)  # the held-out gout passage never enters
    sections, cites = to_published(g)
    for name, per_item in cites.items():
        for item, c in zip(getattr(sections, name), per_item, strict=True):
            if name == "immediate_actions":
                assert c == []  # the safety rules' action cites nothing
            else:
                assert c and all(support(item, passages[n - 1], name) >= 0.6 for n in c)
    assert raft_example(index, "Gout", TARGET, 4, random.Random(0))[0] == passages
    orders = {
        tuple(p.pid for p in raft_example(index, "Gout", TARGET, 4, random.Random(s))[0]) for s in range(8)
    }
    assert len(orders) > 1  # shuffled: the relevant passage is not always first


def test_distractor_only_cases_abstain_but_keep_the_safety_actions(index):
    passages, g = raft_example(index, "Gout", TARGET, 4, random.Random(0), no_relevant=True)
    assert passages and all(p.focus != "Gout" for p in passages)
    assert to_published(g)[0] == Sections(immediate_actions=TARGET.immediate_actions)


@dataclass
class Case:
    key: str
    focus: str
    record: PatientRecord
    target: Sections


def test_the_grounder_gives_train_raft_and_held_out_retrieval(index):
    case = Case("gout", "Gout", PatientRecord(conditions=["Gout"]), TARGET)
    rows = [
        make_grounder(index, "train", k=3, no_relevant_share=0.5)(case, random.Random(s)) for s in range(20)
    ]
    assert 0 < sum(r["abstain"] for r in rows) < 20
    assert all(index.passages[i].split == "train" for r in rows for i in r["passages"])
    for r in rows:
        user = r["messages"][1]["content"]
        assert user.startswith("Patient record: ") and all(
            f"[{n}] " in user for n in range(1, len(r["passages"]) + 1)
        )
        GroundedSections.model_validate_json(r["messages"][-1]["content"])
    test_row = make_grounder(index, "test", k=4)(case, random.Random(0))
    assert not test_row["abstain"] and any(index.passages[i].split == "test" for i in test_row["passages"])
