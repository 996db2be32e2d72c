"""Random canonical panels for the benchmarks: one definition, in the package (``random_panel``)."""

from laborlm.workflows.benchmark_hardware import random_panel

__all__ = ["random_panel"]
