"""Reading clinical text without a model: drug normalisation and tables, conditions, spelling, negation, claims."""
