"""The deterministic rules after generation: red flags, allergies, interactions, duplicate therapy."""
