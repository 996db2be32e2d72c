"""Scoring: one metric module for every model (baselines, CAREER, language models, the oracle)."""
