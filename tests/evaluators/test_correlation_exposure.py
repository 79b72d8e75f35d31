"""CorrelationExposureEvaluator on the demo trader's real book: the contract kit (with a
point-in-time check against a store cut at t), each code on a case that trips it, the
evidence against a plain numpy oracle, and "not checked" (never "no exposure") without a
portfolio or without equity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import ContextPack
from buddy.domain import EvaluationResult, Issue, OrderType, Side, TradeIntent
from buddy.evaluators.correlation_exposure import CorrelationExposureEvaluator
from buddy.portfolio.provider import PortfolioPiece, PortfolioProvider
from buddy.store import Store
from buddy.store.core import insert_frame
from buddy.store.portfolio import record_equity
from buddy.testing import PointInTimeCase, check_evaluator
from buddy.timeframes import Timeframe
from tests.portfolio.conftest import portfolio_demo  # noqa: F401  (the shared fixture)

#: The data's last daily close: the demo trader holds GOOG and MSFT long.
END = pd.Timestamp("2013-03-01T21:00Z")
#: The demo trader's logged MSFT long (bought at this close, holding GOOG and IBM).
MSFT_DAY = pd.Timestamp("2013-02-22T21:00Z")
EQUITY_FROM = pd.Timestamp("2000-01-03T00:00Z")


def _builder(store: Store) -> ContextPackBuilder:
    return ContextPackBuilder(store, providers={"portfolio": PortfolioProvider()})


def _intent(pack: ContextPack, side: Side, size: float, stop_distance: float | None,
            tag: str) -> TradeIntent:
    assert pack.market is not None
    entry = round(pack.market.last_close, 2)
    sign = 1.0 if side is Side.LONG else -1.0
    stop = None if stop_distance is None else round(entry - sign * stop_distance, 2)
    target = None if stop_distance is None else round(entry + sign * 2 * stop_distance, 2)
    return TradeIntent(user_id=pack.user_id, symbol=pack.symbol, side=side,
                       timeframe=Timeframe(pack.timeframe), as_of=pack.as_of,
                       proposed_entry=entry, proposed_stop=stop, proposed_target=target,
                       proposed_size=size, holding_horizon=10, order_type=OrderType.LIMIT,
                       intent_id=f"cx-{tag}")


def _cut(source: Store, folder: Path, t: pd.Timestamp) -> Store:
    """Return a store holding only what ``source`` knew at t (bars closed by t, fills and
    intents by t, splits by t) and the demo account's equity on record."""
    store = Store(folder / "cut.duckdb")
    cut = t.to_pydatetime()
    tables = {
        "tickers": source.query("SELECT * FROM tickers"),
        "bars": source.query("SELECT * FROM bars WHERE ts_close <= ?", [cut]),
        "corporate_actions": source.query("SELECT * FROM corporate_actions WHERE ex_date <= "
                                          "CAST(? AS DATE)", [cut]),
        "broker_fills": source.query("SELECT * FROM broker_fills WHERE ts <= ?", [cut]),
        "trade_intents": source.query("SELECT * FROM trade_intents WHERE as_of <= ?", [cut])}
    with store.transaction() as con:
        for table, frame in tables.items():
            insert_frame(con, table, frame)
    record_equity(store, "demo", EQUITY_FROM.to_pydatetime(), 100_000.0, "USD", "test")
    return store


@pytest.fixture(scope="module")
def cases(portfolio_demo: Store, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
          ) -> dict[str, tuple[TradeIntent, ContextPack, ContextPack]]:
    """Return intents on the demo trader's book by name, each with its pack from the whole
    history and from a store cut at its as_of."""
    builder = _builder(portfolio_demo)
    folder = tmp_path_factory.mktemp("cx")
    cut_builders = {}
    for t in (END, MSFT_DAY):
        (folder / f"{t:%Y%m%d}").mkdir()
        cut_builders[t] = _builder(_cut(portfolio_demo, folder / f"{t:%Y%m%d}", t))
    plans = {  # name: (symbol, t, side, size, stop distance)
        "ibm_long": ("IBM", END, Side.LONG, 200, 4.0),
        "ibm_short": ("IBM", END, Side.SHORT, 200, 4.0),
        "aapl_long": ("AAPL", END, Side.LONG, 100, 10.0),
        "ibm_huge": ("IBM", END, Side.LONG, 2_000, 5.0),
        "msft_add": ("MSFT", END, Side.LONG, 1_000, 0.6),
        "ibm_no_stop": ("IBM", END, Side.LONG, 200, None),
        "msft_logged": ("MSFT", MSFT_DAY, Side.LONG, 1_639, 0.61),
    }
    out = {}
    for name, (symbol, t, side, size, stop) in plans.items():
        with portfolio_demo.reading():
            full = builder.build("demo", symbol, "1d", t.to_pydatetime())
        cut_store = cut_builders[t].store
        with cut_store.reading():
            cut = cut_builders[t].build("demo", symbol, "1d", t.to_pydatetime())
        out[name] = (_intent(full, side, size, stop, name), full, cut)
    with portfolio_demo.reading():
        nobody = builder.build("nobody", "IBM", "1d", END.to_pydatetime())
    out["nobody"] = (_intent(nobody, Side.LONG, 200, 4.0, "nobody"), nobody, nobody)
    return out


def _run(case: tuple[TradeIntent, ContextPack, ContextPack]) -> EvaluationResult:
    intent, pack, _ = case
    return CorrelationExposureEvaluator().evaluate(intent, pack)


def _issue(result: EvaluationResult, code: str) -> Issue:
    found = [i for i in result.issues if i.code == code]
    assert len(found) == 1, [i.code for i in result.issues]
    return found[0]


def _facts(issue: Issue) -> dict[str, Any]:
    return {f.name: f.value for f in issue.evidence}


def test_the_contract_kit_passes_with_a_point_in_time_check(
        cases: dict[str, tuple[TradeIntent, ContextPack, ContextPack]]) -> None:
    report = check_evaluator(
        CorrelationExposureEvaluator, cases=[(i, full) for i, full, _ in cases.values()],
        point_in_time=[PointInTimeCase(i, full, cut) for i, full, cut in cases.values()])
    assert report.codes_not_fired == ()
    assert report.point_in_time_rows == len(cases)


def test_ibm_long_at_the_end_stacks_on_msft(
        cases: dict[str, tuple[TradeIntent, ContextPack, ContextPack]]) -> None:
    intent, pack, _ = cases["ibm_long"]
    result = _run(cases["ibm_long"])
    stacking = _issue(result, "CLUSTER_STACKING")
    facts = _facts(stacking)
    piece = pack.portfolio
    assert isinstance(piece, PortfolioPiece)
    assert piece.held == ("GOOG", "MSFT")
    msft = float(piece.weights[piece.symbols.index("MSFT")])
    idea = intent.proposed_entry * intent.proposed_size / 100_000.0
    assert facts["members"] == f"MSFT long {100 * msft:.1f}%"
    assert facts["n_members"] == 1
    assert facts["cluster_weight_before_pct"] == pytest.approx(100 * msft, abs=0.006)
    assert facts["cluster_weight_after_pct"] == pytest.approx(100 * (msft + idea), abs=0.006)
    # past the 50% limit of the rules: medium, with the limit as the threshold
    assert stacking.severity.value == "medium"
    threshold = next(f.threshold for f in stacking.evidence
                     if f.name == "cluster_weight_after_pct")
    assert threshold == 50.0
    oracle = _oracle(piece, idea, float(intent.stop_distance or math.nan) * 200 / 100_000)
    for name in ("heat_before_pct", "heat_after_pct", "value_at_risk_before_pct",
                 "value_at_risk_after_pct"):
        assert facts[name] == pytest.approx(oracle[name], abs=0.006), name
    assert facts["correlation"] == pytest.approx(oracle["correlation"], abs=0.006)
    assert facts["n_days"] == oracle["n_days"] >= 240
    half = stats.norm.ppf(0.975) / math.sqrt(oracle["n_days"] - 3)
    z = math.atanh(oracle["correlation"])
    assert facts["correlation_interval"] == (f"[{math.tanh(z - half):.2f}, "
                                             f"{math.tanh(z + half):.2f}]")
    assert stacking.mitigation.action == "REDUCE_SIZE"


def _oracle(piece: PortfolioPiece, idea_weight: float, idea_risk: float
            ) -> dict[str, float]:
    """Recompute the IBM case's evidence with plain numpy (complete-case days)."""
    j = piece.cand_index
    msft = piece.symbols.index("MSFT")
    r = piece.returns
    used = r[np.isfinite(r).all(axis=1)]
    cov = np.cov(used.T, ddof=1)
    w = piece.weights.copy()
    after = w.copy()
    after[j] += idea_weight
    z = stats.norm.ppf(0.95)
    pair = np.isfinite(r[:, j]) & np.isfinite(r[:, msft])
    return {
        "heat_before_pct": 100 * piece.open_risk.sum(),
        "heat_after_pct": 100 * (piece.open_risk.sum() + idea_risk),
        "value_at_risk_before_pct": 100 * z * math.sqrt(w @ cov @ w),
        "value_at_risk_after_pct": 100 * z * math.sqrt(after @ cov @ after),
        "historical_before_pct": -100 * np.quantile(np.expm1(used) @ w, 0.05),
        "historical_after_pct": -100 * np.quantile(np.expm1(used) @ after, 0.05),
        "correlation": float(np.corrcoef(r[pair, j], r[pair, msft])[0, 1]),
        "n_days": int(pair.sum())}


def test_the_logged_msft_long_stacks_on_ibm_not_on_itself(
        cases: dict[str, tuple[TradeIntent, ContextPack, ContextPack]]) -> None:
    facts = _facts(_issue(_run(cases["msft_logged"]), "CLUSTER_STACKING"))
    assert str(facts["members"]).startswith("IBM long ")
    assert facts["symbol"] == "MSFT" and facts["side"] == "long"


def test_a_short_or_an_unrelated_long_does_not_stack(
        cases: dict[str, tuple[TradeIntent, ContextPack, ContextPack]]) -> None:
    for name in ("ibm_short", "aapl_long"):
        assert "CLUSTER_STACKING" not in {i.code for i in _run(cases[name]).issues}, name
    # AAPL long on top of 113% of equity in GOOG and MSFT: past the beta-weighted limit
    facts = _facts(_issue(_run(cases["aapl_long"]), "BETA_EXPOSURE_LIMIT"))
    assert float(facts["beta_exposure_after_pct"]) > 150.0
    assert facts["beta_exposure_after_pct"] > facts["beta_exposure_before_pct"]
    assert facts["n_without_benchmark"] == 0 and facts["n_beta_days"] >= 240


def test_a_huge_idea_breaks_heat_and_the_daily_loss_limit(
        cases: dict[str, tuple[TradeIntent, ContextPack, ContextPack]]) -> None:
    result = _run(cases["ibm_huge"])
    heat = _facts(_issue(result, "HEAT_LIMIT"))
    assert heat["idea_risk_pct"] == pytest.approx(10.0)  # 2,000 x 5.00 of 100,000
    assert float(heat["heat_after_pct"]) > 6.0
    risk = _issue(result, "INCREMENTAL_RISK")
    facts = _facts(risk)
    assert float(facts["value_at_risk_after_pct"]) > 3.0
    assert facts["n_hist"] >= 240
    # the position's Euler contribution is a share of the volatility after entry
    assert 0.0 < float(facts["contribution_share_pct"]) <= 100.0


def test_adding_to_a_held_symbol_past_the_limit_is_concentration(
        cases: dict[str, tuple[TradeIntent, ContextPack, ContextPack]]) -> None:
    facts = _facts(_issue(_run(cases["msft_add"]), "CLUSTER_CONCENTRATION"))
    assert str(facts["members"]).startswith("MSFT long ")
    assert float(facts["cluster_weight_after_pct"]) > 50.0


def test_without_a_portfolio_or_a_stop_it_says_not_checked(
        cases: dict[str, tuple[TradeIntent, ContextPack, ContextPack]]) -> None:
    result = _run(cases["nobody"])
    assert [i.code for i in result.issues] == ["PORTFOLIO_NOT_CHECKED"]
    facts = _facts(result.issues[0])
    assert "no broker fills and no positions statement" in str(facts["why"])
    assert result.score == 100.0  # not checked is never scored as good or bad
    facts = _facts(_issue(_run(cases["ibm_no_stop"]), "PORTFOLIO_NOT_CHECKED"))
    assert facts["unchecked"] == "heat" and "no stop" in str(facts["why"])


def test_without_equity_nothing_is_guessed(demo_store: Store) -> None:
    builder = _builder(demo_store)  # the demo trader with no equity on record
    with demo_store.reading():
        pack = builder.build("demo", "IBM", "1d", END.to_pydatetime())
    result = CorrelationExposureEvaluator().evaluate(
        _intent(pack, Side.LONG, 200, 4.0, "no-equity"), pack)
    assert [i.code for i in result.issues] == ["PORTFOLIO_NOT_CHECKED"]
    assert "no equity known" in str(_facts(result.issues[0])["why"])


def test_the_traders_logged_intents_in_one_batch(portfolio_demo: Store) -> None:  # noqa: F811
    """The demo trader's logged intents of 2013 through the batch builder: one batch, the
    same answers as one at a time, and only the MSFT long (bought while holding IBM, at an
    average correlation of about 0.6, and GOOG) stacks and takes the beta-weighted exposure
    past 150% of equity."""
    from buddy.batch.builder import build_batch_context

    intents = portfolio_demo.query(
        "SELECT * FROM trade_intents WHERE user_id = 'demo' AND as_of >= ? AND as_of <= ? "
        "ORDER BY as_of", [pd.Timestamp("2013-01-01T00:00Z").to_pydatetime(),
                           END.to_pydatetime()])
    assert list(intents["symbol"]) == ["IBM", "GOOG", "IBM", "GOOG", "MSFT"]
    ctx = build_batch_context(portfolio_demo, intents,
                              providers={"portfolio": PortfolioProvider()})
    evaluator = CorrelationExposureEvaluator()
    batch = evaluator.evaluate_batch(ctx)
    codes = [[i.code for i in batch.row(k).issues] for k in range(ctx.n)]
    assert codes == [[], [], [], [], ["CLUSTER_STACKING", "BETA_EXPOSURE_LIMIT"]]
    for k in range(ctx.n):
        alone = evaluator.evaluate(ctx.intent(k), ctx.pack(k))
        assert alone.issues == batch.row(k).issues
