"""A trader's strategy profile: the distributions of their closed trades, with n and intervals.

``build_profile(facts, user_id=..., as_of=...)`` is pure: ``facts`` are the entry facts of the
trades closed by ``as_of`` (``buddy.store.strategy.read_entry_facts(..., closed_by=as_of)``);
it reads nothing else, so the profile as of t depends only on trades closed by t. Open trades
(no ``close_ts``) are left out and counted; a row closed after ``as_of`` is refused.

What it holds
    - Overall: closed trades, win rate (Wilson 95%), mean R (bootstrap percentile 95%, 2,000
      resamples, seed 0).
    - Numeric facts (``NUMERIC_FACTS``): n, median with its order-statistic 95% interval
      (binomial ranks; none below 6 values), the "usual range" = 10th to 90th percentile, and
      winners against losers: the median of each with n, and the difference of the medians
      (winners minus losers) with a bootstrap percentile 95% interval (each group resampled
      apart, 1,000 resamples, seed 0). Winner = pnl > 0.
    - Categorical facts (``CATEGORICAL_FACTS``): per value, the share of trades (Wilson 95%),
      and when the value has at least ``MIN_GROUP`` trades the win rate (Wilson 95%), and
      with at least ``MIN_GROUP`` trades with an R the mean R (bootstrap 95%); below, "n
      too small".
    - Red flags: the conditions of ``RED_FLAG_CATALOGUE`` (see ``candidate_conditions``) under
      which this trader's mean R is worse than on the other trades. Each condition with at
      least ``MIN_FLAG_TRADES`` trades in and out is tested with a one-sided Welch t-test on
      pnl_r (H1: mean R in < mean R out); the p-values of all conditions tested are corrected
      with Holm's step-down method, and a flag is kept when its Holm p < ``FLAG_ALPHA``. Its
      interval is Welch's 95% interval of the difference (in minus out).
    - Drift (``drift_check``): each numeric fact and pnl_r of the trades closed in the last
      ``recent_days`` against those closed in the ``prior_days`` before, two-sample
      Kolmogorov-Smirnov, Holm-corrected across the facts tested; moved when Holm p <
      ``DRIFT_ALPHA``. Checked only with at least ``min_recent`` and ``min_prior`` trades.

Below ``MIN_TRADES`` closed trades the profile says "not enough trades" and holds no
statistics; a fact missing from a row is left out of that fact's n, never imputed; a fact
absent from the frame is "not checked".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from buddy.errors import FieldError, FieldErrors
from buddy.trades.summary import Stat, bootstrap_mean, wilson

#: Closed trades below which a profile holds no statistics ("not enough trades").
MIN_TRADES = 20
#: Trades a value (or a winners / losers group) needs before its win rate, mean R or median
#: difference is computed.
MIN_GROUP = 5
#: Trades a red-flag condition needs inside AND outside before it is tested.
MIN_FLAG_TRADES = 10
#: Family-wise level of the red flags (Holm-corrected) and of the drift tests.
FLAG_ALPHA = 0.05
DRIFT_ALPHA = 0.05
#: Bootstrap resamples: mean R (as in buddy.trades.summary) and median differences.
N_BOOT_MEAN, N_BOOT_MEDIAN, SEED = 2000, 1000, 0
PROFILE_VERSION = 1

#: Numeric facts summarised, with their units.
NUMERIC_FACTS: Mapping[str, str] = {
    "stop_atr": "ATR", "reward_risk": "R", "holding_hours": "h", "size_pct_equity": "%",
    "risk_pct_equity": "%", "alignment": "score", "level_ahead_atr": "ATR",
    "close_ema20_atr": "ATR", "bb_z": "sd", "high20_atr": "ATR", "trend_atr": "ATR",
    "rsi_14": "",
}
#: Categorical facts summarised value by value.
CATEGORICAL_FACTS: tuple[str, ...] = ("symbol", "side", "timeframe", "hour_local", "weekday",
                                      "regime")
#: Columns build_profile needs; the facts themselves may be absent ("not checked").
REQUIRED_COLUMNS: tuple[str, ...] = ("trade_id", "close_ts", "pnl", "pnl_r")
#: Families of red-flag conditions, in words; each becomes conditions over the observed values.
RED_FLAG_CATALOGUE: Mapping[str, str] = {
    "side": "one side (long or short)",
    "side_regime": "a side in a regime at entry (e.g. shorts in an uptrend)",
    "counter_trend": "against the multi-timeframe alignment (alignment < 0)",
    "counter_trend_side": "a side against the alignment (e.g. counter-trend shorts)",
    "timeframe": "one timeframe",
    "hour_bucket": "entries in a 3-hour window of the exchange's day",
    "weekday": "one weekday",
    "symbol": "one symbol",
    "level_ahead": "a strong level within 1 ATR in the trade's way",
}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# ------------------------------------------------------------------------------ values
@dataclass(frozen=True, slots=True, kw_only=True)
class NumericSummary:
    """One numeric fact over the closed trades: median, usual range, winners vs losers."""

    feature: str
    unit: str
    n: int
    n_missing: int
    median: Stat  # order-statistic 95% interval of the median
    p10: float | None
    p90: float | None
    winners: Stat  # median of the winners (no interval)
    losers: Stat  # median of the losers (no interval)
    difference: Stat  # winners' median minus losers' median, bootstrap 95%
    note: str = ""  # "not checked: ..." when the fact is absent

    @property
    def checked(self) -> bool:
        """Return whether the fact was present in the facts."""
        return not self.note


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryShare:
    """One value of a categorical fact: its share, win rate and mean R."""

    feature: str
    value: str
    n: int
    share: Stat  # Wilson 95% over the trades where the fact is known
    win_rate: Stat  # Wilson 95%; value None below MIN_GROUP
    mean_r: Stat  # bootstrap 95%; value None below MIN_GROUP


@dataclass(frozen=True, slots=True)
class Clause:
    """One test on a facts column: ``op`` is 'eq', 'lt' or 'between' (lo <= x < hi)."""

    column: str
    op: str
    value: Any
    high: Any = None

    def matches(self, facts: pd.DataFrame) -> np.ndarray:
        """Return the rows passing the test (a missing value never passes)."""
        if self.column not in facts.columns:
            return np.zeros(len(facts), dtype=bool)
        column = facts[self.column]
        known = column.notna().to_numpy(bool)
        if self.op == "eq":
            hit = np.zeros(len(facts), dtype=bool)
            hit[known] = [value == self.value for value in column[known]]
        else:
            x = _floats(column)
            with np.errstate(invalid="ignore"):
                hit = (x < float(self.value) if self.op == "lt" else
                       (x >= float(self.value)) & (x < float(self.high)))
        return known & hit


@dataclass(frozen=True, slots=True, kw_only=True)
class RedFlag:
    """A condition under which this trader's mean R is reliably worse than on the rest."""

    key: str  # e.g. "side=short&regime=uptrend"
    family: str  # a key of RED_FLAG_CATALOGUE
    label: str  # in words: "shorts in an uptrend regime"
    clauses: tuple[Clause, ...]
    n_in: int
    n_out: int
    mean_r_in: float
    mean_r_out: float
    difference: Stat  # mean R in minus out, Welch 95% interval
    p_value: float  # one-sided Welch
    p_adjusted: float  # Holm over every condition tested
    correction: str = "Holm"

    def matches(self, facts: pd.DataFrame) -> np.ndarray:
        """Return which rows of ``facts`` meet the condition (missing facts never match)."""
        hit = np.ones(len(facts), dtype=bool)
        for clause in self.clauses:
            hit &= clause.matches(facts)
        return hit

    def text(self) -> str:
        """Return one line: the condition, mean R in and out with n, the difference."""
        d = self.difference
        return (f"{self.label}: mean R {self.mean_r_in:+.2f} (n={self.n_in}) against "
                f"{self.mean_r_out:+.2f} on the rest (n={self.n_out}); difference "
                f"{d.value:+.2f} R 95% [{d.low:+.2f}, {d.high:+.2f}], "
                f"{self.correction} p={self.p_adjusted:.3g}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Drift:
    """A fact whose recent distribution moved from the window before."""

    feature: str
    n_recent: int
    n_prior: int
    recent_median: float
    prior_median: float
    statistic: float  # Kolmogorov-Smirnov D
    p_value: float
    p_adjusted: float  # Holm over the facts tested
    test: str = "two-sample Kolmogorov-Smirnov, Holm"

    def text(self) -> str:
        """Return one line: the fact, medians before and now with n, D and p."""
        return (f"{self.feature}: median {self.recent_median:.2f} in the recent window "
                f"(n={self.n_recent}) against {self.prior_median:.2f} before "
                f"(n={self.n_prior}); KS D={self.statistic:.2f}, Holm p={self.p_adjusted:.3g}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftCheck:
    """The drift test as run: checked or why not, counts, and the facts that moved."""

    checked: bool
    reason: str
    recent_days: int
    prior_days: int
    n_recent: int
    n_prior: int
    n_tested: int
    drifts: tuple[Drift, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyProfile:
    """A trader's distributions from the trades closed by ``as_of``."""

    user_id: str
    as_of: datetime
    n_trades: int  # closed trades used
    n_open_left_out: int
    enough: bool
    reason: str  # why there are no statistics ("" when enough)
    win_rate: Stat
    mean_r: Stat
    numeric: tuple[NumericSummary, ...] = ()
    categorical: tuple[CategoryShare, ...] = ()
    red_flags: tuple[RedFlag, ...] = ()
    n_flags_tested: int = 0
    drift: DriftCheck | None = None
    version: int = PROFILE_VERSION
    _by_feature: dict[str, NumericSummary] = field(default_factory=dict, init=False,
                                                   repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_feature.update({s.feature: s for s in self.numeric})

    def usual_range(self, feature: str) -> tuple[float, float, int] | None:
        """Return the 10th and 90th percentiles of a numeric fact and its n, or None when the
        profile has not enough trades or the fact was not checked."""
        summary = self._by_feature.get(feature)
        if summary is None or summary.p10 is None or summary.p90 is None:
            return None
        return summary.p10, summary.p90, summary.n

    def baseline_stats(self) -> dict[str, Any]:
        """Return the overall figures (strategy_profiles.baseline_stats_json)."""
        return {"n_trades": self.n_trades, "win_rate": _stat_dict(self.win_rate),
                "mean_r": _stat_dict(self.mean_r)}

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as JSON-safe values (strategy_profiles.profile_json)."""
        return {
            "version": self.version, "user_id": self.user_id,
            "as_of": self.as_of.isoformat(), "n_trades": self.n_trades,
            "n_open_left_out": self.n_open_left_out, "enough": self.enough,
            "reason": self.reason, "min_trades": MIN_TRADES, "min_group": MIN_GROUP,
            "win_rate": _stat_dict(self.win_rate), "mean_r": _stat_dict(self.mean_r),
            "numeric": [{"feature": s.feature, "unit": s.unit, "n": s.n,
                         "n_missing": s.n_missing, "median": _stat_dict(s.median),
                         "p10": s.p10, "p90": s.p90, "winners": _stat_dict(s.winners),
                         "losers": _stat_dict(s.losers),
                         "difference": _stat_dict(s.difference), "note": s.note}
                        for s in self.numeric],
            "categorical": [{"feature": c.feature, "value": c.value, "n": c.n,
                             "share": _stat_dict(c.share), "win_rate": _stat_dict(c.win_rate),
                             "mean_r": _stat_dict(c.mean_r)} for c in self.categorical],
            "red_flags": [{"key": f.key, "family": f.family, "label": f.label,
                           "clauses": [[c.column, c.op, _json_value(c.value),
                                        _json_value(c.high)] for c in f.clauses],
                           "n_in": f.n_in, "n_out": f.n_out, "mean_r_in": f.mean_r_in,
                           "mean_r_out": f.mean_r_out,
                           "difference": _stat_dict(f.difference), "p_value": f.p_value,
                           "p_adjusted": f.p_adjusted, "correction": f.correction}
                          for f in self.red_flags],
            "n_flags_tested": self.n_flags_tested,
            "drift": None if self.drift is None else {
                "checked": self.drift.checked, "reason": self.drift.reason,
                "recent_days": self.drift.recent_days, "prior_days": self.drift.prior_days,
                "n_recent": self.drift.n_recent, "n_prior": self.drift.n_prior,
                "n_tested": self.drift.n_tested,
                "drifts": [{"feature": d.feature, "n_recent": d.n_recent,
                            "n_prior": d.n_prior, "recent_median": d.recent_median,
                            "prior_median": d.prior_median, "statistic": d.statistic,
                            "p_value": d.p_value, "p_adjusted": d.p_adjusted, "test": d.test}
                           for d in self.drift.drifts]},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StrategyProfile:
        """Rebuild a profile from ``to_dict()`` (a stored profile_json)."""
        drift = d.get("drift")
        return cls(
            user_id=d["user_id"], as_of=datetime.fromisoformat(d["as_of"]),
            n_trades=d["n_trades"], n_open_left_out=d["n_open_left_out"],
            enough=d["enough"], reason=d["reason"], win_rate=_stat(d["win_rate"]),
            mean_r=_stat(d["mean_r"]), version=d["version"],
            numeric=tuple(NumericSummary(
                feature=s["feature"], unit=s["unit"], n=s["n"], n_missing=s["n_missing"],
                median=_stat(s["median"]), p10=s["p10"], p90=s["p90"],
                winners=_stat(s["winners"]), losers=_stat(s["losers"]),
                difference=_stat(s["difference"]), note=s["note"]) for s in d["numeric"]),
            categorical=tuple(CategoryShare(
                feature=c["feature"], value=c["value"], n=c["n"], share=_stat(c["share"]),
                win_rate=_stat(c["win_rate"]), mean_r=_stat(c["mean_r"]))
                for c in d["categorical"]),
            red_flags=tuple(RedFlag(
                key=f["key"], family=f["family"], label=f["label"],
                clauses=tuple(Clause(*c) for c in f["clauses"]), n_in=f["n_in"],
                n_out=f["n_out"], mean_r_in=f["mean_r_in"], mean_r_out=f["mean_r_out"],
                difference=_stat(f["difference"]), p_value=f["p_value"],
                p_adjusted=f["p_adjusted"], correction=f["correction"])
                for f in d["red_flags"]),
            n_flags_tested=d["n_flags_tested"],
            drift=None if drift is None else DriftCheck(
                checked=drift["checked"], reason=drift["reason"],
                recent_days=drift["recent_days"], prior_days=drift["prior_days"],
                n_recent=drift["n_recent"], n_prior=drift["n_prior"],
                n_tested=drift["n_tested"],
                drifts=tuple(Drift(**x) for x in drift["drifts"])))

    def text(self) -> str:
        """Return the profile as plain text for the terminal."""
        head = (f"Strategy profile of {self.user_id} as of {self.as_of:%Y-%m-%d %H:%M} UTC: "
                f"{self.n_trades} closed trades")
        if self.n_open_left_out:
            head += f" ({self.n_open_left_out} open trades left out)"
        if not self.enough:
            return f"{head}\n  {self.reason}"
        lines = [head,
                 f"  win rate {self.win_rate.text()}",
                 f"  mean R   {self.mean_r.text(' R')}",
                 "",
                 "Usual ranges (median with 95% interval; usual = 10th-90th percentile; "
                 "winners against losers):"]
        for s in self.numeric:
            if not s.checked:
                lines.append(f"  {s.feature:<16} {s.note}")
                continue
            if s.n == 0:
                lines.append(f"  {s.feature:<16} not checked: no trade has it "
                             f"(n missing={s.n_missing})")
                continue
            unit = f" {s.unit}" if s.unit else ""
            line = (f"  {s.feature:<16} median {s.median.text(unit)}; usual "
                    f"{s.p10:.2f} to {s.p90:.2f}{unit}")
            if s.difference.value is not None:
                line += (f"; winners {s.winners.value:.2f} (n={s.winners.n}) vs losers "
                         f"{s.losers.value:.2f} (n={s.losers.n}): difference "
                         f"{_signed(s.difference)}")
            else:
                line += (f"; winners vs losers: n too small (n={s.winners.n}/"
                         f"{s.losers.n}, at least {MIN_GROUP} each)")
            lines.append(line)
        lines += ["", "By value (share of trades, win rate, mean R; each with 95% interval):"]
        current = ""
        for c in self.categorical:
            if c.feature != current:
                current = c.feature
                lines.append(f"  {current}:")
            s_value, s_low, s_high = c.share.value, c.share.low, c.share.high
            share = (f"{100 * s_value:.0f}% [{100 * s_low:.0f}, {100 * s_high:.0f}]"
                     if s_value is not None and s_low is not None and s_high is not None
                     else "n/a")
            if c.win_rate.value is None:
                rest = f"n too small for win rate and mean R (at least {MIN_GROUP})"
            elif c.mean_r.value is None:
                rest = (f"win rate {_interval(c.win_rate)}, mean R n too small (n with "
                        f"R={c.mean_r.n}, at least {MIN_GROUP})")
            else:
                rest = (f"win rate {_interval(c.win_rate)}, mean R {_interval(c.mean_r, True)}"
                        f" (n with R={c.mean_r.n})")
            lines.append(f"    {c.value:<14} n={c.n:<4} share {share}; {rest}")
        lines += ["", f"Red flags (one-sided Welch t-test on R, Holm-corrected at "
                      f"{FLAG_ALPHA:g}; {self.n_flags_tested} conditions tested):"]
        lines += [f"  {f.text()}" for f in self.red_flags] or ["  none significant"]
        drift = self.drift
        if drift is not None:
            lines += ["", f"Drift (trades closed in the last {drift.recent_days} days against "
                          f"the {drift.prior_days} before):"]
            if not drift.checked:
                lines.append(f"  not checked: {drift.reason}")
            elif not drift.drifts:
                lines.append(f"  none (n recent={drift.n_recent}, n before={drift.n_prior}, "
                             f"{drift.n_tested} facts tested)")
            else:
                lines += [f"  {d.text()}" for d in drift.drifts]
        return "\n".join(lines)


# ------------------------------------------------------------------------------ building
def build_profile(facts: pd.DataFrame, *, user_id: str, as_of: datetime) -> StrategyProfile:
    """Build the profile of the trades in ``facts`` (rows of read_entry_facts closed by
    ``as_of``; open trades are left out). Raises FieldErrors for a missing column, a naive
    ``as_of`` or a row closed after ``as_of``."""
    as_of = _check_as_of(as_of)
    _check_columns(facts)
    close = pd.to_datetime(facts["close_ts"], utc=True)
    late = facts.loc[close > pd.Timestamp(as_of), "trade_id"]
    if len(late):
        raise FieldErrors([FieldError(
            "close_ts", f"must be on or before as_of {as_of.isoformat()} (point-in-time)",
            f"{len(late)} rows, e.g. trade {late.iloc[0]!r}")])
    # sorted so the bootstrap draws do not depend on the order the store returned rows in
    closed = (facts.loc[close.notna().to_numpy(bool)]
              .assign(_close=close[close.notna()])
              .sort_values(["_close", "trade_id"], kind="stable")
              .drop(columns="_close").reset_index(drop=True))
    n_open = len(facts) - len(closed)
    n = len(closed)
    r = _r_values(closed)
    win_rate = wilson(int((closed["pnl"] > 0).sum()), n)
    mean_r = bootstrap_mean(r[np.isfinite(r)], n_boot=N_BOOT_MEAN, seed=SEED)
    if n < MIN_TRADES:
        return StrategyProfile(
            user_id=user_id, as_of=as_of, n_trades=n, n_open_left_out=n_open, enough=False,
            reason=f"not enough trades: {n} closed by as_of, at least {MIN_TRADES} needed",
            win_rate=win_rate, mean_r=mean_r)
    flags, n_tested = _red_flags(closed)
    return StrategyProfile(
        user_id=user_id, as_of=as_of, n_trades=n, n_open_left_out=n_open, enough=True,
        reason="", win_rate=win_rate, mean_r=mean_r,
        numeric=tuple(_numeric(closed, f, unit) for f, unit in NUMERIC_FACTS.items()),
        categorical=tuple(c for f in CATEGORICAL_FACTS for c in _categorical(closed, f)),
        red_flags=flags, n_flags_tested=n_tested, drift=drift_check(closed, as_of))


def _check_as_of(as_of: datetime) -> datetime:
    if not isinstance(as_of, datetime) or as_of.tzinfo is None:
        raise FieldErrors([FieldError("as_of", "must be a timezone-aware datetime", as_of)])
    return as_of.astimezone(UTC)


def _check_columns(facts: pd.DataFrame) -> None:
    if not isinstance(facts, pd.DataFrame):
        raise FieldErrors([FieldError("facts", "must be a pandas DataFrame",
                                      type(facts).__name__)])
    missing = [c for c in REQUIRED_COLUMNS if c not in facts.columns]
    if missing:
        raise FieldErrors([FieldError(c, "is a required facts column", "absent")
                           for c in missing])


def _r_values(frame: pd.DataFrame) -> np.ndarray:
    return _floats(frame["pnl_r"])


def _floats(column: pd.Series) -> np.ndarray:
    """Return a column as float64 with NaN for missing (nullable Int32 / boolean included)."""
    return (pd.to_numeric(column, errors="coerce").astype("Float64")
            .to_numpy(np.float64, na_value=np.nan))


def _numeric(closed: pd.DataFrame, feature: str, unit: str) -> NumericSummary:
    if feature not in closed.columns:
        empty = Stat(value=None, n=0)
        return NumericSummary(feature=feature, unit=unit, n=0, n_missing=len(closed),
                              median=empty, p10=None, p90=None, winners=empty, losers=empty,
                              difference=empty, note="not checked: not in the entry facts")
    x = _floats(closed[feature])
    known = np.isfinite(x)
    values = x[known]
    win = (closed["pnl"] > 0).to_numpy(bool)[known]
    winners, losers = values[win], values[~win]
    n = len(values)
    p10, p90 = (float(v) for v in np.quantile(values, [0.1, 0.9])) if n else (None, None)
    return NumericSummary(
        feature=feature, unit=unit, n=n, n_missing=int((~known).sum()),
        median=_median_stat(values), p10=p10, p90=p90,
        winners=Stat(value=float(np.median(winners)) if len(winners) else None,
                     n=len(winners)),
        losers=Stat(value=float(np.median(losers)) if len(losers) else None, n=len(losers)),
        difference=_median_difference(winners, losers))


def _median_stat(values: np.ndarray) -> Stat:
    """Median with the distribution-free interval from binomial ranks (>= 95% coverage)."""
    from scipy import stats as sps  # a stored profile is read without it

    n = len(values)
    method = "order-statistic 95%"
    if n == 0:
        return Stat(value=None, n=0, method=method)
    median = float(np.median(values))
    k = int(sps.binom.ppf(0.025, n, 0.5))  # ranks k..n-k+1 (1-based) cover >= 95%
    if k < 1:
        return Stat(value=median, n=n, method=method)
    ordered = np.sort(values)
    return Stat(value=median, n=n, low=float(ordered[k - 1]), high=float(ordered[n - k]),
                method=method)


def _median_difference(winners: np.ndarray, losers: np.ndarray) -> Stat:
    method = "bootstrap percentile 95%"
    n = len(winners) + len(losers)
    if len(winners) < MIN_GROUP or len(losers) < MIN_GROUP:
        return Stat(value=None, n=n, method=method)
    rng = np.random.default_rng(SEED)
    w = np.median(winners[rng.integers(0, len(winners), (N_BOOT_MEDIAN, len(winners)))], 1)
    lo = np.median(losers[rng.integers(0, len(losers), (N_BOOT_MEDIAN, len(losers)))], 1)
    low, high = np.quantile(w - lo, [0.025, 0.975])
    return Stat(value=float(np.median(winners) - np.median(losers)), n=n, low=float(low),
                high=float(high), method=method)


def _categorical(closed: pd.DataFrame, feature: str) -> list[CategoryShare]:
    if feature not in closed.columns:
        return []
    column = closed[feature]
    known = column.notna().to_numpy(bool)
    labels = column[known].map(lambda v: _label(feature, v))
    n_known = int(known.sum())
    win = (closed["pnl"] > 0).to_numpy(bool)[known]
    r = _r_values(closed)[known]
    out = []
    for value, count in sorted(labels.value_counts().items(), key=lambda kv: (-kv[1], kv[0])):
        rows = (labels == value).to_numpy(bool)
        n = int(count)
        big = n >= MIN_GROUP
        rv = r[rows]
        rv = rv[np.isfinite(rv)]
        out.append(CategoryShare(
            feature=feature, value=str(value), n=n, share=wilson(n, n_known),
            win_rate=wilson(int(win[rows].sum()), n) if big else Stat(value=None, n=n),
            mean_r=(bootstrap_mean(rv, n_boot=N_BOOT_MEAN, seed=SEED)
                    if len(rv) >= MIN_GROUP else Stat(value=None, n=len(rv)))))
    return out


def _label(feature: str, value: Any) -> str:
    if feature == "weekday" and isinstance(value, int | np.integer) and 0 <= value < 7:
        return _WEEKDAYS[int(value)]
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


# ------------------------------------------------------------------------------ red flags
def candidate_conditions(facts: pd.DataFrame) -> list[tuple[str, str, str, tuple[Clause, ...]]]:
    """Return the catalogue's conditions over the values seen in ``facts``: (key, family,
    label, clauses). Conditions on a column absent from the facts are not formed."""
    cols = set(facts.columns)

    def values(column: str) -> list[Any]:
        return sorted(facts[column].dropna().unique().tolist(), key=str) if column in cols else []

    out: list[tuple[str, str, str, tuple[Clause, ...]]] = []
    sides = values("side")
    for side in sides:
        out.append((f"side={side}", "side", f"{side} trades", (Clause("side", "eq", side),)))
    for side in sides:
        for regime in values("regime"):
            out.append((f"side={side}&regime={regime}", "side_regime",
                        f"{side} trades in the {regime} regime",
                        (Clause("side", "eq", side), Clause("regime", "eq", regime))))
    if "alignment" in cols:
        counter = Clause("alignment", "lt", 0.0)
        out.append(("alignment<0", "counter_trend", "counter-trend trades (alignment < 0)",
                    (counter,)))
        for side in sides:
            out.append((f"side={side}&alignment<0", "counter_trend_side",
                        f"counter-trend {side} trades (alignment < 0)",
                        (Clause("side", "eq", side), counter)))
    for tf in values("timeframe"):
        out.append((f"timeframe={tf}", "timeframe", f"{tf} trades",
                    (Clause("timeframe", "eq", tf),)))
    if "hour_local" in cols:
        hours = _floats(facts["hour_local"])
        for start in sorted({int(h) // 3 * 3 for h in hours[np.isfinite(hours)]}):
            out.append((f"hour_local={start}-{start + 3}", "hour_bucket",
                        f"entries from {start:02d}:00 to {start + 3:02d}:00 exchange time",
                        (Clause("hour_local", "between", start, start + 3),)))
    for day in values("weekday"):
        out.append((f"weekday={day}", "weekday", f"entries on {_label('weekday', day)}",
                    (Clause("weekday", "eq", day),)))
    for symbol in values("symbol"):
        out.append((f"symbol={symbol}", "symbol", f"{symbol} trades",
                    (Clause("symbol", "eq", symbol),)))
    if "level_ahead_atr" in cols:
        out.append(("level_ahead_atr<1", "level_ahead",
                    "trades with a strong level within 1 ATR in their way",
                    (Clause("level_ahead_atr", "lt", 1.0),)))
    return out


def _red_flags(closed: pd.DataFrame) -> tuple[tuple[RedFlag, ...], int]:
    from scipy import stats as sps  # a stored profile is read without it

    r = _r_values(closed)
    has_r = np.isfinite(r)
    tested: list[tuple[str, str, str, tuple[Clause, ...], np.ndarray, np.ndarray, float,
                       Stat]] = []
    for key, family, label, clauses in candidate_conditions(closed):
        hit = np.ones(len(closed), dtype=bool)
        for clause in clauses:
            hit &= clause.matches(closed)
        r_in, r_out = r[hit & has_r], r[~hit & has_r]
        if len(r_in) < MIN_FLAG_TRADES or len(r_out) < MIN_FLAG_TRADES:
            continue
        test = sps.ttest_ind(r_in, r_out, equal_var=False, alternative="less")
        if not math.isfinite(float(test.pvalue)):
            continue
        ci = sps.ttest_ind(r_in, r_out, equal_var=False).confidence_interval(0.95)
        diff = Stat(value=float(r_in.mean() - r_out.mean()), n=len(r_in) + len(r_out),
                    low=float(ci.low), high=float(ci.high), method="Welch 95%")
        tested.append((key, family, label, clauses, r_in, r_out, float(test.pvalue), diff))
    if not tested:
        return (), 0
    adjusted = holm([t[6] for t in tested])
    flags = [RedFlag(key=key, family=family, label=label, clauses=clauses, n_in=len(r_in),
                     n_out=len(r_out), mean_r_in=float(r_in.mean()),
                     mean_r_out=float(r_out.mean()), difference=diff, p_value=p,
                     p_adjusted=float(p_adj))
             for (key, family, label, clauses, r_in, r_out, p, diff), p_adj
             in zip(tested, adjusted, strict=True) if p_adj < FLAG_ALPHA]
    return tuple(sorted(flags, key=lambda f: (f.p_adjusted, f.key))), len(tested)


# ------------------------------------------------------------------------------ drift
def drift_check(facts: pd.DataFrame, as_of: datetime, *, recent_days: int = 30,
                prior_days: int = 60, min_recent: int = 10, min_prior: int = 20
                ) -> DriftCheck:
    """Test each numeric fact and pnl_r of the trades closed in (as_of - recent_days, as_of]
    against those closed in the ``prior_days`` before that; see the module docstring."""
    from scipy import stats as sps  # a stored profile is read without it

    as_of = _check_as_of(as_of)
    _check_columns(facts)
    close = pd.to_datetime(facts["close_ts"], utc=True)
    end = pd.Timestamp(as_of)
    split = end - timedelta(days=recent_days)
    start = split - timedelta(days=prior_days)
    recent = facts.loc[((close > split) & (close <= end)).to_numpy(bool)]
    prior = facts.loc[((close > start) & (close <= split)).to_numpy(bool)]
    base = {"recent_days": recent_days, "prior_days": prior_days,
            "n_recent": len(recent), "n_prior": len(prior)}
    if len(recent) < min_recent or len(prior) < min_prior:
        return DriftCheck(checked=False, n_tested=0, drifts=(), **base, reason=(
            f"{len(recent)} trades closed in the last {recent_days} days (at least "
            f"{min_recent} needed) and {len(prior)} in the {prior_days} before (at least "
            f"{min_prior} needed)"))
    rows = []
    for feature in (*NUMERIC_FACTS, "pnl_r"):
        if feature not in facts.columns:
            continue
        a = _finite(recent[feature])
        b = _finite(prior[feature])
        if len(a) < min_recent or len(b) < min_prior:
            continue
        test = sps.ks_2samp(a, b)
        rows.append((feature, a, b, float(test.statistic), float(test.pvalue)))
    if not rows:
        return DriftCheck(checked=False, n_tested=0, drifts=(), **base,
                          reason="no fact has enough known values in both windows")
    adjusted = holm([row[4] for row in rows])
    drifts = tuple(Drift(feature=f, n_recent=len(a), n_prior=len(b),
                         recent_median=float(np.median(a)), prior_median=float(np.median(b)),
                         statistic=d, p_value=p, p_adjusted=float(p_adj))
                   for (f, a, b, d, p), p_adj in zip(rows, adjusted, strict=True)
                   if p_adj < DRIFT_ALPHA)
    return DriftCheck(checked=True, reason="", n_tested=len(rows), drifts=drifts, **base)


def profile_drift(facts: pd.DataFrame, as_of: datetime, *, recent_days: int = 30,
                  prior_days: int = 60, min_recent: int = 10, min_prior: int = 20
                  ) -> list[Drift]:
    """Return the facts whose recent distribution moved (empty when none moved or when there
    are too few trades to check: ``drift_check`` says which)."""
    return list(drift_check(facts, as_of, recent_days=recent_days, prior_days=prior_days,
                            min_recent=min_recent, min_prior=min_prior).drifts)


# ------------------------------------------------------------------------------ helpers
def holm(p_values: Sequence[float]) -> np.ndarray:
    """Return Holm's step-down adjusted p-values (family-wise error), in the input order.

    Written here because statsmodels' ``multipletests`` runs a full garbage collection on
    every call (about 0.1 s), and a profile is built per distinct trade history.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def _finite(column: pd.Series) -> np.ndarray:
    x = _floats(column)
    return x[np.isfinite(x)]


def _stat_dict(s: Stat) -> dict[str, Any]:
    return {"value": s.value, "n": s.n, "low": s.low, "high": s.high, "method": s.method}


def _stat(d: Mapping[str, Any]) -> Stat:
    return Stat(value=d["value"], n=d["n"], low=d["low"], high=d["high"], method=d["method"])


def _json_value(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _interval(s: Stat, signed: bool = False) -> str:
    fmt = "+.2f" if signed else ".2f"
    if s.value is None:
        return "n/a"
    if s.low is None or s.high is None:
        return f"{s.value:{fmt}} (no interval)"
    return f"{s.value:{fmt}} [{s.low:{fmt}}, {s.high:{fmt}}]"


def _signed(s: Stat) -> str:
    return _interval(s, True)

