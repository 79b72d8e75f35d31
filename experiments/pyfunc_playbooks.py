"""Models-from-code entry of ``buddy-playbooks-<user>``: MLflow logs this file as the model.

The playbooks themselves come from the version's ``playbooks.json`` artifact (see
``experiments.playbooks``).
"""

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from experiments.playbooks import ARTIFACT_KEY, PlaybookModel


class PlaybookPyfunc(PythonModel):
    """Assign setups (a frame with the model's feature columns) to the user's playbooks."""

    def __init__(self) -> None:
        self.playbooks: PlaybookModel | None = None

    def load_context(self, context: Any) -> None:
        """Read the playbooks.json artifact."""
        self.playbooks = PlaybookModel.from_json(
            Path(context.artifacts[ARTIFACT_KEY]).read_text())

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Return ``playbook`` and ``distance`` per row."""
        if self.playbooks is None:
            raise RuntimeError("PlaybookPyfunc used before load_context")
        return self.playbooks.assign(model_input).reset_index(drop=True)


set_model(PlaybookPyfunc())
