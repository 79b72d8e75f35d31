"""Per-user playbook models: the schema-2 artifact, the gate (stability, later-holdout
coverage), the registry path and the production source the strategy piece reads."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from buddy.errors import ConfigError
from buddy.strategy.playbooks import PlaybookFit, PlaybookRecipe, fit_playbooks
from experiments.gate import FIRST, PASSED, REFUSED
from experiments.playbooks import (
    PLAYBOOK_GATE,
    HoldoutCoverage,
    PlaybookGate,
    PlaybookVersion,
    artifact_dict,
    fit_from_artifact,
    gate_decision,
    later_holdout,
    playbook_model_name,
)

FEATURES = ("side_sign", "stop_atr", "reward_risk", "close_ema20_atr", "bb_z", "high20_atr",
            "trend_atr", "rsi_14")
#: Three setups of a synthetic trader (feature centres and spreads in the features' units).
SETUPS = {"pullback_long": (100, (1, 1.5, 2.0, 0.2, 0.3, -1.5, 1.2, 55)),
          "breakout_long": (60, (1, 1.0, 2.0, 1.5, 1.8, 0.3, 1.0, 68)),
          "mean_reversion_short": (40, (-1, 1.5, 1.5, 2.0, 2.3, 0.1, 0.3, 75))}
SPREAD = np.array([0, 0.05, 0.05, 0.3, 0.3, 0.4, 0.4, 4.0])
#: A recipe that drops the smallest setup: stable, but it covers none of the later holdout.
NARROW = PlaybookRecipe(min_cluster_size=35)


def trader(seed: int = 0) -> pd.DataFrame:
    """Return entry facts of 200 closed trades of three setups, interleaved in time (one
    entry every 3 days, each closed 2 days later)."""
    rng = np.random.default_rng(seed)
    rows = [{**dict(zip(FEATURES, np.array(centre) + rng.normal(0, 1, 8) * SPREAD,
                        strict=True)), "setup": setup}
            for setup, (n, centre) in SETUPS.items() for _ in range(n)]
    facts = pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    facts["trade_id"] = [f"T{i:04d}" for i in range(len(facts))]
    facts["open_ts"] = pd.Timestamp("2010-01-01", tz="UTC") + pd.to_timedelta(
        np.arange(len(facts)) * 3, unit="D")
    facts["close_ts"] = facts["open_ts"] + pd.Timedelta(days=2)
    facts["pnl_r"] = rng.normal(0.1, 1.0, len(facts))
    facts["win"] = facts["pnl_r"] > 0
    return facts


def fit_of(facts: pd.DataFrame, recipe: PlaybookRecipe | None = None, user: str = "alice"
           ) -> PlaybookFit:
    return fit_playbooks(facts, recipe or PlaybookRecipe(), user_id=user,
                         fitted_until=facts["close_ts"].max().to_pydatetime())


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    return trader()


@pytest.fixture(scope="module")
def fit(facts: pd.DataFrame) -> PlaybookFit:
    return fit_of(facts)


def test_the_artifact_is_the_fit_and_other_schemas_are_refused(fit: PlaybookFit,
                                                               facts: pd.DataFrame) -> None:
    artifact = json.loads(json.dumps(artifact_dict(fit)))
    again = fit_from_artifact(artifact)
    assert artifact["schema_version"] == 2 and again.key == fit.key
    pd.testing.assert_frame_equal(again.place(facts.head(20)), fit.place(facts.head(20)))
    with pytest.raises(ConfigError, match=r"playbooks\.schema_version"):
        fit_from_artifact({**artifact, "schema_version": 1})
    with pytest.raises(ConfigError, match=r"playbooks\.key"):
        fit_from_artifact({**artifact, "key": "0" * 16})
    assert playbook_model_name("bob smith/1") == "buddy-playbooks-bob_smith_1"


def test_the_holdout_is_later_than_every_trade_the_recipe_is_refit_on(
        facts: pd.DataFrame) -> None:
    end = facts["close_ts"].max()
    holdout = later_holdout(facts, share=0.3, end=end)
    assert holdout is not None
    assert len(holdout.holdout_facts) == 60 and len(holdout.fit_facts) == 140
    assert holdout.fit_facts["close_ts"].max() < holdout.start
    assert holdout.holdout_facts["open_ts"].min() == holdout.start
    # trades closed after the fit's end are in neither part
    early = later_holdout(facts, share=0.3, end=facts["close_ts"].iloc[99])
    assert early is not None and early.holdout_facts["close_ts"].max() <= facts[
        "close_ts"].iloc[99]
    assert len(early.fit_facts) + len(early.holdout_facts) <= 100


def test_the_gate_asks_stability_first_then_no_worse_holdout_coverage(
        fit: PlaybookFit, facts: pd.DataFrame) -> None:
    first = gate_decision(PLAYBOOK_GATE, name="m", version="1", challenger=fit,
                          production=None, scorer=HoldoutCoverage(None, facts=facts))
    assert first.outcome == FIRST and first.challenger_metrics["stability"] >= 0.75
    assert first.challenger_metrics["n"] == 60 and first.challenger_metrics["coverage"] > 0.9
    assert first.gate.window.start == later_holdout(facts, share=0.3, end=facts[
        "close_ts"].max()).start.isoformat()

    # no published playbook: no stability, refused even as the first version
    rng = np.random.default_rng(1)
    noise = facts.copy()
    noise.loc[:, list(FEATURES)] = rng.uniform(-50, 50, (len(noise), len(FEATURES)))
    unstable = fit_of(noise)
    assert not unstable.playbooks
    refused = gate_decision(PLAYBOOK_GATE, name="m", version="1", challenger=unstable,
                            production=None, scorer=HoldoutCoverage(None, facts=noise))
    assert refused.outcome == REFUSED and math.isnan(refused.checks[0].challenger)

    production = PlaybookVersion(fit=fit, name="m", version="1")
    narrow = fit_of(facts, NARROW)
    assert narrow.mean_stability >= 0.75
    worse = gate_decision(PLAYBOOK_GATE, name="m", version="2", challenger=narrow,
                          production=production, scorer=HoldoutCoverage(None, facts=facts))
    assert worse.outcome == REFUSED and "coverage" in worse.reason
    assert worse.production_metrics["coverage"] - worse.challenger_metrics["coverage"] > 0.05

    same_recipe = fit_of(trader(seed=2))
    ok = gate_decision(PLAYBOOK_GATE, name="m", version="3", challenger=same_recipe,
                       production=production, scorer=HoldoutCoverage(None, facts=facts))
    assert ok.outcome == PASSED, ok.reason
    strict = gate_decision(PlaybookGate(min_holdout=61), name="m", version="3",
                           challenger=same_recipe, production=production,
                           scorer=HoldoutCoverage(None, facts=facts))
    assert strict.outcome == REFUSED and "not enough evidence" in strict.reason


def test_publish_registers_gates_promotes_and_serves_production(
        tracking_store: str, fit: PlaybookFit, facts: pd.DataFrame) -> None:
    import mlflow

    from buddy.strategy.sources import production_playbooks, publish_playbooks
    from experiments.playbook_source import publish

    assert production_playbooks("alice") is None
    lines = publish(None, fit, facts=facts)
    text = "\n".join(lines)
    assert "registered v1" in text and "FIRST" in text and "(none) -> v1" in text
    coverage = re.search(r"holdout coverage (\d\.\d\d) \[(\d\.\d\d), (\d\.\d\d)\]", text)
    assert coverage is not None and "n=60" in text, text
    low, value, high = (float(coverage[2]), float(coverage[1]), float(coverage[3]))
    assert value > 0.9 and low <= value <= high  # the synthetic setups are well separated

    served = production_playbooks("alice")  # through the installed entry point
    assert served is not None and served.key == fit.key
    model = mlflow.pyfunc.load_model("models:/buddy-playbooks-alice@production")
    assert [c.name for c in model.metadata.get_input_schema().inputs] == list(FEATURES)
    out = model.predict(facts.loc[:9, list(FEATURES)])
    expected = fit.place(facts.loc[:9]).reset_index(drop=True)
    assert out["playbook_number"].tolist() == expected["playbook_number"].tolist()
    np.testing.assert_allclose(out["p_value"], expected["p_value"])

    assert "already holds production" in publish_playbooks(None, fit)[0]  # type: ignore[arg-type]
    refused = "\n".join(publish(None, fit_of(facts, NARROW), facts=facts))
    assert "registered v2" in refused and "REFUSED" in refused and "v1 -> v1" in refused
    assert production_playbooks("alice").key == fit.key  # type: ignore[union-attr]
