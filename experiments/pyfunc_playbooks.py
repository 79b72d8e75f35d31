"""Models-from-code entry of ``buddy-playbooks-<user>``: MLflow logs this file as the model.

The playbooks themselves come from the version's ``playbooks.json`` artifact (schema 2: a
``PlaybookFit.to_dict()``, see ``experiments.playbooks``); loading refits hdbscan on the
stored vectors and verifies the labels, so nothing is pickled.
"""

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from buddy.strategy.playbooks import PlaybookFit
from experiments.playbooks import ARTIFACT_KEY, fit_from_artifact


class PlaybookPyfunc(PythonModel):
    """Place entry facts (a frame with the recipe's feature columns) in the user's playbooks."""

    def __init__(self) -> None:
        self.fit: PlaybookFit | None = None

    def load_context(self, context: Any) -> None:
        """Read the playbooks.json artifact and rebuild the fit."""
        self.fit = fit_from_artifact(json.loads(
            Path(context.artifacts[ARTIFACT_KEY]).read_text()))

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Return ``PlaybookFit.place`` columns per row (playbook, membership, novelty, p)."""
        if self.fit is None:
            raise RuntimeError("PlaybookPyfunc used before load_context")
        return self.fit.place(model_input).reset_index(drop=True)


set_model(PlaybookPyfunc())
