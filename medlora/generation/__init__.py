"""Schema-constrained decoding on two backends (transformers and llama.cpp) over one grammar."""
