import json
import zipfile

import pytest
from conftest import MEDQUAD_FIXTURE, shared_path

from medlora.data import medquad
from medlora.common.cli import UsageError


def read(path):
    report = medquad.ReadReport()
    return medquad.read_source(path, report), report


def test_xml_reading_counts_and_normalises():
    pairs, report = read(MEDQUAD_FIXTURE)
    # 12 documents with one unanswered pair each, plus one document of two answered pairs
    assert report.records_read == len(pairs) + report.skipped_no_answer
    assert report.skipped_no_answer == 12
    assert all("  " not in p.answer and p.answer == p.answer.strip() for p in pairs)
    strep = [p for p in pairs if p.focus == "Strep Throat"]
    assert {p.qtype for p in strep} == {"information", "treatment", "exams and tests"}
    assert strep[0].url == "https://example.org/strep-throat"


def test_duplicates_dropped_and_counted():
    pairs, _ = read(MEDQUAD_FIXTURE)
    unique, dropped = medquad.deduplicate(pairs)
    assert dropped == 1  # the Asthma definition appears in both source folders
    assert len({(p.question, p.answer) for p in unique}) == len(unique)


def test_malformed_xml_is_skipped_named_and_counted(tmp_path):
    (tmp_path / "good.xml").write_bytes((MEDQUAD_FIXTURE / "1_Test_QA" / "0000001.xml").read_bytes())
    (tmp_path / "broken.xml").write_text("<Document><Focus>x</Focus><QAPairs>")
    pairs, report = read(tmp_path)
    assert report.malformed_files == ["broken.xml"]
    assert pairs and all(p.focus == "Hypertension" for p in pairs)


def test_zip_source_matches_directory(tmp_path):
    z = tmp_path / "MedQuAD-master.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(MEDQUAD_FIXTURE.rglob("*.xml")):
            zf.write(f, "MedQuAD-master/" + str(f.relative_to(MEDQUAD_FIXTURE)))
    assert read(z)[0] == read(MEDQUAD_FIXTURE)[0]


def test_csv_and_jsonl_sources(tmp_path):
    csv_path = tmp_path / "qa.csv"
    csv_path.write_text(
        'Question,Answer,qtype\n"What is (are) Gout ?","Gout is arthritis.",information\n"Q2?",,x\n'
    )
    pairs, report = read(csv_path)
    assert [(p.focus, p.qtype) for p in pairs] == [
        ("Gout", "information")
    ]  # focus from the question template
    assert report.skipped_no_answer == 1
    jl = tmp_path / "qa.jsonl"
    jl.write_text(json.dumps({"question": "Q?", "answer": "A.", "focus": "F"}) + "\n")
    assert read(jl)[0][0].focus == "F"


@pytest.mark.parametrize(
    "content, message",
    [
        ("question,text\nq,a\n", "lacks the column(s) answer"),
        ("answer\n", "lacks the column(s) question"),
        ("", "no question-answer"),
    ],
)
def test_bad_csv_is_a_usage_error(tmp_path, content, message):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read(p)


def test_missing_and_empty_sources(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        read(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no question-answer pairs"):
        read(tmp_path / "empty")


def test_split_by_focus_is_leak_free_and_deterministic():
    pairs, _ = read(MEDQUAD_FIXTURE)
    pairs, _ = medquad.deduplicate(pairs)
    a = medquad.split_by_focus(pairs, 0.2, 0.2, seed=1)
    b = medquad.split_by_focus(pairs, 0.2, 0.2, seed=1)
    assert a == b
    foci = {s: {medquad.focus_key(p.focus) for p in rows} for s, rows in a.items()}
    assert (
        not (foci["train"] & foci["val"])
        and not (foci["train"] & foci["test"])
        and not (foci["val"] & foci["test"])
    )
    assert all(a[s] for s in medquad.SPLITS)
    # "ASTHMA." and "Asthma" are one focus
    assert sum("asthma" in f for f in foci.values()) == 1
    c = medquad.split_by_focus(pairs, 0.2, 0.2, seed=2)
    assert c != a


def test_foci_sharing_a_question_stay_together():
    pairs = [
        medquad.QAPair("What causes it ?", "A.", "causes", "Alpha"),
        medquad.QAPair("What causes it ?", "B.", "causes", "Beta"),
    ] + [medquad.QAPair(f"Q{i}?", "x.", "information", f"F{i}") for i in range(20)]
    for seed in range(5):
        split = medquad.split_by_focus(pairs, 0.3, 0.3, seed)
        where = {p.focus: s for s, rows in split.items() for p in rows}
        assert where["Alpha"] == where["Beta"]


@pytest.mark.integration
def test_full_medquad_counts_and_no_leakage():
    root = shared_path("data", "medquad")
    pairs, report = read(root)
    assert len(pairs) == 16423  # 16,407 in <Document> files + 16 in the four NINDS <doc> files
    assert report.malformed_files == []
    unique, dropped = medquad.deduplicate(pairs)
    split = medquad.split_by_focus(unique, 0.05, 0.10, seed=42)
    total = sum(len(v) for v in split.values())
    dropped_templates = medquad.drop_templates_outside_train(split)
    assert 0 < dropped_templates < 150
    examples = {s: [medquad.qa_example(p) for p in rows] for s, rows in split.items()}
    assert medquad.leakage(examples) == {
        "foci_shared_between_splits": 0,
        "questions_shared_between_splits": 0,
        "answers_shared_between_splits": 0,
    }
    assert total == len(unique) == 16423 - dropped
    assert sum(len(v) for v in split.values()) == total - dropped_templates
    assert 0.08 < len(split["test"]) / len(unique) < 0.12


def test_hub_dataset_columns_are_read():
    import datasets

    ds = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {
                    "document_id": ["1", "2"],
                    "document_source": ["GARD", "GARD"],
                    "document_url": ["u1", "u2"],
                    "question_focus": ["Gout", "Gout"],
                    "question_type": ["treatment", "information"],
                    "question": ["What are the treatments for Gout ?", "What is (are) Gout ?"],
                    "answer": ["Colchicine helps.", None],
                }
            )
        }
    )
    report = medquad.ReadReport()
    pairs = medquad.read_hf(ds, report)
    assert pairs == [
        medquad.QAPair(
            "What are the treatments for Gout ?", "Colchicine helps.", "treatment", "Gout", "GARD", "u1"
        )
    ]
    assert report.skipped_no_answer == 1


NINDS_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<doc docid="0000007" corpus="NINDS" url="http://www.ninds.nih.gov/disorders/holmes_adie/holmes_adie.htm">
<doctitle-focus>Holmes-Adie</doctitle-focus>
<qaPairs>
<pair pid="1"><question qid="0000007-1" qtype="information">what is holmes-adie syndrome ?</question>
<answer>Holmes-Adie syndrome is a neurological disorder affecting the pupil of the eye.</answer></pair>
<pair pid="2"><question qid="0000007-2" qtype="treatment">is there any treatment for Holmes-Adie ?</question>
<answer></answer></pair>
</qaPairs>
</doc>
"""


def test_ninds_doc_pair_layout_is_read(tmp_path):
    (tmp_path / "0000007.xml").write_text(NINDS_DOC)
    pairs, report = read(tmp_path)
    assert report.records_read == 2 and report.skipped_no_answer == 1
    assert pairs == [
        medquad.QAPair(
            "what is holmes-adie syndrome ?",
            "Holmes-Adie syndrome is a neurological disorder affecting the pupil of the eye.",
            "information",
            "Holmes-Adie",
            "NINDS",
            "http://www.ninds.nih.gov/disorders/holmes_adie/holmes_adie.htm",
        )
    ]


@pytest.mark.parametrize(
    "a, b",
    [
        ("Parkinson's Disease", "Parkinson disease"),
        ("Alzheimer\u2019s disease", "Alzheimer Disease"),
        ("Sj\u00f6gren syndrome", "Sjogren's Syndrome"),
        ("Heart Valve Diseases", "heart valve disease"),
        ("Hartnup disorder", "Hartnup Disease"),
        ("ASTHMA.", "Asthma"),
    ],
)
def test_focus_key_joins_spelling_variants(a, b):
    assert medquad.focus_key(a) == medquad.focus_key(b)


def test_focus_key_keeps_distinct_foci_apart_and_never_empties():
    assert medquad.focus_key("Down syndrome") != medquad.focus_key("Turner syndrome")
    assert medquad.focus_key("Syndrome") == "syndrome"


def test_template_answers_do_not_join_foci_and_stay_in_train_only():
    template = "This condition is inherited in an autosomal dominant pattern."
    pairs = [medquad.QAPair(f"Is F{i} inherited ?", template, "inheritance", f"F{i}") for i in range(12)]
    pairs += [medquad.QAPair(f"What is F{i} ?", f"F{i} is rare.", "information", f"F{i}") for i in range(12)]
    split = medquad.split_by_focus(pairs, 0.25, 0.25, seed=0)
    assert all(split[s] for s in medquad.SPLITS), "a template does not glue every focus into one group"
    dropped = medquad.drop_templates_outside_train(split)
    assert dropped > 0
    assert all(p.answer != template for s in ("val", "test") for p in split[s])
    assert any(p.answer == template for p in split["train"])


def test_foci_sharing_an_answer_stay_together():
    template = "This condition is inherited in an autosomal recessive pattern."
    pairs = [
        medquad.QAPair("Is Alpha inherited ?", template, "inheritance", "Alpha"),
        medquad.QAPair("Is Beta inherited ?", template, "inheritance", "Beta"),
    ] + [medquad.QAPair(f"Q{i}?", f"x{i}.", "information", f"F{i}") for i in range(20)]
    for seed in range(5):
        split = medquad.split_by_focus(pairs, 0.3, 0.3, seed)
        where = {p.focus: s for s, rows in split.items() for p in rows}
        assert where["Alpha"] == where["Beta"]
