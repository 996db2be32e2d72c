"""MLflow "models from code" entry: MLflow runs this file to build the served object when it loads a
registered LaborLM model, so loading never unpickles a Python object (``register_model`` logs this file).

Not imported by laborlm itself: ``set_model`` is a side effect meant only for MLflow's loader.
"""

from __future__ import annotations

from mlflow.models import set_model

from laborlm.serving.pyfunc import LaborLMPyfunc

set_model(LaborLMPyfunc())
