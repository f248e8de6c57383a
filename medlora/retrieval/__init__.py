"""The passage index (BM25) and the retrieval rules chosen on val."""
