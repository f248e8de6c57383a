"""Emergencies written off the usual pattern (round four): findings as concepts with their sources, and the rules
that combine them. ``red_flag_concepts`` merges ``MORE`` into its ``C`` and ``MORE_SOURCES`` into its
``SOURCES``; ``red_flags`` calls ``more_flags``. Negation, history, other people and hypotheticals are
``negation``'s job, as for every concept.

- Subarachnoid haemorrhage: sudden or "worst" headache, thunderclap, maximal at onset, on exertion, lifting,
  at the gym, during sex ("like being hit with a bat").
- Suicidal intent said indirectly: wanting to go to sleep and not wake up, giving away belongings, saying
  goodbye, a goodbye note, a plan or a means (stockpiled pills, a bought rope or gun), "everyone would be better
  off without me"; access to a firearm counts with low mood or hopelessness.
- Angioedema on an ACE inhibitor (lip, tongue or face swelling while taking one): an airway emergency; the ACE
  inhibitor is removed (``contraindications``).
- Testicular torsion: testicular or scrotal pain with vomiting, waking with it, or a high-riding testis.
- Ectopic pregnancy: abdominal or pelvic pain with bleeding in a pregnancy or a possible one (missed period,
  positive test), or pain with a pregnancy of unknown location ("no IUP on US").
- Neutropenic sepsis: fever in a patient on chemotherapy or with neutropenia.
- Cauda equina: two different cauda equina signs without back pain written, or the syndrome named.
- Acute angle-closure glaucoma, acute limb ischaemia, priapism of 4 hours or more, heat stroke, metastatic
  spinal cord compression, fever or chest symptoms in sickle cell disease.
"""

from __future__ import annotations

import re


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-])(?:{pattern})(?![\w])", re.I)


MORE = {
    "sah_headache": _re(
        r"worst (?:headache|ha)|(?:sudden|abrupt|instant\w*|explosive|thunderclap)(?:[- ]onset)?,? (?:\w+,? ){0,3}"
        r"(?:headache|ha|head pain)|(?:headache|ha|head pain) (?:\w+ ){0,2}(?:came on|started|began|hit) "
        r"(?:all of a sudden|suddenly|instantly|abruptly|like a thunderclap)|(?:headache|ha) (?:was )?(?:maximal|"
        r"peaked|at (?:its )?worst) (?:at onset|within (?:a |one |1 )?(?:minute|min|seconds?))|"
        # exertion counts with a sudden or severe headache; sex alone (coital headache) always
        r"(?:sudden|severe|worst|explosive|excruciating|intense|10/10|abrupt)[\w,/ ]{0,20}(?:headache|ha) (?:\w+ ){0,3}"
        r"(?:while|when|during|after|at) (?:the )?(?:lifting|weightlifting|deadlifting|straining|exercis\w*|working out|"
        r"workout|gym|sex|intercourse|orgasm|coitus)|(?:headache|ha) (?:\w+ ){0,3}(?:while|when|during) (?:sex|"
        r"intercourse|orgasm|coitus)|"
        r"(?:like|as if) (?:being |been |I was |she was |he was )?(?:hit|struck|kicked) (?:in|on|over) the head|"
        r"sentinel headache|thunderclap"
    ),
    "suicide_indirect": _re(
        r"(?:wants?|wanted|wish\w*|hop\w*|prays?|praying) (?:\w+ ){0,3}(?:not (?:to )?wake up|never wake up|"
        r"(?:didn'?t|doesn'?t|won'?t|wouldn'?t) wake up|to (?:just )?disappear|to not be here|not to be here|"
        r"to not exist|(?:he|she|they|i) (?:was|were|wasn'?t|weren'?t) (?:here|alive|around))|"
        r"go to sleep and (?:not|never) wake up|(?:gave|giving|given|gives) away (?:all |most )?(?:of )?(?:her|his|my|"
        r"their) (?:\w+ ){0,1}(?:things|belongings|possessions|stuff|pets?|dog|cat|jewel\w*|valuables|savings|"
        r"money|prized \w+)|(?:gave|giving|given|gives) away (?:all|most|everything)|"
        # a goodbye sent or written, or said to everyone; "said goodbye at the airport" is not one
        r"(?:texted|texting|sent|wrote|writing|written|posted|posting|left) (?:\w+ ){0,2}(?:goodbye|good-bye|farewell)|"
        r"(?:said|saying|says) (?:\w+ ){0,1}(?:goodbye|good-bye|farewell) to (?:everyone|everybody|(?:her |his |their |my )?"
        r"(?:family|friends|loved ones|kids|children))|(?:goodbye|farewell|suicide) (?:notes?|letters?|messages?|"
        r"texts?|videos?|posts?)|"
        r"(?:made|has|have|with|making) (?:a )?plans? (?:to|for) (?:die|end (?:it|(?:my|his|her|their) life)|kill|"
        r"overdose|hang|shoot|jump)|plan (?:and|/|&) (?:intent|means)|"
        r"(?:stockpil|hoard)\w* (?:\w+ ){0,2}(?:pills|tablets|meds|medications|insulin)|saving up (?:\w+ ){0,2}"
        r"(?:pills|tablets|meds|medications)|"
        r"research\w* (?:\w+ ){0,2}(?:ways|how) to (?:die|kill (?:myself|himself|herself)|end (?:it|(?:my|his|her) "
        r"life))|(?:end|ending) it all|"
        r"(?:everyone|family|they|kids) (?:would|will) be better off without (?:me|her|him)|"
        r"tired of (?:living|being alive)|no (?:point|reason) (?:in )?(?:living|being alive)"
    ),
    "suicide_means": _re(
        r"(?:access to|has|have|owns?|keeps?|bought|purchased|obtained) (?:a |his |her |their |several |multiple |"
        r"some )?(?:loaded )?(?:guns?|firearms?|rifles?|pistols?|handguns?|weapons?|rope)(?: at home| in the house)?"
    ),
    "low_mood": _re(
        r"depress\w*|hopeless\w*|worthless\w*|low mood|mdd|despair\w*|anhedoni\w*|(?:feels|feeling) empty"
    ),
    "face_tongue_swelling": _re(
        r"angio-?o?edema|(?:lips?|tongue|face|facial|mouth|throat|uvula) (?:is |are |got |became )?(?:swelling|"
        r"swollen|puffy|enlarged|thick)|swelling (?:of|in|around) (?:the |his |her |my )?(?:lips?|tongue|face|"
        r"mouth|throat|uvula)|swollen (?:lips?|tongue|face|mouth)|(?:lip|tongue|facial|uvular) (?:swelling|edema|"
        r"oedema)"
    ),
    "testicular_pain": _re(
        r"(?:testicular|testicle|testis|scrotal|scrotum|groin) (?:\w+ ){0,1}(?:pain|ache|tenderness|swelling)|"
        r"(?:pain|swelling|tenderness) (?:in|of) (?:the |his |my )?(?:left |right |l |r )?(?:testicle|testis|"
        r"scrotum|balls?)|(?:testicle|testis|scrotum|balls?) (?:hurts?|is (?:painful|swollen))"
    ),
    "torsion_feature": _re(
        r"vomit\w*|n/v|nause\w*|woke (?:up )?(?:with|from)|waking (?:up )?with|high[- ]riding|horizontal lie|"
        r"absent cremasteric|sudden\w*|abrupt\w*|acute onset"
    ),
    "abdominal_pain_any": _re(
        r"(?:abd\w*|abdominal|belly|stomach|tummy|pelvic|lower abd|llq|rlq|suprapubic|adnexal) (?:\w+ ){0,1}"
        r"(?:pain|cramp\w*|tenderness|ache)|(?:cramping|cramps)|shoulder[- ]tip pain"
    ),
    "vaginal_bleeding_any": _re(
        r"(?:vaginal|pv|pv\.) ?(?:bleed\w*|spotting)|spotting|vb|bleeding|passing clots|brown discharge"
    ),
    "unknown_location": _re(
        r"pregnancy of unknown location|pul|no iup|no intrauterine (?:pregnancy|gestation|sac)|empty uterus|"
        r"adnexal mass|free fluid (?:in the )?(?:pelvis|pouch|cul-de-sac)|ectopic"
    ),
    "on_chemo": _re(
        r"chemo\w*|on (?:cycle|c\d)|c\dd\d{1,2}|cycle \d+ day \d+|neutropeni\w*|anc (?:of |is |<\s*)?(?:0|0\.\d|"
        r"[1-4]\d\d)\b|(?:receiving|on|getting|had) (?:\w+ ){0,2}(?:folfox|folfiri|r-chop|chop|abvd|ac-t|carboplatin|"
        r"cisplatin|docetaxel|paclitaxel|cyclophosphamide|doxorubicin)"
    ),
    "angle_closure": _re(r"(?:acute )?angle[- ]closure(?: glaucoma)?|(?:acute )?narrow[- ]angle glaucoma"),
    "eye_pain": _re(
        r"(?:severe |sudden )?(?:eye|ocular) pain|painful (?:red )?eye|(?:eye|eyes) (?:hurts?|aching)"
    ),
    "angle_feature": _re(
        r"halos?(?: around lights)?|mid-?dilated|fixed,? (?:mid-?dilated )?pupils?|rock[- ]hard (?:eye|globe)|"
        r"iop (?:of )?(?:[4-9]\d)|cloudy cornea|corneal (?:edema|oedema|haze)"
    ),
    "limb_ischaemia": _re(
        r"acute limb isch\w*|(?:cold|pale|white|mottled),? (?:\w+,? ){0,2}(?:pulseless|painful) (?:leg|foot|arm|"
        r"limb|hand)|(?:leg|foot|arm|limb|hand) (?:is |became )?(?:cold,? )?(?:pale|white|mottled),? (?:and )?"
        r"(?:cold|pulseless|numb)|(?:absent|no|lost) (?:\w+ ){0,1}(?:pulses?|dp|pt|pedal pulses?) (?:\w+ ){0,3}(?:cold|"
        r"pale|new|sudden)"
    ),
    "priapism": _re(
        r"priapism|erection (?:lasting|for|x|>|over|more than) ?(?:[4-9]|\d\d|four|five|six|several) ?(?:h|hrs?|"
        r"hours)|painful erection (?:\w+ ){0,3}(?:won'?t|will not) go (?:away|down)"
    ),
    "heat_stroke": _re(
        r"heat ?stroke|exertional heat illness|hyperthermi\w* (?:\w+ ){0,2}(?:confus\w*|collaps\w*)"
    ),
    "cancer": _re(
        r"cancer|malignan\w*|metasta\w*|mets|carcinoma|myeloma|lymphoma|sarcoma|oncology patient|"
        r"(?:breast|prostate|lung|renal) ca"
    ),
    "cord_signs": _re(
        r"(?:bilateral |both )?(?:leg|legs|lower extremity|lower limb) (?:weakness|numbness|heaviness)|"
        r"(?:weak|numb) legs|(?:can'?t|cannot|unable to) walk|sensory level|band-like (?:chest |trunk )?pain|"
        r"(?:new |sudden )?(?:urinary retention|incontinence)"
    ),
    "sickle_cell": _re(
        r"sickle cell(?! trait)(?: disease| anemia| anaemia)?|scd|hb ?ss|hbsc|sickle-cell(?! trait)"
    ),
    "cauda_equina_named": _re(r"cauda equina(?: syndrome)?|\bces\b"),
}

MORE_SOURCES = {
    "sah_headache": "NICE CG150 headaches (thunderclap); AHA/ASA aneurysmal SAH guideline 2023 (Hoh BL et al., "
    "Stroke 2023;54:e314); Ottawa SAH rule (onset with exertion, maximal at onset)",
    "suicide_indirect": "NICE NG225 self-harm (2022); Columbia Suicide Severity Rating Scale (wish to be dead, "
    "preparatory acts: giving away possessions, writing a note, collecting pills); 988 Lifeline warning signs",
    "suicide_means": "Columbia Suicide Severity Rating Scale (access to lethal means); NICE NG225",
    "low_mood": "NICE NG222 depression in adults (2022)",
    "face_tongue_swelling": "ACE inhibitor US labels (angioedema, e.g. Zestril 5.2); Montinaro V, Cicardi M, "
    "Pharmacol Res 2020;158:104878 (ACE-inhibitor angioedema is bradykinin-mediated and not helped by adrenaline)",
    "testicular_pain": "EAU/ESPU paediatric urology guideline 2023 (torsion); NICE CKS scrotal pain and swelling",
    "torsion_feature": "EAU/ESPU 2023: nausea and vomiting, high-riding testis, absent cremasteric reflex",
    "abdominal_pain_any": "NICE NG126 ectopic pregnancy and miscarriage (2019, updated 2023)",
    "vaginal_bleeding_any": "NICE NG126 ectopic pregnancy and miscarriage",
    "unknown_location": "NICE NG126: pregnancy of unknown location with pain needs same-day assessment",
    "on_chemo": "NICE CG151 neutropenic sepsis (2012): fever in a patient on anticancer treatment is an "
    "emergency; ASCO/IDSA outpatient febrile neutropenia 2018",
    "eye_pain": "NICE CKS red eye (acute angle-closure glaucoma: painful red eye with haloes)",
    "angle_feature": "NICE CKS red eye; AAO Primary Angle Closure PPP 2020",
    "angle_closure": "NICE CKS red eye (acute angle-closure glaucoma: same-day ophthalmology); AAO PPP 2020",
    "limb_ischaemia": "ESVS 2020 acute limb ischaemia guideline (Björck M et al., Eur J Vasc Endovasc Surg "
    "2020;59:173); NICE CG147",
    "priapism": "AUA/SMSNA priapism guideline 2022 (ischaemic priapism over 4 hours is an emergency)",
    "heat_stroke": "CDC/NIOSH heat-related illness: heat stroke is a medical emergency",
    "cancer": "NICE NG234 metastatic spinal cord compression in adults (2023)",
    "cord_signs": "NICE NG234 (2023): back pain with neurological symptoms in cancer",
    "sickle_cell": "NHLBI Evidence-Based Management of Sickle Cell Disease, expert panel report 2014 (fever of "
    "38.5 C or more, acute chest syndrome)",
    "cauda_equina_named": "GIRFT/BASS national suspected cauda equina syndrome pathway 2023",
}


def more_flags(found: dict[str, bool], hits: dict[str, list], ctx: dict) -> list[tuple[str, str]]:
    """(code, message) of the emergencies above. ``found`` is affirmed concepts; ``hits`` the affirmed matches
    (to count distinct signs); ``ctx`` holds fever, pregnancy (stated or possible), sex, ages, ACE inhibitor."""
    out = []
    if found["sah_headache"]:
        out.append(
            ("thunderclap_headache", "sudden severe ('worst ever') headache (possible brain haemorrhage)")
        )
    if found["suicide_indirect"] or (found["suicide_means"] and found["low_mood"]):
        out.append(("suicidal_ideation", "suicidal ideation or self-harm"))
    if ctx["on_acei"] and found["face_tongue_swelling"]:
        out.append((
            "acei_angioedema",
            "swelling of the lips, tongue, face or throat on an ACE inhibitor (angioedema: airway emergency; "
            "stop the ACE inhibitor)",
        ))  # fmt: skip
    if ctx["sex"] != "female" and found["testicular_pain"] and found["torsion_feature"]:
        out.append(("testicular_torsion_signs", "sudden severe testicular pain (possible torsion)"))
    # A stated pregnancy has its own rule (red_flags: pregnancy_bleeding_or_pain); this one is for a pregnancy
    # not yet confirmed (missed or late period, "r/o pregnancy").
    if (
        not ctx["pregnant"]
        and ctx["possibly_pregnant"]
        and found["abdominal_pain_any"]
        and (found["vaginal_bleeding_any"] or found["unknown_location"])
    ):
        out.append(("ectopic_pregnancy_signs", "abdominal pain with bleeding in early or possible pregnancy "
                    "(possible ectopic pregnancy)"))  # fmt: skip
    if ctx["fever"] and found["on_chemo"]:
        out.append(
            ("neutropenic_sepsis", "fever during chemotherapy or with neutropenia (neutropenic sepsis)")
        )
    signs = {m.group().lower() for m in hits["cauda_equina"]}
    if found["cauda_equina_named"] or len(signs) >= 2:
        out.append(("cauda_equina_signs", "back pain with bladder, bowel or saddle symptoms"))
    if found["angle_closure"] or (found["eye_pain"] and found["angle_feature"]):
        out.append(("acute_angle_closure", "painful red eye with halos, blurred vision or vomiting (acute "
                    "angle-closure glaucoma)"))  # fmt: skip
    if found["limb_ischaemia"]:
        out.append(("acute_limb_ischaemia", "a cold, pale or pulseless limb (acute limb ischaemia)"))
    if found["priapism"]:
        out.append(("priapism", "an erection lasting 4 hours or more (ischaemic priapism)"))
    if found["heat_stroke"]:
        out.append(("heat_stroke", "heat stroke"))
    if found["cancer"] and found["back_pain"] and found["cord_signs"]:
        out.append(("spinal_cord_compression", "back pain with leg weakness, numbness or bladder symptoms in "
                    "cancer (possible spinal cord compression)"))  # fmt: skip
    if found["sickle_cell"] and (ctx["fever"] or found["chest_pain"] or found["breathing_difficulty"]):
        out.append(("sickle_cell_crisis", "fever, chest pain or breathlessness in sickle cell disease"))
    return out
