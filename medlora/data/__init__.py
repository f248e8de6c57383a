"""MedQuAD and the prompt format: reading and splitting the collection, passages, prompts, chat templates."""
