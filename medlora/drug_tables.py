"""The project's own drug tables: only what the offline dictionary (drug-named-entity-recognition) does not give.

- ``ABBREVIATIONS``: clinical shorthand seen in allergy lists and orders (PCN, ASA, TMP-SMX, APAP ...).
- ``COMBINATIONS``: brand names of combination products, with every active ingredient, that the dictionary
  lacks or maps to one ingredient only (Augmentin, Percocet, Tylenol #3, Vicodin ...). Sources: the products'
  US labels (DailyMed) for the ingredient lists.
- ``CLASSES``: drug classes with their members, the words that name the class in allergy lists and text, and
  name stems. Membership follows the WHO ATC classification (ATC/DDD Index 2024, code in each comment) unless
  another reference is named; stems follow the USAN stem list (AMA, "USAN stem list", 2024).
- ``CROSS_REACTIVITY``: class pairs with an accepted but low cross-reactivity risk: kept and flagged as a
  caution, not removed. Reference: Khan DA et al., "Drug allergy: a 2022 practice parameter update",
  J Allergy Clin Immunol 2022;150:1333-1393 (AAAAI/ACAAI), sections on beta-lactams and sulfonamides.

Names are lower case; a name is matched as whole words after ``drugs.norm`` (non-alphanumerics become spaces).
"""

from __future__ import annotations

from dataclasses import dataclass

ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "pcn": ("penicillin",),
    "pen v": ("penicillin",),
    "pen vk": ("penicillin",),
    "pcn vk": ("penicillin",),
    "asa": ("aspirin",),
    "apap": ("acetaminophen",),
    "tmp smx": ("trimethoprim", "sulfamethoxazole"),
    "smx tmp": ("trimethoprim", "sulfamethoxazole"),
    "tmp sulfa": ("trimethoprim", "sulfamethoxazole"),
    "co trimoxazole": ("trimethoprim", "sulfamethoxazole"),
    "cotrimoxazole": ("trimethoprim", "sulfamethoxazole"),
    "amox": ("amoxicillin",),
    "amox clav": ("amoxicillin", "clavulanate"),
    "co amoxiclav": ("amoxicillin", "clavulanate"),
    "pip tazo": ("piperacillin", "tazobactam"),
    "hctz": ("hydrochlorothiazide",),
    "ntg": ("nitroglycerin",),
    "mtx": ("methotrexate",),
    "inh": ("isoniazid",),
    "5 fu": ("fluorouracil",),
    "mso4": ("morphine",),
    "vanc": ("vancomycin",),
    "vanco": ("vancomycin",),
    "cipro": ("ciprofloxacin",),
    "doxy": ("doxycycline",),
    "z pak": ("azithromycin",),
    "z pack": ("azithromycin",),
    "zpak": ("azithromycin",),
    "zpack": ("azithromycin",),
    "keflex": ("cephalexin",),
    "septra": ("trimethoprim", "sulfamethoxazole"),
    "bactrim ds": ("trimethoprim", "sulfamethoxazole"),
    "tylenol": ("acetaminophen",),
    "paracetamol": ("acetaminophen",),
    "penicillin": ("penicillin",),
    "penicillin g": ("penicillin",),
    "penicillin v": ("penicillin",),
    "benzylpenicillin": ("penicillin",),
    "phenoxymethylpenicillin": ("penicillin",),
    "salbutamol": ("albuterol",),
    "adrenaline": ("epinephrine",),
    "frusemide": ("furosemide",),
    "glibenclamide": ("glyburide",),
    "pethidine": ("meperidine",),
    "cefalexin": ("cephalexin",),
    "amoxycillin": ("amoxicillin",),
    "aspirin": ("aspirin",),
    "acetylsalicylic acid": ("aspirin",),
    "insulin": ("insulin",),
}

COMBINATIONS: dict[str, tuple[str, ...]] = {
    "augmentin": ("amoxicillin", "clavulanate"),
    "amoxicillin clavulanate": ("amoxicillin", "clavulanate"),
    "amoxicillin and clavulanate": ("amoxicillin", "clavulanate"),
    "piperacillin tazobactam": ("piperacillin", "tazobactam"),
    "ampicillin sulbactam": ("ampicillin", "sulbactam"),
    "trimethoprim sulfamethoxazole": ("trimethoprim", "sulfamethoxazole"),
    "sulfamethoxazole trimethoprim": ("trimethoprim", "sulfamethoxazole"),
    "percocet": ("oxycodone", "acetaminophen"),
    "endocet": ("oxycodone", "acetaminophen"),
    "roxicet": ("oxycodone", "acetaminophen"),
    "percodan": ("oxycodone", "aspirin"),
    "vicodin": ("hydrocodone", "acetaminophen"),
    "norco": ("hydrocodone", "acetaminophen"),
    "lortab": ("hydrocodone", "acetaminophen"),
    "tylenol 3": ("acetaminophen", "codeine"),
    "tylenol 4": ("acetaminophen", "codeine"),
    "tylenol with codeine": ("acetaminophen", "codeine"),
    "tylenol no 3": ("acetaminophen", "codeine"),
    "tylenol 3 with codeine": ("acetaminophen", "codeine"),
    "ultracet": ("tramadol", "acetaminophen"),
    "fioricet": ("butalbital", "acetaminophen", "caffeine"),
    "fiorinal": ("butalbital", "aspirin", "caffeine"),
    "excedrin": ("aspirin", "acetaminophen", "caffeine"),
    "nyquil": ("acetaminophen", "dextromethorphan", "doxylamine"),
    "dayquil": ("acetaminophen", "dextromethorphan", "phenylephrine"),
    "alka seltzer": ("aspirin", "sodium bicarbonate", "citric acid"),
    "goody s": ("aspirin", "acetaminophen", "caffeine"),
    "bc powder": ("aspirin", "caffeine"),
    "pepto bismol": ("bismuth subsalicylate",),
    "vimovo": ("naproxen", "esomeprazole"),
    "arthrotec": ("diclofenac", "misoprostol"),
    "treximet": ("sumatriptan", "naproxen"),
    "advil pm": ("ibuprofen", "diphenhydramine"),
    "aleve pm": ("naproxen", "diphenhydramine"),
    "tylenol pm": ("acetaminophen", "diphenhydramine"),
    "zestoretic": ("lisinopril", "hydrochlorothiazide"),
    "prinzide": ("lisinopril", "hydrochlorothiazide"),
    "vaseretic": ("enalapril", "hydrochlorothiazide"),
    "lotensin hct": ("benazepril", "hydrochlorothiazide"),
    "lotrel": ("amlodipine", "benazepril"),
    "hyzaar": ("losartan", "hydrochlorothiazide"),
    "diovan hct": ("valsartan", "hydrochlorothiazide"),
    "entresto": ("sacubitril", "valsartan"),
    "vytorin": ("ezetimibe", "simvastatin"),
    "caduet": ("amlodipine", "atorvastatin"),
    "janumet": ("sitagliptin", "metformin"),
    "glucovance": ("glyburide", "metformin"),
    "advair": ("fluticasone", "salmeterol"),
    "symbicort": ("budesonide", "formoterol"),
    "duoneb": ("ipratropium", "albuterol"),
    "combivent": ("ipratropium", "albuterol"),
    "suboxone": ("buprenorphine", "naloxone"),
    "zosyn": ("piperacillin", "tazobactam"),
    "unasyn": ("ampicillin", "sulbactam"),
    "bactrim": ("trimethoprim", "sulfamethoxazole"),
    "timentin": ("ticarcillin", "clavulanate"),
    "primaxin": ("imipenem", "cilastatin"),
}


@dataclass(frozen=True)
class DrugClass:
    members: tuple[str, ...]
    aliases: tuple[str, ...] = ()  # words naming the class itself ("sulfa drugs", "NSAIDs")
    stems: tuple[str, ...] = ()  # name endings (USAN stems) that place an unknown name in the class
    parent: str | None = None
    exclude: tuple[str, ...] = ()  # names a stem would catch wrongly


CLASSES: dict[str, DrugClass] = {
    "antibacterials": DrugClass(  # ATC J01: members here are those without a narrower class below
        members=(
            "trimethoprim",
            "nitrofurantoin",
            "metronidazole",
            "clindamycin",
            "linezolid",
            "fosfomycin",
            "rifampin",
            "rifampicin",
            "daptomycin",
            "tinidazole",
            "chloramphenicol",
            "colistin",
        ),
        aliases=(
            "antibiotic",
            "antibiotics",
            "antibacterial",
            "antibacterials",
            "anti bacterial agents",
            "antibacterial agents",
        ),
    ),  # fmt: skip
    "beta_lactams": DrugClass(  # ATC J01C + J01D
        members=(),
        aliases=("beta lactam", "beta lactams", "beta lactam antibiotics", "betalactam", "betalactams"),
        parent="antibacterials",
    ),
    "penicillins": DrugClass(  # ATC J01C
        members=(
            "penicillin",
            "amoxicillin",
            "ampicillin",
            "piperacillin",
            "ticarcillin",
            "dicloxacillin",
            "cloxacillin",
            "flucloxacillin",
            "nafcillin",
            "oxacillin",
            "methicillin",
            "carbenicillin",
            "mezlocillin",
            "temocillin",
            "pivmecillinam",
            "mecillinam",
            "bacampicillin",
        ),
        aliases=("penicillins", "penicillin antibiotics", "penicillin class"),
        stems=("cillin",),
        parent="beta_lactams",
    ),  # fmt: skip
    "cephalosporins": DrugClass(  # ATC J01DB-J01DI
        members=(
            "cephalexin",
            "cefazolin",
            "cefuroxime",
            "ceftriaxone",
            "cefdinir",
            "cefepime",
            "cefixime",
            "cefpodoxime",
            "cefadroxil",
            "ceftazidime",
            "cefaclor",
            "cefprozil",
            "cefotaxime",
            "ceftaroline",
            "cefoxitin",
            "cefotetan",
            "ceftolozane",
            "cefiderocol",
            "cephradine",
            "cephalothin",
            "cefditoren",
            "ceftibuten",
            "ceftobiprole",
        ),
        aliases=("cephalosporin", "cephalosporins", "cephalosporin antibiotics"),
        stems=("cef", "ceph"),  # USAN: cef- prefix; matched as a prefix, see drugs._stem_classes
        parent="beta_lactams",
    ),  # fmt: skip
    "carbapenems": DrugClass(  # ATC J01DH
        members=("meropenem", "imipenem", "ertapenem", "doripenem"),
        aliases=("carbapenem", "carbapenems"),
        stems=("penem",),
        parent="beta_lactams",
    ),
    "monobactams": DrugClass(
        members=("aztreonam",), aliases=("monobactam", "monobactams"), parent="beta_lactams"
    ),  # ATC J01DF
    "sulfonamide_antibiotics": DrugClass(  # ATC J01E (sulfasalazine: A07EC01, releases sulfapyridine)
        members=(
            "sulfamethoxazole",
            "sulfadiazine",
            "sulfisoxazole",
            "sulfacetamide",
            "silver sulfadiazine",
            "sulfasalazine",
            "sulfadoxine",
            "sulfapyridine",
        ),
        aliases=(
            "sulfa",
            "sulfas",
            "sulpha",
            "sulfa drugs",
            "sulpha drugs",
            "sulfa drug",
            "sulfonamide",
            "sulfonamides",
            "sulphonamide",
            "sulphonamides",
            "sulfonamide antibiotics",
            "sulfa antibiotics",
        ),
        parent="antibacterials",
    ),  # fmt: skip
    "macrolides": DrugClass(  # ATC J01FA
        members=("erythromycin", "azithromycin", "clarithromycin", "roxithromycin", "fidaxomicin"),
        aliases=("macrolide", "macrolides", "macrolide antibiotics"),
        stems=("thromycin",),
        parent="antibacterials",
    ),
    "fluoroquinolones": DrugClass(  # ATC J01MA
        members=(
            "ciprofloxacin",
            "levofloxacin",
            "moxifloxacin",
            "ofloxacin",
            "norfloxacin",
            "gemifloxacin",
            "delafloxacin",
        ),
        aliases=("fluoroquinolone", "fluoroquinolones", "quinolone", "quinolones"),
        stems=("floxacin",),
        parent="antibacterials",
    ),  # fmt: skip
    "tetracyclines": DrugClass(  # ATC J01AA
        members=(
            "tetracycline",
            "doxycycline",
            "minocycline",
            "demeclocycline",
            "tigecycline",
            "omadacycline",
            "sarecycline",
            "eravacycline",
        ),
        aliases=("tetracyclines",),
        stems=("cycline",),
        parent="antibacterials",
    ),  # fmt: skip
    "aminoglycosides": DrugClass(  # ATC J01GB
        members=("gentamicin", "tobramycin", "amikacin", "streptomycin", "neomycin", "plazomicin"),
        aliases=("aminoglycoside", "aminoglycosides"),
        parent="antibacterials",
    ),
    "glycopeptides": DrugClass(  # ATC J01XA
        members=("vancomycin", "teicoplanin", "telavancin", "dalbavancin", "oritavancin"),
        aliases=("glycopeptide", "glycopeptides"),
        parent="antibacterials",
    ),
    "nsaids": DrugClass(  # ATC M01A (+ N02BA salicylates, B01AC06 aspirin)
        members=(
            "ibuprofen",
            "naproxen",
            "aspirin",
            "diclofenac",
            "celecoxib",
            "indomethacin",
            "ketorolac",
            "meloxicam",
            "ketoprofen",
            "etodolac",
            "nabumetone",
            "piroxicam",
            "sulindac",
            "diflunisal",
            "flurbiprofen",
            "oxaprozin",
            "mefenamic acid",
            "tolmetin",
            "fenoprofen",
            "etoricoxib",
            "salsalate",
            "dexketoprofen",
            "aceclofenac",
            "lornoxicam",
            "bismuth subsalicylate",
            "choline magnesium trisalicylate",
            "dexibuprofen",
        ),
        aliases=(
            "nsaid",
            "nsaids",
            "non steroidal anti inflammatory",
            "nonsteroidal anti inflammatory",
            "non steroidal anti inflammatory drugs",
            "nonsteroidal anti inflammatory drugs",
            "non steroidal anti inflammatory drug",
            "nonsteroidal anti inflammatory drug",
            "nonsteroidal antiinflammatory drugs",
            "anti inflammatory agents non steroidal",
            "salicylate",
            "salicylates",
            "cox 2 inhibitors",
            "cox 2 inhibitor",
        ),
        stems=("profen", "coxib"),
    ),  # fmt: skip
    "opioids": DrugClass(  # ATC N02A, R05DA (codeine), N07BC (methadone, buprenorphine)
        members=(
            "morphine",
            "codeine",
            "oxycodone",
            "hydrocodone",
            "hydromorphone",
            "fentanyl",
            "tramadol",
            "tapentadol",
            "methadone",
            "buprenorphine",
            "meperidine",
            "oxymorphone",
            "levorphanol",
            "sufentanil",
            "remifentanil",
            "alfentanil",
            "dihydrocodeine",
            "diamorphine",
            "heroin",
            "butorphanol",
            "nalbuphine",
            "pentazocine",
            "benzhydrocodone",
        ),
        aliases=(
            "opioid",
            "opioids",
            "opiate",
            "opiates",
            "narcotic",
            "narcotics",
            "opioid analgesics",
            "analgesics opioid",
            "narcotic analgesics",
        ),
        stems=("codone", "morphone", "fentanil"),
    ),  # fmt: skip
    "ace_inhibitors": DrugClass(  # ATC C09A/C09B
        members=(
            "lisinopril",
            "enalapril",
            "ramipril",
            "captopril",
            "benazepril",
            "quinapril",
            "perindopril",
            "fosinopril",
            "moexipril",
            "trandolapril",
        ),
        aliases=(
            "ace inhibitor",
            "ace inhibitors",
            "acei",
            "ace i",
            "angiotensin converting enzyme inhibitors",
            "angiotensin converting enzyme inhibitor",
        ),
        stems=("pril",),
    ),  # fmt: skip
    "arbs": DrugClass(  # ATC C09C/C09D
        members=(
            "losartan",
            "valsartan",
            "irbesartan",
            "candesartan",
            "olmesartan",
            "telmisartan",
            "azilsartan",
            "eprosartan",
        ),
        aliases=(
            "arb",
            "arbs",
            "angiotensin receptor blockers",
            "angiotensin ii receptor blockers",
            "angiotensin receptor blocker",
        ),
        stems=("sartan",),
    ),  # fmt: skip
    "statins": DrugClass(  # ATC C10AA
        members=(
            "atorvastatin",
            "simvastatin",
            "rosuvastatin",
            "pravastatin",
            "lovastatin",
            "fluvastatin",
            "pitavastatin",
        ),
        aliases=(
            "statin",
            "statins",
            "hmg coa reductase inhibitors",
            "hydroxymethylglutaryl coa reductase inhibitors",
        ),
        stems=("vastatin",),
    ),  # fmt: skip
    "beta_blockers": DrugClass(  # ATC C07A
        members=(
            "metoprolol",
            "atenolol",
            "propranolol",
            "carvedilol",
            "labetalol",
            "bisoprolol",
            "nebivolol",
            "nadolol",
            "sotalol",
            "timolol",
            "esmolol",
            "pindolol",
            "acebutolol",
        ),
        aliases=("beta blocker", "beta blockers", "beta adrenergic blockers", "adrenergic beta antagonists"),
        stems=("olol", "alol"),
    ),  # fmt: skip
    "benzodiazepines": DrugClass(  # ATC N05BA, N05CD, N03AE
        members=(
            "diazepam",
            "lorazepam",
            "alprazolam",
            "clonazepam",
            "chlordiazepoxide",
            "midazolam",
            "temazepam",
            "oxazepam",
            "triazolam",
            "clobazam",
            "clorazepate",
        ),
        aliases=("benzodiazepine", "benzodiazepines", "benzos"),
        stems=("azepam", "azolam"),
    ),  # fmt: skip
    "ssris": DrugClass(  # ATC N06AB
        members=("fluoxetine", "sertraline", "paroxetine", "citalopram", "escitalopram", "fluvoxamine"),
        aliases=("ssri", "ssris", "selective serotonin reuptake inhibitors"),
    ),
    "anticoagulants": DrugClass(  # ATC B01AA, B01AB, B01AE, B01AF
        members=(
            "warfarin",
            "apixaban",
            "rivaroxaban",
            "dabigatran",
            "edoxaban",
            "heparin",
            "enoxaparin",
            "dalteparin",
            "fondaparinux",
        ),
        aliases=("anticoagulant", "anticoagulants", "blood thinners"),
        stems=("xaban",),
    ),  # fmt: skip
    "sulfonylureas": DrugClass(  # ATC A10BB
        members=("glipizide", "glyburide", "glimepiride", "gliclazide", "tolbutamide", "chlorpropamide"),
        aliases=("sulfonylurea", "sulfonylureas"),
    ),
    "proton_pump_inhibitors": DrugClass(  # ATC A02BC
        members=(
            "omeprazole",
            "esomeprazole",
            "pantoprazole",
            "lansoprazole",
            "rabeprazole",
            "dexlansoprazole",
        ),
        aliases=("ppi", "ppis", "proton pump inhibitors", "proton pump inhibitor"),
        stems=("prazole",),
    ),
    "aromatic_anticonvulsants": DrugClass(  # Khan 2022 practice parameter: cross-sensitivity within this group
        members=(
            "carbamazepine",
            "oxcarbazepine",
            "phenytoin",
            "fosphenytoin",
            "phenobarbital",
            "primidone",
            "lamotrigine",
        ),
        aliases=("aromatic anticonvulsants", "aromatic antiepileptics"),
    ),  # fmt: skip
}

CLASSES["corticosteroids"] = DrugClass(  # ATC H02AB (systemic), R03BA (inhaled), D07 (topical)
    members=("prednisone", "prednisolone", "methylprednisolone", "dexamethasone", "hydrocortisone", "cortisone",
             "betamethasone", "budesonide", "fluticasone", "beclomethasone", "mometasone", "triamcinolone",
             "ciclesonide", "fludrocortisone", "deflazacort"),
    aliases=("corticosteroid", "corticosteroids", "glucocorticoid", "glucocorticoids", "steroid", "steroids",
             "steroid medications", "inhaled corticosteroids"),
)  # fmt: skip
# Therapeutic categories MedQuAD and clinicians name without a drug ("antihistamines may help"): they are
# medication names for the targets and grounding, but too broad for allergy or duplicate rules by membership.
for _name, _aliases in {
    "antihistamines": ("antihistamine", "antihistamines", "histamine antagonists"),
    "antidepressants": ("antidepressant", "antidepressants", "tricyclic antidepressants"),
    "anticonvulsants": (
        "anticonvulsant",
        "anticonvulsants",
        "antiepileptic drugs",
        "antiepileptics",
        "anti seizure medications",
        "antiseizure medications",
        "seizure medications",
    ),
    "diuretics": ("diuretic", "diuretics", "water pills", "loop diuretics", "thiazide diuretics"),
    "bronchodilators": ("bronchodilator", "bronchodilators", "inhaled bronchodilators", "beta agonists"),
    "antivirals": (
        "antiviral",
        "antivirals",
        "antiviral drugs",
        "antiviral medications",
        "antiretrovirals",
        "antiretroviral therapy",
    ),
    "antifungals": ("antifungal", "antifungals", "antifungal drugs", "antifungal medications"),
    "analgesics": ("analgesic", "analgesics", "pain relievers", "pain medications", "painkillers"),
    "immunosuppressants": ("immunosuppressant", "immunosuppressants", "immunosuppressive drugs"),
    "antipsychotics": ("antipsychotic", "antipsychotics", "neuroleptics"),
    "calcium_channel_blockers": ("calcium channel blocker", "calcium channel blockers"),
    "muscle_relaxants": ("muscle relaxant", "muscle relaxants"),
    "antiemetics": ("antiemetic", "antiemetics", "anti nausea medications"),
    "anticholinergics": ("anticholinergic", "anticholinergics", "anticholinergic drugs"),
    "antiarrhythmics": ("antiarrhythmic", "antiarrhythmics", "anti arrhythmic drugs", "antiarrhythmic drugs"),
    "chemotherapy_drugs": ("chemotherapy drugs", "anticancer drugs", "cytotoxic drugs"),
    "vasodilators": ("vasodilator", "vasodilators"),
    "antispasmodics": ("antispasmodic", "antispasmodics"),
    "laxatives": ("laxative", "laxatives", "stool softeners"),
    "retinoids": ("retinoid", "retinoids"),
    "antimalarials": ("antimalarial", "antimalarials", "antimalarial drugs"),
    "biologics": ("biologic drugs", "biologics", "tnf inhibitors", "tnf blockers"),
}.items():
    CLASSES[_name] = DrugClass(members=(), aliases=_aliases)
# Class pairs not reported as duplicate therapy: an inhaled and an oral corticosteroid are often both intended.
NO_DUPLICATE_CLASSES = frozenset({"corticosteroids"})

# (allergy class, drug class, why): kept with a caution, never removed. Not listed, on purpose: a sulfonamide
# antibiotic allergy and non-antibiotic sulfonamides (furosemide, hydrochlorothiazide, celecoxib, sulfonylureas),
# which the 2022 practice parameter finds do not cross-react.
CROSS_REACTIVITY: tuple[tuple[str, str, str], ...] = (
    (
        "penicillins",
        "cephalosporins",
        "low cross-reactivity (about 1-2%) between penicillins and cephalosporins",
    ),
    (
        "cephalosporins",
        "penicillins",
        "low cross-reactivity (about 1-2%) between cephalosporins and penicillins",
    ),
    ("penicillins", "carbapenems", "low cross-reactivity (under 1%) between penicillins and carbapenems"),
    (
        "cephalosporins",
        "carbapenems",
        "low cross-reactivity (under 1%) between cephalosporins and carbapenems",
    ),
    (
        "ace_inhibitors",
        "arbs",
        "angioedema on an ACE inhibitor recurs rarely on an angiotensin receptor blocker",
    ),
)
# Side-chain cross-reactivity named in the practice parameter, by ingredient: (allergy, drug, why).
INGREDIENT_CROSS_REACTIVITY: tuple[tuple[str, str, str], ...] = (
    ("aztreonam", "ceftazidime", "aztreonam and ceftazidime share a side chain"),
    ("ceftazidime", "aztreonam", "ceftazidime and aztreonam share a side chain"),
)
