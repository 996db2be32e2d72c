"""The MLflow pyfunc model that serves any saved LaborLM model: careers as JSON in, top-k occupations out.

    model = mlflow.pyfunc.load_model("models:/psid-llm@champion")
    model.predict([{"covariates": {"gender": "female"}, "history": [{"year": 2001, "occupation": "229"}]}],
                  params={"top_k": 3})
    # [{"person_id": "0", "next_year": 2002, "top_k": [{"code": "229", "title": "...", "probability": 0.61}, ...]}]

The MLflow model holds the saved model folder as its one artifact (``laborlm_model``) and loads it with
``laborlm.models.registry.load_model``, so an LLM, a CAREER / neural model or a Markov chain is served the
same way: all implement ``NextOccupationModel``. The request format is ``laborlm.serving.careers``'s.

Why the signature is loose inside ``covariates`` / ``history`` (``Any``): MLflow enforces the signature
before ``predict`` runs, and its messages name neither the career nor the field; worse, a strict ``long``
``next_year`` rejects a valid request where only some careers give one (pandas turns the gaps into NaN).
The signature therefore fixes the columns and the ``top_k`` param; the full contract is the JSON Schema in
the model's metadata (``laborlm_career_schema``) and is checked by ``parse_careers``, whose
``CareerInputError`` becomes an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``: HTTP 400 from
``mlflow models serve``, with the career index and field in the message.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel, PythonModelContext
from mlflow.types.schema import (
    AnyType,
    Array,
    ColSpec,
    DataType,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
)

from laborlm.serving.careers import DEFAULT_TOP_K, CareerInputError, predict_careers

logger = logging.getLogger(__name__)

ARTIFACT_KEY = "laborlm_model"  # the saved model folder inside the MLflow model's artifacts


def model_signature() -> ModelSignature:
    """Columns of a career record, the answer's shape, and ``top_k`` (without a params schema MLflow
    silently drops request params)."""
    anything = AnyType()  # type: ignore[no-untyped-call]
    inputs = Schema(
        [
            ColSpec(DataType.string, "person_id", required=False),
            ColSpec(DataType.string, "source", required=False),
            ColSpec(anything, "covariates", required=False),  # {gender?, race?, region?, birth_year?}
            ColSpec(anything, "history"),  # [{year, occupation, education?}, ...]
            ColSpec(anything, "next_year", required=False),  # int; default last history year + 1
            ColSpec(
                DataType.string, "education", required=False
            ),  # education in next_year; default last known
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.string, "person_id"),
            ColSpec(DataType.long, "next_year"),
            ColSpec(
                Array(
                    Object(
                        [
                            Property("code", DataType.string),
                            Property("title", DataType.string),
                            Property("probability", DataType.double),
                        ]
                    )
                ),
                "top_k",
            ),
        ]
    )
    params = ParamSchema([ParamSpec("top_k", DataType.long, DEFAULT_TOP_K)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _records(model_input: Any) -> list[Any]:
    """Careers as a list of dicts from what MLflow hands over (a DataFrame after signature enforcement;
    a list or a single dict when called without one)."""
    if isinstance(model_input, pd.DataFrame):
        return list(model_input.to_dict(orient="records"))
    if isinstance(model_input, dict):
        return [model_input]
    return list(model_input)


class LaborLMPyfunc(PythonModel):
    """Loads the saved model once per process (``load_context``) and answers ``predict`` with top-k."""

    def load_context(self, context: PythonModelContext) -> None:
        from laborlm.models.registry import load_model

        path = Path(context.artifacts[ARTIFACT_KEY])
        self.model = load_model(path)
        logger.info("serving %s (%d occupations) from %s", self.model.name, len(self.model.taxonomy), path)

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        top_k = (params or {}).get("top_k", DEFAULT_TOP_K)
        try:
            return predict_careers(self.model, _records(model_input), top_k)
        except CareerInputError as exc:
            # INVALID_PARAMETER_VALUE is what the scoring server maps to HTTP 400.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
