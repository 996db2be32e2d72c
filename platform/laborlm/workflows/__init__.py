"""End-to-end jobs: each takes a typed config and does one whole thing. The CLI and Ray job entrypoints call these."""
