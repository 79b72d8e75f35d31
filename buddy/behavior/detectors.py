"""Behaviour detectors over the trader's own history: revenge, overtrading, FOMO, fatigue,
rule drift, stop drift and sizing after outcomes.

Two entry points, one implementation:

- ``detect(history, intents, params) -> Hits``: for each intent (row i, decided at its
  ``as_of``), which detectors fire, at which severity, with the evidence from the user's OWN
  history as of that time (n, the user's baseline, the difference with a 95% interval). The
  BehaviorNudgesEvaluator calls it; every detector also says per row whether it was checked
  (``Hits.checks``: fired | clear | silent below its minimum sample | not_checked for a
  missing input), so a silent detector is never read as "fine".
- ``scan(history, params) -> events``: every trade's entry taken as an intent at its open
  (plus the logged intents that did not become trades), and every trade that did not honour
  its planned stop, as ``behavior_events`` rows (``buddy.store.behavior.EVENT_COLUMNS``).

Point-in-time: row i reads only entries opened before its ``as_of``, outcomes (pnl, R,
reviews) of trades closed by then and stop touches whose bar closed by then; the row's own
trade (column ``trade_id`` of the intents, when given) is never part of its history.

Definitions (thresholds: ``buddy.behavior.params``; medium sensitivity in brackets):

revenge
    A closed trade lost at least ``min_loss_r`` R [0.25] (no R known: that many times the
    user's median risk, or ``min_loss_pct_equity`` of the equity known at t) within
    ``window_hours`` [72] before the intent, in its ``scope`` [the same asset class]; and
    the intent's risk amount (|entry - stop| x size x multiplier) is at least
    ``size_margin`` [1.5] times the median of the user's last ``baseline_trades`` [20]
    entries' risk (at least ``min_trades`` [10]). Without a stop the
    risk is unknown: not checked (``size_measure`` 'risk_else_notional' compares the
    notional with the same symbol's entries instead: units are not risk when stops differ).
    Evidence: metric ``risk_amount`` | ``notional`` (account currency), value, baseline (the
    median), difference = value - median with the order-statistic 95% interval of the median;
    facts ``ratio``, ``loss_trade_id``, ``loss_symbol``, ``loss_r``, ``loss_pnl``,
    ``hours_since_loss``. Severity high from twice the median, else medium.
overtrading
    The intent is the k-th entry of the trader's day (``buddy.behavior.history.session_day``)
    with k >= ``multiple`` [6] x the median entries per active day over the last
    ``baseline_days`` [250] active days (at least ``min_days`` [20]) and k >= ``min_count``
    [4]. Then the user's own results on "such days" (earlier days that reached the same
    count): with at least ``min_such_days`` [3] of them, it fires only when their mean pnl
    per closed trade was below the other days' (severity medium, high from twice the
    threshold) and stays clear when it was not; with fewer, the results are not known yet:
    it fires at LOW severity saying so (``results_checked`` False), or stays silent when
    ``require_results``. Evidence: metric ``entries_today``; baseline the median; difference
    k - median with the median's interval; facts ``threshold``, ``such_days``,
    ``n_such_trades``, ``n_other_trades``, ``results_checked``, and when checked
    ``such_mean_pnl``, ``other_mean_pnl``, ``result_difference`` with its Welch 95% interval
    (``result_difference_lo``/``_hi``).
fomo
    The intent's ``extension_atr`` ((entry or last close - EMA20) / ATR(14), signed by the
    side: + is chasing) is at least ``min_extension_atr`` [2] and its conformal p-value
    among the user's own earlier entries' extensions, (1 + #{past >= it}) / (n + 1), is at
    most ``alpha`` [0.005] (at least ``min_trades`` [199]). Evidence: metric
    ``extension_atr`` (ATR), baseline the user's median extension, difference with the
    median's interval; facts ``p_value``, ``alpha``, ``max_before``, ``rank_pct``. Medium.
fatigue
    An intraday intent at least ``min_session_hours`` [12] after the day's first intraday
    entry and its ``min_entries``-th [3] or later; and (``require_worse``) the user's closed
    intraday trades entered that many hours into their day had a worse mean pnl than the
    others (at least ``min_late_trades`` [5]). Evidence: metric ``hours_into_session``
    (hours), baseline the user's median hours into the session at entry, difference;
    facts ``entries_today``, ``late_mean_pnl``, ``other_mean_pnl``, ``result_difference``
    with its Welch interval, ``n_late``, ``n_other``. Medium.
rule_drift
    The mean process score (post-trade reviews, 0-1) of trades closed in the last
    ``recent_days`` [30] is at least ``min_drop`` [0.15] below the ``prior_days`` [60]
    before, the Welch 95% interval of the difference below 0 (``min_trades`` [5] in each).
    Evidence: metric ``process_score``, value the recent mean, baseline the prior mean,
    difference with its Welch interval. Medium.
stop_drift
    A trade did not honour its planned stop when a bar after its entry touched the stop and
    the trade was still open at that bar's close, or it closed beyond the price the stop
    would have filled at (the stop, or the open when the bar gapped through it) by more than
    ``min_past_stop_r`` [0.3] R. An intent is flagged when at least ``min_count`` [1] of the
    user's last ``recent_trades`` [20] closed trades with a checked stop did so (at least
    ``min_trades`` [10] checked). Evidence: metric ``stops_not_honoured`` (share), value the
    recent share, baseline the share among the trades before those, difference with
    Newcombe's 95% interval; facts ``count``, ``last_trade_id``, ``last_past_stop_r``.
    High when the recent share is at least 0.25, else medium.
sizing
    Over the last ``window_pairs`` [50] (previous closed trade's R, next entry's risk over
    the user's median risk) pairs as of t, Pearson's |r| >= ``min_abs_r`` [0.3] with its
    Fisher 95% interval excluding 0 (at least ``min_pairs`` [30]). Evidence: metric
    ``size_result_correlation`` (r), baseline 0, difference r with its interval. Low.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from buddy.behavior.history import TraderHistory, session_day
from buddy.behavior.params import (
    DETECTORS,
    BehaviorParams,
    FatigueConfig,
    FomoConfig,
    OvertradingConfig,
    RevengeConfig,
    RuleDriftConfig,
    SizingConfig,
    StopDriftConfig,
)
from buddy.timeframes import Timeframe

__all__ = [
    "CHECK_COLUMNS",
    "DETECTOR_VERSION",
    "HIT_COLUMNS",
    "Hits",
    "detect",
    "extension_atr",
    "scan",
    "stop_breaches",
]

DETECTOR_VERSION = "1.0.0"

#: ``Hits.hits``: one row per (intent row, detector) that fired.
HIT_COLUMNS: tuple[str, ...] = (
    "row",            # the intent's position in the frame given to detect
    "intent_id",
    "detector",       # one of buddy.behavior.params.DETECTORS
    "severity",       # low | medium | high
    "ts",             # the intent's as_of (UTC)
    "symbol",
    "metric", "unit",  # what value/baseline measure
    "value",          # the intent's (or the recent window's) figure
    "baseline",       # the user's own typical figure as of ts
    "difference",     # value - baseline
    "difference_lo", "difference_hi",  # its 95% interval (NaN: no interval)
    "n",              # the sample the baseline came from
    "threshold",      # the figure the value was compared with
    "linked_trade_id",  # the trade the hit points at (the loss, the breach), else None
    "evidence",       # dict of the detector's further facts (documented per detector)
)
#: ``Hits.checks``: one row per (intent row, enabled detector).
CHECK_COLUMNS: tuple[str, ...] = ("row", "detector", "status", "reason")
STATUSES: tuple[str, ...] = ("fired", "clear", "silent", "not_checked")


@dataclass(frozen=True, slots=True)
class Hits:
    """What ``detect`` found for N intents: ``hits`` (HIT_COLUMNS, by row then detector
    order) and ``checks`` (CHECK_COLUMNS: every enabled detector's status per row)."""

    n: int
    hits: pd.DataFrame
    checks: pd.DataFrame

    def for_row(self, row: int) -> pd.DataFrame:
        """Return row ``row``'s hits."""
        return self.hits[self.hits["row"] == row].reset_index(drop=True)

    def rows(self, detector: str) -> np.ndarray:
        """Return the rows where ``detector`` fired."""
        return self.hits.loc[self.hits["detector"] == detector, "row"].to_numpy(np.int64)

    def status(self, detector: str) -> np.ndarray:
        """Return ``detector``'s status per row (object array of STATUSES; 'not_checked'
        where it was not enabled)."""
        out = np.full(self.n, "not_checked", dtype=object)
        mine = self.checks[self.checks["detector"] == detector]
        out[mine["row"].to_numpy(np.int64)] = mine["status"].to_numpy(object)
        return out


def extension_atr(entry: np.ndarray, ema20: np.ndarray, atr: np.ndarray,
                  side: np.ndarray) -> np.ndarray:
    """Return (entry - EMA20) / ATR(14) signed by the side ('long' | 'short'): how far an
    entry chases the move, in ATR (NaN where an input is missing or ATR <= 0)."""
    sign = np.where(np.asarray(side, dtype=object) == "short", -1.0, 1.0)
    atr = np.asarray(atr, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (np.asarray(entry, np.float64) - np.asarray(ema20, np.float64)) / atr * sign
    return np.where(atr > 0, out, np.nan)


# ---------------------------------------------------------------------------- statistics
def _median_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Return the median and its distribution-free 95% interval (binomial order
    statistics; the sample's range when n < 6)."""
    v = np.sort(values)
    lo, hi = _order_ranks(len(v))
    return float(np.median(v)), float(v[lo]), float(v[hi])


@lru_cache(maxsize=4096)
def _order_ranks(n: int) -> tuple[int, int]:
    """Return the 0-based ranks bounding the median's 95% interval in a sample of n."""
    lo = int(stats.binom.ppf(0.025, n, 0.5))
    hi = int(stats.binom.isf(0.025, n, 0.5))
    return max(lo - 1, 0), min(hi, n - 1)


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Return mean(a) - mean(b) and its Welch 95% interval (NaN interval for n < 2)."""
    diff = float(np.mean(a) - np.mean(b))
    if len(a) < 2 or len(b) < 2:
        return diff, np.nan, np.nan
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, dof) * se)
    return diff, diff - half, diff + half


def _wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959963984540054
    if n == 0:
        return np.nan, np.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def _newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """Return p1 - p2 and Newcombe's hybrid-score 95% interval."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = _wilson(k1, n1)
    l2, u2 = _wilson(k2, n2)
    d = p1 - p2
    return d, d - float(np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)), d + float(
        np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Return Pearson's r and its Fisher-z 95% interval (NaN when undefined)."""
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    if len(x) < 4 or sxx == 0 or syy == 0:
        return np.nan, np.nan, np.nan
    r = float(dx @ dy) / np.sqrt(sxx * syy)
    z, se = np.arctanh(np.clip(r, -0.999999, 0.999999)), 1 / np.sqrt(len(x) - 3)
    return r, float(np.tanh(z - 1.959963984540054 * se)), float(
        np.tanh(z + 1.959963984540054 * se))


# ---------------------------------------------------------------------------- inputs
_NAT = np.iinfo(np.int64).min
_NEVER = np.iinfo(np.int64).max
_HOUR_NS = 3_600_000_000_000


def _ns(values: Any) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


@dataclass(frozen=True, slots=True)
class _Trades:
    """The history's trades as arrays (times int64 ns; a missing close is _NEVER)."""

    frame: pd.DataFrame
    trade_id: np.ndarray
    symbol: np.ndarray
    asset_class: np.ndarray
    open_ns: np.ndarray
    close_ns: np.ndarray
    day: np.ndarray  # session day, int64 ns
    intraday: np.ndarray
    risk: np.ndarray
    notional: np.ndarray
    pnl: np.ndarray
    pnl_r: np.ndarray
    extension: np.ndarray
    process_score: np.ndarray
    breach_ns: np.ndarray  # when a stop breach became known (_NEVER: none / unknown)
    breach_r: np.ndarray  # R lost beyond the honoured stop (NaN: not judged)
    checked_ns: np.ndarray  # when the stop's judgement became final (_NEVER: not yet)
    hours_in: np.ndarray  # hours after the day's first intraday entry (NaN: not intraday)

    @classmethod
    def of(cls, history: TraderHistory) -> _Trades:
        f = history.trades.sort_values("open_ts", kind="stable").reset_index(drop=True)
        open_ns = _ns(f["open_ts"])
        close = _ns(f["close_ts"])
        close_ns = np.where(close == _NAT, _NEVER, close)
        breach_ns, breach_r, checked_ns = stop_breaches(f)
        day = _ns(pd.to_datetime(f["session_day"]).dt.tz_localize("UTC"))
        intraday = f["intraday"].to_numpy(bool)
        hours_in = np.full(len(f), np.nan)
        if intraday.any():
            idx = np.flatnonzero(intraday)
            first = pd.Series(open_ns[idx]).groupby(day[idx]).transform("min").to_numpy()
            hours_in[idx] = (open_ns[idx] - first) / _HOUR_NS
        return cls(frame=f, trade_id=f["trade_id"].to_numpy(object),
                   symbol=f["symbol"].to_numpy(object),
                   asset_class=f["asset_class"].to_numpy(object), open_ns=open_ns,
                   close_ns=close_ns, day=day, intraday=intraday,
                   risk=f["risk_amount"].to_numpy(np.float64),
                   notional=f["notional"].to_numpy(np.float64),
                   pnl=f["pnl"].to_numpy(np.float64), pnl_r=f["pnl_r"].to_numpy(np.float64),
                   extension=f["extension_atr"].to_numpy(np.float64),
                   process_score=f["process_score"].to_numpy(np.float64),
                   breach_ns=breach_ns, breach_r=breach_r, checked_ns=checked_ns,
                   hours_in=hours_in)


def stop_breaches(trades: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per trade (TRADE_COLUMNS) when a breach of its planned stop became known (int64
    ns UTC; int64 max: none or not judged), the R it closed beyond the honoured stop (NaN:
    not judged) and when its judgement became final (its close, or the breach).

    The honoured stop: the price a stop order would have filled at in the bar that touched
    it: the stop, or that bar's open when it gapped through. A breach: the trade was still
    open after that bar's close (known at that close), or it closed beyond the honoured stop
    by any amount (the caller compares with its threshold; known at the close)."""
    n = len(trades)
    touch = _ns(trades["stop_touch_ts"])
    close = _ns(trades["close_ts"])
    checked = trades["stop_checked"].to_numpy(bool)
    sign = trades["sign"].to_numpy(np.float64)
    stop = trades["initial_stop"].to_numpy(np.float64)
    entry = trades["entry"].to_numpy(np.float64)
    opened = trades["stop_touch_open"].to_numpy(np.float64)
    qty = trades["qty"].to_numpy(np.float64) * trades["multiplier"].to_numpy(np.float64)
    pnl = trades["pnl"].to_numpy(np.float64)
    touched = checked & (touch != _NAT)
    is_closed = close != _NAT
    honoured = np.where(np.isfinite(opened) & ((opened - stop) * sign < 0), opened, stop)
    unit = np.abs(entry - stop)
    # pnl after fees over the qty gives the average exit; fees make it a little worse
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_exit = entry + pnl / qty * sign
        beyond_r = np.where(touched & is_closed, (honoured - avg_exit) * sign / unit, np.nan)
    stayed = touched & ((~is_closed) | (close >= touch))
    breach_ns = np.full(n, _NEVER, dtype=np.int64)
    breach_ns[stayed] = touch[stayed]
    beyond_r = np.where(checked & is_closed & ~touched, 0.0, beyond_r)
    # a stop stayed past is judged at the touch bar's close, whenever the trade closed
    checked_ns = np.where(stayed, touch, np.where(checked & is_closed, close, _NEVER))
    return breach_ns, np.where(stayed & ~is_closed, np.inf, beyond_r), checked_ns


_REQUIRED = ("intent_id", "symbol", "side", "as_of")


@dataclass(frozen=True, slots=True)
class _Rows:
    """The intents as arrays."""

    n: int
    intent_id: np.ndarray
    symbol: np.ndarray
    asset_class: np.ndarray
    t: np.ndarray  # as_of, int64 ns
    day: np.ndarray
    own: np.ndarray  # the row's own trade_id (None: an intent)
    own_index: np.ndarray  # its position among the history's trades (-1: none)
    n_before: np.ndarray  # how many of the history's trades opened before the row's t
    intraday: np.ndarray  # True | False, None: unknown timeframe
    risk: np.ndarray
    notional: np.ndarray
    extension: np.ndarray
    equity: np.ndarray

    @classmethod
    def of(cls, intents: pd.DataFrame, history: TraderHistory) -> _Rows:
        missing = [c for c in _REQUIRED if c not in intents.columns]
        if missing:
            raise ValueError(f"intents: missing columns {missing} (required: "
                             f"{', '.join(_REQUIRED)})")
        f = intents.reset_index(drop=True)
        n = len(f)

        def num(column: str) -> np.ndarray:
            if column not in f.columns:
                return np.full(n, np.nan)
            return pd.to_numeric(f[column], errors="coerce").to_numpy(np.float64)

        as_of = pd.to_datetime(f["as_of"], utc=True)
        if as_of.isna().any():
            bad = f.loc[as_of.isna(), "intent_id"].tolist()[:3]
            raise ValueError(f"intents.as_of: must be a time (missing for {bad})")
        entry, stop, size = num("proposed_entry"), num("proposed_stop"), num("proposed_size")
        mult = np.where(np.isfinite(num("multiplier")), num("multiplier"), 1.0)
        given = num("proposed_risk_amount")
        risk = np.where(np.isfinite(given) & (given > 0), given,
                        np.abs(entry - stop) * size * mult)
        risk = np.where(risk > 0, risk, np.nan)
        notional = np.abs(entry) * size * mult
        timeframe = f["timeframe"] if "timeframe" in f.columns else pd.Series([None] * n)
        intraday = np.array([_is_intraday(tf) for tf in timeframe], dtype=object)
        classes = history.asset_classes or {}
        own = (f["trade_id"].to_numpy(object) if "trade_id" in f.columns
               else np.full(n, None, dtype=object))
        return cls(n=n, intent_id=f["intent_id"].astype(str).to_numpy(object),
                   symbol=f["symbol"].astype(str).to_numpy(object),
                   asset_class=np.array([classes.get(s) for s in f["symbol"]], dtype=object),
                   t=_ns(as_of), day=_ns(session_day(as_of).dt.tz_localize("UTC")),
                   own=own, own_index=np.full(n, -1, dtype=np.int64),
                   n_before=np.zeros(n, dtype=np.int64), intraday=intraday, risk=risk,
                   notional=np.where(notional > 0, notional, np.nan),
                   extension=num("extension_atr"), equity=history.equity_at(as_of))


def _is_intraday(timeframe: Any) -> bool | None:
    if not isinstance(timeframe, str) or timeframe not in set(Timeframe):
        return None
    return Timeframe.parse(timeframe).is_intraday


# ---------------------------------------------------------------------------- one detector
@dataclass(slots=True)
class _Out:
    """What one detector says about each row."""

    status: np.ndarray
    reason: np.ndarray
    hits: list[dict[str, Any]]

    @classmethod
    def empty(cls, n: int) -> _Out:
        return cls(np.full(n, "clear", dtype=object), np.full(n, "", dtype=object), [])

    def silent(self, i: int, reason: str) -> None:
        self.status[i], self.reason[i] = "silent", reason

    def unchecked(self, i: int, reason: str) -> None:
        self.status[i], self.reason[i] = "not_checked", reason

    def fire(self, i: int, rows: _Rows, **values: Any) -> None:
        self.status[i] = "fired"
        evidence = values.pop("evidence", {})
        self.hits.append({"row": i, "intent_id": rows.intent_id[i], "symbol": rows.symbol[i],
                          "ts": rows.t[i], "evidence": evidence,
                          "linked_trade_id": values.pop("linked_trade_id", None), **values})


def _before(tr: _Trades, rows: _Rows, i: int) -> np.ndarray:
    """Return the trades entered before row i's time (its own trade excluded)."""
    mask = np.zeros(len(tr.open_ns), dtype=bool)
    mask[:rows.n_before[i]] = True
    if rows.own_index[i] >= 0:
        mask[rows.own_index[i]] = False
    return mask


def _not_own(tr: _Trades, rows: _Rows, i: int) -> np.ndarray:
    """Return every trade but row i's own."""
    mask = np.ones(len(tr.open_ns), dtype=bool)
    if rows.own_index[i] >= 0:
        mask[rows.own_index[i]] = False
    return mask


def _revenge(tr: _Trades, rows: _Rows, cfg: RevengeConfig) -> _Out:
    out = _Out.empty(rows.n)
    window = cfg.window_hours * _HOUR_NS
    for i in range(rows.n):
        prior = np.flatnonzero(_before(tr, rows, i))
        measure, value, base = "risk_amount", rows.risk[i], tr.risk
        recent = prior[np.isfinite(base[prior])][-cfg.baseline_trades:]
        if cfg.size_measure == "risk_else_notional" and not np.isfinite(value):
            # units are comparable within one symbol only
            measure, value, base = "notional", rows.notional[i], tr.notional
            same = prior[tr.symbol[prior] == rows.symbol[i]]
            recent = same[np.isfinite(base[same])][-cfg.baseline_trades:]
        if not np.isfinite(value):
            out.unchecked(i, "the intent's risk is unknown (no stop or size)")
            continue
        if len(recent) < cfg.min_trades:
            out.silent(i, f"{len(recent)} earlier entries with a size (at least "
                          f"{cfg.min_trades} needed)")
            continue
        closed = (tr.close_ns <= rows.t[i]) & (rows.t[i] - tr.close_ns <= window) & (
            _not_own(tr, rows, i))
        if cfg.scope == "symbol":
            closed &= tr.symbol == rows.symbol[i]
        elif cfg.scope == "asset_class":
            closed &= (tr.asset_class == rows.asset_class[i]) | (tr.symbol == rows.symbol[i])
        median, lo, hi = _median_interval(base[recent])
        # a trade without a stop has no R: its loss counts against the user's typical risk
        # (the baseline median: their de facto risk budget) or a share of the equity known
        typical = median if measure == "risk_amount" else np.nanmedian(tr.risk[prior]) \
            if np.isfinite(tr.risk[prior]).any() else np.nan
        with np.errstate(invalid="ignore"):
            no_r_loss = np.isfinite(tr.pnl) & (tr.pnl < 0) & (
                (tr.pnl <= -cfg.min_loss_r * typical)
                | (tr.pnl <= -cfg.min_loss_pct_equity / 100.0 * rows.equity[i]))
            lost = np.where(np.isfinite(tr.pnl_r), tr.pnl_r <= -cfg.min_loss_r, no_r_loss)
        losses = np.flatnonzero(closed & lost & (np.where(np.isfinite(tr.pnl), tr.pnl, 0) < 0))
        if not len(losses):
            continue
        if not value >= cfg.size_margin * median:
            continue
        loss = losses[np.argmax(tr.close_ns[losses])]
        out.fire(i, rows, detector="revenge",
                 severity="high" if value >= 2.0 * median else "medium", metric=measure,
                 unit="account currency", value=float(value), baseline=median,
                 difference=float(value - median), difference_lo=float(value - hi),
                 difference_hi=float(value - lo), n=len(recent),
                 threshold=float(cfg.size_margin * median),
                 linked_trade_id=str(tr.trade_id[loss]),
                 evidence={"ratio": float(value / median), "loss_trade_id": str(tr.trade_id[loss]),
                           "loss_symbol": str(tr.symbol[loss]),
                           "loss_r": _num(tr.pnl_r[loss]), "loss_pnl": _num(tr.pnl[loss]),
                           "hours_since_loss": float((rows.t[i] - tr.close_ns[loss]) / _HOUR_NS),
                           "size_margin": cfg.size_margin})
    return out


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _overtrading(tr: _Trades, rows: _Rows, cfg: OvertradingConfig) -> _Out:
    out = _Out.empty(rows.n)
    for i in range(rows.n):
        prior = _before(tr, rows, i)
        today = int((prior & (tr.day == rows.day[i])).sum()) + 1
        earlier = prior & (tr.day < rows.day[i])
        days, counts = np.unique(tr.day[earlier], return_counts=True)
        days, counts = days[-cfg.baseline_days:], counts[-cfg.baseline_days:]
        if len(days) < cfg.min_days:
            out.silent(i, f"{len(days)} earlier active days (at least {cfg.min_days} needed)")
            continue
        median = float(np.median(counts))
        threshold = max(cfg.multiple * median, float(cfg.min_count))
        if today < threshold:
            continue
        median, lo, hi = _median_interval(counts.astype(np.float64))
        # "such days": the user's earlier days that reached the same threshold
        such = np.isin(tr.day, days[counts >= threshold])
        closed = earlier & (tr.close_ns <= rows.t[i]) & np.isfinite(tr.pnl)
        on_such, on_other = closed & such, closed & ~such
        n_such = len(np.unique(tr.day[on_such]))
        facts: dict[str, Any] = {"threshold": threshold, "such_days": n_such,
                                 "n_such_trades": int(on_such.sum()),
                                 "n_other_trades": int(on_other.sum()),
                                 "results_checked": False}
        severity = "low"  # the user's own results on such days are not known yet
        if n_such >= cfg.min_such_days and on_other.sum() >= 2:
            d, d_lo, d_hi = _welch(tr.pnl[on_such], tr.pnl[on_other])
            facts |= {"results_checked": True,
                      "such_mean_pnl": float(tr.pnl[on_such].mean()),
                      "other_mean_pnl": float(tr.pnl[on_other].mean()),
                      "result_difference": d, "result_difference_lo": _num(d_lo),
                      "result_difference_hi": _num(d_hi)}
            if not d < 0:
                continue  # such days went as well or better for this user: no alert
            severity = "high" if today >= 2 * threshold else "medium"
        elif cfg.require_results:
            out.silent(i, f"{n_such} earlier days with {threshold:g} entries or more (at least "
                          f"{cfg.min_such_days} needed to compare their results)")
            continue
        out.fire(i, rows, detector="overtrading", severity=severity,
                 metric="entries_today", unit="entries", value=float(today), baseline=median,
                 difference=float(today - median), difference_lo=float(today - hi),
                 difference_hi=float(today - lo), n=len(days), threshold=threshold,
                 evidence=facts)
    return out


def _fomo(tr: _Trades, rows: _Rows, cfg: FomoConfig) -> _Out:
    out = _Out.empty(rows.n)
    for i in range(rows.n):
        value = rows.extension[i]
        if not np.isfinite(value):
            out.unchecked(i, "no extension from the EMA20 (ATR) for the intent")
            continue
        prior = _before(tr, rows, i) & np.isfinite(tr.extension)
        past = tr.extension[prior]
        if len(past) < cfg.min_trades:
            out.silent(i, f"{len(past)} earlier entries with an extension (at least "
                          f"{cfg.min_trades} needed)")
            continue
        p_value = (1 + int((past >= value).sum())) / (len(past) + 1)
        if not (p_value <= cfg.alpha and value >= cfg.min_extension_atr):
            continue
        median, lo, hi = _median_interval(past)
        out.fire(i, rows, detector="fomo", severity="medium", metric="extension_atr",
                 unit="ATR", value=float(value), baseline=median,
                 difference=float(value - median), difference_lo=float(value - hi),
                 difference_hi=float(value - lo), n=len(past),
                 threshold=float(cfg.min_extension_atr),
                 evidence={"p_value": p_value, "alpha": cfg.alpha,
                           "max_before": float(past.max()),
                           "rank_pct": float(100.0 * np.mean(past < value))})
    return out


def _fatigue(tr: _Trades, rows: _Rows, cfg: FatigueConfig) -> _Out:
    out = _Out.empty(rows.n)
    for i in range(rows.n):
        if rows.intraday[i] is None:
            out.unchecked(i, "the intent's timeframe is unknown")
            continue
        if not rows.intraday[i]:
            out.unchecked(i, "not an intraday entry (time in session does not apply)")
            continue
        prior = _before(tr, rows, i) & tr.intraday
        today = prior & (tr.day == rows.day[i])
        entries = int(today.sum()) + 1
        hours = float((rows.t[i] - tr.open_ns[today].min()) / _HOUR_NS) if today.any() else 0.0
        closed = prior & (tr.close_ns <= rows.t[i]) & np.isfinite(tr.pnl)
        late = closed & (tr.hours_in >= cfg.min_session_hours)
        other = closed & ~(tr.hours_in >= cfg.min_session_hours)
        if late.sum() < cfg.min_late_trades:
            out.silent(i, f"{int(late.sum())} earlier intraday trades entered "
                          f"{cfg.min_session_hours:g} hours or more into the session (at "
                          f"least {cfg.min_late_trades} needed)")
            continue
        if not (hours >= cfg.min_session_hours and entries >= cfg.min_entries):
            continue
        d, d_lo, d_hi = _welch(tr.pnl[late], tr.pnl[other]) if other.sum() else (
            np.nan, np.nan, np.nan)
        if cfg.require_worse and not d < 0:
            continue
        typical = tr.hours_in[prior & np.isfinite(tr.hours_in)]
        median, lo, hi = _median_interval(typical) if len(typical) else (np.nan,) * 3
        out.fire(i, rows, detector="fatigue", severity="medium",
                 metric="hours_into_session", unit="hours", value=hours, baseline=median,
                 difference=hours - median, difference_lo=hours - hi, difference_hi=hours - lo,
                 n=len(typical), threshold=cfg.min_session_hours,
                 evidence={"entries_today": entries, "n_late": int(late.sum()),
                           "n_other": int(other.sum()),
                           "late_mean_pnl": float(tr.pnl[late].mean()),
                           "other_mean_pnl": _num(tr.pnl[other].mean()) if other.any()
                           else None, "result_difference": _num(d),
                           "result_difference_lo": _num(d_lo),
                           "result_difference_hi": _num(d_hi)})
    return out


def _rule_drift(tr: _Trades, rows: _Rows, cfg: RuleDriftConfig) -> _Out:
    out = _Out.empty(rows.n)
    day = 24 * _HOUR_NS
    scored = np.isfinite(tr.process_score)
    for i in range(rows.n):
        t = rows.t[i]
        known = scored & (tr.close_ns <= t) & _not_own(tr, rows, i)
        recent = known & (tr.close_ns > t - cfg.recent_days * day)
        prior = known & ~recent & (tr.close_ns > t - (cfg.recent_days + cfg.prior_days) * day)
        if recent.sum() < cfg.min_trades or prior.sum() < cfg.min_trades:
            out.silent(i, f"{int(recent.sum())} recent and {int(prior.sum())} earlier "
                          f"reviewed trades (at least {cfg.min_trades} each needed)")
            continue
        if not (tr.process_score[recent].mean() - tr.process_score[prior].mean()
                <= -cfg.min_drop):
            continue
        d, d_lo, d_hi = _welch(tr.process_score[recent], tr.process_score[prior])
        # a state that holds for weeks: only a drop the interval says is real
        if not (d <= -cfg.min_drop and d_hi < 0):
            continue
        out.fire(i, rows, detector="rule_drift", severity="medium", metric="process_score",
                 unit="share of checks passed", value=float(tr.process_score[recent].mean()),
                 baseline=float(tr.process_score[prior].mean()), difference=d,
                 difference_lo=d_lo, difference_hi=d_hi, n=int(prior.sum()),
                 threshold=-cfg.min_drop,
                 evidence={"n_recent": int(recent.sum()), "recent_days": cfg.recent_days,
                           "prior_days": cfg.prior_days})
    return out


def _stop_drift(tr: _Trades, rows: _Rows, cfg: StopDriftConfig) -> _Out:
    out = _Out.empty(rows.n)
    breached = _breached(tr, cfg)
    for i in range(rows.n):
        t = rows.t[i]
        judged = np.flatnonzero((tr.checked_ns <= t) & _not_own(tr, rows, i))
        if len(judged) < cfg.min_trades:
            out.silent(i, f"{len(judged)} closed trades with a checked stop (at least "
                          f"{cfg.min_trades} needed)")
            continue
        judged = judged[np.argsort(tr.checked_ns[judged], kind="stable")]
        recent, before = judged[-cfg.recent_trades:], judged[:-cfg.recent_trades]
        is_breach = breached & (np.minimum(tr.breach_ns, tr.checked_ns) <= t)
        k = int(is_breach[recent].sum())
        if k < cfg.min_count:
            continue
        last = recent[is_breach[recent]][-1]
        share = k / len(recent)
        if len(before):
            kb = int(is_breach[before].sum())
            d, d_lo, d_hi = _newcombe(k, len(recent), kb, len(before))
            base = kb / len(before)
        else:
            d, d_lo, d_hi, base = np.nan, np.nan, np.nan, np.nan
        # drift is a change: with enough earlier trades to compare, the recent share must be
        # above the trader's own earlier share beyond chance (one stop in 20 against 2% of
        # 300 earlier trades fired on a quarter of the demo trader's ideas)
        if (cfg.require_increase and len(before) >= cfg.min_trades
                and not (np.isfinite(d_lo) and d_lo > 0)):
            continue
        out.fire(i, rows, detector="stop_drift", severity="high" if share >= 0.25 else "medium",
                 metric="stops_not_honoured", unit="share of trades", value=share,
                 baseline=base, difference=d, difference_lo=d_lo, difference_hi=d_hi,
                 n=len(before), threshold=float(cfg.min_count),
                 linked_trade_id=str(tr.trade_id[last]),
                 evidence={"count": k, "recent_trades": len(recent),
                           "last_trade_id": str(tr.trade_id[last]),
                           # how far past the stop it closed, once it closed by t
                           "last_past_stop_r": _num(tr.breach_r[last])
                           if tr.close_ns[last] <= t else None,
                           "min_past_stop_r": cfg.min_past_stop_r})
    return out


def _breached(tr: _Trades, cfg: StopDriftConfig) -> np.ndarray:
    """Return which trades did not honour their stop (stayed past it, or closed beyond it
    by more than ``min_past_stop_r`` R)."""
    with np.errstate(invalid="ignore"):
        return (tr.breach_ns != _NEVER) | (tr.breach_r > cfg.min_past_stop_r)


def _sizing(tr: _Trades, rows: _Rows, cfg: SizingConfig) -> _Out:
    out = _Out.empty(rows.n)
    order = np.argsort(tr.close_ns, kind="stable")
    for i in range(rows.n):
        t = rows.t[i]
        prior = np.flatnonzero(_before(tr, rows, i) & np.isfinite(tr.risk))
        if len(prior) < cfg.min_pairs:
            out.silent(i, f"{len(prior)} earlier entries with a risk amount (at least "
                          f"{cfg.min_pairs} needed)")
            continue
        closed = order[(tr.close_ns[order] <= t) & np.isfinite(tr.pnl_r[order])]
        # the result known at each entry: the last trade closed before it opened
        at = np.searchsorted(tr.close_ns[closed], tr.open_ns[prior], side="right") - 1
        ok = at >= 0
        pairs = prior[ok][-cfg.window_pairs:]
        prev = tr.pnl_r[closed[at[ok]]][-cfg.window_pairs:]
        if len(pairs) < cfg.min_pairs:
            out.silent(i, f"{len(pairs)} (result, next size) pairs (at least "
                          f"{cfg.min_pairs} needed)")
            continue
        size = tr.risk[pairs] / np.median(tr.risk[prior])
        r, lo, hi = _pearson(prev, size)
        if not (abs(r) >= cfg.min_abs_r and (lo > 0 or hi < 0)):
            continue
        out.fire(i, rows, detector="sizing", severity="low", metric="size_result_correlation",
                 unit="r", value=r, baseline=0.0, difference=r, difference_lo=lo,
                 difference_hi=hi, n=len(pairs), threshold=cfg.min_abs_r,
                 evidence={"direction": "bigger after losses" if r < 0 else
                           "bigger after wins"})
    return out


_RUN: dict[str, Callable[[_Trades, _Rows, Any], _Out]] = {
    "revenge": _revenge, "overtrading": _overtrading, "fomo": _fomo, "fatigue": _fatigue,
    "rule_drift": _rule_drift, "stop_drift": _stop_drift, "sizing": _sizing}


# ---------------------------------------------------------------------------- entry points
def detect(history: TraderHistory, intents: pd.DataFrame, params: BehaviorParams) -> Hits:
    """Run every enabled detector on each intent against ``history`` as of its ``as_of``.

    ``intents``: one row per intent with ``intent_id``, ``symbol``, ``side`` ('long' |
    'short') and ``as_of`` (UTC), and where known ``timeframe``, ``proposed_entry``,
    ``proposed_stop``, ``proposed_size``, ``proposed_risk_amount`` (account currency),
    ``multiplier``, ``extension_atr`` (see ``extension_atr``) and ``trade_id`` (the trade
    the row is, left out of its own history). A missing input makes the detectors that need
    it 'not_checked' on that row, never 'clear'.
    """
    tr = _Trades.of(history)
    rows = _Rows.of(intents, history)
    position = {trade_id: k for k, trade_id in enumerate(tr.trade_id)}
    rows = replace(rows, own_index=np.array([position.get(o, -1) if isinstance(o, str) else -1
                                             for o in rows.own], dtype=np.int64),
                   n_before=np.searchsorted(tr.open_ns, rows.t, side="left"))
    hits: list[dict[str, Any]] = []
    checks: list[pd.DataFrame] = []
    for detector in DETECTORS:
        if detector not in params.enabled:
            continue
        result = _RUN[detector](tr, rows, params.config(detector))
        hits.extend(result.hits)
        checks.append(pd.DataFrame({"row": np.arange(rows.n), "detector": detector,
                                    "status": result.status, "reason": result.reason}))
    return Hits(n=rows.n, hits=_hit_frame(hits), checks=_check_frame(checks))


def _hit_frame(hits: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(hits, columns=list(HIT_COLUMNS))
    if len(frame):
        frame["ts"] = pd.to_datetime(frame["ts"].astype(np.int64), utc=True)
        rank = {d: k for k, d in enumerate(DETECTORS)}
        frame = frame.assign(_rank=frame["detector"].map(rank)).sort_values(
            ["row", "_rank"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    else:
        frame["ts"] = pd.Series(dtype="datetime64[ns, UTC]")
    for column in ("value", "baseline", "difference", "difference_lo", "difference_hi",
                   "threshold"):
        frame[column] = frame[column].astype("float64")
    frame["row"] = frame["row"].astype("int64")
    frame["n"] = frame["n"].astype("int64")
    return frame


def _check_frame(checks: list[pd.DataFrame]) -> pd.DataFrame:
    if not checks:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in CHECK_COLUMNS})
    return pd.concat(checks, ignore_index=True).sort_values(["row"], kind="stable"
                                                            ).reset_index(drop=True)


#: Detectors that describe a state of the user (they hold over many entries): the scan
#: records when such a state starts, not every entry while it holds.
STATE_DETECTORS: frozenset[str] = frozenset({"rule_drift", "sizing"})


def trades_as_intents(history: TraderHistory) -> pd.DataFrame:
    """Return each trade's entry as an intent at its open (the scan's rows): its id as
    ``trade_id``, risk amount, notional and extension as known at entry."""
    f = history.trades
    return pd.DataFrame({
        "intent_id": f["linked_intent_id"].where(f["linked_intent_id"].notna(),
                                                 f["trade_id"]).astype(str),
        "trade_id": f["trade_id"].astype(str), "symbol": f["symbol"], "side": f["side"],
        "as_of": f["open_ts"], "timeframe": f["timeframe"],
        "proposed_risk_amount": f["risk_amount"],
        "proposed_entry": f["entry"], "proposed_size": f["qty"], "multiplier": f["multiplier"],
        "extension_atr": f["extension_atr"]})


def scan(history: TraderHistory, params: BehaviorParams, *,
         include_intents: bool = True) -> pd.DataFrame:
    """Return the behaviour events of ``history`` (EVENT_COLUMNS of buddy.store.behavior):

    - each trade's entry taken as an intent at its open, and (``include_intents``) each
      logged intent that did not become a trade, through ``detect``: one event per hit,
      linked to the trade and its intent; a state detector (STATE_DETECTORS) only where it
      starts (it did not fire on the previous row);
    - stop drift per trade: one event for each trade that did not honour its planned stop,
      at the time that became known, linked to the trade.
    """
    rows = trades_as_intents(history)
    if include_intents and len(history.intents):
        linked = set(history.trades["linked_intent_id"].dropna())
        extra = history.intents[~history.intents["intent_id"].isin(linked)]
        rows = pd.concat([rows, extra.assign(trade_id=None)], ignore_index=True)
    rows = rows.sort_values(["as_of", "intent_id"], kind="stable").reset_index(drop=True)
    entry_params = params
    found = detect(history, rows, entry_params)
    hits = found.hits[found.hits["detector"] != "stop_drift"]
    keep = np.ones(len(hits), dtype=bool)
    for detector in STATE_DETECTORS:
        mine = (hits["detector"] == detector).to_numpy()
        fired_rows = set(hits.loc[mine, "row"])
        keep &= ~(mine & hits["row"].map(lambda r, f=fired_rows: r - 1 in f).to_numpy(bool))
    hits = hits[keep]
    events = [_event(history.user_id, h, rows.iloc[int(h.row)]["trade_id"], params)
              for h in hits.itertuples(index=False)]
    if "stop_drift" in params.enabled:
        events.extend(_breach_events(history, params))
    return _event_frame(events)


def _event(user_id: str, hit: Any, trade_id: Any, params: BehaviorParams) -> dict[str, Any]:
    ts = pd.Timestamp(hit.ts)
    trade = trade_id if isinstance(trade_id, str) else None
    evidence = {"metric": hit.metric, "unit": hit.unit, "value": _num(hit.value),
                "baseline": _num(hit.baseline), "difference": _num(hit.difference),
                "difference_lo": _num(hit.difference_lo),
                "difference_hi": _num(hit.difference_hi), "n": int(hit.n),
                "threshold": _num(hit.threshold), "linked_trade_id": hit.linked_trade_id,
                **hit.evidence}
    intent = None if trade is not None and hit.intent_id == trade else hit.intent_id
    return {"event_id": _event_id(user_id, hit.detector, ts, trade or hit.intent_id),
            "user_id": user_id, "ts": ts, "event_type": hit.detector,
            "severity": hit.severity, "evidence_json": json.dumps(evidence, sort_keys=True),
            "action_suggested_json": json.dumps({"action": ACTIONS[hit.detector]}),
            "linked_intent_id_optional": intent, "linked_trade_id_optional": trade,
            "metric": hit.metric, "unit": hit.unit, "value": hit.value,
            "baseline": hit.baseline, "difference": hit.difference,
            "difference_lo": hit.difference_lo, "difference_hi": hit.difference_hi,
            "n": int(hit.n), "symbol": hit.symbol, "params_hash": params.hash,
            "detector_version": DETECTOR_VERSION}


#: The action each detector's event suggests (a code the nudge library words).
ACTIONS: dict[str, str] = {
    "revenge": "PAUSE_AFTER_LOSS", "overtrading": "STOP_FOR_THE_DAY",
    "fomo": "WAIT_FOR_PULLBACK", "fatigue": "TAKE_A_BREAK", "rule_drift": "REVIEW_RULES",
    "stop_drift": "HONOUR_THE_STOP", "sizing": "SIZE_FROM_THE_PLAN"}


def _event_id(*parts: object) -> str:
    import hashlib

    return "B" + hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:19]


def _breach_events(history: TraderHistory, params: BehaviorParams) -> list[dict[str, Any]]:
    cfg = params.stop_drift
    tr = _Trades.of(history)
    breached = _breached(tr, cfg)
    out = []
    for k in np.flatnonzero(breached):
        when = int(min(tr.breach_ns[k], tr.checked_ns[k]))
        ts = pd.Timestamp(when, tz="UTC")
        f = tr.frame.iloc[k]
        past = tr.breach_r[k]
        stayed = tr.breach_ns[k] != _NEVER
        evidence = {"metric": "past_stop_r", "unit": "R",
                    "value": None if not np.isfinite(past) else float(past),
                    "planned_stop": float(f["initial_stop"]),
                    "stop_touched_at": str(f["stop_touch_ts"]),
                    "stayed_open_past_stop": bool(stayed),
                    "min_past_stop_r": cfg.min_past_stop_r}
        out.append({
            "event_id": _event_id(history.user_id, "stop_drift", f["trade_id"]),
            "user_id": history.user_id, "ts": ts, "event_type": "stop_drift",
            "severity": "high" if np.isfinite(past) and past >= 1.0 else "medium",
            "evidence_json": json.dumps(evidence, sort_keys=True),
            "action_suggested_json": json.dumps({"action": ACTIONS["stop_drift"]}),
            "linked_intent_id_optional": f["linked_intent_id"],
            "linked_trade_id_optional": str(f["trade_id"]),
            "metric": "past_stop_r", "unit": "R",
            "value": float(past) if np.isfinite(past) else np.nan,
            "baseline": np.nan, "difference": np.nan, "difference_lo": np.nan,
            "difference_hi": np.nan, "n": 1, "symbol": str(f["symbol"]),
            "params_hash": params.hash, "detector_version": DETECTOR_VERSION})
    return out


def _event_frame(events: list[dict[str, Any]]) -> pd.DataFrame:
    from buddy.store.behavior import EVENT_COLUMNS

    frame = pd.DataFrame(events, columns=[c for c in EVENT_COLUMNS if c != "computed_at"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["session_date"] = session_day(frame["ts"]).dt.date.to_numpy()
    for column in ("value", "baseline", "difference", "difference_lo", "difference_hi"):
        frame[column] = frame[column].astype("float64")
    frame["n"] = frame["n"].astype("int64")
    return frame.sort_values(["ts", "event_type", "event_id"], kind="stable").reset_index(
        drop=True)
