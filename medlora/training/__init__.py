"""LoRA training: tokenised splits and their cache, the Trainer run, checkpoints."""
