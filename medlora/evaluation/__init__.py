"""The evaluation: multiple choice, answers, treatment and grounding figures, the bootstrap, the rows table."""
