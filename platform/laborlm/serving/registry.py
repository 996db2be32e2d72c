"""The MLflow model registry for LaborLM models: register a saved model folder, promote it, resolve aliases.

    version = register_model("runs/quickstart/models/llm", "psid-llm", "sqlite:///runs/quickstart/mlflow.db")
    promote("psid-llm", version, tracking_uri="sqlite:///runs/quickstart/mlflow.db")   # alias champion
    model = load_predictor("models:/psid-llm@champion", tracking_uri=...)              # NextOccupationModel

Registered models use **aliases** (``candidate`` for a new version, ``champion`` for the one in use), never
stages, which MLflow has deprecated since 2.9. Every version is a pyfunc model (``laborlm.serving.pyfunc``)
whose only artifact is the saved model folder, so any saved LaborLM model (LLM, CAREER / neural, Markov)
registers the same way and ``mlflow models serve -m models:/NAME@champion`` serves it.

The pip requirements are written explicitly (laborlm and its runtime dependencies, pinned to the versions
installed here): MLflow's inference adds torchvision for any torch import and fails where it is absent.
laborlm itself is not on PyPI, so serve with ``--env-manager local`` from an environment where it is
installed, or install its wheel into the serving image.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from laborlm import __version__
from laborlm.errors import CheckpointError, LaborLMError
from laborlm.models.registry import saved_model_kind
from laborlm.tracking.mlflow_tracker import mlflow_uri

logger = logging.getLogger(__name__)

CANDIDATE = "candidate"  # a freshly registered version
CHAMPION = "champion"  # the version in use: `models:/NAME@champion`
DEFAULT_EXPERIMENT = "laborlm"
_MODEL_CODE = Path(__file__).with_name("model_code.py")  # a path, never imported here (it calls set_model)
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str | None
    source: str  # where the version's files are (the logged model's artifact URI)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def pip_requirements() -> list[str]:
    """``laborlm==<version>`` plus laborlm's runtime dependencies pinned to the installed versions."""
    from importlib.metadata import PackageNotFoundError, requires, version

    from packaging.requirements import Requirement

    pins = [f"laborlm=={__version__}"]
    try:
        declared = requires("laborlm") or []
    except PackageNotFoundError:  # running from a source tree without installing: pin laborlm only
        return pins
    for line in declared:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # dev extras (pytest, ruff, ...) are not needed to serve
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        try:
            pins.append(f"{req.name}{extras}=={version(req.name)}")
        except PackageNotFoundError:
            pins.append(str(req))
    return pins


def _experiment_id(client: Any, tracking_uri: str | None, experiment: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        # Keep artifacts beside the database (as MlflowTracker does), not in the current directory.
        db = Path(urlparse(tracking_uri).path)
        location = (db.parent / "mlartifacts").resolve().as_uri()
    return str(client.create_experiment(experiment, artifact_location=location))


def register_model(
    saved_model_dir: str | Path,
    name: str,
    tracking_uri: str | None,
    alias: str | None = CANDIDATE,
    run_id: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
) -> str:
    """Log a saved model folder as a pyfunc model, register it as a new version of ``name``, set ``alias``.

    Args:
        saved_model_dir: a folder written by any LaborLM model's ``save`` (LLM, neural, Markov).
        name: the registered model's name.
        tracking_uri: the MLflow store (``sqlite:///.../mlflow.db`` or ``http://...``).
        alias: set on the new version (``candidate`` by default; None sets none).
        run_id: log into this existing run (the training or evaluation run that produced the model), so
            the version links to its metrics; default a new run ``register-<name>`` in ``experiment``.

    Returns:
        The new version number, as MLflow prints it (``"1"``).

    Raises:
        CheckpointError: the folder holds no saved LaborLM model.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    from laborlm.serving.careers import CAREER_JSON_SCHEMA
    from laborlm.serving.pyfunc import ARTIFACT_KEY, model_signature

    path = Path(saved_model_dir).resolve()
    kind = saved_model_kind(path)  # fails fast, before any run is created, on a folder that is not a model
    with mlflow_uri(tracking_uri):
        client = MlflowClient()
        if run_id is None:
            exp_id = _experiment_id(client, tracking_uri, experiment)
            run_id = client.create_run(
                exp_id, run_name=f"register-{name}", tags={"laborlm.kind": kind}
            ).info.run_id
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(_MODEL_CODE),  # models from code: loading unpickles nothing
                artifacts={ARTIFACT_KEY: str(path)},
                pip_requirements=pip_requirements(),
                signature=model_signature(),
                metadata={
                    "laborlm_kind": kind,
                    "laborlm_version": __version__,
                    "laborlm_career_schema": CAREER_JSON_SCHEMA,
                },
                registered_model_name=name,
            )
        version = str(info.registered_model_version)
        client.set_model_version_tag(name, version, "laborlm.kind", kind)
        if alias:
            client.set_registered_model_alias(name, alias, version)
    logger.info(
        "registered %s version %s (%s, run %s)%s",
        name,
        version,
        kind,
        run_id,
        f" as @{alias}" if alias else "",
    )
    return version


def promote(name: str, version: str | int, alias: str = CHAMPION, tracking_uri: str | None = None) -> None:
    """Point ``alias`` (``champion`` by default) at ``version``; the alias moves off any previous version."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        client.get_model_version(name, str(version))
        client.set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        raise LaborLMError(f"cannot promote {name} version {version} to @{alias}: {exc.message}") from exc
    logger.info("%s@%s -> version %s", name, alias, version)


def resolve(uri: str, tracking_uri: str | None = None) -> RegisteredVersion:
    """The version behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

    Raises:
        LaborLMError: not such a URI, or no such model, alias or version.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    m = _MODELS_URI.match(uri)
    if m is None:
        raise LaborLMError(f"{uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    tracking_uri = _existing_store(uri, tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if m["alias"]:
            mv = client.get_model_version_by_alias(m["name"], m["alias"])
        else:
            mv = client.get_model_version(m["name"], m["version"])
    except MlflowException as exc:
        raise LaborLMError(f"{uri}: {exc.message}") from exc
    return RegisteredVersion(mv.name, str(mv.version), mv.run_id, str(mv.source))


def _existing_store(uri: str, tracking_uri: str | None) -> str:
    """The store to look ``uri`` up in (the flag, else ``MLFLOW_TRACKING_URI``), checked before MLflow sees it:
    MLflow's default would create ``./mlflow.db`` in the working folder, a SQLite URI an empty database where
    none was, and a server that is down would be retried for minutes."""
    from laborlm.tracking.mlflow_tracker import answers

    store = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not store:
        raise LaborLMError(
            f"{uri}: no MLflow tracking URI: pass --tracking-uri (http://HOST:PORT or "
            "sqlite:///PATH/mlflow.db) or set MLFLOW_TRACKING_URI"
        )
    db = store.removeprefix("sqlite:///").split("?")[0] if store.startswith("sqlite:///") else None
    if db is not None and not Path(db).is_file():
        raise LaborLMError(f"{uri}: no MLflow database at {db} (tracking URI {store})")
    if not answers(store):
        raise LaborLMError(f"{uri}: the MLflow tracking server at {store} does not answer")
    return store


def load_predictor(model: str, tracking_uri: str | None = None) -> Any:
    """A ``NextOccupationModel`` from a registry URI (``models:/NAME@champion``) or a saved model folder.

    A registry URI goes through ``mlflow.pyfunc.load_model`` (which fetches the artifacts), then the pyfunc
    wrapper is unwrapped, so ``laborlm predict`` validates and scores with the same code as the server.
    """
    if not model.startswith("models:/"):
        from laborlm.models.registry import load_model

        return load_model(Path(model))
    import mlflow.pyfunc

    tracking_uri = _existing_store(model, tracking_uri)
    version = resolve(model, tracking_uri)  # a clear error for an unknown name or alias
    logger.info("loading %s (version %s)", model, version.version)
    with mlflow_uri(tracking_uri):
        python_model = mlflow.pyfunc.load_model(model).unwrap_python_model()
    loaded = getattr(python_model, "model", None)
    if loaded is None:
        raise CheckpointError(f"{model}: not a LaborLM pyfunc model ({type(python_model).__name__})")
    return loaded
