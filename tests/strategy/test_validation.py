"""Playbooks on the demo trader's real entry facts: the job, point-in-time, and the validation
against the injected setups (the figures ``buddy playbooks validate --user demo`` prints)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.store import Store
from buddy.store.demo_truth import demo_trade_truth
from buddy.store.strategy import read_entry_facts, read_playbooks
from buddy.strategy.playbooks import PlaybookFit, fit_playbooks
from buddy.strategy.validation import PlaybookValidation, split_time, validate_playbooks

USER = "demo"


@pytest.fixture(scope="module")
def validation(demo_store: Store) -> PlaybookValidation:
    return validate_playbooks(demo_store, USER)


def test_validation_reaches_the_ari_aim_and_places_later_intents(
        validation: PlaybookValidation, demo_store: Store) -> None:
    v = validation
    assert v.ari.value is not None and v.ari.value >= 0.8
    assert v.ari.low is not None and v.ari.low <= v.ari.value <= v.ari.high
    assert v.matched.value is not None and v.matched.value >= 0.9
    # measured 0.067 [0.041, 0.106] (n=240): above the 5% aim (see the module docstring of
    # buddy.strategy.validation); this bound catches a regression
    assert v.false_ood.value is not None and v.false_ood.value <= 0.10
    assert v.false_ood.n >= 200 and v.false_ood.low is not None
    # the impulse trades log no intent (no planned stop): never embedded, never imputed
    truth = demo_trade_truth(demo_store, USER)
    n_impulse = int((truth["setup"] == "impulse").sum())
    assert n_impulse > 0 and v.n_not_embedded >= n_impulse
    impulse = next(s for s in v.setups if s.setup == "impulse")
    assert impulse.n_fitted == 0 and impulse.n_later == 0
    assert impulse.n_not_embedded == n_impulse and impulse.playbook_number is None
    assert sum(s.n_not_embedded for s in v.setups) == v.n_not_embedded
    books = [s.playbook_number for s in v.setups if s.setup not in ("reversal", "impulse")]
    assert None not in books and len(set(books)) == len(books)  # one playbook per setup


def test_validation_fits_only_trades_closed_by_the_split(
        validation: PlaybookValidation, demo_facts: pd.DataFrame) -> None:
    fitted = demo_facts[demo_facts["trade_id"].isin(validation.fit.trade_ids)]
    assert len(fitted) == validation.n_fitted
    assert (fitted["close_ts"] <= pd.Timestamp(validation.split_time)).all()
    assert validation.fit.fitted_until == validation.split_time


def test_validate_command_prints_the_figures(demo_store: Store,
                                             validation: PlaybookValidation) -> None:
    run = CliRunner().invoke(cli, ["--db", str(demo_store.path), "playbooks", "validate",
                                   "--user", USER])
    assert run.exit_code == 0, run.output
    assert run.output.strip() == validation.text()
    for needle in ("ARI (no playbook counted as one label): ", "in their setup's playbook: ",
                   "false OOD (p < 0.05): "):
        assert needle in run.output
    bad = CliRunner().invoke(cli, ["--db", str(demo_store.path), "playbooks", "validate",
                                   "--user", "nobody"])
    assert bad.exit_code == 2 and "user_id" in bad.output


def test_job_stores_the_playbooks_as_of_a_time_point_in_time(
        demo_store_copy: Callable[[], Store], demo_facts: pd.DataFrame) -> None:
    store = demo_store_copy()
    as_of = split_time(demo_facts, 0.5).to_pydatetime()
    run = CliRunner().invoke(cli, ["--db", str(store.path), "playbooks", "fit", "--user", USER,
                                   "--as-of", as_of.isoformat()])
    assert run.exit_code == 0, run.output
    books, members = read_playbooks(store, USER)
    assert len(books) >= 3 and set(members["playbook_id"]) == set(books["playbook_id"])
    closed = demo_facts.set_index("trade_id")["close_ts"]
    assert (closed.loc[members["trade_id"]] <= pd.Timestamp(as_of)).all()
    # the same fit from only the facts closed by then: same trades, same playbooks
    fit = fit_playbooks(read_entry_facts(store, USER, closed_by=as_of), user_id=USER,
                        fitted_until=as_of)
    assert set(books["playbook_id"]) == {fit.playbook_id(p.number) for p in fit.playbooks}
    by_book = members.groupby("playbook_id")["trade_id"].apply(set)
    for p in fit.playbooks:
        idx = np.flatnonzero(fit.labels == p.label)
        assert by_book[fit.playbook_id(p.number)] == {fit.trade_ids[i] for i in idx}
    assert books["name"].str.contains("ATR stop").all()
    stats = books["stats_json"].iloc[0]
    assert {"n", "win_rate", "mean_r"} <= set(stats)
    shown = CliRunner().invoke(cli, ["--db", str(store.path), "playbooks", "show", "--user",
                                     USER])
    assert shown.exit_code == 0 and f"{len(books)} stored playbook(s)" in shown.output


def test_a_real_fit_round_trips_and_places_its_own_trades(
        validation: PlaybookValidation, demo_facts: pd.DataFrame) -> None:
    fit = validation.fit
    figures = json.loads(json.dumps(validation.to_dict(), allow_nan=False))
    assert figures["ari"]["value"] == validation.ari.value and figures["fit_key"] == fit.key
    again = PlaybookFit.from_dict(json.loads(json.dumps(fit.to_dict(), allow_nan=False)))
    later = demo_facts[demo_facts["open_ts"] > pd.Timestamp(validation.split_time)].head(40)
    pd.testing.assert_frame_equal(fit.place(later), again.place(later))
    placed = fit.place(later)
    assert placed["placed"].sum() >= 20
    assert (placed.loc[placed["placed"], "n_reference"] == fit.n_trades).all()
