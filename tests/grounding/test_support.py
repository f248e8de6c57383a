"""The one support measure: content-word shares, drugs a sentence gives (never a prohibition), what an item
claims about drugs clause by clause, and doses as whole tokens nearest their drug."""

from __future__ import annotations

import pytest

from medlora.clinical.drugs import resolve
from medlora.grounding.support import drug_claims, giving, states, support

DRINK = "Gout. How to prevent Gout ? Drink plenty of water and limit alcohol and foods high in purines such as red meat."
PROHIBITION = (
    "Gout. What are the treatments for Gout ? Aspirin should never be given to people with gout. Colchicine is "
    "taken at 0.5 mg daily. Do not take more than 6 mg of colchicine."
)


def test_support_is_a_share_of_content_words():
    assert support("Drink plenty of water.", DRINK) == 1.0
    assert support("Drink plenty of coffee.", DRINK) == pytest.approx(2 / 3)
    assert support("", DRINK) == 0.0


def test_only_a_clause_that_forbids_a_drug_spares_it_the_evidence():
    def claims(text):
        return [(m.text, given) for m, given in drug_claims(text)]

    assert claims("Aspirin should never be given to children.") == []
    assert claims("Take oxycodone, but never drive after a dose.") == [("oxycodone", True)]
    assert claims("Take ibuprofen, which may cause stomach upset.") == [("ibuprofen", True)]
    assert claims("Avoid aspirin and ibuprofen; acetaminophen is safer.") == [("acetaminophen", True)]
    assert claims("Low levels of vitamin B12 cause anemia.") == [("vitamin B12", False)]  # named, not given


def test_a_dose_is_whole_tokens_in_a_sentence_that_gives_the_drug():
    assert states("100 mg", "allopurinol 100mg daily") and not states("10 mg", "allopurinol 100 mg daily")
    assert not states("5 mg", "25 mg") and states("twice daily", "given twice daily.") and not states("", "x")
    assert giving(resolve("colchicine"), PROHIBITION) == ["Colchicine is taken at 0.5 mg daily."]
    both = (
        "Colchicine 0.5 mg and allopurinol 100 mg are used; take 300 mg of allopurinol or 1 mg of colchicine."
    )
    colchicine, allopurinol = resolve("colchicine"), resolve("allopurinol")
    assert states("0.5 mg", both, colchicine) and states("1 mg", both, colchicine)
    assert not states("100 mg", both, colchicine) and not states("300 mg", both, colchicine)
    assert states("100 mg", both, allopurinol) and states("300 mg", both, allopurinol)
    assert giving(resolve("aspirin"), PROHIBITION) == []
