"""The strategy piece's provider: nothing read beyond one count for a user without trades, the
point-in-time state (only trades closed by t), its cache, the batch form equal to the scalar
one, and where the playbooks come from (production as is, refit, default recipe)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from buddy.context.providers import BatchPieceRequest, PieceRequest
from buddy.store import Store
from buddy.store.strategy import write_entry_facts
from buddy.strategy.facts import FACTS_VERSION
from buddy.strategy.playbooks import PlaybookFit, PlaybookRecipe, fit_playbooks
from buddy.strategy.profile import MIN_TRADES, build_profile
from buddy.strategy.provider import StrategyProvider
from buddy.strategy.sources import publish_playbooks
from buddy.timeframes import Timeframe
from buddy.users.store import set_user
from tests.evaluators.test_strategy_consistency import two_setups

RECIPE = PlaybookRecipe(n_resamples=5)


def stored_facts(facts: pd.DataFrame, user_id: str) -> pd.DataFrame:
    """Return ``facts`` with the bookkeeping columns of trade_entry_facts."""
    return facts.assign(user_id=user_id, intent_id=None, facts_version=FACTS_VERSION,
                        trade_built_at=pd.Timestamp("2013-01-01", tz="UTC"),
                        computed_at=pd.Timestamp("2013-01-01", tz="UTC"))


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    return two_setups(160)


@pytest.fixture(scope="module")
def store(facts: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("strategy") / "buddy.duckdb")
    write_entry_facts(store, stored_facts(facts, "u1"), remove_missing_trades=False)
    set_user(store, "u1", equity=50_000, rules={"allowed_symbols": ["AAPL"]})
    return store


class Recorder:
    """A playbook source that records who asked and answers ``fit``."""

    def __init__(self, fit: PlaybookFit | None = None) -> None:
        self.fit, self.asked = fit, []

    def __call__(self, user_id: str) -> PlaybookFit | None:
        self.asked.append(user_id)
        return self.fit


def request(store: Store, user_id: str, as_of: datetime) -> PieceRequest:
    return PieceRequest(store=store, user_id=user_id, instrument=None,  # type: ignore[arg-type]
                        timeframe=Timeframe.D1, as_of=as_of, market=None)


def batch(store: Store, rows: list[tuple[str, datetime]]) -> BatchPieceRequest:
    intents = pd.DataFrame({"user_id": [u for u, _ in rows], "symbol": "AAPL",
                            "timeframe": "1d", "as_of": [t for _, t in rows]})
    return BatchPieceRequest(store=store, intents=intents, instrument=pd.DataFrame(),
                             market=pd.DataFrame(), market_data=lambda i: None)


def closed_by(facts: pd.DataFrame, t: datetime) -> pd.DataFrame:
    return facts[pd.to_datetime(facts["close_ts"], utc=True) <= t]


def test_a_user_without_trades_costs_one_count_and_never_asks_a_source(store: Store) -> None:
    source = Recorder()
    provider = StrategyProvider(sources={"mlflow": source})
    piece, reason = provider(request(store, "nobody", datetime(2012, 1, 1, tzinfo=UTC)))
    assert piece is None and "nobody has no closed trades" in reason
    pieces, reasons = provider.batch(batch(store, [("nobody", datetime(2012, 1, 1,
                                                                        tzinfo=UTC))] * 3))
    assert list(pieces) == [None] * 3 and reasons[0] == reason
    assert source.asked == [] and not provider._cache


def test_the_piece_as_of_t_holds_only_trades_closed_by_t(store: Store,
                                                         facts: pd.DataFrame) -> None:
    t = datetime(2011, 1, 1, tzinfo=UTC)
    provider = StrategyProvider(sources={}, recipe=RECIPE)
    piece, reason = provider(request(store, "u1", t))
    assert reason is None and piece is not None
    known = closed_by(facts, t)
    assert piece.n_closed == len(known) and piece.profile.n_trades == len(known)
    assert piece.playbooks is not None
    assert set(piece.playbooks.trade_ids) <= set(known["trade_id"])
    assert piece.playbooks_source.startswith("default recipe, fitted as of ")
    assert piece.rules is not None and piece.rules.allowed_symbols == ("AAPL",)
    # the profile of the state is the profile through its newest close
    newest = pd.to_datetime(known["close_ts"], utc=True).max().to_pydatetime()
    want = build_profile(known.reset_index(drop=True), user_id="u1", as_of=newest)
    assert piece.profile.to_dict() == want.to_dict()
    # a later t with the same trades closed shares the computed state
    again, _ = provider(request(store, "u1", t + timedelta(seconds=1)))
    assert again is not None and again.profile is piece.profile and len(provider._cache) == 1


def test_a_store_holding_only_the_trades_closed_by_t_gives_the_same_piece(
        store: Store, facts: pd.DataFrame, tmp_path: Path) -> None:
    t = datetime(2011, 3, 1, tzinfo=UTC)
    cut = Store(tmp_path / "cut.duckdb")
    write_entry_facts(cut, stored_facts(closed_by(facts, t), "u1"),
                      remove_missing_trades=False)
    set_user(cut, "u1", equity=50_000, rules={"allowed_symbols": ["AAPL"]})
    whole, _ = StrategyProvider(sources={}, recipe=RECIPE)(request(store, "u1", t))
    part, _ = StrategyProvider(sources={}, recipe=RECIPE)(request(cut, "u1", t))
    assert whole is not None and part is not None
    assert whole.profile.to_dict() == part.profile.to_dict()
    assert whole.playbooks is not None and part.playbooks is not None
    assert whole.playbooks.key == part.playbooks.key
    assert [p.as_dict() for p in whole.playbooks.playbooks] == [
        p.as_dict() for p in part.playbooks.playbooks]
    assert whole.drift == part.drift


def test_the_batch_form_equals_the_scalar_form_row_by_row(store: Store) -> None:
    early = datetime(2010, 3, 1, tzinfo=UTC)  # fewer than MIN_TRADES closed
    late = datetime(2011, 6, 1, tzinfo=UTC)
    rows = [("u1", late), ("nobody", late), ("u1", early), ("u1", late)]
    provider = StrategyProvider(sources={}, recipe=RECIPE)
    pieces, reasons = provider.batch(batch(store, rows))
    scalar = StrategyProvider(sources={}, recipe=RECIPE)
    for (user, t), piece, reason in zip(rows, pieces, reasons, strict=True):
        want, why = scalar(request(store, user, t))
        assert reason == why
        assert (piece is None) == (want is None)
        if piece is not None:
            assert piece.profile.to_dict() == want.profile.to_dict()
            assert piece.playbooks.key == want.playbooks.key
            assert piece.playbooks_source == want.playbooks_source
    assert pieces[0] is pieces[3]  # one piece per distinct (user, as_of)
    assert f"at least {MIN_TRADES}" in reasons[2]


def test_production_playbooks_are_used_as_is_only_when_fitted_on_exactly_those_trades(
        store: Store, facts: pd.DataFrame) -> None:
    t = datetime(2011, 1, 1, tzinfo=UTC)
    known = closed_by(facts, t).reset_index(drop=True)
    exact = fit_playbooks(known, RECIPE, user_id="u1", fitted_until=t)
    piece, _ = StrategyProvider(sources={"p": Recorder(exact)})(request(store, "u1", t))
    assert piece is not None and piece.playbooks is exact
    assert piece.playbooks_source == "production model as is"
    # a production model fitted on every trade knows outcomes after t: refit with its recipe
    later = fit_playbooks(facts, PlaybookRecipe(n_resamples=4), user_id="u1",
                          fitted_until=datetime(2013, 1, 1, tzinfo=UTC))
    source = Recorder(later)
    provider = StrategyProvider(sources={"p": source})
    piece, _ = provider(request(store, "u1", t))
    assert piece is not None and piece.playbooks is not later
    assert piece.playbooks.recipe.hash == later.recipe.hash
    assert set(piece.playbooks.trade_ids) <= set(known["trade_id"])
    assert piece.playbooks_source.startswith("refit as of ")
    provider(request(store, "u1", t + timedelta(days=30)))
    assert source.asked == ["u1"]  # asked once per process and user


def test_publishing_without_a_publisher_says_so_and_hands_the_fit_to_each(
        store: Store, facts: pd.DataFrame) -> None:
    fit = fit_playbooks(facts.head(40), RECIPE, user_id="u1", fitted_until=None)
    assert publish_playbooks(store, fit, publishers={}) == [
        "playbooks of u1 not published: no playbook publisher is installed "
        "(trading_buddy.playbook_publishers)"]
    seen: list[Any] = []

    def publisher(s: Store, f: PlaybookFit) -> list[str]:
        seen.append((s, f))
        return [f"published {f.n_trades} trades"]

    assert publish_playbooks(store, fit, publishers={"a": publisher}) == ["published 40 trades"]
    assert seen == [(store, fit)]
    assert np.isfinite(fit.reference).all()
