"""Intents MedQuAD never answers (``medlora.retrieval.intents``): written as people ask, none from the consumer
fixture, with the near misses that MedQuAD does answer and that must pass."""

from __future__ import annotations

import pytest

from medlora.retrieval.intents import INTENTS, out_of_scope

ASKS = [
    ("cost", "how much does a colonoscopy cost"),
    ("cost", "is an ultrasound expensive if i pay out of pocket"),
    ("cost", "will my insurance cover physical therapy for my knee"),
    ("cost", "cheapest place to get an x ray"),
    ("cost", "does medicaid pay for braces"),
    ("shopping", "where can i buy a pulse oximeter"),
    ("shopping", "what brand of nicotine gum works"),
    ("shopping", "best blood pressure monitor for home use"),
    ("shopping", "which knee brace is best for running"),
    ("animal", "my cat has been vomiting since yesterday"),
    ("animal", "can i give my puppy aspirin"),
    ("animal", "my dog ate chocolate what do i do"),
    ("animal", "do i need to take my rabbit to the vet for a runny nose"),
    ("drug_dose", "how many mg of ibuprofen for a toddler"),
    ("drug_dose", "is 1000mg of paracetamol too much"),
    ("drug_dose", "how often can i take advil"),
    ("drug_use", "is it ok to mix advil and benadryl"),
    ("drug_use", "can i have a glass of wine while on metronidazole"),
    ("drug_use", "should i take my statin at night"),
    ("drug_use", "can i take my iron pills with coffee"),
    ("drug_use", "is it safe to get a tattoo while on warfarin"),
]
ANSWERED = [
    "what is medicare",
    "what is health insurance",
    "can i catch something from my cat",
    "i was bitten by a dog, do i need a rabies shot",
    "do i need antibiotics for a dog bite",
    "is it safe to take ibuprofen when pregnant",
    "my son got scratched by a kitten and now has a swollen lump",
    "what is the best treatment for gout",
    "what is the best way to lower my blood pressure",
    "what foods are best for diabetes",
    "what exercises are best for back pain",
    "best cream for eczema",
    "what are the side effects of metformin",
    "how many people get lupus",
    "how much sleep does a teenager need",
    "havent pooped in a week what can i take",
    "what medicine can i take for a cold while pregnant",
    "white coating on my tongue after a course of antibiotics",
    "who should get the flu shot every year",
    "i feel dizzy when taking a shower",
    "",
]


@pytest.mark.parametrize(("intent", "text"), ASKS)
def test_a_question_medquad_never_answers_is_recognised(intent, text):
    assert intent in INTENTS
    assert out_of_scope(text) == intent


@pytest.mark.parametrize("text", ANSWERED)
def test_what_medquad_answers_passes(text):
    assert out_of_scope(text) is None
