"""Class-balanced decisions and the wall-time budget (medlora/training/objective.py)."""

from __future__ import annotations

import pytest

from medlora.common.schemas import SECTION_NAMES, WRITE_ORDER
from medlora.training import objective
from medlora.training.objective import PadCollator

EMPTY, FILL = 7, 9  # stand-ins for "]" and "{" token ids


def _row(filled: set[str]) -> dict:
    # decisions at positions 1..7, one per section in the order the model writes them
    labels = [-100] + [FILL if name in filled else EMPTY for name in WRITE_ORDER]
    return {"input_ids": list(range(8)), "labels": labels, "decisions": list(range(1, 8))}


def test_fill_rates_count_rows_with_one_decision_per_section_only():
    rows = [
        _row({"medications"}),
        _row({"medications", "lifestyle"}),
        _row(set()),
        {"labels": [1], "decisions": []},
    ]
    rates = objective.fill_rates(rows, {EMPTY})
    assert rates["medications"] == (2, 3) and rates["lifestyle"] == (1, 3) and rates["follow_up"] == (0, 3)


def test_balanced_weights_give_both_classes_equal_total_weight():
    rates = {name: (0, 10) for name in SECTION_NAMES} | {"medications": (2, 10), "patient_education": (8, 10)}
    slots = dict(zip(WRITE_ORDER, objective.balanced_weights(rates, 2.0), strict=True))
    empty_w, fill_w = slots["medications"]
    assert 8 * empty_w == pytest.approx(2 * fill_w)  # 8 empty rows x their weight = 2 filled rows x theirs
    assert fill_w > empty_w and slots["patient_education"][0] > slots["patient_education"][1]
    assert slots["follow_up"] == (2.0, 2.0)  # never filled in the sample: nothing to balance


def test_balanced_weights_are_capped():
    rates = {name: (1, 1000) for name in SECTION_NAMES}
    assert all(fill == 2.0 * objective.MAX_BALANCE for _, fill in objective.balanced_weights(rates, 2.0))


def test_collator_weighs_filled_and_empty_decisions_by_section():
    rows = [_row({"medications"})]
    slots = [(1.0, 1.0)] * len(SECTION_NAMES)
    med, life = WRITE_ORDER.index("medications"), WRITE_ORDER.index("lifestyle")
    slots[med] = (0.5, 4.0)
    slots[life] = (3.0, 6.0)  # empty here
    weights = PadCollator(0, decision_weight=2.0, balanced=({EMPTY}, slots))(rows)["weights"][0].tolist()
    assert weights[1 + med] == 4.0 and weights[1 + life] == 3.0 and weights[0] == 1.0
    # a row whose target was cut (fewer decisions than sections) falls back to the plain decision weight
    cut = {"input_ids": [0, 1, 2], "labels": [-100, FILL, EMPTY], "decisions": [1, 2]}
    assert PadCollator(0, decision_weight=2.0, balanced=({EMPTY}, slots))([cut])["weights"][0].tolist() == [
        1,
        2,
        2,
    ]


def test_empty_token_ids_are_the_tokens_that_close_a_list(tiny_model):
    from medlora.model.loading import load_tokenizer

    tok = load_tokenizer(tiny_model)
    ids = objective.empty_token_ids(tok)
    assert ids and all(tok.decode([i]).startswith("]") for i in ids)
    assert tok.convert_tokens_to_ids("{") not in ids


def test_time_budget_stops_after_the_step_that_spends_it():
    from types import SimpleNamespace

    cb = objective.time_budget_callback(minutes=0.0)
    control = SimpleNamespace(should_training_stop=False, should_save=False, should_evaluate=False)
    cb.on_train_begin(None, None, control)
    cb.on_step_end(None, SimpleNamespace(global_step=3, max_steps=10), control)
    assert control.should_training_stop and control.should_save and cb.stopped_at == 3
    last = SimpleNamespace(should_training_stop=False, should_save=False, should_evaluate=False)
    objective.time_budget_callback(minutes=0.0).on_step_end(
        None, SimpleNamespace(global_step=10, max_steps=10), last
    )
    assert not last.should_training_stop  # the last step: the Trainer ends on its own
    long = SimpleNamespace(should_training_stop=False, should_save=False, should_evaluate=False)
    objective.time_budget_callback(minutes=60).on_step_end(
        None, SimpleNamespace(global_step=1, max_steps=10), long
    )
    assert not long.should_training_stop
