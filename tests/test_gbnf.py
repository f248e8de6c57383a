"""medlora/gbnf.py: xgrammar's EBNF in llama.cpp's GBNF, or a refusal naming what cannot be said exactly.
(That both grammars accept the same documents is tested against llama.cpp in tests/test_llama_backend.py.)"""

from __future__ import annotations

import pytest

from medlora.gbnf import to_gbnf
from medlora.generation import sections_grammar


def test_gbnf_names_escapes_and_repetitions():
    ebnf = 'root ::= my_rule\nmy_rule ::= "\\"a\\"" [^\\0-\\x1f\\"\\\\] x{0, 7} "\\u00e9"\nx ::= [a-z]'
    assert to_gbnf(ebnf) == (
        'root ::= my-rule\nmy-rule ::= "\\x22a\\x22" [\\x20-!#-\\x5B\\x5D-\\U0010FFFF] x{0,7} "\\xE9"\nx ::= [a-z]'
    )


@pytest.mark.parametrize(
    "ebnf, message",
    [
        ('root ::= "a"{0, 2001}', "exceeds llama.cpp's bound"),
        ('root ::= a_b a-b\na_b ::= "x"\na-b ::= "y"', "both 'a-b'"),
        ('root ::= (= "a") "a"', "cannot translate"),
        ('root ::= "\\q"', "no GBNF equivalent"),
    ],
)
def test_what_gbnf_cannot_say_exactly_is_refused(ebnf, message):
    with pytest.raises(ValueError, match=message):
        to_gbnf(ebnf)


def test_negated_classes_become_positive_ones():
    # llama.cpp refuses a multi-byte character split across tokens when a negated class excludes any character
    # it could become; a positive class admits it, as xgrammar does.
    assert to_gbnf("root ::= [^a-c\\u1680]") == "root ::= [\\x00-`d-\\u167F\\u1681-\\U0010FFFF]"
    assert "[^" not in to_gbnf(sections_grammar())
