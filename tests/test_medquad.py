import json
import zipfile

import pytest
from conftest import MEDQUAD_FIXTURE, shared_path

from medlora import medquad
from medlora.cli import UsageError
from medlora.schemas import Sections


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


def test_treatment_target_is_extracted_not_invented():
    pairs, _ = read(MEDQUAD_FIXTURE)
    by_type = {}
    for p in pairs:
        if p.focus == "Hypertension":
            by_type.setdefault(p.qtype, []).append(p)
    sections, sources = medquad.treatment_target(by_type)
    assert sources == ["https://example.org/hypertension"]
    assert [m.name for m in sections.medications] == [
        "thiazide diuretics",
        "ACE inhibitors",
        "calcium channel blockers",
    ]
    assert all(m.dosage is None for m in sections.medications)  # no source states a dose
    assert sections.specialist_referrals[0].specialty == "cardiologist"
    assert sections.follow_up[0].timing == "every 3 months"
    source_text = " ".join(p.answer for ps in by_type.values() for p in ps)
    for text in sections.lifestyle + sections.patient_education + [m.test for m in sections.monitoring]:
        assert text in source_text
    assert sections.immediate_actions == []


def test_examples_follow_the_data_contract():
    pairs, _ = read(MEDQUAD_FIXTURE)
    rows = medquad.build_examples(medquad.deduplicate(pairs)[0])
    assert rows == sorted(rows, key=lambda r: r["id"])
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) >= {"id", "kind", "focus", "qtype", "source", "url", "messages"}
        assert [m["role"] for m in r["messages"]] == ["system", "user", "assistant"]
    treatments = [r for r in rows if r["kind"] == "treatment"]
    assert len(treatments) == 12
    for r in treatments:
        target = Sections.model_validate_json(r["messages"][2]["content"])
        assert any(getattr(target, s) for s in Sections.model_fields)
        assert json.loads(r["messages"][1]["content"])["conditions"] == [r["focus"]]


@pytest.mark.integration
def test_full_medquad_counts_and_no_leakage():
    root = shared_path("data", "medquad")
    pairs, report = read(root)
    assert len(pairs) == 16407
    assert report.malformed_files == []
    unique, dropped = medquad.deduplicate(pairs)
    split = medquad.split_by_focus(unique, 0.05, 0.10, seed=42)
    examples = {s: [medquad.qa_example(p) for p in rows] for s, rows in split.items()}
    assert medquad.leakage(examples) == {
        "foci_shared_between_splits": 0,
        "questions_shared_between_splits": 0,
    }
    assert sum(len(v) for v in split.values()) == len(unique) == 16407 - dropped
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
