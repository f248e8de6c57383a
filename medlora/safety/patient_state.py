"""The patient's state, read once from every field, for the rules that depend on it (contraindications,
interactions, red flags).

``patient_state(record)`` reads ``age``, ``sex``, ``pregnant`` and the text of ``conditions``, ``symptoms``,
``medications`` and ``notes`` as clinicians write them:

- pregnancy, with weeks or trimester: "G2P1 at 30 wks", "28/40", "30+2/40", "IUP at 8 wks", "bHCG +",
  "+UPT", "pregnant 32 weeks", "32 weeks gestation", "EGA 20w", "third trimester"; "possibly pregnant" or "LMP
  7 weeks ago, late period" is a possible pregnancy; "G3P3" alone is obstetric history, not a pregnancy;
- breastfeeding ("breastfeeding", "nursing", "lactating", "BF 4-month-old"); not read for an infant, who is the
  one breastfed;
- age, when the ``age`` field is empty: "8 y/o", "8yo", "20 mo", "20-month-old", "6-month-old", "84F",
  "84 yo M", "2 wk old"; the first one written is the patient's ("84F, lives with her 8 y/o grandson");
- kidney function: eGFR, CrCl ("eGFR 22", "GFR of 25 mL/min", "CrCl 20", "creatinine clearance 45"), CKD stage
  ("CKD 4", "CKD stage IV", "CKD G3b", "CKD4"), dialysis or ESRD ("HD MWF", "on PD", "ESKD"), AKI; the stage
  follows from the number (KDIGO 2012 CKD: G3a 45-59, G3b 30-44, G4 15-29, G5 < 15);
- liver disease: cirrhosis ("cirrhotic", "NASH cirrhosis", "ESLD", "decompensated liver disease"), Child-Pugh
  class ("Child-Pugh B", "CTP C", "Child B");
- serum potassium ("K 5.8", "K+ 5.6", "potassium 6.1", "hyperkalemia") for the interaction rules;
- a viral illness (influenza, flu-like symptoms, chickenpox, varicella) for Reye's syndrome.

Negation and history come from ``negation`` (NegEx/ConText scopes over ``text.record_sentences``): "not
pregnant", "denies pregnancy", "no CKD", "hx of preeclampsia 2019", "prior pregnancy", "s/p C-section 2014" do
not count; a negative test ("bHCG neg", "UPT negative", "-UPT") is read as such. Like the red flags, text can
only add a state: a ``pregnant: false`` field does not hide "32 weeks pregnant" in the notes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..clinical.negation import Scope, affirmed, scopes
from ..common.schemas import PatientRecord
from ..common.text import record_sentences
from .allergies import allergy_history_spans
from .red_flag_more import MORE


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w/+-])(?:{pattern})(?![\w])", re.I)


# ------------------------------------------------------------------------------------------------ pregnancy
_WEEKS = [  # (pattern with the weeks in group "w"): gestational age as written
    _re(r"(?P<w>\d{1,2})(?:\+\d)?/40"),
    _re(r"(?P<lead>at|@|ega|ga|gestational age(?: of)?|iup(?: at)?|pregnant(?: at)?|pregnancy(?: at)?)\s*:?\s*~?"
        r"(?P<w>\d{1,2})(?:\.\d)?\s*(?:\+\d\s*)?(?:w(?:ee)?ks?|w|weeks?)(?:\s*\d\s*d(?:ays?)?)?"),
    _re(r"(?P<w>\d{1,2})\s*(?:\+\d\s*)?(?:w(?:ee)?ks?|w|weeks?)(?:\s*\d\s*d(?:ays?)?)?(?:'|s)?\s*(?:of\s+)?"
        r"(?:pregnant|pregnancy|gestation(?:al age)?|ga|gest|iup|by lmp|by dates|by us)"),
    _re(r"(?P<w>\d{1,2})w\d?d"),
]  # fmt: skip
_VISION = re.compile(r"\b(?:va|vision|visual|acuity|snellen|eyes?|od|os|ou|corrected|glasses|cc|sc)\b", re.I)
_GRAVIDA_NEAR = re.compile(
    r"\bg\d{1,2}(?:\s*p\d)?\b|pregnan|gravid|iup|gestation|\bega?\b|\bga\b|\bob\b|fundal|fetal|fhr", re.I
)


def _pregnancy_words_near(text: str, at: int) -> bool:
    """Whether the sentence holding ``text[at]`` speaks of a pregnancy."""
    for a, b in record_sentences(text):
        if a <= at < b or at == b:
            return bool(_GRAVIDA_NEAR.search(text[a:b]))
    return False


_TRIMESTER = _re(r"(?P<t>first|second|third|1st|2nd|3rd)[- ]trimester|(?P<t2>t[123])\s+pregnan\w*")
_PREGNANT = _re(
    r"pregnan(?:t|cy)|gravid|expecting (?:a baby|twins)|intrauterine pregnancy|iup|"
    r"(?:\+|positive)\s*(?:upt|hcg|b-?hcg|beta[- ]?hcg|pregnancy test|urine pregnancy test|serum hcg)|"
    r"(?:upt|hcg|b-?hcg|beta[- ]?hcg|pregnancy test|urine pregnancy test|serum hcg)\s*(?:is |was |came back )?"
    r"(?:\+|positive|pos)|"
    r"pre-?eclampsia|gestational (?:diabetes|hypertension)|gdm|hyperemesis(?: gravidarum)?|"
    r"(?:antenatal|prenatal) (?:visit|clinic|care|booking|appointment|check)|obstetric (?:patient|pt)|ob (?:patient|pt)"
)
_NEGATIVE_TEST = _re(
    r"(?:upt|hcg|b-?hcg|beta[- ]?hcg|pregnancy test|urine pregnancy test|serum hcg)\s*(?:is |was |came back )?"
    r"(?:-|neg\w*|\(-\))|(?:-|negative|neg)\s*(?:upt|hcg|b-?hcg|pregnancy test)"
)
# Words of a pregnancy that is not this one: "prior pregnancy", "pregnancy in 2018", "pregnancy test ordered".
_NOT_THIS_PREGNANCY = re.compile(
    r"(?:last|prior|previous|past|earlier|former|other|first|second|third|\d|two|three|four|her|multiple|"
    r"prev|h/o|hx)\s+(?:\w+\s+)?pregnanc\w*|pregnanc\w*\s+(?:in|during)\s+(?:19|20)\d\d|pregnancy (?:loss|losses|"
    r"test(?!\s*(?:is |was |came back )?(?:\+|pos)))|(?:trying|plans?|planning|wants?|hoping|desires?)\s+(?:to\s+)?"
    r"(?:get |become |be )?pregnan\w*|pregnancy (?:prevention|category|planning|intention)|avoid pregnancy|"
    r"(?:not|never) pregnant|no (?:chance|possibility|risk) of pregnancy|pregnan\w* (?:ruled out|excluded|unlikely)|"
    r"(?:rule out|r/o|\?) pregnan\w*|possibl[ey] pregnan\w*|(?:may|might|could) be pregnant|"
    r"pregnancy (?:test )?pending|pregnan\w*\s*[:?-]\s*(?:no|n|neg\w*|denies|none)\b",
    re.I,
)
_POSSIBLE = _re(
    r"possibl[ey] pregnan\w*|(?:may|might|could) be pregnant|pregnancy (?:possible|not (?:ruled out|excluded))|"
    r"(?:missed|late) (?:her )?(?:period|menses)|lmp (?:[5-9]|1\d|five|six|seven|eight|nine|ten) (?:wks?|weeks?) ago|"
    r"(?:rule out|r/o|\?) pregnan\w*|pregnancy (?:test )?pending"
)
_GRAVIDA = re.compile(r"(?<![\w])g(\d{1,2})\s*p(?:(\d)(\d{3})|(\d{1,2}))(?![\w])", re.I)
_LOSS = re.compile(
    r"^\W{0,3}(?:\w+\W+){0,2}?(?:\d\s*)?(?:sab|tab|eab|miscarr\w*|abortion|ectopic|iufd|stillbirth)", re.I
)
_BREASTFEEDING = _re(
    r"breast-?feeding|breast feeding|breastfeeds|nursing (?:mother|mom|her|an? infant|a baby)|is nursing|"
    r"lactating|lactation|bf(?:ing)? (?:her |a |an )?(?:\d|infant|baby|newborn)|ebf(?:ing)? (?:her |a |an )?(?:\d|"
    r"infant|baby)|pumping"
)

# --------------------------------------------------------------------------------------------------- age
_AGE_TEXT = re.compile(
    r"(?<![\w.])(?P<n>\d{1,3}(?:\.\d)?)\s*-?\s*(?P<u>"
    r"y/o|yo|y\.o\.|yrs? old|years?[- ]old|year[- ]old|yr[- ]old|y(?=[MF]\b)|"
    r"mo(?:nths?)?[- ]old|mo old|mos? old|m/o|month[- ]old|mo(?=\s*(?:old|[MF]\b|male|female|boy|girl|infant|"
    r"baby|child|with|w/|presents|pt|patient|here|brought|ex-?\d))|"
    r"w(?:ee)?ks?[- ]old|wk old|week[- ]old|days?[- ]old|d/o|do(?=\s*(?:[MF]\b|male|female|boy|girl|infant|baby))|"
    r"mos?(?=\s*(?:[,;:.]|$))"
    r")(?![\w])"
    r"|(?<![\w.])(?P<n2>\d{1,3})\s?(?P<sex>[MF])(?![\w])",
)
_NOT_AGE_BEFORE = re.compile(
    r"(?:temp\w*|t|tmax|fever(?: of| to)?|febrile to|spiked to|to|bp|hr|rr|wt|weight|gauge|size|for|x|since|past|last|"
    r"over)\s*:?\s*$|"
    r"\b(?:her|his|my|their|your|whose)\s+(?:\w+\s+)?$",  # "breastfeeding her 4 mo old": the baby's age
    re.I,
)
# "8 y/o grandson", "4 mo old son": someone else's age.
_NOT_AGE_AFTER = re.compile(
    r"^\s*,?\s*(?:grand)?(?:son|daughter|child|children|kid|sibling|brother|sister|baby|infant|niece|nephew)\b",
    re.I,
)
_SENTENCE_START = re.compile(r"(?:^|[.;\n:]\s*)$")

# ---------------------------------------------------------------------------------------------- kidneys
_NUM = r"(?P<v>\d{1,3}(?:\.\d+)?)"
_EGFR = _re(
    rf"e?gfr\s*(?:\(?ckd-epi\)?\s*)?(?:of|is|was|at|=|:|~|-)?\s*(?P<op><|>|≤|≥|less than|below|under)?\s*{_NUM}"
)
_CRCL = _re(
    rf"(?:crcl|cr cl|creatinine clearance|ccr|clcr)\s*(?:\(?cockcroft[- ]gault\)?\s*)?(?:of|is|was|at|=|:|~|-)?\s*"
    rf"(?P<op><|>|≤|≥|less than|below|under)?\s*{_NUM}"
)
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iiia": 3, "iiib": 3, "iv": 4, "v": 5}
_CKD = _re(
    r"(?:ckd|chronic kidney disease|chronic renal (?:failure|insufficiency|disease)|crf|cri)\s*,?\s*(?:stage|st\.?|g)?\s*"
    r"(?P<s>[1-5][ab]?|iii[ab]|iv|v|iii|ii|i)(?![\w])(?!\s*(?:years?|yrs?|months?|mos?|wks?|weeks?|days?)\b)"
)
_CKD_ANY = _re(r"ckd|chronic kidney disease|chronic renal (?:failure|insufficiency|disease)|renal insufficiency|"
               r"kidney disease|renal impairment|impaired renal function|renal failure")  # fmt: skip
_DIALYSIS = _re(
    r"(?:on |receiving |started |needs |requires )?(?:hemo|haemo|peritoneal )?dialysis|esrd|eskd|"
    r"end[- ]stage (?:renal|kidney) (?:disease|failure)|hd (?:mwf|tts|tths|m/w/f|t/th/s|3x|three times)|"
    r"(?:on|started) (?:hd|pd|capd|ccpd)|(?:mwf|tts) (?:hd|dialysis)|ckd ?5d|ckd stage 5d|"
    r"(?:av|a-v) fistula|permcath|tunneled (?:hd )?catheter"
)
_AKI = _re(r"aki|acute kidney injury|acute renal failure|arf")

# -------------------------------------------------------------------------------------------------- liver
_CIRRHOSIS = _re(
    r"cirrho\w*|esld|end[- ]stage liver disease|decompensated liver(?: disease)?|hepatic encephalopathy|"
    r"liver failure|hepatic failure|portal hypertension|(?:nash|mash|alcoholic|etoh|hcv|hbv|pbc|psc) cirrhosis|"
    r"child[- ]?pugh|ctp (?:class )?[abc]|meld"
)
_CHILD_PUGH = _re(
    r"(?:child[- ]?pugh|child[- ]turcotte[- ]pugh|ctp|child class)\s*(?:class|score|grade)?\s*:?\s*(?P<c>[abc])"
)
_LIVER = _re(
    r"liver disease|hepatic impairment|hepatitis|fatty liver|nafld|masld|nash|transaminitis|elevated lfts"
)

# ---------------------------------------------------------------------------------------- potassium, virus
_POTASSIUM = _re(
    r"(?:k\+?|potassium|serum k|k level)\s*(?:of|is|was|=|:|~|-)?\s*(?P<v>\d(?:\.\d{1,2})?)(?!\s*(?:mg|g|%))"
)
_HYPERKALAEMIA = _re(r"hyperkala?emi\w*|high (?:potassium|k\+?)|elevated (?:potassium|k\+?)")
_VIRAL = _re(
    r"influenza|flu|flu-like|flu like|ili|chicken ?pox|varicella|viral (?:illness|infection|syndrome|uri|"
    r"gastroenteritis)|covid(?:-19)?|sars-cov-2|rsv|(?:cold|flu) symptoms|common cold|(?:has|with|caught|got) a cold|head cold|"
    r"(?:recovering from|getting over) (?:the |a )?(?:flu|cold|virus|chicken ?pox)"
)
# Read even after "s/p" (history): the surgery is what the codeine label's limit is about.
_TONSILS = re.compile(r"tonsillectom\w*|adenoidectom\w*|adenotonsillectom\w*|\bt\s*&\s*a\b", re.I)
_MECHANICAL_VALVE = _re(
    r"mechanical (?:heart |mitral |aortic )?valves?|(?:mvr|avr) \(?mechanical|on-?x valve|st\.? jude valve"
)


@dataclass(frozen=True)
class PatientState:
    pregnant: bool = False  # affirmed pregnancy now (field or text)
    possibly_pregnant: bool = False  # "possibly pregnant", "missed period": not excluded
    weeks: float | None = None  # gestational age in weeks, where written
    trimester: int | None = (
        None  # from the weeks (ACOG: 1st to 13+6, 2nd 14 to 27+6, 3rd from 28) or as written
    )
    breastfeeding: bool = False
    age: float | None = None  # years: the field, else the first age written
    egfr: float | None = None  # mL/min/1.73 m2, the lowest written
    crcl: float | None = None  # mL/min, the lowest written
    ckd_stage: int | None = None  # 1-5, from the stage written or the lowest eGFR/CrCl
    dialysis: bool = False
    aki: bool = False
    cirrhosis: bool = False
    child_pugh: str | None = None  # "A" | "B" | "C"
    liver_disease: bool = False  # any named liver disease (cirrhosis included)
    potassium: float | None = None  # mmol/L, the highest written
    hyperkalaemia: bool = False
    viral_illness: bool = False
    mechanical_valve: bool = False
    tonsillectomy: bool = False  # after tonsillectomy or adenoidectomy (FDA 2017 codeine and tramadol limits)
    angioedema: bool = False  # lip, tongue, face or throat swelling now (not an allergy list's past reaction)
    evidence: dict[str, str] = field(default_factory=dict, compare=False)  # state -> how it was read

    @property
    def age_band(self) -> str | None:
        """infant (< 1 year), child (1 to 11), adolescent (12 to 17), adult, older adult (65 and over)."""
        if self.age is None:
            return None
        if self.age < 1:
            return "infant"
        if self.age < 12:
            return "child"
        if self.age < 18:
            return "adolescent"
        return "older adult" if self.age >= 65 else "adult"

    @property
    def kidney_function(self) -> float | None:
        """The lowest of eGFR and CrCl: what a renal threshold is checked against."""
        values = [v for v in (self.egfr, self.crcl) if v is not None]
        return min(values) if values else None

    @property
    def severe_ckd(self) -> bool:
        """CKD G4-G5 or dialysis (eGFR or CrCl under 30)."""
        return self.dialysis or (self.ckd_stage or 0) >= 4


def _text(record: PatientRecord) -> str:
    # One item a sentence, so a negation in one item never reaches into the next (as in red_flags).
    return ".\n".join([*record.conditions, *record.symptoms, *record.medications, record.notes or ""])


def _hits(text: str, pattern: re.Pattern[str], found: list[Scope]) -> list[re.Match[str]]:
    return [m for m in pattern.finditer(text) if affirmed(text, m.span(), found)]


def _first_age(text: str) -> float | None:
    for m in _AGE_TEXT.finditer(text):
        before = text[max(0, m.start() - 24) : m.start()]
        if _NOT_AGE_BEFORE.search(before) or _NOT_AGE_AFTER.match(text[m.end() :]):
            continue
        if (m.group("u") or "").lower() in ("mo", "mos") and not _SENTENCE_START.search(before):
            continue  # "20 mo" is an age where a record opens with it; elsewhere it may be a duration
        if m.group("n2"):
            n = float(m.group("n2"))
            if 1 <= n <= 110:
                return n
            continue
        n, unit = float(m.group("n")), m.group("u").lower()
        if unit.startswith("y"):
            years = n
        elif unit.startswith("m"):
            years = n / 12
        elif unit.startswith("w"):
            years = n * 7 / 365.25
        else:
            years = n / 365.25
        if years <= 120:
            return years
    return None


def _pregnancy(record: PatientRecord, text: str, found: list[Scope], ev: dict[str, str]):
    weeks = None
    trimester = None
    for pattern in _WEEKS:
        for m in pattern.finditer(text):
            w = float(m.group("w"))
            if (
                not (3 <= w <= 43)
                or not affirmed(text, m.span(), found)
                or _NOT_THIS_PREGNANCY.search(m.group())
            ):
                continue
            if "/" in m.group() and _VISION.search(text[max(0, m.start() - 30) : m.end() + 12]):
                continue  # "VA 20/40 OU" is visual acuity
            lead = (m.groupdict().get("lead") or "").lower()
            if lead in ("at", "@") and not _pregnancy_words_near(text, m.start()):
                continue  # "follow up at 6 weeks" is a date, "G2P1 at 30 wks" a gestation
            weeks = w if weeks is None else max(weeks, w)
            ev.setdefault("pregnant", m.group())
    for m in _TRIMESTER.finditer(text):
        if affirmed(text, m.span(), found):
            t = (m.group("t") or m.group("t2") or "").lower()
            trimester = {"first": 1, "1st": 1, "t1": 1, "second": 2, "2nd": 2, "t2": 2}.get(t, 3)
            ev.setdefault("pregnant", m.group())
    negative_spans = [m.span() for m in _NEGATIVE_TEST.finditer(text)]
    other = [(m.start(), m.end()) for m in _NOT_THIS_PREGNANCY.finditer(text)]
    affirmed_words = [
        m for m in _hits(text, _PREGNANT, found)
        if not any(a <= m.start() < b for a, b in negative_spans + other)
    ]  # fmt: skip
    for m in _GRAVIDA.finditer(text):
        # "G2P1" with gravida above para is a pregnancy now; "G3P3" is obstetric history; with TPAL
        # ("G2P1011") the pregnancy is current only when gravida exceeds term + preterm + abortions.
        g = int(m.group(1))
        tpal = m.group(2) + m.group(3) if m.group(3) else None
        done = int(tpal[0]) + int(tpal[1]) + int(tpal[2]) if tpal else int(m.group(4))
        if (
            g > done
            and affirmed(text, m.span(), found)
            and not (tpal is None and _LOSS.match(text[m.end() :]))
        ):
            affirmed_words.append(m)
    if affirmed_words:
        ev.setdefault("pregnant", affirmed_words[0].group())
    pregnant = bool(record.pregnant) or weeks is not None or trimester is not None or bool(affirmed_words)
    if record.pregnant:
        ev.setdefault("pregnant", "pregnant: true")
    if record.sex == "male" and not record.pregnant:
        pregnant = False
    if weeks is not None:
        trimester = 1 if weeks < 14 else 2 if weeks < 28 else 3
    possible = not pregnant and record.sex != "male" and bool(_hits(text, _POSSIBLE, found))
    if not pregnant:
        return False, possible, None, None
    return pregnant, possible, weeks, trimester


def _kidneys(text: str, found: list[Scope], ev: dict[str, str]):
    def values(pattern: re.Pattern[str], name: str) -> float | None:
        out = []
        for m in _hits(text, pattern, found):
            v, op = float(m.group("v")), (m.group("op") or "").lower()
            if op in (">", "≥") or not 2 <= v <= 200:
                continue  # "eGFR > 60" says the kidneys are fine
            out.append(v)
            ev.setdefault(name, m.group())
        return min(out) if out else None

    egfr, crcl = values(_EGFR, "egfr"), values(_CRCL, "crcl")
    stage = None
    for m in _hits(text, _CKD, found):
        s = m.group("s").lower()
        n = _ROMAN.get(s) or int(s[0])
        stage = max(stage or 0, n)
        ev.setdefault("ckd", m.group())
    dialysis = bool(d := _hits(text, _DIALYSIS, found))
    if dialysis:
        ev.setdefault("dialysis", d[0].group())
        stage = 5
    lowest = min([v for v in (egfr, crcl) if v is not None], default=None)
    if lowest is not None:
        by_number = 5 if lowest < 15 else 4 if lowest < 30 else 3 if lowest < 60 else 2 if lowest < 90 else 1
        stage = max(stage or 0, by_number)
    aki = bool(_hits(text, _AKI, found))
    return egfr, crcl, stage, dialysis, aki


_CLAUSE_END = re.compile(r"[,;]|\band\b|\bnow\b", re.I)
_PROCEDURE_CUE = re.compile(r"(?:s/p|status post)\s*$", re.I)


def _clip(text: str, sc: Scope) -> Scope:
    """A procedure's history scope ("s/p cerclage") cut at the end of its clause; a history list ("PMH: GDM,
    preeclampsia") keeps its whole scope."""
    if not _PROCEDURE_CUE.search(text[max(0, sc.start - 14) : sc.start]):
        return sc
    m = _CLAUSE_END.search(text, sc.start, sc.end)
    return Scope(sc.kind, sc.start, m.start()) if m else sc


def patient_state(record: PatientRecord) -> PatientState:
    """The state every rule reads (see the module docstring)."""
    text = _text(record)
    found = scopes(text)
    # "PMH: CKD 4, cirrhosis", "h/o ESRD on HD": a chronic state written as history is still the state now.
    chronic = [sc for sc in found if sc.kind != "historical"]
    # "s/p cerclage, 24 weeks pregnant": a history cue reaches only to the end of its clause for pregnancy, so
    # "hx of preeclampsia 2019" stays history and the pregnancy after the comma is read.
    clause = [sc if sc.kind != "historical" else _clip(text, sc) for sc in found]
    ev: dict[str, str] = {}
    age = record.age if record.age is not None else _first_age(text)
    if record.age is None and age is not None:
        ev["age"] = "from text"
    pregnant, possible, weeks, trimester = _pregnancy(record, text, clause, ev)
    breastfeeding = (
        record.sex != "male"
        and (age is None or age >= 12)
        and bool(b := _hits(text, _BREASTFEEDING, chronic))
    )
    if breastfeeding:
        ev["breastfeeding"] = b[0].group()
    egfr, crcl, stage, dialysis, aki = _kidneys(text, chronic, ev)
    cirrhosis = bool(c := _hits(text, _CIRRHOSIS, chronic))
    if cirrhosis:
        ev["cirrhosis"] = c[0].group()
    child_pugh = None
    for m in _hits(text, _CHILD_PUGH, chronic):
        child_pugh = max(child_pugh or "A", m.group("c").upper())
        cirrhosis = True
    liver = cirrhosis or bool(_hits(text, _LIVER, chronic))
    listed = allergy_history_spans(text)
    potassium = max((float(m.group("v")) for m in _hits(text, _POTASSIUM, chronic) if 2.0 <= float(m.group("v")) <= 9.5),
                    default=None)  # fmt: skip
    return PatientState(
        pregnant=pregnant,
        possibly_pregnant=possible,
        weeks=weeks,
        trimester=trimester,
        breastfeeding=breastfeeding,
        age=age,
        egfr=egfr,
        crcl=crcl,
        ckd_stage=stage,
        dialysis=dialysis,
        aki=aki,
        cirrhosis=cirrhosis,
        child_pugh=child_pugh,
        liver_disease=liver,
        potassium=potassium,
        hyperkalaemia=bool(_hits(text, _HYPERKALAEMIA, chronic)) or (potassium or 0) > 5.0,
        viral_illness=bool(_hits(text, _VIRAL, found)),
        mechanical_valve=bool(_hits(text, _MECHANICAL_VALVE, chronic)),
        tonsillectomy=bool(_TONSILS.search(text)),
        angioedema=any(
            not any(a <= m.start() and m.end() <= b for a, b in listed)
            for m in _hits(text, MORE["face_tongue_swelling"], found)
        ),
        evidence=ev,
    )
