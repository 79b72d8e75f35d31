"""Exposure snapshot of a portfolio as of t: gross and net exposure by sector and asset class,
betas to each instrument's benchmark, correlation clusters, heat against the user's limit,
volatility with each position's Euler contribution, and parametric and historical VaR.

The math is ``buddy.portfolio.risk``'s; this module chooses the windows, applies them to a
``PortfolioState`` and states every window, level, n and interval. A figure whose input is
missing (the equity, a stop, a benchmark's bars) is NaN with its reason in ``not_checked``,
never a zero.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from buddy.config import Config, param
from buddy.portfolio.risk import (
    RiskInputError,
    betas,
    correlation_clusters,
    moments,
    nearest_psd,
    portfolio_vol,
    risk_contributions,
    sigma_interval,
    var_historical,
)
from buddy.portfolio.state import PortfolioState, ReturnsWindow, portfolio_state_with_reason

if TYPE_CHECKING:
    from buddy.store import Store

#: Version of the snapshot's computation, stored on every row.
SNAPSHOT_VERSION = "1"
#: A mark from a daily bar older than this before t is said to be stale.
STALE_MARK = pd.Timedelta(days=7)


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotConfig(Config):
    """The windows and levels of an exposure snapshot."""

    config_name: ClassVar[str] = "portfolio_snapshot"

    returns_years: float = param(1.0, lo=0.25, hi=10.0, unit="years",
                                 doc="window of daily returns for volatility, VaR, clusters")
    beta_frequency: str = param("weekly", choices=("weekly", "daily"),
                                doc="returns the betas are estimated on")
    beta_years: float = param(2.0, lo=0.25, hi=10.0, unit="years", doc="window of the betas")
    blume: bool = param(False, choices=(True, False),
                        doc="report Blume-adjusted betas (0.67 b + 0.33)")
    var_level: float = param(0.95, lo=0.8, hi=0.995, unit="confidence",
                             doc="VaR confidence level")
    var_horizon_days: int = param(1, lo=1, hi=20, unit="trading days",
                                  doc="horizon of the parametric VaR (historical: 1 day)")
    cluster_max_distance: float = param(0.5, lo=0.05, hi=1.0, unit="sqrt((1 - rho) / 2)",
                                        doc="clusters merge up to this average distance "
                                            "(0.5: average correlation 0.5)")
    min_obs: int = param(60, lo=10, hi=5000, unit="days",
                         doc="days a pair's correlation or covariance needs")

    @property
    def returns_window(self) -> ReturnsWindow:
        """Return the daily window of volatility, VaR and clusters."""
        return ReturnsWindow("daily", self.returns_years)

    @property
    def beta_window(self) -> ReturnsWindow:
        """Return the window of the betas."""
        return ReturnsWindow("weekly" if self.beta_frequency == "weekly" else "daily",
                             self.beta_years)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExposureSnapshot:
    """A portfolio's exposure as of ``as_of``; percentages are % of equity (NaN: unknown,
    with the reason in ``not_checked``).

    ``positions``: one row per position (symbol, qty, mark, weight_pct, open_risk_pct, stop,
    sector, asset_class, benchmark, cluster, contribution_pct, beta, beta_se, beta_n,
    beta_low, beta_high). ``clusters``: one dict per cluster (cluster, members,
    net_weight_pct, gross_weight_pct, mean_corr, min_n). ``sectors``/``asset_classes``:
    name -> {gross_pct, net_pct}. Volatility and contributions are per day; VaR is a loss
    over ``var_horizon_days`` (parametric) or one day (historical), with n and 95% intervals.
    """

    user_id: str
    as_of: pd.Timestamp
    equity: float | None
    base_currency: str | None
    equity_source: str
    positions_source: str
    rules_version: int
    positions: pd.DataFrame
    gross_exposure: float
    net_exposure: float
    gross_pct: float
    net_pct: float
    sectors: dict[str, dict[str, float]]
    asset_classes: dict[str, dict[str, float]]
    heat_pct: float
    heat_limit_pct: float
    heat_unknown_symbols: tuple[str, ...]
    beta_window: str
    beta_blume: bool
    beta_net_exposure_pct: float
    clusters: tuple[dict[str, Any], ...]
    cluster_max_distance: float
    returns_window: str
    n_returns: int
    min_obs: int
    vol_pct: float
    vol_low_pct: float
    vol_high_pct: float
    vol_n: int
    var_level: float
    var_horizon_days: int
    var_parametric_pct: float
    var_parametric_low_pct: float
    var_parametric_high_pct: float
    var_historical_pct: float
    var_historical_low_pct: float
    var_historical_high_pct: float
    var_historical_n: int
    not_checked: dict[str, str]

    @property
    def heat_breach(self) -> bool:
        """Return True when the known heat exceeds the user's ``max_open_heat_pct``."""
        return bool(self.heat_pct > self.heat_limit_pct)

    # ------------------------------------------------------------ output
    def as_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain JSON values (NaN as None, times in ISO UTC)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__
               if name != "positions"}
        out["as_of"] = self.as_of.isoformat()
        out["heat_breach"] = self.heat_breach
        out["positions"] = [
            {k: _plain(v) for k, v in row.items()}
            for row in self.positions.to_dict(orient="records")]
        return _plain(out)

    def row(self, *, computed_at: pd.Timestamp, trigger: str) -> dict[str, Any]:
        """Return the ``portfolio_exposure_snapshots`` row (seed columns and 0017's)."""
        beta_cols = ["symbol", "benchmark", "beta", "beta_se", "beta_n", "beta_low",
                     "beta_high"]
        plain = self.as_dict()
        return {
            "user_id": self.user_id, "ts": self.as_of, "gross_exposure": _num(
                self.gross_exposure), "net_exposure": _num(self.net_exposure),
            "sector_exposure_json": _json(self.sectors),
            "benchmark_beta_json": _json({
                "window": self.beta_window, "blume": self.beta_blume, "level": 0.95,
                "beta_net_exposure_pct": self.beta_net_exposure_pct,
                "positions": [{k: p[k] for k in beta_cols} for p in plain["positions"]]}),
            "correlation_clusters_json": _json({
                "window": self.returns_window, "max_distance": self.cluster_max_distance,
                "min_obs": self.min_obs, "clusters": list(self.clusters),
                "position_cluster": dict(zip(self.positions["symbol"],
                                             self.positions["cluster"], strict=True))}),
            "portfolio_heat_score": _num(self.heat_pct), "computed_at": computed_at,
            "version": SNAPSHOT_VERSION, "equity": self.equity,
            "base_currency": self.base_currency, "positions_source": self.positions_source,
            "n_positions": len(self.positions), "gross_exposure_pct": _num(self.gross_pct),
            "net_exposure_pct": _num(self.net_pct),
            "asset_class_exposure_json": _json(self.asset_classes),
            "heat_limit_pct": self.heat_limit_pct, "rules_version": self.rules_version,
            "heat_unknown_symbols_json": _json(list(self.heat_unknown_symbols)),
            "portfolio_vol_pct": _num(self.vol_pct),
            "risk_contributions_json": _json(dict(zip(
                self.positions["symbol"], self.positions["contribution_pct"], strict=True))),
            "var_level": self.var_level, "var_horizon_days": self.var_horizon_days,
            "var_parametric_pct": _num(self.var_parametric_pct),
            "var_historical_pct": _num(self.var_historical_pct),
            "returns_window": self.returns_window, "beta_window": self.beta_window,
            "n_returns": self.n_returns,
            "positions_json": _json(plain["positions"]),
            "not_checked_json": _json(self.not_checked), "snapshot_trigger": trigger}

    def text(self) -> str:
        """Return the snapshot as lines for the command line."""
        eq = (f"{self.equity:,.0f} {self.base_currency}" if self.equity is not None
              else "unknown")
        lines = [f"# Portfolio of {self.user_id} as of {self.as_of.isoformat()}",
                 f"equity {eq} ({self.equity_source}); positions from {self.positions_source}"
                 f"; rules version {self.rules_version}",
                 f"positions: {len(self.positions)}; gross {_pct(self.gross_pct)}, net "
                 f"{_pct(self.net_pct)} of equity; beta-adjusted net "
                 f"{_pct(self.beta_net_exposure_pct)}"]
        for name, group in (("sector", self.sectors), ("asset class", self.asset_classes)):
            for key, v in group.items():
                lines.append(f"  {name} {key}: gross {_pct(v['gross_pct'])}, net "
                             f"{_pct(v['net_pct'])}")
        unknown = (f" (open risk unknown, left out: {', '.join(self.heat_unknown_symbols)})"
                   if self.heat_unknown_symbols else "")
        lines.append(f"heat: {_pct(self.heat_pct)} of equity against a limit of "
                     f"{self.heat_limit_pct:g}%" + (" (OVER THE LIMIT)" if self.heat_breach
                                                    else "") + unknown)
        lines.append(f"clusters (average linkage on sqrt((1 - rho) / 2) <= "
                     f"{self.cluster_max_distance:g}, {self.returns_window}, pairs with >= "
                     f"{self.min_obs} days):")
        for c in self.clusters:
            corr = "" if c["mean_corr"] is None else (
                f", mean correlation {c['mean_corr']:.2f} (n >= {c['min_n']})")
            lines.append(f"  cluster {c['cluster']}: {', '.join(c['members'])}; net "
                         f"{_pct(c['net_weight_pct'])}, gross {_pct(c['gross_weight_pct'])}"
                         + corr)
        lines.append(f"volatility: {_pct(self.vol_pct)} of equity per day (95% interval "
                     f"{_pct(self.vol_low_pct)} to {_pct(self.vol_high_pct)}, n = "
                     f"{self.vol_n} days)")
        lines.append(f"VaR {self.var_level:.0%}: parametric {_pct(self.var_parametric_pct)} "
                     f"over {self.var_horizon_days} day(s) (95% interval "
                     f"{_pct(self.var_parametric_low_pct)} to "
                     f"{_pct(self.var_parametric_high_pct)}); historical "
                     f"{_pct(self.var_historical_pct)} over 1 day (95% interval "
                     f"{_pct(self.var_historical_low_pct)} to "
                     f"{_pct(self.var_historical_high_pct)}, n = {self.var_historical_n} days)")
        lines.append(f"{'symbol':8} {'qty':>10} {'weight':>8} {'risk':>7} {'cluster':>7} "
                     f"{'contrib/day':>11}  beta ({self.beta_window}"
                     f"{', Blume' if self.beta_blume else ''})")
        for p in self.positions.itertuples(index=False):
            beta = ("not checked" if not math.isfinite(p.beta) else
                    f"{p.beta:.2f} [{p.beta_low:.2f}, {p.beta_high:.2f}] n={p.beta_n} to "
                    f"{p.benchmark}")
            lines.append(f"{p.symbol:8} {p.qty:>10,.2f} {_pct(p.weight_pct):>8} "
                         f"{_pct(p.open_risk_pct):>7} {p.cluster:>7} "
                         f"{_pct(p.contribution_pct, 3):>11}  {beta}")
        lines += [f"not checked: {k}: {v}" for k, v in self.not_checked.items()]
        return "\n".join(lines)


def _pct(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}%"


def _num(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else float(value)
    if value is pd.NaT:
        return None
    return value


def _json(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, allow_nan=False)


def _groups(keys: pd.Series, weights: np.ndarray) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key in sorted({("unknown" if k is None else str(k)) for k in keys}):
        rows = np.array([("unknown" if k is None else str(k)) == key for k in keys])
        out[key] = {"gross_pct": float(np.abs(weights[rows]).sum()),
                    "net_pct": float(weights[rows].sum())}
    return out


def build_snapshot(state: PortfolioState, config: SnapshotConfig | None = None
                   ) -> ExposureSnapshot:
    """Return the exposure snapshot of ``state`` under ``config`` (defaults: one year of
    daily returns for volatility, VaR and clusters; two years of weekly returns for betas;
    95% VaR over one day)."""
    cfg = config or SnapshotConfig()
    pos = state.positions.reset_index(drop=True)
    n = len(pos)
    symbols = list(pos["symbol"].astype(str))
    not_checked: dict[str, str] = {}
    weight_pct = pos["weight_pct"].to_numpy(np.float64)
    weights_known = bool(np.isfinite(weight_pct).all())
    if state.equity is None:
        not_checked["equity"] = f"equity {state.equity_source}: % of equity not checked"
    elif not weights_known:
        missing = [s for s, w in zip(symbols, weight_pct, strict=True) if not math.isfinite(w)]
        not_checked["weights"] = ("no mark (daily bar) or a currency other than the account's "
                                  f"for {', '.join(missing)}")
    marked = pd.to_datetime(pos["mark_ts"], utc=True)
    stale = [s for s, m in zip(symbols, marked, strict=True)
             if pd.notna(m) and state.as_of - m > STALE_MARK]
    if stale:
        not_checked["marks"] = (f"the last daily bar of {', '.join(stale)} closed more than "
                                f"{STALE_MARK.days} days before t: marked to it, returns "
                                "missing since")
    value = pos["market_value"].to_numpy(np.float64)
    same_currency = np.array([c == state.base_currency for c in pos["currency"]], dtype=bool)
    gross = float(np.abs(value).sum()) if same_currency.all() else math.nan
    net = float(value.sum()) if same_currency.all() else math.nan
    w = weight_pct / 100.0

    # ------------------------------------------------------------ returns, vol, VaR
    window = cfg.returns_window
    returns = state.returns(window=window)[symbols] if n else pd.DataFrame()
    r = returns.to_numpy(np.float64) if n else np.empty((0, 0))
    level = cfg.var_level
    factor = float(stats.norm.ppf(level)) * math.sqrt(cfg.var_horizon_days)
    contribution = np.zeros(n)
    vol = vol_low = vol_high = 0.0
    var_p = var_p_low = var_p_high = 0.0
    var_h = var_h_low = var_h_high = 0.0
    vol_n = hist_n = len(returns)
    if n:
        mom = moments(r, min_obs=cfg.min_obs)
        vol_n = int(mom.n.min())
        cov = mom.cov
        if not weights_known:
            vol = vol_low = vol_high = var_p = var_p_low = var_p_high = math.nan
            var_h = var_h_low = var_h_high = math.nan
            contribution = np.full(n, np.nan)
        elif not np.isfinite(cov).all():
            short = [s for s, k in zip(symbols, np.diag(mom.n), strict=True) if k < cfg.min_obs]
            not_checked["volatility"] = (f"fewer than {cfg.min_obs} days of returns in "
                                         f"{window.describe()} for "
                                         f"{', '.join(short) or 'a pair of positions'}")
            vol = vol_low = vol_high = var_p = var_p_low = var_p_high = math.nan
            contribution = np.full(n, np.nan)
        else:
            try:
                vol = portfolio_vol(w, cov)
            except RiskInputError:
                cov = nearest_psd(cov)  # pairwise gaps can leave a small negative eigenvalue
                vol = portfolio_vol(w, cov)
            contribution = risk_contributions(w, cov)
            vol_low, vol_high = sigma_interval(vol, vol_n)
            var_p, var_p_low, var_p_high = factor * vol, factor * vol_low, factor * vol_high
        if weights_known:
            hist = var_historical(w, r, level)
            var_h, var_h_low, var_h_high, hist_n = hist.var, hist.low, hist.high, hist.n
            if hist.n < cfg.min_obs:
                not_checked["historical VaR"] = (f"{hist.n} days with every position "
                                                 f"observed (fewer than {cfg.min_obs})")
        else:
            hist_n = 0

    # ------------------------------------------------------------ clusters
    labels = np.zeros(n, dtype=np.int64)
    clusters: list[dict[str, Any]] = []
    if n:
        found = correlation_clusters(r, max_distance=cfg.cluster_max_distance,
                                     min_obs=cfg.min_obs)
        labels = found.labels
        for label in range(1, int(labels.max(initial=0)) + 1):
            members = np.flatnonzero(labels == label)
            pairs = [(i, j) for i in members for j in members if i < j]
            corr = [found.corr[i, j] for i, j in pairs]
            clusters.append({
                "cluster": label, "members": [symbols[i] for i in members],
                "net_weight_pct": float(weight_pct[members].sum()),
                "gross_weight_pct": float(np.abs(weight_pct[members]).sum()),
                "mean_corr": float(np.nanmean(corr)) if corr and np.isfinite(corr).any()
                else None,
                "min_n": int(min(found.n[i, j] for i, j in pairs)) if pairs else
                int(found.n[members[0], members[0]])})
        unclustered = [s for s, k in zip(symbols, labels, strict=True) if k == 0]
        if unclustered:
            not_checked["clusters"] = (f"fewer than {cfg.min_obs} days of returns for "
                                       f"{', '.join(unclustered)} (cluster 0: unknown)")

    # ------------------------------------------------------------ betas
    beta_window = cfg.beta_window
    beta = np.full(n, np.nan)
    beta_se = np.full(n, np.nan)
    beta_n = np.zeros(n, dtype=np.int64)
    beta_low = np.full(n, np.nan)
    beta_high = np.full(n, np.nan)
    benches = [b if isinstance(b, str) and b else None for b in pos["benchmark"]]
    with_bench = [i for i, b in enumerate(benches) if b is not None]
    if with_bench:
        asked = [str(benches[i]) for i in with_bench]
        weekly = state.returns(asked, window=beta_window)
        asset = weekly[[symbols[i] for i in with_bench]].to_numpy(np.float64)
        bench = np.column_stack([weekly[b].to_numpy(np.float64) for b in asked])
        est = betas(asset, bench, blume=cfg.blume)
        beta[with_bench], beta_se[with_bench], beta_n[with_bench] = est.beta, est.se, est.n
        beta_low[with_bench], beta_high[with_bench] = est.low, est.high
    known_beta = np.isfinite(beta)
    no_bench = [symbols[i] for i in range(n) if benches[i] is None]
    too_short = [symbols[i] for i in range(n) if benches[i] is not None and not known_beta[i]]
    if no_bench or too_short:
        not_checked["betas"] = "; ".join(
            [f"no benchmark in tickers for {', '.join(no_bench)}"] * bool(no_bench)
            + [f"fewer than 3 common periods with the benchmark in {beta_window.describe()} "
               f"for {', '.join(too_short)}"] * bool(too_short)) + (
            ": left out of the beta-adjusted net exposure")
    beta_net = (float((weight_pct[known_beta] * beta[known_beta]).sum())
                if weights_known and (known_beta.any() or n == 0) else math.nan)

    # ------------------------------------------------------------ heat
    heat = state.heat_pct
    unknown = state.unknown_risk_symbols
    if unknown and state.equity is not None:
        not_checked["heat"] = ("open risk unknown (no stop or no mark) for "
                               f"{', '.join(unknown)}: left out of the heat")

    table = pd.DataFrame({
        "symbol": symbols, "qty": pos["qty"].to_numpy(np.float64),
        "mark": pos["mark"].to_numpy(np.float64), "weight_pct": weight_pct,
        "open_risk_pct": pos["open_risk_pct"].to_numpy(np.float64),
        "stop": pos["stop"].to_numpy(np.float64),
        "sector": pos["sector"].to_numpy(object), "asset_class": pos["asset_class"].to_numpy(
            object), "benchmark": np.asarray(benches, dtype=object),
        "cluster": labels.astype(np.int64), "contribution_pct": contribution * 100.0,
        "beta": beta, "beta_se": beta_se, "beta_n": beta_n, "beta_low": beta_low,
        "beta_high": beta_high})
    return ExposureSnapshot(
        user_id=state.user_id, as_of=state.as_of, equity=state.equity,
        base_currency=state.base_currency, equity_source=state.equity_source,
        positions_source=state.source, rules_version=state.rules_version, positions=table,
        gross_exposure=gross, net_exposure=net,
        gross_pct=float(np.abs(weight_pct).sum()) if n else 0.0,
        net_pct=float(weight_pct.sum()) if n else 0.0,
        sectors=_groups(pos["sector"], weight_pct),
        asset_classes=_groups(pos["asset_class"], weight_pct),
        heat_pct=heat, heat_limit_pct=float(state.rules.max_open_heat_pct),
        heat_unknown_symbols=unknown, beta_window=beta_window.describe(), beta_blume=cfg.blume,
        beta_net_exposure_pct=beta_net, clusters=tuple(clusters),
        cluster_max_distance=cfg.cluster_max_distance, returns_window=window.describe(),
        n_returns=len(returns), min_obs=cfg.min_obs,
        vol_pct=vol * 100, vol_low_pct=vol_low * 100, vol_high_pct=vol_high * 100,
        vol_n=vol_n, var_level=level, var_horizon_days=cfg.var_horizon_days,
        var_parametric_pct=var_p * 100, var_parametric_low_pct=var_p_low * 100,
        var_parametric_high_pct=var_p_high * 100, var_historical_pct=var_h * 100,
        var_historical_low_pct=var_h_low * 100, var_historical_high_pct=var_h_high * 100,
        var_historical_n=hist_n, not_checked=not_checked)


def exposure_snapshot(store: Store, user_id: str, as_of: Any,
                      config: SnapshotConfig | None = None
                      ) -> tuple[ExposureSnapshot | None, str | None]:
    """Return (the user's exposure snapshot as of ``as_of``, None), or (None, why not) when
    the user has no positions source by then."""
    state, reason = portfolio_state_with_reason(store, user_id, as_of)
    if state is None:
        return None, reason
    return build_snapshot(state, config), None
