"""Experiment tracking: a narrow Tracker interface with MLflow and no-op implementations, and metric names."""
