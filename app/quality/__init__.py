"""Completion quality: metrics, classical baselines and the `evaluate` command that compares them with the search."""
