"""Neural occupation models (CAREER and the neural baselines) and the shared two-stage probability math."""
