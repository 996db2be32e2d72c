"""Clusters: a real local Ray cluster + MLflow server (``local``), and Ray job submission (``submit``)."""
