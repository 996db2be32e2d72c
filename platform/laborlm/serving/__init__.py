"""Serving saved models: careers as JSON (``careers``), the MLflow pyfunc wrapper (``pyfunc``) and the
model registry with ``candidate`` / ``champion`` aliases (``registry``)."""
