"""``buddy replay flags``: each code's firing rate over a real run with its n, Wilson interval,
module and kind; ``flag_rates`` on its own; the all-data corpus it is measured on."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.store import Store
from replay.cli import replay
from replay.engine import issues_frame
from replay.flags import FLAG_COLUMNS, ORCHESTRATOR_KINDS, declared_codes, flag_rates
from replay.intents import GENERATORS, corpus_intents, corpus_series

from .conftest import Reference


def _invoke(store: Store, *args: str) -> str:
    result = CliRunner().invoke(replay, ["--db", str(store.path), *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_flags_prints_each_codes_rate_over_a_real_run(subset_reference: Reference) -> None:
    store, run_id = subset_reference.store, subset_reference.run_id
    n = len(subset_reference.intents)
    payload = json.loads(_invoke(store, "flags", run_id, "--json"))
    assert payload["run_id"] == run_id and payload["n_intents"] == n
    table = pd.DataFrame(payload["codes"])
    assert tuple(table.columns) == FLAG_COLUMNS
    # every fired code counts the distinct intents it fired on, read from the stored issues
    issues = issues_frame(store, run_id)
    expected = issues.groupby(["module", "code"])["intent_id"].nunique()
    fired = table[table["fired"] > 0].set_index(["module", "code"])["fired"]
    assert fired.sort_index().to_dict() == expected.sort_index().to_dict()
    assert len(fired) >= 3
    # codes that never fired are listed at 0, with their declared kind
    declared = declared_codes()
    assert len(table) >= len(declared) and (table["n"] == n).all()
    kinds = declared.set_index(["module", "code"])["kind"]
    listed = table.set_index(["module", "code"])
    for key, kind in kinds.items():
        assert listed.loc[key, "kind"] == kind
    # the run's modules skipped for missing pieces (it has only the account) are not_checked
    missing = table[table["code"] == "CONTEXT_MISSING"]
    assert len(missing) >= 1 and (missing["kind"] == "not_checked").all()
    assert "undeclared" not in set(table["kind"])
    assert (table["rate"] == table["fired"] / n).all()
    assert (table["ci_low"] <= table["rate"]).all() and (table["rate"] <= table["ci_high"]).all()
    assert list(table["rate"]) == sorted(table["rate"], reverse=True)
    text = _invoke(store, "flags", run_id)
    lines = text.splitlines()
    assert f"{n} intents" in lines[0]
    # ranked warnings in their own table, highest first; not-checked inputs after them
    ranked = table[table["kind"] != "not_checked"]
    assert lines[2].startswith("issues") and ranked.iloc[0]["code"] in lines[4]
    unchecked = lines.index(next(x for x in lines if x.startswith("not checked")))
    assert all(c in "\n".join(lines[unchecked:])
               for c in table.loc[table["kind"] == "not_checked", "code"])
    assert not any(c in "\n".join(lines[unchecked:]) for c in ranked["code"]
                   if c != "CONTEXT_MISSING")


def test_flags_of_an_unknown_run_fails_with_its_name(subset_reference: Reference) -> None:
    result = CliRunner().invoke(replay, ["--db", str(subset_reference.store.path), "flags",
                                         "rp_nosuchrun"])
    assert result.exit_code == 2 and "rp_nosuchrun" in result.output


def test_flag_rates_gives_wilson_intervals_and_refuses_bad_input() -> None:
    issues = pd.DataFrame({"intent_id": ["a", "a", "b", "c", "d", "e"],
                           "module": ["m"] * 6,
                           "code": ["X", "X", "X", "X", "X", "Y"]})
    kinds = pd.DataFrame({"module": ["m", "m", "m"], "code": ["X", "Y", "Z"],
                          "kind": ["issue", "not_checked", "issue"]})
    table = flag_rates(issues, 10, kinds).set_index("code")
    # X fired on 4 intents of 10 (twice on 'a': counted once); Z on none
    assert table.loc["X", "fired"] == 4 and table.loc["Z", "fired"] == 0
    assert table.loc["Y", "kind"] == "not_checked"
    # the Wilson score interval's textbook values: 0/10 -> 0-0.2775, 4/10 -> 0.1682-0.6873
    assert table.loc["Z", "ci_low"] == 0.0 and not np.signbit(table.loc["Z", "ci_low"])
    assert table.loc["Z", "ci_high"] == pytest.approx(0.2775, abs=1e-4)
    assert (table.loc["X", "ci_low"], table.loc["X", "ci_high"]) == (
        pytest.approx(0.1682, abs=1e-4), pytest.approx(0.6873, abs=1e-4))
    assert list(table.index) == ["X", "Y", "Z"]
    by_mapping = flag_rates(issues, 10, {"X": "issue"})
    assert set(by_mapping["code"]) == {"X", "Y"}
    assert by_mapping.set_index("code").loc["Y", "kind"] == "undeclared"
    with pytest.raises(ValueError, match="n_intents"):
        flag_rates(issues, 0, kinds)
    with pytest.raises(ValueError, match="n_intents"):
        flag_rates(issues, 3, kinds)  # X fired on 4
    with pytest.raises(ValueError, match="code"):
        flag_rates(issues.drop(columns="code"), 10, kinds)


def test_orchestrator_items_show_their_kind_not_undeclared() -> None:
    from buddy.config import default_scoring_config
    from buddy.orchestrator import ORCHESTRATOR_TEMPLATES, Orchestrator

    assert set(ORCHESTRATOR_KINDS) == set(ORCHESTRATOR_TEMPLATES)
    # the kinds are the orchestrator's own: a skipped module is never ranked, a failure is
    orchestrator = Orchestrator(default_scoring_config())
    for code, kind in ORCHESTRATOR_KINDS.items():
        assert orchestrator.is_ranked("risk_reward", code) == (kind == "issue"), code
    issues = pd.DataFrame({"intent_id": ["a", "b", "b", "c"],
                           "module": ["regime_fit", "regime_fit", "mtfa", "risk_reward"],
                           "code": ["CONTEXT_MISSING", "CONTEXT_MISSING", "MODULE_ERROR",
                                    "NO_SUCH_CODE"]})
    for kinds in (declared_codes(), {"RR_BELOW_MIN": "issue"}):
        table = flag_rates(issues, 4, kinds).set_index(["module", "code"])
        assert table.loc[("regime_fit", "CONTEXT_MISSING"), "kind"] == "not_checked"
        assert table.loc[("regime_fit", "CONTEXT_MISSING"), "fired"] == 2
        assert table.loc[("mtfa", "MODULE_ERROR"), "kind"] == "issue"
        assert table.loc[("risk_reward", "NO_SUCH_CODE"), "kind"] == "undeclared"


def test_the_corpus_is_every_generator_over_every_series_and_deterministic(
        sample_store: Store) -> None:
    corpus = corpus_intents(sample_store)
    assert 5_000 <= len(corpus) < 13_000 and corpus["intent_id"].is_unique
    series = corpus_series(sample_store)
    assert len(series) >= 10
    covered = set(zip(corpus["symbol"], corpus["timeframe"], strict=True))
    assert covered == set(zip(series["symbol"], series["timeframe"], strict=True))
    sources = set(corpus["source"])
    assert sources == {f"generator:{name}" for name in GENERATORS}
    narrowed = corpus_intents(sample_store, symbols=["EURUSD"])
    assert set(narrowed["symbol"]) == {"EURUSD"} and set(narrowed["timeframe"]) == set(
        series.loc[series["symbol"] == "EURUSD", "timeframe"])
    pd.testing.assert_frame_equal(narrowed, corpus[corpus["symbol"] == "EURUSD"].reset_index(
        drop=True))
    # limit orders placed away from the market, so some entries can go unfilled
    limits = corpus[corpus["order_type"] == "limit"]
    assert set(limits["source"]) == {"generator:limit_pullback"} and len(limits) >= 500
    # no short's target at or below zero (the validator refuses those)
    assert not (corpus["proposed_target"] <= 0).any()
