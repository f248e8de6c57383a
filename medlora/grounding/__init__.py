"""The check after generation: what a model wrote is published only where its cited passages vouch for it."""
