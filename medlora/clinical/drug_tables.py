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
- ``DUPLICATE_ONLY_CLASSES``: classes for duplicate therapy only; an allergy to one member rules out no other.
- ``SIDE_CHAIN_GROUPS``, ``KNOWN_CULPRITS``: beta-lactam R1 side chains and the usual culprit ingredient of a
  combination product (``allergies``).
- ``FUZZY_STOP``: English words one edit from a drug name, never read as its misspelling.

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
    "thyroxine": ("levothyroxine",),
    "synthroid": ("levothyroxine",),
    "levoxyl": ("levothyroxine",),
    "eltroxin": ("levothyroxine",),
    "euthyrox": ("levothyroxine",),
    "unithroid": ("levothyroxine",),
    "jantoven": ("warfarin",),
    "dilantin": ("phenytoin",),
    "soma": ("carisoprodol",),
    "bayer": ("aspirin",),
    "bayer aspirin": ("aspirin",),
    "qvar": ("beclomethasone",),
    "imdur": ("isosorbide mononitrate",),
    "demerol": ("meperidine",),
    "l thyroxine": ("levothyroxine",),
    "levothyroxine sodium": ("levothyroxine",),
    "lignocaine": ("lidocaine",),
    "hyoscine": ("scopolamine",),
    "co codamol": ("codeine", "acetaminophen"),
    # Variants of the same shorthand as written in allergy lists and orders (SMZ for SMX, orderings, UK forms).
    "smz tmp": ("trimethoprim", "sulfamethoxazole"),
    "tmp smz": ("trimethoprim", "sulfamethoxazole"),
    "smx": ("sulfamethoxazole",),
    "smz": ("sulfamethoxazole",),
    "sxt": ("trimethoprim", "sulfamethoxazole"),
    "cotrim": ("trimethoprim", "sulfamethoxazole"),
    "co trim": ("trimethoprim", "sulfamethoxazole"),
    "pnc": ("penicillin",),
    "pcn g": ("penicillin",),
    "pen g": ("penicillin",),
    "bicillin": ("penicillin",),
    "amox k clav": ("amoxicillin", "clavulanate"),
    "amoxi clav": ("amoxicillin", "clavulanate"),
    "amoxiclav": ("amoxicillin", "clavulanate"),
    "amp sulbactam": ("ampicillin", "sulbactam"),
    "amp sulb": ("ampicillin", "sulbactam"),
    "piptazo": ("piperacillin", "tazobactam"),
    "pip tazobactam": ("piperacillin", "tazobactam"),
    "tzp": ("piperacillin", "tazobactam"),
    "ibu": ("ibuprofen",),
    "azithro": ("azithromycin",),
    "clinda": ("clindamycin",),
    "erythro": ("erythromycin",),
    "levoflox": ("levofloxacin",),
    "moxi": ("moxifloxacin",),
    "ceftri": ("ceftriaxone",),
    "cefuro": ("cefuroxime",),
    "nitrofur": ("nitrofurantoin",),
    "ms contin": ("morphine",),
    "msir": ("morphine",),
    "oxy ir": ("oxycodone",),
    "apap codeine": ("acetaminophen", "codeine"),
    "tylenol 3s": ("acetaminophen", "codeine"),
    "ty 3": ("acetaminophen", "codeine"),
    "tylenol codeine": ("acetaminophen", "codeine"),
    "acetaminophen codeine": ("acetaminophen", "codeine"),
    "hydrocodone apap": ("hydrocodone", "acetaminophen"),
    "oxycodone apap": ("oxycodone", "acetaminophen"),
    "sacubitril valsartan": ("sacubitril", "valsartan"),
    # Common drugs outside the class table, named here so that their misspellings are recognised too.
    "metformin": ("metformin",),
    "albuterol": ("albuterol",),
    "ondansetron": ("ondansetron",),
    "montelukast": ("montelukast",),
    "allopurinol": ("allopurinol",),
    "colchicine": ("colchicine",),
    "levetiracetam": ("levetiracetam",),
    "clopidogrel": ("clopidogrel",),
    "co dydramol": ("dihydrocodeine", "acetaminophen"),
    # Drugs the contraindication rules name (round four), so that their misspellings are recognised too.
    "isotretinoin": ("isotretinoin",),
    "accutane": ("isotretinoin",),
    "valproate": ("valproic acid",),
    "depakote": ("valproic acid",),
    "divalproex": ("valproic acid",),
    "benadryl": ("diphenhydramine",),
    "phenergan": ("promethazine",),
    "spironolactone": ("spironolactone",),
    "aldactone": ("spironolactone",),
    "lithium": ("lithium",),
    "coumadin": ("warfarin",),
    "nitrofurantoin": ("nitrofurantoin",),
    "macrobid": ("nitrofurantoin",),
    "methotrexate": ("methotrexate",),
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
    "sinemet": ("carbidopa", "levodopa"),
    "yaz": ("drospirenone", "ethinyl estradiol"),
    # Over-the-counter products the dictionary maps to one ingredient or a different product.
    "neosporin": ("neomycin", "polymyxin b", "bacitracin"),
    "polysporin": ("polymyxin b", "bacitracin"),
    "zyrtec d": ("cetirizine", "pseudoephedrine"),
    "claritin d": ("loratadine", "pseudoephedrine"),
    "allegra d": ("fexofenadine", "pseudoephedrine"),
    "maalox": ("aluminum hydroxide", "magnesium hydroxide", "simethicone"),
    "dramamine": ("dimenhydrinate",),
    "theraflu": ("acetaminophen", "phenylephrine", "diphenhydramine"),
    # Products the contraindication rules must see through (round four): "PM" sleep aids, brands the
    # dictionary lacks or maps to another product (DailyMed labels).
    "excedrin pm": ("acetaminophen", "diphenhydramine"),
    "motrin pm": ("ibuprofen", "diphenhydramine"),
    "goody s pm": ("acetaminophen", "diphenhydramine"),
    "bayer pm": ("aspirin", "diphenhydramine"),
    "tylenol simply sleep": ("diphenhydramine",),
    "zzzquil": ("diphenhydramine",),
    "nytol": ("diphenhydramine",),
    "kaopectate": ("bismuth subsalicylate",),
    "claravis": ("isotretinoin",),
    "amnesteem": ("isotretinoin",),
    "zenatane": ("isotretinoin",),
    "trexall": ("methotrexate",),
    "otrexup": ("methotrexate",),
    "rasuvo": ("methotrexate",),
    "sonata": ("zaleplon",),
    "orajel": ("benzocaine",),
    "anbesol": ("benzocaine",),
    "robitussin dm": ("guaifenesin", "dextromethorphan"),
    "adipex": ("phentermine",),
    "adipex p": ("phentermine",),
    "kaletra": ("lopinavir", "ritonavir"),
}


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(","))


@dataclass(frozen=True)
class DrugClass:
    members: tuple[str, ...]
    aliases: tuple[str, ...] = ()  # words naming the class itself ("sulfa drugs", "NSAIDs")
    stems: tuple[str, ...] = ()  # name endings (USAN stems) that place an unknown name in the class
    parent: str | None = None


CLASSES: dict[str, DrugClass] = {
    "antibacterials": DrugClass(  # ATC J01: members here are those without a narrower class below
        members=_names(
            "trimethoprim, nitrofurantoin, metronidazole, clindamycin, linezolid, fosfomycin, rifampin, "
            "rifampicin, daptomycin, tinidazole, chloramphenicol, colistin"
        ),
        aliases=_names(
            "antibiotic, antibiotics, antibacterial, antibacterials, anti bacterial agents, "
            "antibacterial agents, abx"
        ),
    ),
    "beta_lactams": DrugClass(  # ATC J01C + J01D
        members=(),
        aliases=_names("beta lactam, beta lactams, beta lactam antibiotics, betalactam, betalactams"),
        parent="antibacterials",
    ),
    "penicillins": DrugClass(  # ATC J01C
        members=_names(
            "penicillin, amoxicillin, ampicillin, piperacillin, ticarcillin, dicloxacillin, cloxacillin, "
            "flucloxacillin, nafcillin, oxacillin, methicillin, carbenicillin, mezlocillin, temocillin, "
            "pivmecillinam, mecillinam, bacampicillin"
        ),
        aliases=_names("penicillins, penicillin antibiotics, penicillin class"),
        stems=("cillin",),
        parent="beta_lactams",
    ),
    "cephalosporins": DrugClass(  # ATC J01DB-J01DI
        members=_names(
            "cephalexin, cefazolin, cefuroxime, ceftriaxone, cefdinir, cefepime, cefixime, cefpodoxime, "
            "cefadroxil, ceftazidime, cefaclor, cefprozil, cefotaxime, ceftaroline, cefoxitin, cefotetan, "
            "ceftolozane, cefiderocol, cephradine, cephalothin, cefditoren, ceftibuten, ceftobiprole"
        ),
        aliases=_names("cephalosporin, cephalosporins, cephalosporin antibiotics"),
        stems=("cef", "ceph"),
        parent="beta_lactams",
    ),
    "carbapenems": DrugClass(  # ATC J01DH
        members=_names("meropenem, imipenem, ertapenem, doripenem"),
        aliases=_names("carbapenem, carbapenems"),
        stems=("penem",),
        parent="beta_lactams",
    ),
    "monobactams": DrugClass(  # ATC J01DF
        members=_names("aztreonam"),
        aliases=_names("monobactam, monobactams"),
        parent="beta_lactams",
    ),
    "sulfonamide_antibiotics": DrugClass(  # ATC J01E (sulfasalazine: A07EC01, releases sulfapyridine)
        members=_names(
            "sulfamethoxazole, sulfadiazine, sulfisoxazole, sulfacetamide, silver sulfadiazine, "
            "sulfasalazine, sulfadoxine, sulfapyridine"
        ),
        aliases=_names(
            "sulfa, sulfas, sulpha, sulfa drugs, sulpha drugs, sulfa drug, sulfonamide, sulfonamides, "
            "sulphonamide, sulphonamides, sulfonamide antibiotics, sulfa antibiotics"
        ),
        parent="antibacterials",
    ),
    "macrolides": DrugClass(  # ATC J01FA
        members=_names("erythromycin, azithromycin, clarithromycin, roxithromycin, fidaxomicin"),
        aliases=_names("macrolide, macrolides, macrolide antibiotics"),
        stems=("thromycin",),
        parent="antibacterials",
    ),
    "fluoroquinolones": DrugClass(  # ATC J01MA
        members=_names(
            "ciprofloxacin, levofloxacin, moxifloxacin, ofloxacin, norfloxacin, gemifloxacin, delafloxacin"
        ),
        aliases=_names("fluoroquinolone, fluoroquinolones, quinolone, quinolones"),
        stems=("floxacin",),
        parent="antibacterials",
    ),
    "tetracyclines": DrugClass(  # ATC J01AA
        members=_names(
            "tetracycline, doxycycline, minocycline, demeclocycline, tigecycline, omadacycline, sarecycline, "
            "eravacycline"
        ),
        aliases=_names("tetracyclines"),
        stems=("cycline",),
        parent="antibacterials",
    ),
    "aminoglycosides": DrugClass(  # ATC J01GB
        members=_names("gentamicin, tobramycin, amikacin, streptomycin, neomycin, plazomicin"),
        aliases=_names("aminoglycoside, aminoglycosides"),
        parent="antibacterials",
    ),
    "glycopeptides": DrugClass(  # ATC J01XA
        members=_names("vancomycin, teicoplanin, telavancin, dalbavancin, oritavancin"),
        aliases=_names("glycopeptide, glycopeptides"),
        parent="antibacterials",
    ),
    "nsaids": DrugClass(  # ATC M01A (+ N02BA salicylates, B01AC06 aspirin)
        members=_names(
            "ibuprofen, naproxen, aspirin, diclofenac, celecoxib, indomethacin, ketorolac, meloxicam, "
            "ketoprofen, etodolac, nabumetone, piroxicam, sulindac, diflunisal, flurbiprofen, oxaprozin, "
            "mefenamic acid, tolmetin, fenoprofen, etoricoxib, salsalate, dexketoprofen, aceclofenac, "
            "lornoxicam, bismuth subsalicylate, choline magnesium trisalicylate, dexibuprofen"
        ),
        aliases=_names(
            "nsaid, nsaids, non steroidal anti inflammatory, nonsteroidal anti inflammatory, "
            "non steroidal anti inflammatory drugs, nonsteroidal anti inflammatory drugs, "
            "non steroidal anti inflammatory drug, nonsteroidal anti inflammatory drug, "
            "nonsteroidal antiinflammatory drugs, anti inflammatory agents non steroidal, salicylate, "
            "salicylates, cox 2 inhibitors, cox 2 inhibitor"
        ),
        stems=("profen", "coxib"),
    ),
    "opioids": DrugClass(  # ATC N02A, R05DA (codeine), N07BC (methadone, buprenorphine)
        members=_names(
            "morphine, codeine, oxycodone, hydrocodone, hydromorphone, fentanyl, tramadol, tapentadol, "
            "methadone, buprenorphine, meperidine, oxymorphone, levorphanol, sufentanil, remifentanil, "
            "alfentanil, dihydrocodeine, diamorphine, heroin, butorphanol, nalbuphine, pentazocine, "
            "benzhydrocodone"
        ),
        aliases=_names(
            "opioid, opioids, opiate, opiates, narcotic, narcotics, opioid analgesics, analgesics opioid, "
            "narcotic analgesics"
        ),
        stems=("codone", "morphone", "fentanil"),
    ),
    "ace_inhibitors": DrugClass(  # ATC C09A/C09B
        members=_names(
            "lisinopril, enalapril, ramipril, captopril, benazepril, quinapril, perindopril, fosinopril, "
            "moexipril, trandolapril"
        ),
        aliases=_names(
            "ace inhibitor, ace inhibitors, acei, ace i, angiotensin converting enzyme inhibitors, "
            "angiotensin converting enzyme inhibitor"
        ),
        stems=("pril",),
    ),
    "arbs": DrugClass(  # ATC C09C/C09D
        members=_names(
            "losartan, valsartan, irbesartan, candesartan, olmesartan, telmisartan, azilsartan, eprosartan"
        ),
        aliases=_names(
            "arb, arbs, angiotensin receptor blockers, angiotensin ii receptor blockers, "
            "angiotensin receptor blocker"
        ),
        stems=("sartan",),
    ),
    "renin_inhibitors": DrugClass(  # ATC C09XA
        members=_names("aliskiren"),
        aliases=_names("direct renin inhibitor, direct renin inhibitors, renin inhibitor, renin inhibitors"),
        stems=("kiren",),
    ),
    "statins": DrugClass(  # ATC C10AA
        members=_names(
            "atorvastatin, simvastatin, rosuvastatin, pravastatin, lovastatin, fluvastatin, pitavastatin"
        ),
        aliases=_names(
            "statin, statins, hmg coa reductase inhibitors, hydroxymethylglutaryl coa reductase inhibitors"
        ),
        stems=("vastatin",),
    ),
    "beta_blockers": DrugClass(  # ATC C07A
        members=_names(
            "metoprolol, atenolol, propranolol, carvedilol, labetalol, bisoprolol, nebivolol, nadolol, "
            "sotalol, timolol, esmolol, pindolol, acebutolol"
        ),
        aliases=_names("beta blocker, beta blockers, beta adrenergic blockers, adrenergic beta antagonists"),
        stems=("olol", "alol"),
    ),
    "benzodiazepines": DrugClass(  # ATC N05BA, N05CD, N03AE
        members=_names(
            "diazepam, lorazepam, alprazolam, clonazepam, chlordiazepoxide, midazolam, temazepam, oxazepam, "
            "triazolam, clobazam, clorazepate"
        ),
        aliases=_names("benzodiazepine, benzodiazepines, benzos"),
        stems=("azepam", "azolam"),
    ),
    "ssris": DrugClass(  # ATC N06AB
        members=_names("fluoxetine, sertraline, paroxetine, citalopram, escitalopram, fluvoxamine"),
        aliases=_names("ssri, ssris, selective serotonin reuptake inhibitors"),
    ),
    "anticoagulants": DrugClass(  # ATC B01AA, B01AB, B01AE, B01AF
        members=_names(
            "warfarin, apixaban, rivaroxaban, dabigatran, edoxaban, heparin, enoxaparin, dalteparin, "
            "fondaparinux"
        ),
        aliases=_names("anticoagulant, anticoagulants, blood thinners"),
        stems=("xaban",),
    ),
    "sulfonylureas": DrugClass(  # ATC A10BB
        members=_names("glipizide, glyburide, glimepiride, gliclazide, tolbutamide, chlorpropamide"),
        aliases=_names("sulfonylurea, sulfonylureas"),
    ),
    "proton_pump_inhibitors": DrugClass(  # ATC A02BC
        members=_names("omeprazole, esomeprazole, pantoprazole, lansoprazole, rabeprazole, dexlansoprazole"),
        aliases=_names("ppi, ppis, proton pump inhibitors, proton pump inhibitor"),
        stems=("prazole",),
    ),
    "aromatic_anticonvulsants": DrugClass(  # Khan 2022 practice parameter: cross-sensitivity within this group
        members=_names(
            "carbamazepine, oxcarbazepine, phenytoin, fosphenytoin, phenobarbital, primidone, lamotrigine"
        ),
        aliases=_names("aromatic anticonvulsants, aromatic antiepileptics"),
    ),
}
# Classes whose members are duplicate therapy when two are taken together (ATC codes in each comment). An allergy
# to one member does not rule out the others (no class-wide cross-reactivity is established for these).
DUPLICATE_ONLY_CLASSES = frozenset(
    [
        "p2y12_inhibitors",
        "snris",
        "tricyclic_antidepressants",
        "h2_blockers",
        "gabapentinoids",
        "dpp4_inhibitors",
        "sglt2_inhibitors",
        "glp1_agonists",
        "triptans",
        "dihydropyridines",
        "h1_antihistamines",
        "skeletal_muscle_relaxants",
        "atypical_antipsychotics",
        "bisphosphonates",
        "loop_diuretics",
    ]
)
for _name, (_members, _aliases) in {
    "p2y12_inhibitors": (
        "clopidogrel, prasugrel, ticagrelor, ticlopidine, cangrelor",
        "p2y12 inhibitors",
    ),  # B01AC
    "snris": (
        "venlafaxine, desvenlafaxine, duloxetine, levomilnacipran, milnacipran",
        "snri, snris",
    ),  # N06AX
    "tricyclic_antidepressants": (  # N06AA
        "amitriptyline, nortriptyline, imipramine, desipramine, clomipramine, doxepin, protriptyline, trimipramine",
        "tca, tcas",
    ),
    "h2_blockers": ("famotidine, ranitidine, cimetidine, nizatidine", "h2 blocker, h2 blockers"),  # A02BA
    "gabapentinoids": (
        "gabapentin, pregabalin, gabapentin enacarbil",
        "gabapentinoid, gabapentinoids",
    ),  # N03AX
    "dpp4_inhibitors": (
        "sitagliptin, saxagliptin, linagliptin, alogliptin, vildagliptin",
        "dpp 4 inhibitors",
    ),  # A10BH
    "sglt2_inhibitors": (  # A10BK
        "empagliflozin, dapagliflozin, canagliflozin, ertugliflozin, sotagliflozin",
        "sglt2 inhibitor, sglt2 inhibitors",
    ),
    "glp1_agonists": (  # A10BJ (tirzepatide: A10BX)
        "semaglutide, liraglutide, dulaglutide, exenatide, lixisenatide, tirzepatide",
        "glp 1 agonist, glp 1 agonists, glp 1 receptor agonists",
    ),
    "triptans": (
        "sumatriptan, rizatriptan, zolmitriptan, eletriptan, naratriptan, almotriptan, frovatriptan",
        "triptans",
    ),
    "dihydropyridines": (  # C08CA
        "amlodipine, nifedipine, felodipine, nicardipine, isradipine, nisoldipine, lercanidipine",
        "dihydropyridine",
    ),
    "h1_antihistamines": (  # R06A
        "cetirizine, levocetirizine, loratadine, desloratadine, fexofenadine, diphenhydramine, hydroxyzine, "
        "chlorpheniramine, doxylamine, promethazine",
        "h1 antihistamines",
    ),
    "skeletal_muscle_relaxants": (  # M03B
        "cyclobenzaprine, methocarbamol, tizanidine, baclofen, carisoprodol, metaxalone, orphenadrine",
        "skeletal muscle relaxants",
    ),
    "atypical_antipsychotics": (  # N05AH, N05AX
        "quetiapine, olanzapine, risperidone, aripiprazole, ziprasidone, lurasidone, clozapine, paliperidone, "
        "brexpiprazole, cariprazine",
        "atypical antipsychotics, second generation antipsychotics",
    ),
    "bisphosphonates": (
        "alendronate, risedronate, ibandronate, zoledronic acid",
        "bisphosphonate, bisphosphonates",
    ),
    "loop_diuretics": ("furosemide, bumetanide, torsemide, ethacrynic acid", "loop diuretic"),  # C03CA
}.items():
    CLASSES[_name] = DrugClass(members=_names(_members), aliases=_names(_aliases))
assert set(CLASSES) >= DUPLICATE_ONLY_CLASSES
CLASSES["corticosteroids"] = DrugClass(  # ATC H02AB (systemic), R03BA (inhaled), D07 (topical)
    members=_names(
        "prednisone, prednisolone, methylprednisolone, dexamethasone, hydrocortisone, cortisone, "
        "betamethasone, budesonide, fluticasone, beclomethasone, mometasone, triamcinolone, ciclesonide, "
        "fludrocortisone, deflazacort"
    ),
    aliases=_names(
        "corticosteroid, corticosteroids, glucocorticoid, glucocorticoids, steroid, steroids, "
        "steroid medications, inhaled corticosteroids"
    ),
)
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

# Beta-lactams sharing an identical or similar R1 side chain: after a severe reaction to one, the others are
# avoided, not just flagged (Khan DA et al., J Allergy Clin Immunol 2022;150:1333, beta-lactam section and its
# side-chain table; Zagursky RJ, Pichichero ME, J Allergy Clin Immunol Pract 2018;6:72-81).
SIDE_CHAIN_GROUPS: tuple[tuple[frozenset[str], str], ...] = (
    (
        frozenset(
            {
                "amoxicillin",
                "ampicillin",
                "cephalexin",
                "cefadroxil",
                "cefprozil",
                "cefaclor",
                "cephradine",
                "loracarbef",
                "cefatrizine",
                "bacampicillin",
                "pivampicillin",
            }
        ),
        "aminopenicillins share the R1 side chain of cephalexin, cefadroxil, cefprozil, cefaclor and cephradine",
    ),  # fmt: skip
    (
        frozenset(
            {
                "ceftriaxone",
                "cefotaxime",
                "cefepime",
                "cefpodoxime",
                "cefditoren",
                "ceftizoxime",
                "cefuroxime",
            }
        ),
        "methoxyimino-aminothiazolyl R1 side chain (ceftriaxone, cefotaxime, cefepime, cefpodoxime, cefuroxime)",
    ),  # fmt: skip
    (
        frozenset({"ceftazidime", "aztreonam", "cefiderocol"}),
        "ceftazidime, aztreonam and cefiderocol share an R1 side chain",
    ),
    (
        frozenset({"penicillin", "cephalothin", "cefoxitin"}),
        "benzylpenicillin's side chain is similar to cephalothin's and cefoxitin's",
    ),
)

# (class of the ingredient, reaction kinds, why): the ingredient of a combination product a reaction is laid on
# when the record does not say which (Khan 2022: the beta-lactam, not the beta-lactamase inhibitor, and the
# sulfonamide of TMP-SMX cause most reactions; nausea, itching and drowsiness on an opioid combination are the
# opioid's effects).
KNOWN_CULPRITS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("beta_lactams", ("severe", "severe_cutaneous", "allergy", "unknown"), "the beta-lactam, its usual culprit"),
    ("sulfonamide_antibiotics", ("severe", "severe_cutaneous", "allergy", "unknown"),
     "the sulfonamide, its usual culprit"),
    ("opioids", ("intolerance",), "the opioid, known for this side effect"),
)  # fmt: skip

# Everyday and clinical words one edit from a drug name: never read as a misspelling of it (tests/test_drugs.py
# checks the misspelling matcher against an English word list; the words it caught are listed here).
_FUZZY_STOP_WORDS = """
    glade mites tical triptane somata
    achira aciculate acoin acopyrin actin action activital adular adumbral adumbrant aerobe aerobic alias alive
    alkamin alular amaas amadou amatol amidin amidol amino amiss antibromic antiedemic antimeric antimoral
    antipoetic antiracer antispace antithetic antithetics anvil apace aramis aration aristocrat artemis
    arthritic arthrodic ascription aspiring astral augmented augmenter augmentive austral baalite baclin
    bacterium badan bahan bajan baker balan baler banak banal banana banat banian banyan barer batan bater
    bayed bemix benben benzol bepen betalk bilin biological biologism biologist biologize bionomics bixin boyer
    brayer buffed buffer buffet buyer cadet calinda cambial capote caramel caravel cartisane cedar celestina
    celestine cephalemia cetin chibrit cimbia clinia clint cloit clone cloot clout colan comal combinant
    comburent conal concord concur condor connivent conor copalm coral corban cored coree corer corey corge
    corta cortes cortex cortez corticose cortin corton cowal coxal creator cultivate curatel curatial curatic
    curtail cyclamin daroo daysman deair dehair desman diaeretic diamicton dianetics dietetics dinantian disman
    divan dolia dolina doline dolores donax donia encoronet endome endore entone enzone erythrol erythrolysin
    erythron espadon etamin factice faustian fictive filar flair floran florent florin fluocerine forum frozen
    furazan furlan generic genetics glucosane glyceride gonal goral halcyon herein heroic heroid heroine heron
    hydrocyon hyson indogen innovate inogen insulting inulin isogen kalema kalian kalmia karma kevalin keylet
    lagen lanson laudative ledol levir lexia liminal liplet losel loser lustra mafic malik manolis maral
    marehan marok mavis median medic melian melic menic merlin mesic metic microlite mirac miter mitten mixen
    mobed moric morin morphea morphic morphon morrhuine narcistic nepal nepotal nerium nisus nubbin nubian
    obsidian opata optimal optimates osmosis oxytone oyana palladion pandal pander pandle panel pannel parasol
    parent parget paries parillin parochin paroxytone periostea pipil plenum pommel prefine prefix prest
    primarian primigene principes principle print prior proven proxeny prunt pyrimidine pyropen quarto
    quinology quinovose ramage ramate ramrace rayon relic relief relift reptiloid resinoid restoral rumen ruvid
    salicylide salicylize satin satiric satyric scrine sectoral septa septan serab serai seral serau seraw
    serean serian serine serran serta sextan shrine siris sordine sorite sortie spectral sprig sprit stain
    stamin static station steatin streen strepen streptolysin streptomyces strix sublimate sublimize sulea
    sulfacid sulfamine sulfamyl sulfapyrazine sulfazide sulka sulla summed syrtis taborin tafia tahil tamil
    tarea tareq targe teaze tenon tenor terbic ticer tidal timar timon timor tisar titar topalgia toral trabal
    tradal tragal trama trame triace trial triatic triazolic tricar tuareg ultima ultra uniclinal uniped unopen
    unpen uranyl urine vagile valsalvan vance violon warrant wayfaring winfred zabeta zabian zoomorph
"""
FUZZY_STOP = frozenset(_FUZZY_STOP_WORDS.split())
