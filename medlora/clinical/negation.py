"""Is a finding in clinical text present now? A NegEx/ConText-style scope over sentences.

A finding that a trigger puts in scope is not affirmed: negated ("denies chest pain", "no fever",
"stroke was ruled out"), historical ("history of stroke", "stroke five years ago"), someone else's ("mother had a
stroke"), or hypothetical ("return if chest pain develops", "at risk of stroke"). Scope runs from a pre-trigger
to the end of the sentence, to a termination term ("but", "now", "presents with") or for at most ``MAX_SCOPE``
words; a post-trigger reaches back ``MAX_SCOPE`` words within its sentence.

Trigger terms are taken from NegEx (Chapman et al., J Biomed Inform 2001;34:301-310, and the negex trigger list
published with it) and ConText (Harkema et al., J Biomed Inform 2009;42:839-851) for the historical,
experiencer and hypothetical cues; pseudo-triggers ("no increase", "not only", "gram negative") are skipped as in
NegEx. "Rule out" / "r/o" stay affirmed on purpose: a finding under evaluation is the safe side to flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..common.text import record_sentences

MAX_SCOPE = 6

_PRE = {
    "negated": (
        r"no|not|never|denies|denied|denying|deny|without|w/o|nor|neither|free of|absence of|absent|"
        r"negative for|no signs? of|no evidence of|no history of|no hx of|no complaints? of|no new|no further|"
        r"ruled out|rules out|ruled out for|doesn't have|does not have|did not have|didn't have|hasn't had|"
        r"has not had|have not had|haven't had|not had|no longer|resolution of|unremarkable for|fails to reveal|"
        r"negative|no report of|not reporting|does not report|doesn't report|denial of"
    ),
    "historical": (
        r"history of|hx of|h/o|past history of|past medical history of|pmh of|pmh|pmhx|previous|previously|"
        r"prior|remote|status post|s/p|recovered from|survivor of|survived|former|since recovered from"
    ),
    "other_person": (
        r"family history of|family hx of|fh of|fhx of|fhx|family history|"
        r"(?:mother|father|mom|dad|brother|sister|grandmother|grandfather|grandma|grandpa|aunt|uncle|cousin|parent|"
        r"parents|sibling|siblings|wife|husband|partner|son|daughter|friend|relative|relatives)"
        r"(?:'s)?\s+(?:had|has|died|passed away|suffered|with|committed|attempted|killed|took)"
    ),
    "hypothetical": (
        r"if|in case of|should (?:he|she|you|they|there be) (?:develop|have|experience|get)|watch for|"
        r"watch out for|look out for|return if|seek care if|monitor for|warning signs? of|risk of|risk for|"
        r"at risk of|at risk for|to prevent|prevention of|prevent|avoid|worried about|concerned about|"
        r"afraid of|fear of|fears|screening for|screen for|can cause|may cause|could cause|might cause|"
        r"vaccinated against|vaccine for|vaccine against|vaccination against|immuni[sz]ed against"
    ),
}
_POST = {
    "negated": r"(?:was|is|has been|been|were|are) ruled out|(?:is|was) unlikely|unlikely|(?:has |have )?resolved|"
    r"(?:is|was|were) (?:absent|negative|denied)|not present|free|gone|none",
    "historical": r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|many|several|a few|some) "
    r"(?:years?|yrs?|months?|mos?|wks?|weeks?|decades?) ago|years ago|months ago|a year ago|a month ago|last year|as a child|"
    r"in childhood|in infancy|as an? (?:toddler|baby|infant|teen|teenager|kid)|in the past|in (?:19|20)\d\d|\((?:19|20)\d\d\)|previously|in remission|healed",
    "hypothetical": r"prevention|prophylaxis|risk|screening|precautions|vaccines?|vaccinations?|"
    r"immuni[sz]ations?|boosters?|shots?|jabs?",
}
_PSEUDO = (
    r"no increase|no change|not only|no further change|not certain if|not certain whether|not necessarily|"
    r"gram negative|not rule out|not ruled out|not been ruled out|without fail|no doubt|not drain|not extend|"
    r"not cause|nothing but|no longer than|not able to (?:rule out|exclude)|cannot rule out|can't rule out|"
    r"not excluded|cannot be excluded|can't be excluded|not improving|not improved|not better|not resolved|"
    r"prior to|previously well|not resolving|not going away|won't go away|will not go away|doesn't go away|does not go away|"
    r"not getting better|not stopping|won't stop|will not stop|not responding|unresponsive"
)
_TERMINATE = (
    r"but|however|although|though|except|apart from|aside from|yet|still|now|currently|today|tonight|"
    r"this morning|this evening|presents? with|presenting with|presented with|complains? of|complaining of|c/o|"
    r"reports?|reported|reporting|says|said|states|stated|notes|noted|noticed|developed|develops|new onset|"
    r"new|acute|sudden|suddenly|and now|which|who|since then|since(?! (?:19|20)\d\d)|secondary to|due to|because|"
    r"while|whereas|then|admits to|endorses|positive for|has|is having|having"
)


def _alternation(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w/])(?:{pattern})(?![\w/])", re.I)


_PRE_RES = {kind: _alternation(p) for kind, p in _PRE.items()}
_POST_RES = {kind: _alternation(p) for kind, p in _POST.items()}
_PSEUDO_RE = _alternation(_PSEUDO)
_TERMINATE_RE = _alternation(_TERMINATE)
_WORD = re.compile(r"[\w/'%.]+")


@dataclass(frozen=True)
class Scope:
    kind: str  # negated | historical | other_person | hypothetical
    start: int
    end: int


def scopes(text: str) -> list[Scope]:
    """Every non-affirming scope in ``text`` as character spans."""
    out: list[Scope] = []
    for s_start, s_end in record_sentences(text):
        sentence = text[s_start:s_end]
        pseudo = [(m.start(), m.end()) for m in _PSEUDO_RE.finditer(sentence)]

        def is_pseudo(m: re.Match[str], pseudo: list[tuple[int, int]] = pseudo) -> bool:
            return any(a <= m.start() < b for a, b in pseudo)

        terminators = [m.start() for m in _TERMINATE_RE.finditer(sentence)]
        words = [(m.start(), m.end()) for m in _WORD.finditer(sentence)]
        for kind, pattern in _PRE_RES.items():
            for m in pattern.finditer(sentence):
                if is_pseudo(m):
                    continue
                after = [w for w in words if w[0] >= m.end()][:MAX_SCOPE]
                end = after[-1][1] if after else m.end()
                stop = [t for t in terminators if m.end() <= t < end]
                end = min(stop) if stop else end
                out.append(Scope(kind, s_start + m.end(), s_start + end))
        for kind, pattern in _POST_RES.items():
            for m in pattern.finditer(sentence):
                if is_pseudo(m):
                    continue
                # "seizure free", "pain-free": "free" negates the word or two before it, not the whole clause
                # ("22 weeks gestation, seizure free" is still a pregnancy).
                reach = 2 if m.group().lower() == "free" else MAX_SCOPE
                before = [w for w in words if w[1] <= m.start()][-reach:]
                start = before[0][0] if before else m.start()
                stop = [t for t in terminators if start <= t < m.start()]
                start = max(stop) if stop else start
                out.append(Scope(kind, s_start + start, s_start + m.start()))
    return out


def affirmed(text: str, span: tuple[int, int], found: list[Scope] | None = None) -> bool:
    """Whether the finding at ``span`` (character offsets in ``text``) is stated as present now."""
    found = scopes(text) if found is None else found
    a, b = span
    return not any(s.start <= a and b <= s.end for s in found)


def affirmed_matches(
    text: str, pattern: re.Pattern[str], found: list[Scope] | None = None
) -> list[re.Match[str]]:
    """Matches of ``pattern`` in ``text`` that no negation, history, experiencer or hypothetical cue covers.
    ``found``: ``scopes(text)`` when the caller asks about many patterns in the same text."""
    hits = list(pattern.finditer(text))
    if not hits:
        return []
    found = scopes(text) if found is None else found
    return [m for m in hits if affirmed(text, m.span(), found)]
