"""The scoring configuration as an MLflow pyfunc model, usable outside the workbench.

A registered ``buddy-scoring`` version is this model logged from code
(``experiments/pyfunc_scoring.py``, no pickle) with one artifact: the ScoringConfig as JSON
(``scoring_config.json``, exactly ``ScoringConfig.to_json()``). Loading it gives the config
(``load_model(uri).unwrap_python_model().config``); ``predict`` scores a frame of intents:

    model = mlflow.pyfunc.load_model("models:/buddy-scoring@production",
                                     model_config={"db_path": "data/buddy.duckdb"})
    scores = model.predict(intents)

**Input**: a DataFrame with the ``trade_intents`` columns (``user_id``, ``symbol``, ``side``,
``timeframe``, ``proposed_entry``, ``proposed_stop``, ``proposed_target``, ``proposed_size``,
``as_of``; optionally ``intent_id``, ``holding_horizon``, ``order_type``,
``proposed_risk_amount``, ``exit_template``). ``as_of`` is a timezone-aware timestamp or an
ISO string with a zone; other columns (``status``, ``created_at``, ``source``) are ignored.
No input schema is enforced by MLflow: its enforcement rejects timezone-aware times, so
``predict`` validates each row itself, as ``Buddy.evaluate`` does.

**Output**: one row per intent, in input order: ``intent_id``, ``overall_score`` (0-100, NaN
when no module scored or the row was invalid), ``overall_severity``, ``n_issues``,
``config_name``, ``config_version``, ``config_hash``, ``error`` (None, or why the row could not
be evaluated).

**The store**: intents are evaluated point-in-time against a Trading Buddy DuckDB file, read
only (nothing is logged). Its path is the model config's ``db_path`` when set (pass
``model_config={"db_path": ...}`` to ``load_model``), else $BUDDY_DB, else
``data/buddy.duckdb``. Registered versions are logged with ``db_path`` unset, so a model never
carries one machine's path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from buddy.config import ScoringConfig

#: The artifact key and file name of the config JSON inside a logged model.
CONFIG_ARTIFACT = "scoring_config"
CONFIG_FILE = "scoring_config.json"
#: The models-from-code file logged as the model.
MODEL_CODE = Path(__file__).with_name("pyfunc_scoring.py")

OUTPUT_COLUMNS: tuple[str, ...] = ("intent_id", "overall_score", "overall_severity",
                                   "n_issues", "config_name", "config_version", "config_hash",
                                   "error")
#: Intent fields read from the input frame (the trade_intents columns a TradeIntent has).
INTENT_FIELDS: tuple[str, ...] = ("intent_id", "user_id", "symbol", "side", "timeframe",
                                  "proposed_entry", "proposed_stop", "proposed_target",
                                  "proposed_size", "proposed_risk_amount", "holding_horizon",
                                  "order_type", "exit_template", "as_of")


class ScoringModel(PythonModel):
    """A ScoringConfig that scores intents with the orchestrator (see the module docstring)."""

    def __init__(self) -> None:
        self.config: ScoringConfig | None = None
        self.db_path: str | None = None

    def load_context(self, context: Any) -> None:
        """Read the config JSON artifact and the optional ``db_path`` model config."""
        self.config = ScoringConfig.from_json(
            Path(context.artifacts[CONFIG_ARTIFACT]).read_text())
        model_config = context.model_config or {}
        self.db_path = model_config.get("db_path") or None

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Return one score row per intent of ``model_input`` (OUTPUT_COLUMNS)."""
        if self.config is None:
            raise RuntimeError("ScoringModel used before load_context")
        return score_intents(model_input, self.config, db_path=self.db_path)


def score_intents(intents: pd.DataFrame, config: ScoringConfig, *,
                  db_path: str | Path | None = None) -> pd.DataFrame:
    """Evaluate each intent under ``config`` against the store at ``db_path`` (read only;
    default $BUDDY_DB, else data/buddy.duckdb) and return OUTPUT_COLUMNS, input order."""
    from buddy.api import Buddy
    from buddy.domain import TradeIntent
    from buddy.errors import BuddyError
    from buddy.store import Store

    if not isinstance(intents, pd.DataFrame):
        raise TypeError(f"predict takes a DataFrame of intents, got {type(intents).__name__}")
    buddy = Buddy(Store(db_path, migrate=False), config)
    rows = []
    for raw in intents.to_dict("records"):
        values = _intent_values(raw)
        row: dict[str, Any] = {"intent_id": values.get("intent_id"), "overall_score": math.nan,
                               "overall_severity": None, "n_issues": 0,
                               "config_name": config.name, "config_version": config.version,
                               "config_hash": config.hash, "error": None}
        try:
            intent = TradeIntent.create(**values)
            report = buddy.evaluate_intent(intent, log=False)
        except (BuddyError, ValueError) as exc:  # an invalid row, not a failed batch
            row["error"] = str(exc)
        else:
            row.update(intent_id=intent.intent_id,
                       overall_score=(math.nan if report.overall_score is None
                                      else float(report.overall_score)),
                       overall_severity=report.overall_severity.value,
                       n_issues=len(report.all_issues))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
    return frame.astype({"overall_score": "float64", "n_issues": "int64"})


def _intent_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return the row's intent fields, blanks (None, NaN, NaT, '') left out for defaults."""
    values = {}
    for name in INTENT_FIELDS:
        value = raw.get(name)
        if value is None or (not isinstance(value, str) and pd.isna(value)) or value == "":
            continue
        if name == "holding_horizon":
            value = int(value)
        values[name] = value
    return values


def output_schema() -> Any:
    """Return the model signature: outputs described, inputs free (see the module docstring)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(outputs=Schema([
        ColSpec("string", "intent_id"), ColSpec("double", "overall_score"),
        ColSpec("string", "overall_severity", required=False), ColSpec("long", "n_issues"),
        ColSpec("string", "config_name"), ColSpec("string", "config_version"),
        ColSpec("string", "config_hash"), ColSpec("string", "error", required=False)]))
