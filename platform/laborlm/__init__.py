"""LaborLM: next-occupation prediction with transformers and language models (CAREER, LABOR-LLM)."""

__version__ = "0.1.0"
