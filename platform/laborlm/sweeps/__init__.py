"""Ray Tune sweeps: scaling studies (data volume x model size) and ASHA searches, with power-law reports."""
