"""Grounding: the generation form round-trips to the published one, targets cite supporting passages, the check
removes unsupported drugs and unstated doses, sources are the cited passages' URLs, RAFT assembly, the grammar
only admits citations of passages in the prompt."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medlora.common.schemas import (
    SECTION_NAMES,
    GroundedSections,
    Medication,
    PatientRecord,
    Recommendation,
    Sections,
    parse_any_sections,
    to_grounded,
    to_published,
)
from medlora.data.passages import Passage
from medlora.datasets.targets import extractive_target, ground_target
from medlora.evaluation.citations import citation_scores
from medlora.grounding.check import check_grounding, section_confidence, sources_for
from medlora.retrieval.hits import Hit
from medlora.serving import recommender as serving_recommender
from medlora.serving.present import format_text


def passage(pid, text, focus="Gout", qtype="treatment", url=None, split="train"):
    return Passage(
        pid, text, focus, f"What are the treatments for {focus} ?", qtype, url or f"https://ex.org/{focus}/{pid}",
        f"qa-{focus}-{pid}", split, 40,
    )  # fmt: skip


GOUT = [
    passage(0, "Attacks are treated with medicines such as colchicine and NSAIDs."),
    passage(1, "Drink plenty of water and limit alcohol and foods high in purines such as red meat.", qtype="prevention"),
    passage(2, "Long-term treatment with allopurinol 100 mg daily lowers uric acid."),
]  # fmt: skip


def test_old_recommendations_still_validate_and_both_forms_parse():
    old = {
        "immediate_actions": ["Call emergency services."],
        "medications": [{"name": "colchicine", "dosage": None, "frequency": None, "side_effects": []}],
        "lifestyle": ["Drink water."], "follow_up": [], "specialist_referrals": [], "monitoring": [],
        "patient_education": [], "sources": [], "safety": {"red_flags": [], "allergy_conflicts": []},
    }  # fmt: skip
    rec = Recommendation.model_validate(old)
    assert rec.evidence == "unchecked" and rec.citations == {} and rec.lifestyle == ["Drink water."]
    sections = {k: v for k, v in old.items() if k not in ("sources", "safety")}
    assert parse_any_sections(sections) == (Sections.model_validate(sections), {})
    grounded = to_grounded(Sections.model_validate(sections), {"lifestyle": [[2]]})
    back, cites = parse_any_sections(grounded.model_dump())
    assert back == Sections.model_validate(sections) and cites["lifestyle"] == [[2]]
    with pytest.raises(ValidationError):
        parse_any_sections({"lifestyle": [{"citations": [1]}]})


def test_to_published_keeps_strings_plain_and_citations_parallel():
    g = GroundedSections.model_validate(
        {"lifestyle": [{"citations": [2, 1, 2], "text": "Drink water."}],
         "medications": [{"citations": [1], "name": "colchicine"}]}
    )  # fmt: skip
    sections, cites = to_published(g)
    assert sections.lifestyle == ["Drink water."] and sections.medications[0].name == "colchicine"
    assert cites["lifestyle"] == [[1, 2]] and cites["medications"] == [[1]] and cites["monitoring"] == []


def test_ground_target_cites_supporting_passages_and_drops_the_rest():
    target = Sections(
        immediate_actions=["Call emergency services now."],
        medications=[Medication(name="colchicine"), Medication(name="warfarin")],
        lifestyle=["Drink plenty of water and limit alcohol and foods high in purines such as red meat.",
                   "Exercise for thirty minutes every day."],
    )  # fmt: skip
    g = ground_target(target, GOUT)
    assert [(m.name, m.citations) for m in g.medications] == [("colchicine", [1])]
    assert [(x.text[:5], x.citations) for x in g.lifestyle] == [("Drink", [2])]
    # The safety rules' action stays uncited; with no passage only it survives (the abstention).
    assert g.immediate_actions[0].citations == []
    empty = ground_target(target, [])
    assert to_published(empty)[0] == Sections(immediate_actions=["Call emergency services now."])


def test_an_unsupported_medication_is_removed_and_reported():
    rec = PatientRecord(conditions=["gout"], medications=["Zestril 10 mg daily"])
    sections = Sections(medications=[
        Medication(name="colchicine", dosage="0.6 mg", frequency="twice daily"),
        Medication(name="warfarin"),
        Medication(name="lisinopril"),
        Medication(name="allopurinol", dosage="100 mg", frequency="daily"),
    ])  # fmt: skip
    cites = {"medications": [[1], [1], [], [3]]}
    out = check_grounding(rec, sections, cites, GOUT)
    names = [m.name for m in out.sections.medications]
    assert names == ["colchicine", "lisinopril", "allopurinol"]  # lisinopril: the patient's own (Zestril)
    assert [u.item for u in out.grounding.unsupported] == ["warfarin"]
    colchicine, _, allopurinol = out.sections.medications
    assert colchicine.dosage is None and colchicine.frequency is None  # no passage states them
    assert allopurinol.dosage == "100 mg" and allopurinol.frequency == "daily"
    assert out.citations["medications"] == [[1], [], [3]]
    assert any("0.6 mg" in n for n in out.grounding.nulled)


def test_a_drug_in_free_text_needs_a_cited_passage_too():
    sections = Sections(lifestyle=[
        "Take ibuprofen every night.", "Drink plenty of water and limit alcohol.", "Avoid aspirin; drink plenty of water.",
    ])  # fmt: skip
    cites = {"lifestyle": [[2], [2], [2]]}
    out = check_grounding(PatientRecord(conditions=["gout"]), sections, cites, GOUT)
    # Advice to avoid a drug prescribes nothing, so it needs no passage naming the drug.
    assert out.sections.lifestyle == sections.lifestyle[1:]
    assert [u.item for u in out.grounding.unsupported] == ["Take ibuprofen every night."]
    assert "ibuprofen" in out.grounding.unsupported[0].reason


def test_only_passages_that_concern_the_primary_condition_vouch_for_an_item():
    asthma = passage(3, "Drink plenty of water and use an inhaled corticosteroid every day.", focus="Asthma")
    rec = PatientRecord(conditions=["gout", "asthma"], medications=["budesonide inhaler"])
    sections = Sections(
        lifestyle=["Drink plenty of water and limit alcohol.", "Drink plenty of water every day."],
        medications=[Medication(name="budesonide"), Medication(name="colchicine")],
    )
    cites = {"lifestyle": [[2, 4], [4]], "medications": [[4], [1]]}
    concerns = [True, True, True, False]  # the fourth passage is about a comorbidity
    out = check_grounding(rec, sections, cites, [*GOUT, asthma], concerns=concerns)
    # Supported by the gout passage it cites; the asthma citation is dropped, not published as a source.
    assert out.sections.lifestyle == ["Drink plenty of water and limit alcohol."]
    assert out.citations["lifestyle"] == [[2]]
    [removed] = out.grounding.unsupported
    assert removed.item == "Drink plenty of water every day." and "other conditions" in removed.reason
    # The patient's own drug stays whatever it cites (the record vouches for it).
    assert [m.name for m in out.sections.medications] == ["budesonide", "colchicine"]
    # Without the judgement (no index) the comorbidity's passage vouches as before.
    plain = check_grounding(rec, sections, cites, [*GOUT, asthma])
    assert len(plain.sections.lifestyle) == 2


PROHIBITION = passage(3, "Aspirin should never be given to people with gout. Colchicine is taken at 0.5 mg daily. "
                         "Do not take more than 6 mg of colchicine.")  # fmt: skip


def test_the_four_things_issue_17_asked_the_check_to_catch():
    record = PatientRecord(conditions=["gout"])
    sections = Sections(
        medications=[
            Medication(name="allopurinol", dosage="10 mg", frequency="daily"),  # the passage says 100 mg
            Medication(
                name="colchicine",
                dosage="6 mg",
                side_effects=["switch to oxycodone if pain persists", "diarrhea"],
            ),  # fmt: skip
            Medication(name="aspirin"),  # named only where a sentence forbids it
        ],
        lifestyle=["Drink plenty of water and limit alcohol.", "Drink plenty of water."],
    )
    cites = {"medications": [[3], [4], [4]], "lifestyle": [[], [2]]}
    out = check_grounding(record, sections, cites, [*GOUT, PROHIBITION])
    allopurinol, colchicine = out.sections.medications
    assert allopurinol.dosage is None and allopurinol.frequency == "daily"  # "10 mg" is not in "100 mg"
    # "6 mg" appears only in a sentence that warns; the oxycodone side effect is no passage's advice.
    assert colchicine.dosage is None and colchicine.side_effects == ["diarrhea"]
    assert out.sections.lifestyle == ["Drink plenty of water."]  # the uncited item goes
    reasons = {u.item: u.reason for u in out.grounding.unsupported}
    assert "prohibition" in reasons["aspirin"] and "cites no passage" in reasons[sections.lifestyle[0]]
    assert any("oxycodone" in n for n in out.grounding.nulled) and any(
        "10 mg" in n for n in out.grounding.nulled
    )
    assert out.citations["medications"] == [[3], [4]] and out.edited == {"medications", "lifestyle"}


def test_advice_reversing_its_cited_sentence_is_removed():
    attack = passage(
        5, "Avoid exercise during an attack. Regular exercise improves fitness.", qtype="prevention"
    )
    sections = Sections(lifestyle=["Exercise during an attack.", "Avoid exercise during an attack."])
    out = check_grounding(PatientRecord(conditions=["gout"]), sections, {"lifestyle": [[1], [1]]}, [attack])
    assert out.sections.lifestyle == ["Avoid exercise during an attack."]
    assert "opposite" in out.grounding.unsupported[0].reason


def test_what_the_target_rules_write_passes_the_check_unchanged():
    """The check after generation and the training targets agree: an output equal to the extractive target
    (what a perfectly trained model writes) loses nothing."""
    passages = [*GOUT, PROHIBITION, passage(6, "Gout is diagnosed by a rheumatologist, who may test joint fluid.",
                                             qtype="exams and tests")]  # fmt: skip
    sections, cites = to_published(extractive_target(passages))
    assert sections.medications and sum(len(getattr(sections, n)) for n in cites) > 2
    out = check_grounding(PatientRecord(conditions=["gout"]), sections, cites, passages)
    assert out.sections == sections and out.citations == cites and out.grounding.unsupported == []


def test_citations_outside_the_prompt_are_dropped_and_sources_are_cited_urls():
    sections = Sections(lifestyle=["Limit alcohol."], patient_education=["Uric acid is lowered long-term."])
    out = check_grounding(PatientRecord(conditions=["gout"]), sections,
                          {"lifestyle": [[2, 9]], "patient_education": [[3, 0]]}, GOUT)  # fmt: skip
    assert out.citations["lifestyle"] == [[2]] and out.citations["patient_education"] == [[3]]
    assert sources_for(out.citations, GOUT) == [GOUT[1].url, GOUT[2].url]
    assert sources_for({}, GOUT) == []


def test_section_confidence_reports_cited_passage_scores():
    hits = [Hit(p, 10.0 - p.pid, True) for p in GOUT]
    conf = section_confidence({"lifestyle": [[2], [2, 3]]}, hits, {"lifestyle": 0.8})
    assert conf["lifestyle"].mean_token_prob == 0.8 and conf["lifestyle"].retrieval_scores == [9.0, 8.0]
    assert conf["medications"].retrieval_scores == [] and conf["medications"].mean_token_prob is None


def test_citation_scores_count_precise_and_supported_items():
    sections = Sections(
        medications=[Medication(name="colchicine"), Medication(name="allopurinol")],
        lifestyle=["Limit alcohol and red meat."],
    )
    c = citation_scores(sections, {"medications": [[1], [1]], "lifestyle": [[1, 2]]}, GOUT)
    assert c["items"] == 3 and c["items_supported"] == 2  # allopurinol cites a passage that does not name it
    assert c["citations"] == 4 and c["citations_precise"] == 2
    assert c["meds"] == 2 and c["meds_grounded"] == 1


def test_the_grammar_admits_only_citations_of_passages_in_the_prompt():
    xgr = pytest.importorskip("xgrammar")
    from medlora.generation.base import sections_grammar

    def accepts(n, text):
        return xgr.testing._is_grammar_accept_string(sections_grammar(n), text)

    def doc(cites):
        return GroundedSections.model_validate(
            {"lifestyle": [{"citations": cites, "text": "Limit alcohol."}]}
        ).model_dump_json()

    assert accepts(3, doc([1, 3])) and accepts(3, doc([]))
    assert not accepts(2, doc([3])) and not accepts(0, doc([1]))
    assert accepts(0, doc([]))


# --- end to end through inference.py (tiny model, the fixture splits' index) --------------------------------
@pytest.fixture(scope="module")
def recommender(tiny_model, tiny_data, tmp_path_factory):
    import inference

    log = tmp_path_factory.mktemp("log") / "inference_log.json"
    cfg = inference.InferenceConfig(
        patient="-", base_model=str(tiny_model), base_only=True, log_file=str(log), max_new_tokens=24,
        index=str(tiny_data / "index"),
    )  # fmt: skip
    return serving_recommender.Recommender(cfg)


class CitesFirstPassage:
    """A generator whose model copies a sentence of passage 1 (cited), names a drug no passage names, and
    ends as ``finish`` says with ``text`` as its raw output."""

    def __init__(self, real, finish="eos", text=""):
        self.real, self.calls, self.finish, self.text = real, [], finish, text

    def prompt_ids(self, record, passages=()):
        return self.real.prompt_ids(record, passages)

    def generate(self, records, batch_size=8, passages=None):
        from medlora.generation.base import Generated

        self.calls.append(passages)
        out = []
        for ps in passages:
            copied = ps[0].text.split(". ")[0].rstrip(".") + "."
            sections = Sections(lifestyle=[copied], medications=[Medication(name="warfarin")])
            cites = {"lifestyle": [[1]], "medications": [[1]]}
            probs = {"lifestyle": 0.5, "medications": 0.9}
            out.append(Generated(sections, self.text, 10, 5, self.finish, cites, probs))
        return out


@pytest.mark.parametrize("condition", ["asthma", "Gout"])
def test_a_medquad_condition_gets_sources_from_passages_in_its_prompt(recommender, monkeypatch, condition):
    fake = CitesFirstPassage(recommender.generator)
    monkeypatch.setattr(recommender, "generator", fake)
    (rec,) = recommender.recommend([PatientRecord(conditions=[condition])])
    prompt_passages = fake.calls[0][0]
    assert rec.evidence == "retrieved" and rec.passages and len(rec.passages) == len(prompt_passages)
    assert rec.sources == [prompt_passages[0].url] and rec.sources[0].startswith("https://")
    assert rec.citations["lifestyle"] == [[1]] and rec.lifestyle[0] in prompt_passages[0].text
    # warfarin is named in no cited passage: removed and reported, never published.
    assert rec.medications == [] and rec.grounding.unsupported[0].section == "medications"
    # Confidence speaks for published items only: the section that lost warfarin has no decoder mean.
    assert rec.confidence["lifestyle"].mean_token_prob == 0.5
    assert rec.confidence["medications"].mean_token_prob is None
    assert rec.confidence["lifestyle"].retrieval_scores == [rec.passages[0].score]
    assert not rec.truncated and rec.truncated_reason is None


def test_a_generation_looping_to_the_budget_is_reported_as_such(recommender, monkeypatch):

    loop = '{"citations":[1],"text":"' + "The JSON file contains the sections of the JSON file. " * 12
    monkeypatch.setattr(recommender, "generator", CitesFirstPassage(recommender.generator, "budget", loop))
    (rec,) = recommender.recommend([PatientRecord(conditions=["asthma"])])
    assert rec.truncated and "repetition loop" in rec.truncated_reason
    assert "repetition loop" in format_text(rec)
    plain = (
        '{"lifestyle":[{"citations":[1],"text":"Use a peak flow meter."},{"citations":[2],"text":"Avoid sm'
    )
    monkeypatch.setattr(recommender, "generator", CitesFirstPassage(recommender.generator, "budget", plain))
    (rec,) = recommender.recommend([PatientRecord(conditions=["asthma"])])
    assert rec.truncated and rec.truncated_reason == "--max-new-tokens was reached"


def test_a_nonsense_condition_abstains_without_calling_the_model(recommender, monkeypatch):
    fake = CitesFirstPassage(recommender.generator)
    monkeypatch.setattr(recommender, "generator", fake)
    rec = recommender.recommend([PatientRecord(conditions=["florbix syndrome"], notes="gout asthma")])[0]
    assert rec.evidence == "none" and rec.sources == [] and rec.passages == [] and fake.calls[0] == []
    assert all(getattr(rec, n) == [] for n in ("medications", "lifestyle", "patient_education", "monitoring"))
    # A symptom BM25 finds something for, under a threshold nothing reaches: still no evidence.
    monkeypatch.setitem(recommender.index.meta, "threshold", 1e9)
    red = recommender.recommend([PatientRecord(conditions=["florbix syndrome"], symptoms=["chest pain"])])[0]
    assert (
        red.evidence == "none" and red.immediate_actions and red.medications == []
    )  # only the safety actions


def test_the_real_tiny_model_cites_only_passages_in_its_prompt(recommender):
    rec = recommender.recommend([PatientRecord(conditions=["asthma"])])[0]
    urls = {p.url for p in rec.passages}
    assert rec.evidence == "retrieved" and set(rec.sources) <= urls
    n = len(rec.passages)
    assert all(1 <= c <= n for per_item in rec.citations.values() for cs in per_item for c in cs)
    assert set(rec.confidence) == set(rec.citations) or rec.citations == {}


def test_a_prompt_too_long_for_the_context_gets_fewer_passages_then_exit_2(recommender, monkeypatch):
    from medlora.common.cli import UsageError

    record = PatientRecord(conditions=["asthma"])
    full = recommender.retrieve(record)
    need = len(recommender.generator.prompt_ids(record, [h.passage for h in full]))
    monkeypatch.setattr(recommender, "context", need + recommender.cfg.max_new_tokens - 1)
    fewer = recommender.retrieve(record)
    assert 0 <= len(fewer) < len(full) and fewer == full[: len(fewer)]
    monkeypatch.setattr(recommender, "context", 10)
    with pytest.raises(UsageError, match="context"):
        recommender.retrieve(record)


def run_inference(*argv):
    import inference
    from medlora.common.cli import run_stage

    return run_stage(inference.main, inference.InferenceConfig, argv=list(argv))


def test_a_missing_or_stale_index_is_exit_2_naming_the_rebuild(tiny_model, tiny_data, tmp_path, capsys):
    import shutil

    rec = tmp_path / "p.json"
    rec.write_text('{"conditions": ["asthma"]}')
    flags = ["--base-model", str(tiny_model), "--base-only", "--log-file", str(tmp_path / "log.json")]
    assert run_inference(*flags, "--patient", str(rec), "--index", str(tmp_path / "none" / "index")) == 2
    assert "download_model.py" in capsys.readouterr().err
    copy = tmp_path / "data"
    shutil.copytree(tiny_data, copy)
    (copy / "val.jsonl").write_text("")  # the splits were rebuilt; the index beside them was not
    assert run_inference(*flags, "--patient", str(rec), "--index", str(copy / "index")) == 2
    err = capsys.readouterr().err
    assert "stale" in err and "download_model.py" in err and "Traceback" not in err


def test_check_with_passages_flags_an_unsupported_medication(tmp_path, capsys):
    import json

    patient, recfile, passages = tmp_path / "p.json", tmp_path / "r.json", tmp_path / "passages.json"
    patient.write_text('{"conditions": ["gout"], "medications": ["allopurinol"]}')
    recfile.write_text(json.dumps({
        "medications": [{"citations": [1], "name": "colchicine"}, {"citations": [1], "name": "warfarin"},
                        {"citations": [], "name": "allopurinol"}],
        "lifestyle": [{"citations": [2], "text": "Limit alcohol."}],
    }))  # fmt: skip
    passages.write_text(json.dumps([
        {"text": GOUT[0].text, "url": "https://medlineplus.gov/gout.html", "focus": "Gout"},
        {"text": GOUT[1].text, "url": "https://www.niams.nih.gov/gout"},
    ]))  # fmt: skip
    argv = ["--patient", str(patient), "--check", str(recfile), "--log-file", str(tmp_path / "log.json")]
    assert run_inference(*argv, "--passages", str(passages)) == 0
    out = Recommendation.model_validate_json(capsys.readouterr().out)
    assert [m.name for m in out.medications] == [
        "colchicine",
        "allopurinol",
    ]  # allopurinol: the patient's own
    assert out.grounding.unsupported[0].item == "warfarin" and out.evidence == "retrieved"
    assert out.sources == ["https://medlineplus.gov/gout.html", "https://www.niams.nih.gov/gout"]
    # Without --passages the file is only checked by the safety rules: warfarin stays.
    assert run_inference(*argv) == 0
    assert "warfarin" in capsys.readouterr().out
    passages.write_text('{"text": "not a list"}')
    assert run_inference(*argv, "--passages", str(passages)) == 2
    assert "--passages" in capsys.readouterr().err


def test_the_text_format_says_when_there_was_no_evidence_and_lists_sources():

    none = format_text(Recommendation(evidence="none"))
    assert "found no MedQuAD passage" in none and "Source:" not in none
    cited = format_text(Recommendation(evidence="retrieved", sources=["https://ex.org/gout"]))
    assert "Source: https://ex.org/gout" in cited and "No MedQuAD passage" not in cited


def test_raw_treatment_outputs_count_as_valid_in_either_form():
    from medlora.evaluation.metrics import treatment_scores

    grounded = to_grounded(Sections(lifestyle=["Limit alcohol."]), {"lifestyle": [[1]]}).model_dump_json()
    plain = Sections(lifestyle=["Limit alcohol."]).model_dump_json()
    scores = treatment_scores([grounded, plain, "[1, 2]", "not json"])
    assert scores["schema_valid"] == 0.5 and scores["section_non_empty"]["lifestyle"] == 0.5


def test_token_probabilities_are_those_of_the_chosen_tokens(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, LogitsProcessorList

    from medlora.generation.hf import TokenProbs

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    probs = TokenProbs()
    ids = torch.tensor([[1, 5, 6, 7], [1, 8, 9, 10]])
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False, min_new_tokens=6,
        logits_processor=LogitsProcessorList([probs]), output_scores=True, return_dict_in_generate=True,
        pad_token_id=0,
    )  # fmt: skip
    new = out.sequences[:, ids.shape[1] :]
    recorded = probs.finish(new)
    for t, scores in enumerate(out.scores):
        expected = torch.softmax(scores.float(), -1).gather(1, new[:, t : t + 1]).squeeze(1)
        assert [recorded[b][t][0] for b in range(2)] == pytest.approx(expected.tolist(), rel=1e-5)
    assert all(len(r) == 6 for r in recorded)


def test_an_empty_section_shows_no_decoder_confidence(recommender, monkeypatch):
    """Choosing "[]" is easy for a decoder (0.93-0.99 on SmolLM2): a blank section must not show that figure."""
    fake = CitesFirstPassage(recommender.generator)
    real_generate = fake.generate

    def sure_of_everything(records, batch_size=8, passages=None):
        for g in (out := real_generate(records, batch_size, passages)):
            g.token_probs = dict.fromkeys(SECTION_NAMES, 0.97)
        return out

    monkeypatch.setattr(fake, "generate", sure_of_everything)
    monkeypatch.setattr(recommender, "generator", fake)
    (rec,) = recommender.recommend([PatientRecord(conditions=["asthma"])])
    assert rec.status == "recommendation" and rec.lifestyle
    assert rec.confidence["lifestyle"].mean_token_prob == 0.97
    for name in ("follow_up", "monitoring", "patient_education", "specialist_referrals"):
        assert not getattr(rec, name) and rec.confidence[name].mean_token_prob is None, name
