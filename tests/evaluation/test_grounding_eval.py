"""medlora.evaluation.grounding: citation, abstention and answering figures on outputs whose right answer is known,
the no-model rows, and the measures on the fixture splits with the tiny model."""

from __future__ import annotations

import json

import pytest

from medlora.common.schemas import Medication, Sections
from medlora.data.passages import Passage
from medlora.evaluation import grounding as grounding_eval


class FakeIndex:
    """What the scorers read from an index: passages by id."""

    def __init__(self, passages):
        self.passages = passages


def _passage(pid, text, focus="Gout"):
    return Passage(pid, text, focus, f"What are the treatments for {focus} ?", "treatment", f"https://ex.org/{pid}",
                   f"qa-{pid}", "test", 20)  # fmt: skip


INDEX = FakeIndex(
    [
        _passage(0, "Attacks are treated with medicines such as colchicine and NSAIDs."),
        _passage(1, "Drink plenty of water and limit alcohol and foods high in purines.", "Gout"),
        _passage(2, "Asthma is treated with inhaled corticosteroids.", "Asthma"),
    ]
)
ROWS = [
    {"passages": [0, 1], "abstain": False},
    {"passages": [0, 1], "abstain": False, "variant": "reworded"},
    {"passages": [2], "abstain": True, "variant": "no_evidence"},
]
ANSWER = (
    Sections(
        medications=[Medication(name="colchicine")], lifestyle=["Drink plenty of water and limit alcohol."]
    ),
    {"medications": [[1]], "lifestyle": [[2]]},
)


def test_a_silent_output_is_not_a_grounded_answer():
    empty = grounding_eval.empty_outputs(ROWS)
    s = grounding_eval.grounded_report(ROWS, empty, INDEX, seed=0, n_boot=50)
    assert s["citation_precision"] is None and s["cited_items"] == 0  # nothing cited, nothing wrong
    assert s["answered_on_evidence"] == 0.0 and s["answered_on_evidence_n"] == 2
    assert s["abstention"] == 1.0 and s["abstention_n"] == 1
    assert set(s["by_variant"]) == {"exact", "reworded", "no_evidence"}
    assert s["by_variant"]["no_evidence"]["abstention"] == 1.0
    assert s["by_variant"]["no_evidence"]["answered_on_evidence"] is None


def test_a_supported_answer_everywhere_answers_and_never_abstains():
    s = grounding_eval.grounded_report(ROWS, [ANSWER] * 3, INDEX, seed=0, n_boot=50)
    assert s["answered_on_evidence"] == 1.0 and s["abstention"] == 0.0
    # on the evidence rows every citation holds; on the no-evidence row the numbers point past its one passage
    assert s["by_variant"]["exact"]["citation_recall"] == 1.0
    assert s["by_variant"]["exact"]["citation_precision"] == 1.0
    assert s["by_variant"]["no_evidence"]["citation_recall"] == 0.0
    assert s["citation_recall"] == pytest.approx(4 / 6)


def test_the_constant_alarm_cites_nothing_and_answers_nothing():
    alarm = grounding_eval.emergency_outputs(ROWS)
    assert all(s.immediate_actions == [grounding_eval.CONSTANT_EMERGENCY] for s, _ in alarm)
    s = grounding_eval.grounded_scores(ROWS, alarm, INDEX, seed=0, n_boot=50)
    assert s["answered_on_evidence"] == 0.0 and s["abstention"] == 1.0 and s["cited_items"] == 0


def test_measures_on_the_fixture_splits(tiny_data, tiny_model):
    from medlora.model.loading import load_model
    from medlora.retrieval.index import load_index

    index = load_index(tiny_data)
    test = [json.loads(x) for x in (tiny_data / "test.jsonl").read_text().splitlines()]
    report = grounding_eval.baselines(index, test, seed=0)
    assert report["retrieval"]["queries"] == len({r["focus"] for r in test})
    assert report["abstention_by_retrieval"]["invented_conditions"]["abstained"] == 1.0
    rows = [r for r in test if r["kind"] == "treatment"]
    assert rows and all("passages" in r for r in rows)
    # Targets and the extractive rules cite only passages that support their items, by construction; the
    # fixture has items with citations, so these are not checks over an empty set.
    for outputs in (grounding_eval.gold_outputs(rows), grounding_eval.extractive_outputs(rows, index)):
        s = grounding_eval.grounded_scores(rows, outputs, index, seed=0, n_boot=50)
        assert s["cited_items"] > 0 and s["citation_recall"] == 1.0 and s["citation_precision"] == 1.0
    model, tok, _ = load_model(str(tiny_model), None, "cpu", "fp32")
    two = rows[:2]
    outputs, calibration = grounding_eval.generated_outputs(model, tok, two, index, 96, 2)
    assert len(outputs) == 2 and calibration["n_sections"] > 0
    assert 0.0 <= calibration["ece"] <= 1.0
    # a row with no passage (an abstention row): no model call, as inference does when retrieval finds nothing
    calls = []
    real = grounding_eval.model_outputs
    spy = lambda *a, **k: calls.append(len(a[2])) or real(*a, **k)  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grounding_eval, "model_outputs", spy)
        none = {**two[1], "passages": [], "abstain": True, "variant": "no_evidence"}
        outputs, _ = grounding_eval.generated_outputs(model, tok, [two[0], none], index, 32, 2)
    assert calls == [1] and outputs[1] == (Sections(), {})
    distract = grounding_eval.no_evidence_rows(two, index)
    assert all(r["abstain"] for r in distract)
    focus = {r["id"]: r["focus"] for r in two}
    assert all(index.passages[p].focus != focus[r["id"]] for r in distract for p in r["passages"])
