"""GGUF export for llama.cpp and Ollama, and the model card."""
