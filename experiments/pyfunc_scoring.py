"""Models-from-code entry of ``buddy-scoring``: MLflow logs this file as the model.

Loading a version runs this file, which names the model object; the config itself comes from
the version's ``scoring_config.json`` artifact (see ``experiments.scoring_model``).
"""

from mlflow.models import set_model

from experiments.scoring_model import ScoringModel

set_model(ScoringModel())
