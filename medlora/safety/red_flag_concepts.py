"""Red-flag findings as concepts: each a set of clinical synonyms and shorthand, with the source of its rule.

``C`` maps a concept to the pattern of everything a clinician or a patient writes for it ("substernal pressure",
"CP radiating to jaw", "LBP", "PPD #3 s/p SVD", "took ~30 tabs"); ``SOURCES`` names where each concept's rule
comes from; ``SINGLE_RULES`` are the concepts that are an emergency on their own. Combinations (back pain with
saddle numbness, fever with a stiff neck ...) are in ``red_flags.red_flags``. A concept matches whole words,
case-insensitively; whether it is affirmed (not negated, historical, someone else's or hypothetical) is
``negation``'s job.
"""

from __future__ import annotations

import re


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-])(?:{pattern})(?![\w])", re.I)


# Findings (concepts) in text. Each alone may or may not be a red flag; combinations are below.
C = {
    "chest_pain": _re(
        r"chest (?:pain|pressure|discomfort|heaviness|ache)|(?:pain|pressure|heaviness) in "
        r"(?:the |my |his |her |their )?chest|chest (?:hurts|feels heavy)|crushing (?:chest )?pain|"
        r"heart attack|myocardial infarction|acute coronary syndrome|stemi|nstemi|unstable angina|"
        r"(?:c/o|complains of|complaining of|reports|with|having|has) cp|cp(?= (?:radiating|x ?\d|for \d|since))|"
        r"angina at rest|(?<!neck )(?<!back )(?<!shoulder )(?<!hip )(?<!knee )(?<!elbow )(?<!wrist )(?<!lumbar )"
        r"(?:pain|pressure|heaviness|tightness|discomfort|squeezing) (?:radiating|radiates|spreading|"
        r"going|that radiates|which radiates|that goes|moving) (?:up |down )?(?:to|into|down|through) (?:the |his |her |my "
        r")?(?:left |l |both |b/l )?(?:arm|arms|jaw|shoulder|neck)|"
        # the site of cardiac pain named without the word "chest"
        r"(?:sub-?sternal|retro-?sternal|precordial|mid-?sternal|left-sided chest|l chest|central chest) (?:\w+ ){0,2}"
        r"(?:pain|pressure|tightness|heaviness|discomfort|ache|squeezing|cp)|"
        r"(?:pain|pressure|tightness|heaviness|discomfort) (?:behind|under|beneath) (?:the |his |her |my )?"
        r"(?:breast ?bone|sternum)|elephant (?:sitting )?on (?:the |his |her |my )?chest|"
        r"cp (?:and|with|w/|\+|/) ?(?:sob|dyspn\w*|diaphore\w*|radiation)|cp/sob|cp w/ radiation|"
        r"(?:sub-?sternal|exertional|crushing|pressure-like|intermittent|constant|worsening|ongoing|new|acute|pleuritic|sharp|stabbing|central) cp|"
        r"anginal (?:pain|symptoms|equivalent)|(?:st|ST) (?:elevation|depression)s?|troponin (?:elevated|positive|rising)|"
        r"(?:elevated|positive|rising) troponin|trop(?:onin)? leak"
    ),
    "diaphoresis": _re(
        r"diaphore\w*|sweating profusely|cold sweat\w*|clammy|drenched in sweat|broke out in a sweat"
    ),
    "anginal_site": _re(
        r"(?:jaw|left arm|l arm|both arms|epigastric|upper abdominal) (?:\w+ ){0,1}"
        r"(?:pain|pressure|discomfort|heaviness|tightness|ache)|(?:pain|pressure|discomfort|heaviness|tightness) "
        r"(?:in|of) (?:the |his |her |my )?(?:jaw|left arm|epigastrium|upper abdomen)"
    ),
    # In asthma or COPD a tight chest is the airways; elsewhere it is treated as chest pain.
    "chest_tightness": _re(
        r"chest tightness|tight(?:ness)? (?:in|of) (?:the |my |his |her )?chest|chest (?:feels|is) tight"
    ),
    "airway_disease": _re(
        r"asthma\w*|copd|chronic obstructive|emphysema|wheez\w*|bronchospasm|reactive airway\w*"
    ),
    "stroke": _re(
        r"(?<!heat )stroke|cva|cerebrovascular accident|transient ischa?emic attack|tia|facial droop\w*|face (?:is )?"
        r"droop\w*|droop\w* (?:of )?(?:the |his |her |my )?(?:face|mouth|smile)|(?:face|mouth|smile) "
        r"(?:is )?(?:droopy|uneven|lopsided)|slurr\w* (?:speech|words)|speech (?:is )?slurred|"
        r"(?:difficulty|trouble|problems?) (?:speaking|talking|finding words|getting words out|with speech)|"
        r"(?:can'?t|cannot|unable to) (?:speak|talk|get (?:the |his |her |my )?words out)(?! in (?:full|complete) sentences)|garbled speech|"
        r"aphasia|dysarthria|hemiparesis|hemiplegia|(?:one|1)[- ]sided (?:weakness|numbness|paralysis)|"
        r"(?:left|right|l|r|lt|rt)(?:[- ]?sided| side) (?:weakness|numbness|paralysis|facial droop)|speech "
        r"(?:difficult\w*|problems?|disturbance)|unilateral (?:weakness|numbness)|"
        r"(?:weakness|numbness) (?:on|of|down) (?:the |his |her |my )?(?:left|right|one) side|word[- ]finding "
        r"(?:difficulty|difficulties|problems)|(?:can'?t|cannot|unable to) move (?:his|her|my|the) (?:left|right) "
        r"(?:arm|leg|side)|"
        r"weakness (?:in|of) (?:one|the (?:left|right)|his (?:left|right)|her (?:left|right)) (?:arm|leg|side)|"
        r"sudden (?:onset )?(?:numbness|weakness|confusion|vision loss|loss of vision|blindness|"
        r"trouble seeing|severe dizziness|loss of balance|trouble walking)|arm drift|"
        r"(?:can'?t|cannot|unable to) (?:lift|raise) (?:his|her|my|one) arm|code stroke|stroke alert|be-?fast positive|"
        r"(?:positive|\+) (?:be-?fast|fast)(?: screen| exam)?|nihss (?:of |score (?:of )?)?(?:[1-9]|[1-4]\d)|aphasic|"
        r"dysarthric|(?:l|r|left|right) (?:facial|face) droop|(?:l|r|lt|rt|left|right) "
        r"(?:hemi[- ]?paresis|hemi[- ]?plegia|arm drift)|pronator drift|last (?:known|seen) well|lkw"
    ),
    "airway_swelling": _re(
        r"anaphyla\w*|angioedema|angio-oedema|(?:throat|tongue) (?:feels |is |getting |becoming )?(?:swelling|"
        r"swollen|tight\w*|closing(?: up)?|closed)|swelling (?:of|in) (?:the |his |her |my )?(?:throat|tongue)|swollen (?:throat|tongue)|"
        r"(?:throat|tongue) (?:is |feels )?(?:thick|closing)|(?:can'?t|cannot|unable to|trouble|difficulty) "
        r"swallow(?:ing)? (?:his |her |my )?(?:own )?(?:saliva|spit)|drooling (?:and|with) (?:stridor|muffled voice)"
    ),
    "lip_face_swelling": _re(
        r"(?:lips?|face|facial|eyelids?|mouth) (?:is |are )?(?:swelling|swollen|puffy)|swelling (?:of|in|around) "
        r"(?:the |his |her |my )?(?:lips?|face|mouth|eyes)|swollen (?:lips?|face|mouth)|puffy (?:lips|face)"
    ),
    "hives": _re(r"hives|urticaria|welts|itchy rash all over|widespread (?:itchy )?rash"),
    "breathing_difficulty": _re(
        r"short(?:ness)? of breath|sob|dyspn\w*|(?:difficulty|trouble|struggling|labou?red|hard) breathing|"
        r"breathing (?:is )?(?:difficult|laboured|labored|hard)|hard to breathe|wheez\w*|(?:can'?t|cannot|unable "
        r"to) breathe|breathless\w*|out of breath|throat tightness|tight throat|gasping"
    ),
    "severe_breathing": _re(
        r"severe (?:shortness of breath|dyspn\w*|breathing difficulty|difficulty breathing|asthma attack|"
        r"wheez\w*)|respiratory (?:distress|failure)|(?:can'?t|cannot|can not|unable to) (?:breathe|catch "
        r"(?:my|his|her|their) breath|(?:speak|talk) in (?:full|complete) sentences|finish (?:a )?sentences?)|"
        r"struggling to breathe|gasping for (?:air|breath)|cyanos\w*|cyanotic|blue (?:lips|face|skin|tinge)|"
        r"(?:lips|face|skin) (?:are |is |turning |turned )?(?:blue|grey|gray)|turning blue|grunting|"
        r"(?:chest|rib|intercostal|subcostal|sternal) (?:wall )?(?:retractions|recession|indrawing)|"
        r"nasal flaring|stridor|silent chest|working hard to breathe|head bobbing|tracheal tug|too breathless to (?:speak|talk|eat)|not breathing|stopped breathing"
    ),
    "suicidal": _re(
        r"suicid\w*|self[- ]harm\w*|harm(?:ing)? (?:myself|himself|herself|themselves|themself)|"
        r"hurt(?:ing)? (?:myself|himself|herself|themselves)|kill(?:ing)? (?:myself|himself|herself|themselves|"
        r"themself)|end(?:ing)? (?:my|his|her|their) (?:own )?life|tak(?:e|ing) (?:my|his|her|their) own life|"
        r"(?:want|wants|wanted|wanting|wish|wishes|wished) (?:to be dead|to die|(?:he|she|they|i) (?:was|were) "
        r"dead)|better off dead|no reason to live|not worth living|life (?:is not|isn'?t) worth living|"
        r"cutting (?:myself|herself|himself|themselves)|(?:endorses|reports|active|passive|positive for|with|\+) ?si\b|"
        r"(?:plan|plans|planning) to (?:die|overdose|end)"
    ),
    "overdose": _re(
        r"overdos\w*|took (?:too many|an entire bottle|a whole bottle|a bottle|the whole bottle|all (?:of )?"
        r"(?:his|her|my|their|the) (?:pills|tablets|medications?))|"
        r"swallowed (?:a |an |the |some )?(?:bleach|poison|battery|batteries|button batter\w*|"
        r"magnets?|whole bottle|bottle of)|accidental ingestion|ingested (?:bleach|poison|pills|antifreeze)|"
        r"poisoning|poisoned|toxic ingestion|ingest\w* (?:\w+ ){0,3}(?:pills|tablets|capsules)|"
        r"took a handful of (?:pills|tablets)|drank (?:bleach|antifreeze|"
        r"weed ?killer|paraquat|poison)|"
        # counted tablets: ten or more, or an approximate count ("~40 tabs", "about 20 of her pills")
        r"(?:took|ingested|swallowed|ingestion of|downed) (?:~|≈|approx\.? ?|approximately |about |around |roughly |"
        r"at least |up to |>|over |possibly |maybe )?(?:[1-9]\d{1,2}(?!\d)(?! ?(?:mg|mcg|g|ml|units?|iu|%|mmol|meq)\b)|"
        r"a dozen|dozens of|twenty|thirty|forty|fifty|sixty|a hundred) ?(?:x ?)?(?:\w+ ){0,4}(?:tabs?|tablets?|pills?|"
        r"caps?|capsules?)(?! (?:a|per|each|every) day)(?! daily)(?! over (?:the )?(?:past |last )?(?:\d+|a few|few|"
        r"several|two|three|four|five) days)|"
        r"(?:intentional|deliberate|suicidal|purposeful|intended) (?:ingestion|overdose|od|poisoning)|"
        r"od'?d|o\.d\.'?d|od on|overdosed on|ingestion with (?:intent|suicidal)|"
        r"(?:got into|found (?:with|chewing|eating)|chewed (?:on )?) (?:\w+'?s? ){0,2}(?:pills|tablets|medicines?|"
        r"medications?|meds|pill ?box|pill organi[sz]er|pill bottle|medicine cabinet|fentanyl patch|laundry pods?|"
        r"detergent pods?|edibles?)|"
        r"(?:ate|ingested|swallowed) (?:a |an |the |some )?(?:laundry|detergent|dishwasher) pods?|"
        r"empty (?:pill|medicine|medication) bottle|(?:apap|acetaminophen|tylenol|paracetamol|aspirin|salicylate|"
        r"tricyclic|tca|iron|opioid|digoxin|lithium) (?:overdose|toxicity|poisoning|ingestion)|toxidrome"
    ),
    # An adult swallows pills every day; a young child who swallowed someone's pills has had an ingestion.
    "swallowed_pills": _re(
        r"(?:swallowed|ate|eaten|chewed) (?:a |an |the |some |\d+ |several |a few )?(?:of )?(?:\w+'?s? ){0,2}(?:pills?|"
        r"tablets?|capsules?|medicines?|medications?)"
    ),
    "dka": _re(
        r"dka|diabetic ketoacidosis|ketoacidosis|hhs|hyperosmolar hyperglyc\w*|kussmaul\w*|fruity breath|"
        r"(?:large|moderate|positive|high|\+) ?(?:urine |serum |blood )?ketones|ketones (?:are |were )?(?:large|"
        r"moderate|positive|high|\+)|ketonuria|anion gap acidosis"
    ),
    "dka_symptom": _re(r"vomit\w*|n/v|abd\w* pain|abdominal pain|confus\w*|drows\w*|kussmaul\w*|ketones?"),
    "dvt": _re(
        r"dvt|deep vein thrombosis|(?:unilateral|one|left|right|l|r) (?:calf|leg|lower extremity) (?:swelling|"
        r"swollen|pain|tenderness|edema)|(?:calf|leg) (?:swelling|swollen|pain|tenderness) (?:on one side|one side)|"
        r"swollen (?:left|right|l|r) (?:calf|leg)|(?:left|right|l|r) calf (?:is )?(?:swollen|tender|painful)"
    ),
    "pe_named": _re(r"pulmonary embol\w*|saddle embol\w*|(?:massive|submassive) pe"),
    "pleuritic": _re(
        r"pleuritic|(?:sharp|stabbing) (?:chest )?pain (?:on|with|when) (?:deep )?breath\w*|hemoptysis"
    ),
    "pelvic_pain": _re(
        r"(?:llq|rlq|left lower quadrant|right lower quadrant|lower quadrant|pelvic|lower abdominal|adnexal|"
        r"lower abd) (?:pain|tenderness|cramp\w*)|shoulder[- ]tip pain|(?:one|1)[- ]sided (?:pelvic|lower abdominal) pain"
    ),
    "spotting": _re(r"spotting|bleeding|bleed\w*|pv bleed\w*|vb"),
    "altered_mentation": _re(
        r"confus\w*|disoriented|altered|not (?:making sense|acting right|himself|herself)|gcs (?:of )?(?:1[0-4]|[3-9])|"
        r"(?:new|acute) (?:delirium|agitation)|lethargic|obtunded"
    ),
    "infection": _re(
        r"fever\w*|febrile|rigors|chills|sepsis|septic|infection|pneumonia|uti|urosepsis|cellulitis|pyelo\w*"
    ),
    "harm_to_others": _re(
        r"homicidal (?:ideation|thoughts|intent)|(?:endorses|reports|active|positive for|\+) ?hi(?![\w-])|"
        r"thoughts? of (?:harming|hurting|killing) (?:the |her |his |my |their )?(?:baby|infant|child|children|kids?|"
        r"newborn|others|someone|people)|(?:wants?|wanted|plans?|planning) to (?:hurt|harm|kill) (?:the |her |his |my )?"
        r"(?:baby|infant|child|children|kids?|newborn|someone|people|him|her|them)"
    ),
    "unconscious": _re(
        r"unconscious|unresponsive|loss of consciousness|lost consciousness|passed out|pass(?:es|ing) out|"
        r"fainted|fainting|syncope|syncopal|collapsed|collapse|seizur\w*(?! (?:disorder|free|medications?|meds|precautions|threshold|prophylaxis|diary|action plan))|seizing|having a fit|gcs (?:of )?(?:[3-9]|1[0-2])|convuls\w*|fitting|status epilepticus|"
        r"(?:difficult|hard|unable|impossible) to (?:wake|rouse|arouse)|(?:won'?t|will not|doesn'?t) wake up|"
        r"obtunded|altered mental status|(?:sudden|new|acute) confusion|acutely confused|delirium|"
        r"limp and unresponsive"
    ),
    "major_bleeding": _re(
        r"vomit\w* (?:up )?blood|throwing up blood|cough\w* (?:up )?blood|ha?ematemesis|ha?emoptysis|"
        r"(?:severe|heavy|massive|uncontrolled|profuse) bleeding|bleeding (?:heavily|profusely|uncontrollably|"
        r"that (?:won'?t|will not|does not|doesn'?t) stop)|(?:tarry|black,? tarry) stools?|melaena|melena|"
        r"coffee[- ]ground\w*|large amounts? of blood|soak\w* (?:through )?(?:a |one )?pads? (?:every|an) hour"
    ),
    # In a child these are NICE NG143 red features; in an adult "lethargic" is too often plain tiredness.
    "lethargic_child": _re(
        r"lethargic|floppy|listless|(?:very|excessively|unusually) (?:sleepy|drowsy)|"
        r"not (?:feeding|drinking|responding)|weak cry|high[- ]pitched cry"
    ),
    "black_stool": _re(r"black stools?|dark black stools?|stools? (?:are |is |turned )?black"),
    # Iron and bismuth blacken the stool harmlessly; a black stool is then not read as bleeding.
    "iron_or_bismuth": _re(r"iron\w*|ferrous \w+|bismuth|pepto[- ]bismol"),
    "fever": _re(r"fever\w*|febrile|pyrexi\w*|high temperature|running a temperature|burning up"),
    "stiff_neck": _re(
        r"stiff neck|neck stiffness|nuchal rigidity|neck (?:is |feels )?stiff|meningism\w*|"
        r"(?:can'?t|cannot|unable to) (?:bend|touch|put) (?:his|her|my|their) (?:neck|chin)|"
        r"pain (?:on|when) (?:bending|flexing) (?:the |his |her |my )?neck"
    ),
    "meningitis": _re(r"meningitis|meningococca\w*|bulging fontanelle|sepsis|septic|septicaemia|septicemia"),
    "purpura": _re(
        r"non[- ]?blanching rash|rash (?:that )?(?:does not|doesn'?t) (?:blanch|fade)|petechia\w*|purpur\w*"
    ),
    "thunderclap": _re(
        r"worst (?:headache|ha) (?:of (?:my|his|her|their) life|ever|of life)|thunderclap (?:headache|ha)|sudden(?:ly)?,? "
        r"(?:and )?(?:severe|excruciating|explosive) headache|sudden[- ]onset (?:severe )?headache|"
        r"explosive headache|headache (?:came on|started|began) (?:very )?suddenly"
    ),
    "severe_headache": _re(
        r"severe headaches?|bad headaches?|terrible headaches?|pounding headaches?|headaches? that "
        r"(?:won'?t|will not|doesn'?t|does not) go away|persistent headaches?|worsening headaches?|"
        r"worst headache|thunderclap headache"
    ),
    "vision_change": _re(
        r"blurr?(?:ed|y) vision|vision (?:changes?|is blurry|problems?)|visual (?:changes?|disturbances?|"
        r"symptoms)|seeing (?:spots|stars|flashing lights|flashes)|flashing lights|spots (?:in|before) "
        r"(?:my|her|the) (?:eyes|vision)|double vision|loss of vision|vision loss|scotomata|photopsia"
    ),
    "pregnancy_bleeding": _re(
        r"vaginal bleeding|bleeding (?:from the vagina|in pregnancy|during pregnancy)|heavy bleeding|"
        r"passing clots|leaking fluid|fluid leaking|gush of fluid|waters? (?:has |have )?broken|water broke"
    ),
    "severe_abdominal_pain": _re(
        r"severe (?:abdominal|belly|stomach|tummy|pelvic) pain|(?:abdominal|belly|stomach) pain that "
        r"(?:won'?t|will not|doesn'?t|does not) go away|(?:right upper|upper right) (?:quadrant |abdominal )?pain|"
        r"ruq pain|epigastric pain|pain under (?:the|her|my) (?:right )?ribs"
    ),
    "fetal_movement": _re(
        r"(?:baby|fetal|foetal)(?:'s)? movements? (?:has |have |is |are )?(?:stopped|slowed|decreased|reduced|"
        r"less)|(?:decreased|reduced|less|no) (?:fetal|foetal|baby) movements?|baby (?:is |has )?(?:not moving|"
        r"stopped moving|moving less)|(?:has not|hasn'?t) felt the baby move"
    ),
    "face_hand_swelling": _re(
        r"swelling (?:of|in) (?:the |her |my )?(?:face|hands)|(?:face|hands) (?:is |are )?(?:very |suddenly )?"
        r"swollen|(?:sudden|extreme|severe) swelling"
    ),
    "aortic": _re(
        r"aortic dissection|dissecting aneurysm|ruptured (?:aaa|aortic aneurysm|abdominal aortic aneurysm)|"
        r"(?:tearing|ripping)(?:-like)? (?:chest |back |abdominal |interscapular |upper back )?(?:pain|sensation)|"
        r"(?:pain|sensation) (?:described as|like|that feels like) (?:a )?(?:tearing|ripping)|"
        r"pulsatile (?:abdominal )?mass (?:and|with) (?:pain|hypotension)"
    ),
    "testicular_torsion": _re(
        r"testicular torsion|torsion of the testi\w*|(?:sudden|acute|severe) (?:onset )?(?:\w+ ){0,1}(?:testicular|"
        r"scrotal|testis|testicle) pain|(?:testicle|testis) (?:is )?(?:high[- ]riding|horizontal lie)|absent cremasteric"
    ),
    "back_pain": _re(
        r"back pain|backache|low back|lower back|sciatica|lbp|lumbar (?:pain|radiculopathy)|lumbago|"
        r"(?:l|lumbar) ?spine pain|(?:lumbar|l\d[-/]?[ls]\d) (?:disc|disk) (?:herniation|prolapse|bulge)|herniated "
        r"(?:disc|disk)|radicular pain"
    ),
    "cauda_equina": _re(
        r"saddle (?:an(?:a)?esthesia|numbness)|numb(?:ness)? (?:in|around) (?:the )?(?:groin|buttocks|genitals)|"
        r"(?:loss of|lost|new) (?:bladder|bowel) (?:control|incontinence)|urinary retention|"
        r"(?:can'?t|cannot|unable to) (?:pass urine|urinate|pee|void)|weakness in both legs|bilateral leg weakness|"
        r"(?:peri-?anal|perineal|perirectal|saddle|genital) (?:\w+ ){0,1}(?:numbness|anesthesia|anaesthesia|"
        r"paresthesias?|paraesthesias?|sensory loss|tingling)|groin (?:numbness|anesthesia|sensory loss)|numb(?:ness)? (?:in|around|of) (?:the )?(?:perineum|"
        r"perianal|anus|bottom|saddle area|inner thighs)|(?<!fluid )(?<!water )(?<!salt )(?<!sodium )(?<!co2 )(?<!mild )(?<!chronic )retention(?! symptoms)|"
        r"leaking urine (?:since|for|x|overnight|today|this)|(?:wet|wetting|peed|soiled) (?:him|her|my|them)sel(?:f|ves)|"
        r"(?:can'?t|cannot|unable to) feel (?:\w+ ){0,3}wip\w*|numb(?:ness)? (?:\w+ ){0,3}wip\w*|retaining urine|(?:new|acute|"
        r"sudden|recent) (?:onset )?(?:urinary |bladder |fecal |faecal |bowel |stool )?incontinence|incontinent of stool|(?:decreased|reduced|"
        r"absent|lax|poor) (?:rectal|anal|sphincter) tone|pvr (?:of )?(?:[3-9]\d\d|\d{4})|post[- ]?void residual "
        r"(?:of )?(?:[3-9]\d\d|\d{4})|bilateral sciatica|bilateral (?:leg|lower extremity) (?:weakness|numbness)|"
        r"cauda equina"
    ),
    # The puerperium (CDC Hear Her: warning signs apply up to a year after delivery). Matched apart from
    # "pregnant" because its shorthand ("s/p SVD") reads as history to negation; a remote delivery does not count.
    "postpartum": _re(r"post-?partum|post partum|puerper\w*|postnatal"),
    "postpartum_recent": _re(
        r"ppd ?(?:#|no\.?|day)? ?\d{1,2}(?! ?mm)(?! ?cm)|(?:pp|postpartum) day "
        r"\d{1,2}|(?:pod|day) ?#? ?\d{1,2} (?:s/p|after|post|following) (?:n?svd|vaginal delivery|delivery|c-?section|"
        r"cesarean|caesarean|lscs|c/s|cs)|(?:\d{1,2}|one|two|three|four|five|six|seven|ten|a few|several) (?:days?|"
        r"wks?|weeks?) (?:after|since|post|following|out from|s/p) (?:n?svd|vaginal delivery|delivery|delivering|"
        r"giving birth|c-?section|cesarean|caesarean|lscs|c/s|the birth|birth)|(?:delivered|gave birth|had (?:her |a )?"
        r"(?:baby|c-?section|delivery|svd)) (?:\w+ ){0,2}(?:\d{1,2}|one|two|three|four|five|six|ten|a few|several) "
        r"(?:days?|wks?|weeks?) ago|(?:recently|just) (?:delivered|gave birth|had (?:a|her) baby)|newly delivered|"
        r"(?:s/p|status post) (?:n?svd|vaginal delivery|c-?section|cesarean|caesarean|lscs|c/s) (?:on )?(?:\d{1,2}/\d{1,2}|"
        r"(?:\d{1,2}|one|two|three|four|five|six|ten|a few|several) (?:days?|wks?|weeks?) ago|this week|last week|"
        r"yesterday)"
    ),
    "pregnant": _re(
        r"pregnan\w*|gravid\w*|\d+ weeks?(?:'| of)? (?:pregnant|gestation|gestational age|pregnancy)|(?:at|@) \d{1,2} weeks|\d{1,2} ?w(?:ks)? ?\d?d? ga|"
        r"ga (?:of )?\d{1,2}|gestational age|"
        r"\d{1,2}(?:\+\d)?/40|gestational|(?:first|second|third) "
        r"trimester|antenatal|prenatal|g\dp\d|expecting a baby|(?:positive |\+ ?)(?:upt|hcg|pregnancy test|urine pregnancy)|"
        r"(?:upt|hcg|b-?hcg|beta[- ]hcg|pregnancy test) (?:is |was )?(?:positive|\+)|iup|intrauterine pregnancy"
    ),
}

# (code, message, the concept that fires it alone)
SINGLE_RULES: tuple[tuple[str, str, str], ...] = (
    ("chest_pain", "chest pain or pressure (possible acute coronary syndrome)", "chest_pain"),
    ("stroke_signs", "signs of stroke (face, arm or speech)", "stroke"),
    ("anaphylaxis", "signs of anaphylaxis or airway swelling", "airway_swelling"),
    ("severe_breathing", "severe breathing difficulty", "severe_breathing"),
    ("suicidal_ideation", "suicidal ideation or self-harm", "suicidal"),
    ("overdose_or_poisoning", "overdose or poisoning", "overdose"),
    ("altered_consciousness", "loss or alteration of consciousness or a seizure", "unconscious"),
    ("major_bleeding", "signs of major bleeding", "major_bleeding"),
    ("meningitis_signs", "signs of meningitis or sepsis", "meningitis"),
    ("harm_to_others", "thoughts of harming others or a baby", "harm_to_others"),
    (
        "aortic_emergency",
        "tearing pain or a named aortic emergency (possible dissection or rupture)",
        "aortic",
    ),
    ("testicular_torsion_signs", "sudden severe testicular pain (possible torsion)", "testicular_torsion"),
    (
        "thunderclap_headache",
        "sudden severe ('worst ever') headache (possible brain haemorrhage)",
        "thunderclap",
    ),
)

_AHA = "AHA/ACC chest pain guideline (Gulati et al., Circulation 2021;144:e368), 'symptoms suggestive of ACS'"
# Where each concept's rule comes from (docs/safety.md lists them with what is not covered).
SOURCES: dict[str, str] = {
    "chest_pain": _AHA,
    "diaphoresis": _AHA + ": diaphoresis with anginal-equivalent pain",
    "anginal_site": _AHA + ": jaw, left arm and epigastric pain as anginal equivalents",
    "chest_tightness": _AHA + "; BTS/SIGN asthma guideline 2019 (chest tightness in asthma)",
    "airway_disease": "BTS/SIGN British guideline on the management of asthma, 2019; GOLD COPD report 2024",
    "stroke": "AHA/ASA acute ischemic stroke guideline (Powers et al., Stroke 2019;50:e344); BE-FAST; NIHSS",
    "airway_swelling": "WAO anaphylaxis guidance 2020 (Cardona et al., World Allergy Organ J 2020;13:100472)",
    "lip_face_swelling": "WAO anaphylaxis guidance 2020, clinical criteria",
    "hives": "WAO anaphylaxis guidance 2020, clinical criteria",
    "breathing_difficulty": "NICE CKS breathlessness; WAO anaphylaxis criteria (respiratory compromise)",
    "severe_breathing": "BTS/SIGN asthma 2019 (life-threatening features); NICE NG143 (child red features)",
    "suicidal": "NICE NG225 self-harm (2022); Columbia Suicide Severity Rating Scale wording",
    "swallowed_pills": "AAP / poison centre guidance on paediatric ingestions (one pill can kill a toddler)",
    "dka": "Umpierrez GE et al., hyperglycemic crises in adults with diabetes, Diabetes Care 2024;47:1257",
    "dka_symptom": "Umpierrez 2024 (DKA/HHS presentation)",
    "dvt": "NICE NG158 venous thromboembolic diseases (2020)",
    "pe_named": "NICE NG158; ESC acute pulmonary embolism guideline 2019",
    "pleuritic": "NICE NG158 (PE: pleuritic chest pain, haemoptysis)",
    "pelvic_pain": "NICE NG126 ectopic pregnancy and miscarriage (2019, updated 2023)",
    "spotting": "NICE NG126: pain and bleeding in early pregnancy",
    "altered_mentation": "Sepsis-3 qSOFA (Singer M et al., JAMA 2016;315:801)",
    "infection": "Sepsis-3 (Singer 2016); NICE NG51 sepsis",
    "harm_to_others": "CDC Hear Her urgent maternal warning signs (thoughts of harming the baby); NICE NG225",
    "overdose": "NICE CG16/NG225 self-harm and poisoning; TOXBASE/poison centre referral criteria",
    "unconscious": "NICE CG109 transient loss of consciousness; NICE NG217 epilepsy (status)",
    "major_bleeding": "NICE CG141 acute upper GI bleeding; RCOG green-top 52 (postpartum haemorrhage)",
    "lethargic_child": "NICE NG143 fever in under 5s (2019), red features",
    "black_stool": "NICE CG141 acute upper GI bleeding (melaena)",
    "iron_or_bismuth": "NICE CG141: iron and bismuth darken the stool",
    "fever": "NICE NG143; NICE NG51 sepsis",
    "stiff_neck": "NICE CG102 bacterial meningitis and meningococcal disease",
    "meningitis": "NICE CG102; NICE NG51 sepsis",
    "purpura": "NICE CG102 (non-blanching rash with fever)",
    "thunderclap": "NICE CG150 headaches; AHA/ASA aneurysmal SAH guideline 2023",
    "severe_headache": "ACOG Practice Bulletin 222 (2020) pre-eclampsia severe features; CDC Hear Her",
    "vision_change": "ACOG Practice Bulletin 222 (2020); CDC Hear Her",
    "pregnancy_bleeding": "CDC Hear Her; RCOG green-top 63 (antepartum haemorrhage)",
    "severe_abdominal_pain": "CDC Hear Her; ACOG Practice Bulletin 222 (RUQ/epigastric pain)",
    "fetal_movement": "RCOG green-top 57 reduced fetal movements; CDC Hear Her",
    "face_hand_swelling": "CDC Hear Her; ACOG Practice Bulletin 222",
    "aortic": "ACC/AHA aortic disease guideline (Isselbacher et al., Circulation 2022;146:e334)",
    "testicular_torsion": "AUA/EAU paediatric urology guidance; NICE CKS scrotal pain and swelling",
    "back_pain": "NICE NG59 low back pain; GIRFT/BASS national cauda equina pathway 2023",
    "cauda_equina": "GIRFT/BASS national suspected cauda equina syndrome pathway 2023; NICE CKS sciatica",
    "postpartum": "CDC Hear Her (warning signs up to one year after delivery); ACOG Committee Opinion 736",
    "postpartum_recent": "CDC Hear Her; ACOG Practice Bulletin 222 (postpartum pre-eclampsia)",
    "pregnant": "ACOG Practice Bulletin 222 (2020); CDC Hear Her",
}

# Round four: emergencies written off the usual pattern (indirect suicidal intent, SAH at exertion, ACE-inhibitor
# angioedema, ectopic pregnancy, neutropenic sepsis ...), kept in their own module.
from .red_flag_more import MORE, MORE_SOURCES  # noqa: E402

C.update(MORE)
SOURCES.update(MORE_SOURCES)
