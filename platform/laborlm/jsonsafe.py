"""Strict JSON for everything LaborLM writes: NaN and infinities become ``null``, never ``NaN`` / ``Infinity``.

    text = jsonsafe.dumps({"median_year": float("nan")})     # '{"median_year": null}'

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which are not JSON: ``jq``, JavaScript and most
parsers reject the whole document. A number that is undefined (the median year of an empty panel, the stay
AUC of a split without stays) is written as ``null``, and ``allow_nan=False`` makes any value that slips past
the conversion an error here instead of an invalid file downstream.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (in nested dicts, lists and tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:  # numpy scalars
        return finite(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``finite(value)`` with ``allow_nan=False`` (other keyword arguments pass through)."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)
