"""Correlation and exposure: what the idea does to the book the trader already holds.

Reads the ``portfolio`` piece (``buddy.portfolio.provider.PortfolioPiece``: the positions as
of t as signed fractions of equity, their open risk to the stops, the user's risk rules and
the daily log returns of the held symbols and the idea's over the provider's stated window)
and the intent's entry, stop, size and side. Each distinct piece is one book; its rows are
candidates against it, computed together and exactly (``buddy.portfolio.risk``):

- CLUSTER_STACKING: the idea joins a correlation cluster (average linkage on
  sqrt((1 - rho) / 2), cut at ``cluster_max_distance``) in which the user already holds
  another symbol the same way. Evidence: those members with their weights, the idea's
  average correlation with the cluster and its n, the cluster's net weight in the idea's
  direction before and after (% of equity, against ``max_cluster_weight_pct`` from the
  user's rules), heat and the 1-day VaR before and after. LOW; MEDIUM past the limit;
- CLUSTER_CONCENTRATION: the idea adds to a holding of its own symbol held the same way
  and the group's net weight goes past ``max_cluster_weight_pct`` with no other symbol
  held the same way in it (a new single position's size is the risk-per-trade check's);
- HEAT_LIMIT: open risk to the stops plus the idea's risk to its stop goes past the user's
  ``max_open_heat_pct`` (positions with an unknown stop are left out and counted: heat is
  then a lower bound, so the breach stands);
- INCREMENTAL_RISK: with the idea in, the book's 1-day parametric VaR (recomputed, not
  linearised) rises past the user's ``max_daily_loss_pct``: on one day in twenty (at 95%)
  the book alone would lose more than the day's loss limit. Evidence: VaR before and after,
  historical VaR on the same days, volatility, and the position's Euler risk contribution;
- BETA_EXPOSURE_LIMIT: the beta-weighted net exposure after the trade goes past the user's
  ``max_beta_net_exposure_pct`` and the trade moves it further out (betas: OLS on the
  window's daily returns against each instrument's benchmark; instruments without a
  benchmark, e.g. FX, are left out and counted);
- PORTFOLIO_NOT_CHECKED (not checked): no portfolio piece (no positions source), no equity,
  a currency the book is not kept in, too few common daily returns for the risk figures, a
  beta that could not be estimated, or an idea without a stop (heat). Never "no exposure".

Weights are market values over equity at the last closed bar (the provider's marks); the
idea's weight is entry x size x multiplier / equity, signed by its side. Volatility and VaR
are per day, as % of equity; parametric VaR assumes a zero mean (no return is forecast).

Firing rates on the demo trader's 776 logged intents (each judged against the book held
just before it, equity USD 100,000 on record, default rules; Wilson 95% intervals):
CLUSTER_STACKING 12.9% [10.7, 15.4] (18.6% of the 539 stock intents: the trader holds
several tech longs at once; 76 of the 100 past the 50% cluster limit), CLUSTER_CONCENTRATION
0% [0, 0.5] (the trader never adds to a held symbol), HEAT_LIMIT 0.1% [0.0, 0.7],
INCREMENTAL_RISK 3.0% [2.0, 4.4], BETA_EXPOSURE_LIMIT 0.8% [0.4, 1.7],
PORTFOLIO_NOT_CHECKED 30.8% [27.7, 34.1] (every EURUSD intent: the pair has hourly bars
only, so no daily returns, and the stock positions left open at the stocks' data end in
2013 have no returns in 2017). A first rule, "VaR rises by more than 1% of equity",
fired on 20.7% (any stock position on an empty book does): replaced by the daily loss limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from buddy.batch.columns import objects
from buddy.batch.result import BatchResult, IssueBlock
from buddy.config import ModuleConfig, param
from buddy.domain import Severity
from buddy.evaluators.base import Code, Evaluator, Evidence, severity_where
from buddy.evaluators.registry import register
from buddy.portfolio.provider import PortfolioPiece
from buddy.users.model import RiskRules

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

#: The limits the checks read from the user's rules, and their defaults when the piece has
#: none (the rules' own defaults: the same a new account gets).
DEFAULT_RULES = RiskRules()


def _pct(name: str, digits: int = 2) -> Evidence:
    return Evidence(name, "%", digits)


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrelationExposureConfig(ModuleConfig):
    """Thresholds of the correlation and exposure checks (the limits themselves are the
    user's rules: max_open_heat_pct, max_cluster_weight_pct, max_beta_net_exposure_pct)."""

    config_name = "correlation_exposure"

    cluster_max_distance: float = param(
        0.5, lo=0.05, hi=1.0, unit="sqrt((1 - rho) / 2)",
        doc="average-linkage cut of the correlation clusters: 0.5 joins symbols whose "
            "average correlation is 0.5 or more")
    min_obs: int = param(60, lo=20, hi=5000, unit="daily returns",
                         doc="fewest common daily returns for a correlation, a beta or the "
                             "risk figures; fewer and they are not checked")
    var_level: float = param(0.95, lo=0.8, hi=0.999, unit="confidence",
                             doc="confidence of the 1-day VaR (0.95: the loss exceeded on "
                                 "5% of days)")


_HARM_BOOK = ("(a harm to the whole book: replay's per-trade outcomes do not measure the "
              "combined loss of the positions held together)")


@register
class CorrelationExposureEvaluator(Evaluator[CorrelationExposureConfig]):
    """Check the idea against the book held as of t: stacking, heat, VaR, beta."""

    name = "correlation_exposure"
    version = "1.0.0"
    optional = frozenset({"portfolio"})
    config_cls = CorrelationExposureConfig
    codes: ClassVar = {
        "CLUSTER_STACKING": Code(
            "Adds to a correlated group you already hold",
            "This {side} in {symbol} joins a group of symbols that move together, where you "
            "already hold {members} the same way (average correlation {correlation}, 95% "
            "interval {correlation_interval}, n = {n_days} of daily returns). The group's "
            "net weight goes from {cluster_weight_before_pct} to {cluster_weight_after_pct} "
            "of equity; heat from {heat_before_pct} to {heat_after_pct}; 1-day VaR from "
            "{value_at_risk_before_pct} to {value_at_risk_after_pct} of equity.",
            "Count {members} and this idea as one bet: trade it smaller, or instead of "
            "adding to the group.",
            evidence=(Evidence("symbol"), Evidence("side"), Evidence("members"),
                      Evidence("n_members"),
                      Evidence("correlation", digits=2), Evidence("correlation_interval"),
                      Evidence("n_days", "days"),
                      _pct("cluster_weight_before_pct"), _pct("cluster_weight_after_pct"),
                      _pct("heat_before_pct"), _pct("heat_after_pct"),
                      _pct("value_at_risk_before_pct"), _pct("value_at_risk_after_pct")),
            action="REDUCE_SIZE",
            harm="positions that move together lose together: one adverse move hits the "
                 "whole group, so a bad day costs more than each trade's own risk suggests "
                 + _HARM_BOOK, measure=None),
        "CLUSTER_CONCENTRATION": Code(
            "Concentrated in one group",
            "With this {side} in {symbol}, its group ({members}) would weigh "
            "{cluster_weight_after_pct} of equity in the idea's direction (from "
            "{cluster_weight_before_pct}), past your limit.",
            "Trade a smaller size so the group stays within your limit.",
            evidence=(Evidence("symbol"), Evidence("side"), Evidence("members"),
                      _pct("cluster_weight_before_pct"), _pct("cluster_weight_after_pct")),
            action="REDUCE_SIZE",
            harm="one name or group carries a large share of the account, so one adverse "
                 "move in it is a large loss of equity " + _HARM_BOOK, measure=None),
        "HEAT_LIMIT": Code(
            "Open risk past your heat limit",
            "Open risk to the stops would go from {heat_before_pct} to {heat_after_pct} of "
            "equity with this idea ({idea_risk_pct} of it), past your limit "
            "({n_unknown_stops} held position(s) with no known stop not counted).",
            "Trade a smaller size, tighten a held position's stop, or wait for one to close.",
            evidence=(_pct("heat_before_pct"), _pct("heat_after_pct"), _pct("idea_risk_pct"),
                      Evidence("n_unknown_stops")),
            action="REDUCE_SIZE",
            harm="if the stops were hit together, the loss would exceed the share of equity "
                 "you allow at risk at once " + _HARM_BOOK, measure=None),
        "INCREMENTAL_RISK": Code(
            "Daily risk past your daily loss limit",
            "With this idea the book's 1-day VaR ({var_level} confidence) goes from "
            "{value_at_risk_before_pct} to {value_at_risk_after_pct} of equity, past your "
            "daily loss limit (historical, "
            "on the same {n_hist}: {historical_value_at_risk_before_pct} to "
            "{historical_value_at_risk_after_pct}, 95% interval "
            "{historical_value_at_risk_after_interval}); volatility from {vol_before_pct} to "
            "{vol_after_pct} a day, {contribution_share_pct} of it from this position.",
            "Trade a smaller size, or reduce a correlated holding first.",
            evidence=(Evidence("var_level", digits=3), _pct("value_at_risk_before_pct"),
                      _pct("value_at_risk_after_pct"),
                      _pct("historical_value_at_risk_before_pct"),
                      _pct("historical_value_at_risk_after_pct"),
                      Evidence("historical_value_at_risk_after_interval"),
                      Evidence("n_hist", "days"), _pct("vol_before_pct"),
                      _pct("vol_after_pct"), _pct("contribution_share_pct", 1)),
            action="REDUCE_SIZE",
            harm="an ordinary bad day (one in twenty) could cost the book more than the "
                 "loss you allow yourself in a day " + _HARM_BOOK, measure=None),
        "BETA_EXPOSURE_LIMIT": Code(
            "Market exposure past your limit",
            "After this trade the book's beta-weighted net exposure would be "
            "{beta_exposure_after_pct} of equity (from {beta_exposure_before_pct}), past "
            "your limit; this idea's beta is {idea_beta} (95% interval {idea_beta_interval}, "
            "n = {n_beta_days} of daily returns; {n_without_benchmark} held position(s) "
            "without a benchmark left out).",
            "Trade a smaller size, or offset some market exposure first.",
            evidence=(_pct("beta_exposure_before_pct", 1), _pct("beta_exposure_after_pct", 1),
                      Evidence("idea_beta", digits=2), Evidence("idea_beta_interval"),
                      Evidence("n_beta_days", "days"),
                      Evidence("n_without_benchmark")),
            action="REDUCE_SIZE",
            harm="a broad market move moves the whole book: its loss in a market drop "
                 "exceeds what you allow " + _HARM_BOOK, measure=None),
        "PORTFOLIO_NOT_CHECKED": Code(
            "Portfolio exposure",
            "Not checked against your open positions ({unchecked}): {why}.",
            "Import your fills or a positions file (`buddy positions import`) so the idea "
            "can be checked against what you hold.",
            evidence=(Evidence("unchecked"), Evidence("n_unchecked", "checks"),
                      Evidence("why")),
            action="CHECK_OPEN_POSITIONS", kind="not_checked",
            harm="not a warning: the idea's effect on the book could not be computed"),
    }
    explain = (_pct("heat_after_pct"), _pct("cluster_weight_after_pct"),
               _pct("value_at_risk_after_pct"), _pct("beta_exposure_after_pct", 1),
               Evidence("n_positions"))

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Compute each row's book before and after (one pass per distinct portfolio
        piece), then flag the stacking, concentration, heat, VaR and beta rows."""
        cfg = self.config
        book = _book_columns(ctx, cfg)
        blocks: list[IssueBlock] = []

        limit = book["cluster_limit"]
        stack = book["n_members"] > 0
        over = book["cluster_weight_after"] > limit
        rows = np.flatnonzero(stack)
        if len(rows):
            blocks.append(self.fire(
                "CLUSTER_STACKING", rows, severity_where(over[rows], Severity.MEDIUM,
                                                         Severity.LOW),
                thresholds={"cluster_weight_after_pct": limit[rows]},
                symbol=_texts(ctx, "symbol", rows), side=_texts(ctx, "side", rows),
                members=book["members"][rows], n_members=book["n_members"][rows],
                correlation=book["correlation"][rows],
                correlation_interval=book["correlation_interval"][rows],
                n_days=book["n_days"][rows],
                cluster_weight_before_pct=book["cluster_weight_before"][rows],
                cluster_weight_after_pct=book["cluster_weight_after"][rows],
                heat_before_pct=book["heat_before"][rows],
                heat_after_pct=book["heat_after"][rows],
                value_at_risk_before_pct=book["var_before"][rows],
                value_at_risk_after_pct=book["var_after"][rows]))
        rows = np.flatnonzero(over & ~stack & book["adds_to_own"])
        if len(rows):
            blocks.append(self.fire(
                "CLUSTER_CONCENTRATION", rows, Severity.MEDIUM,
                thresholds={"cluster_weight_after_pct": limit[rows]},
                symbol=_texts(ctx, "symbol", rows), side=_texts(ctx, "side", rows),
                members=book["group"][rows],
                cluster_weight_before_pct=book["cluster_weight_before"][rows],
                cluster_weight_after_pct=book["cluster_weight_after"][rows]))

        rows = np.flatnonzero(book["heat_after"] > book["heat_limit"])
        if len(rows):
            blocks.append(self.fire(
                "HEAT_LIMIT", rows, Severity.MEDIUM,
                thresholds={"heat_after_pct": book["heat_limit"][rows]},
                heat_before_pct=book["heat_before"][rows],
                heat_after_pct=book["heat_after"][rows],
                idea_risk_pct=book["idea_risk"][rows],
                n_unknown_stops=book["n_unknown_stops"][rows]))

        rows = np.flatnonzero((book["var_after"] > book["loss_limit"])
                              & (book["var_after"] > book["var_before"]))
        if len(rows):
            blocks.append(self.fire(
                "INCREMENTAL_RISK", rows, Severity.MEDIUM,
                thresholds={"value_at_risk_after_pct": book["loss_limit"][rows]},
                var_level=cfg.var_level, value_at_risk_before_pct=book["var_before"][rows],
                value_at_risk_after_pct=book["var_after"][rows],
                historical_value_at_risk_before_pct=book["var_hist_before"][rows],
                historical_value_at_risk_after_pct=book["var_hist_after"][rows],
                historical_value_at_risk_after_interval=book["var_hist_interval"][rows],
                n_hist=book["n_hist"][rows], vol_before_pct=book["vol_before"][rows],
                vol_after_pct=book["vol_after"][rows],
                contribution_share_pct=book["contribution_share"][rows]))

        before, after = book["beta_before"], book["beta_after"]
        rows = np.flatnonzero((np.abs(after) > book["beta_limit"])
                              & (np.abs(after) > np.abs(before)))
        if len(rows):
            blocks.append(self.fire(
                "BETA_EXPOSURE_LIMIT", rows, Severity.MEDIUM,
                thresholds={"beta_exposure_after_pct": book["beta_limit"][rows]},
                beta_exposure_before_pct=before[rows], beta_exposure_after_pct=after[rows],
                idea_beta=book["idea_beta"][rows],
                idea_beta_interval=book["idea_beta_interval"][rows],
                n_beta_days=book["n_beta_days"][rows],
                n_without_benchmark=book["n_without_benchmark"][rows]))

        n_unchecked, unchecked, why = _notes(ctx.n, book["notes"])
        rows = np.flatnonzero(n_unchecked > 0)
        if len(rows):
            blocks.append(self.fire(
                "PORTFOLIO_NOT_CHECKED", rows, Severity.INFO, unchecked=_at(unchecked, rows),
                n_unchecked=n_unchecked[rows], why=_at(why, rows)))

        return self.result(ctx.n, blocks, explain={
            "heat_after_pct": book["heat_after"],
            "cluster_weight_after_pct": book["cluster_weight_after"],
            "value_at_risk_after_pct": book["var_after"], "beta_exposure_after_pct": after,
            "n_positions": book["n_positions"]})


def _at(values: str | np.ndarray, rows: np.ndarray) -> str | np.ndarray:
    """Return per-row ``values`` at ``rows``; one string as it is."""
    return values if isinstance(values, str) else values[rows]


def _texts(ctx: BatchContext, column: str, rows: np.ndarray) -> np.ndarray:
    """Return the intent column's values on ``rows`` as text (object array)."""
    return ctx.intents[column].iloc[rows].astype(str).to_numpy(object)


# ---------------------------------------------------------------------------- the book
def _book_columns(ctx: BatchContext, cfg: CorrelationExposureConfig) -> dict[str, Any]:
    """Return, per row, the book's figures before and after the idea (percent of equity;
    NaN where not computed) and what could not be checked, and why."""
    n = ctx.n
    floats = ("cluster_weight_before", "cluster_weight_after", "correlation", "heat_before",
              "heat_after", "idea_risk", "var_before", "var_after", "var_hist_before",
              "var_hist_after", "vol_before", "vol_after", "contribution_share",
              "beta_before", "beta_after", "idea_beta", "heat_limit", "cluster_limit",
              "beta_limit", "loss_limit")
    counts = ("n_members", "n_days", "n_unknown_stops", "n_hist", "n_beta_days",
              "n_without_benchmark", "n_positions")
    # one block each: rows of a 2-D array, filled once
    out: dict[str, Any] = dict(zip(floats, np.full((len(floats), n), math.nan), strict=True))
    out.update(zip(counts, np.zeros((len(counts), n), dtype=np.int64), strict=True))
    out["members"] = np.full(n, "", dtype=object)
    out["group"] = np.full(n, "", dtype=object)
    out["adds_to_own"] = np.zeros(n, dtype=bool)
    for name in ("correlation_interval", "var_hist_interval", "idea_beta_interval"):
        out[name] = np.full(n, None, dtype=object)
    out["notes"] = []  # (rows, what, why) of the checks not made, in the order noted

    sign = ctx.intents["sign"].to_numpy(np.float64)
    notional = (ctx.intents["proposed_entry"].to_numpy(np.float64)
                * ctx.intents["proposed_size"].to_numpy(np.float64)
                * ctx.instrument["contract_multiplier"].to_numpy(np.float64))
    risk_money = (ctx.intents["stop_distance"].to_numpy(np.float64)
                  * ctx.intents["proposed_size"].to_numpy(np.float64)
                  * ctx.instrument["contract_multiplier"].to_numpy(np.float64))

    code, pieces = ctx.distinct_pieces("portfolio")
    missing = ctx.missing.get("portfolio")
    for s, piece in enumerate(pieces):
        rows = np.flatnonzero(code == s)
        if piece is None:
            reasons = np.full(len(rows), None, dtype=object) if missing is None else (
                missing[rows])
            _unchecked(out, rows, "exposure, heat, VaR, beta",
                       _worded(reasons, lambda r: f"no portfolio ({r or 'not provided'})"))
            continue
        if not isinstance(piece, PortfolioPiece):  # e.g. a plug-in's positions-only piece
            _unchecked(out, rows, "exposure, heat, VaR, beta",
                       f"the portfolio piece ({type(piece).__name__}) holds no weights "
                       "or returns")
            continue
        _one_book(out, rows, piece, cfg, sign=sign[rows], notional=notional[rows],
                  risk_money=risk_money[rows],
                  currency=ctx.instrument["currency"].iloc[rows].astype(str).to_numpy(object))
    return out


def _unchecked(out: dict[str, Any], rows: np.ndarray, what: str, why: str | np.ndarray
               ) -> None:
    """Note that ``what`` was not checked on ``rows``, and why (one reason, or one per row)."""
    if len(rows):
        out["notes"].append((np.asarray(rows, dtype=np.int64), what, why))


def _worded(values: np.ndarray, word: Any) -> str | np.ndarray:
    """Return ``word(value)`` per element, called once per distinct value: one string when
    every element is the same value (written into the evidence once, not row by row)."""
    codes, uniques = pd.factorize(values)  # None and NaN (-1) are worded one by one below
    if len(uniques) == 1 and codes.min() == 0:
        return str(word(uniques[0]))
    out = objects([*(word(value) for value in uniques.tolist()), None])[codes]
    made: dict[Any, str] = {}
    for i in np.flatnonzero(codes < 0).tolist():
        value = values[i]
        worded = made.get(value)
        if worded is None:
            worded = made[value] = word(value)
        out[i] = worded
    return out


def _notes(n: int, notes: list[tuple[np.ndarray, str, Any]]
           ) -> tuple[np.ndarray, str | np.ndarray, str | np.ndarray]:
    """Return per row how many checks were not made, what they were (joined by ", ") and
    why (joined by "; "), from ``notes`` in the order they were noted. One note with one
    reason gives its words as they are: what every noted row says."""
    count = np.zeros(n, dtype=np.int64)
    if len(notes) == 1 and isinstance(notes[0][2], str):
        rows, check, reason = notes[0]
        count[rows] = 1
        return count, check, reason
    what = np.full(n, "", dtype=object)
    why = np.full(n, "", dtype=object)
    for rows, check, reason in notes:
        fresh = count[rows] == 0
        first, later = rows[fresh], rows[~fresh]
        what[first] = check
        why[first] = reason if isinstance(reason, str) else reason[fresh]
        if len(later):
            what[later] = what[later] + (", " + check)
            why[later] = why[later] + "; " + (reason if isinstance(reason, str) else
                                               np.asarray(reason, dtype=object)[~fresh])
        count[rows] += 1
    return count, what, why


def _one_book(out: dict[str, Any], rows: np.ndarray, piece: PortfolioPiece,
              cfg: CorrelationExposureConfig, *, sign: np.ndarray, notional: np.ndarray,
              risk_money: np.ndarray, currency: np.ndarray) -> None:
    """Fill ``out`` at ``rows``: every row is a candidate trade against ``piece``'s book."""
    rules = piece.rules or DEFAULT_RULES
    out["heat_limit"][rows] = rules.max_open_heat_pct
    out["cluster_limit"][rows] = rules.max_cluster_weight_pct
    out["beta_limit"][rows] = rules.max_beta_net_exposure_pct
    out["loss_limit"][rows] = rules.max_daily_loss_pct
    weights = np.asarray(piece.weights, dtype=np.float64)
    held = weights != 0
    out["n_positions"][rows] = int(held.sum())
    equity = piece.equity
    if equity is None or not equity > 0:
        _unchecked(out, rows, "exposure, heat, VaR, beta",
                   f"no equity known as of {piece.as_of:%Y-%m-%d %H:%M} UTC")
        return
    unvalued = np.isnan(weights)
    if unvalued.any():  # held, but not valued in the account's currency
        names = ", ".join(np.asarray(piece.symbols, dtype=object)[unvalued])
        _unchecked(out, rows, "exposure, heat, VaR, beta",
                   f"{names} not valued in {piece.currency} as of t (no mark or no "
                   f"conversion rate)")
        return
    foreign = currency != piece.currency
    _unchecked(out, rows[foreign], "exposure, heat, VaR, beta",
               _worded(currency[foreign], lambda c: f"the idea is priced in {c}, the book "
                       f"kept in {piece.currency} (no conversion rate)"))
    rows, sign = rows[~foreign], sign[~foreign]
    notional, risk_money = notional[~foreign], risk_money[~foreign]
    if not len(rows):
        return
    j = piece.cand_index
    a = sign * notional / equity  # the idea's signed weight, fraction of equity
    k = len(rows)

    # heat: the known open risks (a lower bound when a stop is unknown)
    risk = np.asarray(piece.open_risk, dtype=np.float64)
    unknown = held & np.isnan(risk)
    heat = float(np.sum(risk[held & ~unknown]))
    idea_risk = risk_money / equity
    out["heat_before"][rows] = 100.0 * heat
    out["idea_risk"][rows] = 100.0 * idea_risk
    out["heat_after"][rows] = 100.0 * (heat + idea_risk)
    out["n_unknown_stops"][rows] = int(unknown.sum())
    _unchecked(out, rows[np.isnan(idea_risk)], "heat",
               "the idea has no stop, so its risk is not known")

    returns = np.asarray(piece.returns, dtype=np.float64)
    _clusters(out, rows, piece, cfg, returns, weights, held, sign, a, j)
    _risk(out, rows, piece, cfg, returns, weights, held, a, j, k)
    _beta(out, rows, piece, cfg, returns, weights, held, a, j)


def _clusters(out: dict[str, Any], rows: np.ndarray, piece: PortfolioPiece,
              cfg: CorrelationExposureConfig, returns: np.ndarray, weights: np.ndarray,
              held: np.ndarray, sign: np.ndarray, a: np.ndarray, j: int) -> None:
    """Which cluster of the book the idea joins, its same-way members and net weights."""
    # imported here: scipy costs seconds at import, and only a book needs it (the
    # provider that built the piece has imported it already)
    from buddy.portfolio.risk import correlation_clusters, join_cluster

    if held.any() and returns.shape[0] >= 2:
        clusters = correlation_clusters(returns, max_distance=cfg.cluster_max_distance,
                                        min_obs=cfg.min_obs, include=held)
        joined = join_cluster(clusters, np.array([j]))
        label = int(joined.label[0])
        correlation, n_min = float(joined.mean_corr[0]), int(joined.n_min[0])
        group = np.flatnonzero(clusters.labels == label) if label > 0 else np.array([], int)
    else:
        label, correlation, n_min, group = 0, math.nan, 0, np.array([], int)
    others = group[group != j]
    in_group = np.zeros(weights.size, dtype=bool)
    in_group[group] = True
    in_group[j] = True  # the idea's own holding counts in its group
    net = float(np.sum(weights[in_group]))
    before = 100.0 * sign * net  # the group's net weight in each idea's direction
    out["cluster_weight_before"][rows] = before
    out["cluster_weight_after"][rows] = before + 100.0 * np.abs(a)
    for way in (1.0, -1.0):  # what a long sees, then a short
        at = rows[sign == way]
        same = others[way * weights[others] > 0]
        out["n_members"][at] = len(same)
        out["adds_to_own"][at] = way * weights[j] > 0
        out["members"][at] = _names(piece.symbols, weights, same)
    mine = np.union1d(others, [j]) if weights[j] != 0 else others
    out["group"][rows] = _names(piece.symbols, weights, mine) or piece.symbols[j]
    out["correlation"][rows] = correlation if label > 0 else math.nan
    out["correlation_interval"][rows] = (fisher_interval(correlation, n_min) if label > 0
                                         else None)
    out["n_days"][rows] = n_min
    if not held.any():
        return
    asked = held.copy()
    asked[j] = True  # the idea's own returns too: without them it joins no cluster
    short = np.isfinite(returns[:, asked]).sum(axis=0) < cfg.min_obs
    if short.any():
        names = ", ".join(np.asarray(piece.symbols, dtype=object)[asked][short])
        _unchecked(out, rows, "correlation clusters",
                   f"fewer than {cfg.min_obs} daily returns of {names} in {piece.window}")


def fisher_interval(rho: float, n: int) -> str | None:
    """Return the Fisher-z 95% interval of a correlation from n days as '[lo, hi]' (None
    for n <= 3 or an unknown rho). For an average of correlations, n is the fewest days
    behind any of them (a conservative width)."""
    if n <= 3 or math.isnan(rho):
        return None
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    half = Z_95 / math.sqrt(n - 3)
    return f"[{math.tanh(z - half):.2f}, {math.tanh(z + half):.2f}]"


#: The two-sided 95% normal quantile (scipy is not imported for one number).
Z_95 = 1.959963984540054


def _names(symbols: tuple[str, ...], weights: np.ndarray, columns: np.ndarray) -> str:
    """Return 'MSFT long 33.1%, GOOG long 20.0%' for ``columns``, heaviest first."""
    order = sorted(columns.tolist(), key=lambda c: -abs(weights[c]))
    return ", ".join(f"{symbols[c]} {'long' if weights[c] > 0 else 'short'} "
                     f"{100.0 * abs(weights[c]):.1f}%" for c in order)


def _risk(out: dict[str, Any], rows: np.ndarray, piece: PortfolioPiece,
          cfg: CorrelationExposureConfig, returns: np.ndarray, weights: np.ndarray,
          held: np.ndarray, a: np.ndarray, j: int, k: int) -> None:
    """Volatility, parametric and historical VaR before and after, on the days every held
    symbol and the idea's have a return (one sample: a positive semi-definite covariance)."""
    from buddy.portfolio.risk import moments, with_candidates

    used = held.copy()
    used[j] = True
    days = np.isfinite(returns[:, used]).all(axis=1)
    n_days = int(days.sum())
    if n_days < cfg.min_obs:
        _unchecked(out, rows, "volatility and VaR",
                   f"{n_days} day(s) with a return of every held symbol and "
                   f"{piece.symbols[j]} in {piece.window} (at least {cfg.min_obs})")
        return
    sample = returns[days][:, used]
    cov = moments(sample, min_obs=cfg.min_obs).cov
    index = int(np.flatnonzero(np.flatnonzero(used) == j)[0])
    result = with_candidates(weights[used], cov, sample, np.full(k, index),
                             a, cfg.var_level)
    out["vol_before"][rows] = 100.0 * result.vol_before
    out["vol_after"][rows] = 100.0 * result.vol_after
    out["var_before"][rows] = 100.0 * result.var_param_before
    out["var_after"][rows] = 100.0 * result.var_param_after
    out["var_hist_before"][rows] = 100.0 * result.var_hist_before
    out["var_hist_after"][rows] = 100.0 * result.var_hist_after
    out["var_hist_interval"][rows] = objects([
        None if math.isnan(low) or math.isnan(high) else f"[{100 * low:.2f}%, {100 * high:.2f}%]"
        for low, high in zip(result.var_hist_after_low, result.var_hist_after_high,
                             strict=True)])
    out["n_hist"][rows] = result.n_hist
    with np.errstate(invalid="ignore", divide="ignore"):
        out["contribution_share"][rows] = np.where(
            result.vol_after > 0, 100.0 * result.contribution_after / result.vol_after,
            math.nan)


def _beta(out: dict[str, Any], rows: np.ndarray, piece: PortfolioPiece,
          cfg: CorrelationExposureConfig, returns: np.ndarray, weights: np.ndarray,
          held: np.ndarray, a: np.ndarray, j: int) -> None:
    """Beta-weighted net exposure before and after, from betas on the window's days."""
    from buddy.portfolio.risk import betas

    bench = np.asarray(piece.benchmark_returns, dtype=np.float64)
    has_bench = np.asarray(piece.has_benchmark, dtype=bool)
    estimate = betas(returns, bench)
    beta = np.where(estimate.n >= cfg.min_obs, estimate.beta, math.nan)
    counted = held & has_bench
    unknown = counted & np.isnan(beta)
    out["n_without_benchmark"][rows] = int((held & ~has_bench).sum())
    out["idea_beta"][rows] = beta[j] if has_bench[j] else math.nan
    if has_bench[j] and not math.isnan(beta[j]):
        out["idea_beta_interval"][rows] = (f"[{estimate.low[j]:.2f}, "
                                           f"{estimate.high[j]:.2f}]")
    out["n_beta_days"][rows] = int(estimate.n[j]) if has_bench[j] else 0
    if unknown.any() or (has_bench[j] and math.isnan(beta[j])):
        names = [piece.symbols[c] for c in np.flatnonzero(unknown)]
        if has_bench[j] and math.isnan(beta[j]) and piece.symbols[j] not in names:
            names.append(piece.symbols[j])
        _unchecked(out, rows, "beta-weighted exposure",
                   f"no beta for {', '.join(names)} (fewer than {cfg.min_obs} daily "
                   f"returns with the benchmark's in {piece.window})")
        return
    before = 100.0 * float(np.sum(beta[counted] * weights[counted]))
    out["beta_before"][rows] = before
    idea = beta[j] * a if has_bench[j] else np.zeros(len(rows))
    out["beta_after"][rows] = before + 100.0 * idea
