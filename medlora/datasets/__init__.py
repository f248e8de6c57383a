"""The training examples: synthetic patients, treatment targets, grounded (RAFT) examples."""
