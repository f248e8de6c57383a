"""Recommendations for a record (CLI and HTTP), the audit of a given output, the inference log."""
