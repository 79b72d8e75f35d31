"""The scoring configuration as an MLflow pyfunc model, usable outside the workbench.

A registered ``buddy-scoring`` version is this model logged from code
(``experiments/pyfunc_scoring.py``, no pickle) with one artifact: the ScoringConfig as JSON
(``scoring_config.json``, exactly ``ScoringConfig.to_json()``). Loading it gives the config
(``load_model(uri).unwrap_python_model().config``); ``predict`` scores a frame of intents:

    model = mlflow.pyfunc.load_model("models:/buddy-scoring@production",
                                     model_config={"db_path": "data/buddy.duckdb"})
    scores = model.predict(intents)

**Input** (the signature's inputs, ``input_schema()``): a DataFrame with the
``trade_intents`` columns: strings ``user_id``, ``symbol``, ``side``, ``timeframe``; doubles
``proposed_entry``, ``proposed_stop``, ``proposed_target``, ``proposed_size`` (prices in the
symbol's currency, size in shares); ``as_of``; optionally ``intent_id``, ``order_type``,
``exit_template`` (strings), ``proposed_risk_amount`` (double, account currency) and
``holding_horizon`` (bars). ``as_of`` and ``holding_horizon`` are typed ``Any`` in the
signature: ``as_of`` is a timezone-aware timestamp or an ISO string with a zone, and MLflow's
``datetime`` type refuses timezone-aware times. Other columns (``status``, ``created_at``,
``source``) are dropped by MLflow. ``predict`` validates each row itself, as
``Buddy.evaluate`` does: an invalid row gets its ``error``, not a failed batch.

**Output**: one row per intent, in input order: ``intent_id``, ``overall_score`` (0-100, NaN
when no module scored or the row was invalid), ``overall_severity``, ``verdict``,
``n_issues`` (the ranked issues, the report's ``n_issues``), ``config_name``,
``config_version``, ``config_alias``, ``config_hash``, ``report`` (the full Buddy Report as
JSON text, ``BuddyReport.to_json``: every issue with its evidence and mitigation, what was
not checked, the config), ``error`` (None, or why the row could not be evaluated).

**Which version**: a model loaded from the registry (``models:/buddy-scoring@production``,
also under ``mlflow models serve``) names itself ``buddy-scoring`` with the version
registered from its run and the alias that version holds (``production`` first) when the
registry at $MLFLOW_TRACKING_URI (default the project's store) can be read; otherwise the
config's own name and version, no alias.

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
                                   "verdict", "n_issues", "config_name", "config_version",
                                   "config_alias", "config_hash", "report", "error")
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
        """Read the config JSON artifact and the optional ``db_path`` model config; name the
        config after its registered version when the registry can be read."""
        config_file = Path(context.artifacts[CONFIG_ARTIFACT])
        self.config = registered_identity(ScoringConfig.from_json(config_file.read_text()),
                                          config_file.parents[1])
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
                               "overall_severity": None, "verdict": None, "n_issues": 0,
                               "config_name": config.name, "config_version": config.version,
                               "config_alias": config.alias, "config_hash": config.hash,
                               "report": None, "error": None}
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
                       verdict=report.verdict.value, n_issues=len(report.ranked_issues),
                       report=report.to_json(indent=None))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
    return frame.astype({"overall_score": "float64", "n_issues": "int64"})


def registered_identity(config: ScoringConfig, model_dir: Path) -> ScoringConfig:
    """Return ``config`` named as the registered version logged from the run of the model in
    ``model_dir`` (its MLmodel file), with the alias that version holds ('production'
    first); ``config`` unchanged when the registry cannot be read or has no such version."""
    import dataclasses
    import warnings

    from experiments.config_source import PRODUCTION, SCORING_MODEL
    from experiments.tracking import store_exists, tracking_uri

    try:
        from mlflow.models import Model

        run_id = Model.load(str(model_dir)).run_id
        if not run_id or not store_exists():
            return config
        from experiments.tracking import client_for

        client = client_for(tracking_uri())
        versions = [v for v in client.search_model_versions(f"run_id='{run_id}'")
                    if v.name == SCORING_MODEL]
        if not versions:
            return config
        version = max(versions, key=lambda v: int(v.version))
        held = client.get_model_version(SCORING_MODEL, version.version).aliases or []
    except Exception as exc:  # serving goes on with the config's own name: the report says so
        warnings.warn(f"cannot read the model registry at {tracking_uri()}: {exc}",
                      RuntimeWarning, stacklevel=2)
        return config
    alias = PRODUCTION if PRODUCTION in held else (sorted(held)[0] if held else "")
    return dataclasses.replace(config, name=SCORING_MODEL, version=str(version.version),
                               alias=alias)


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


def input_schema() -> Any:
    """Return the signature's inputs (see the module docstring)."""
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    required = [ColSpec("string", "user_id"), ColSpec("string", "symbol"),
                ColSpec("string", "side"), ColSpec("string", "timeframe"),
                ColSpec("double", "proposed_entry"), ColSpec("double", "proposed_stop"),
                ColSpec("double", "proposed_target"), ColSpec("double", "proposed_size"),
                ColSpec(AnyType(), "as_of")]
    optional = [ColSpec("string", "intent_id", required=False),
                ColSpec("string", "order_type", required=False),
                ColSpec("string", "exit_template", required=False),
                ColSpec("double", "proposed_risk_amount", required=False),
                ColSpec(AnyType(), "holding_horizon", required=False)]
    return Schema([*required, *optional])


def output_schema() -> Any:
    """Return the model signature: the inputs and OUTPUT_COLUMNS (see the module docstring)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(inputs=input_schema(), outputs=Schema([
        ColSpec("string", "intent_id"), ColSpec("double", "overall_score"),
        ColSpec("string", "overall_severity", required=False),
        ColSpec("string", "verdict", required=False), ColSpec("long", "n_issues"),
        ColSpec("string", "config_name"), ColSpec("string", "config_version"),
        ColSpec("string", "config_alias", required=False), ColSpec("string", "config_hash"),
        ColSpec("string", "report", required=False),
        ColSpec("string", "error", required=False)]))
