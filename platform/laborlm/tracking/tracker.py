"""The Tracker interface (levanter-style): the only way library code records params, metrics and artifacts.

Only rank 0 of a training job (or the driver) holds a real tracker; everything else gets ``NullTracker``.
Nothing derived from individual careers (no career text, no rows) is ever logged: params are configs,
metrics are aggregates, artifacts are models, tables and figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def log_dict(self, data: Mapping[str, Any], name: str) -> None: ...

    def finish(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Records nothing: for non-zero ranks and for runs with tracking switched off."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass
