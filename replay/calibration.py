"""Calibration: does the score separate outcomes, and does each part of it pull its weight?

Pure functions over the replay frames (``replay.model.RESULT_COLUMNS`` and ``ISSUE_COLUMNS``).
Every statistic comes with its sample size and a 95% interval, as a ``Statistic`` or as
``<name>``, ``<name>_low``, ``<name>_high`` and ``n`` columns of a table, and with a verdict
on whether there are enough samples to read it (``MIN_SAMPLES`` in every group it is computed
from).

The statistics are the well-kept implementations, so anyone can check them:
``scipy.stats.bootstrap`` (percentile intervals) resampling whole CLUSTERS (symbol-month by
default, ``cluster_ids``: trades on one symbol in one month overlap and are not independent),
statsmodels' ``proportion_confint`` (Wilson) for rates, scikit-learn's ``roc_auc_score`` for
AUC, ``scipy.stats.spearmanr`` for rank correlation. What no library does is kept here and says
so: evaluating a statistic on thousands of resamples at once (weights per row), the decile
spread, the Fisher-z interval of Spearman's rho. Resamples are drawn from generators seeded by
``(seed, stream)``, so a table is the same for a seed whatever else is computed alongside it.

Only resolved outcomes are used: rows whose ``realized_r`` is missing, whose trade was still
open when the data ended (``exit_reason == 'open'``) or whose entry never filled
(``'not_filled'``) are left out of every R statistic; ``excluded_counts`` says how many. R is
a multiple of the initial risk; win rates are fractions (0-1); scores are the orchestrator's
0-100 scale.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import roc_auc_score
from statsmodels.stats.proportion import proportion_confint

from buddy.config import ScoringConfig
from buddy.domain import Severity

#: Fewest samples in every group a statistic is computed from for it to be read.
MIN_SAMPLES = 30
#: Two-sided coverage of every interval.
CONFIDENCE = 0.95
#: Prefix of the per-module score columns in a results frame.
SCORE_PREFIX = "score__"
#: Fraction of scores in the bottom and in the top bin of the decile spread.
SPREAD_TAIL = 0.1

_ALPHA = 1 - CONFIDENCE
_Z = float(stats.norm.ppf(1 - _ALPHA / 2))
_MAX_CELLS = 4_000_000  # resample x row weight cells evaluated at once (memory, ~32 MB)
#: Exit reasons left out of every R statistic: the trade never started or never ended.
UNRESOLVED = ("open", "not_filled")
BOOTSTRAP_METHOD = "cluster bootstrap percentile (scipy.stats.bootstrap)"

CountMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
WeightMetric = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True, kw_only=True)
class Statistic:
    """An estimate with its interval, sample size, method and whether there are enough samples.

    ``n`` is the number of samples the estimate uses; ``groups`` the sizes of the groups it
    compares (wins and losses for an AUC, fired and not fired for a flag), when it compares any.
    """

    estimate: float
    low: float
    high: float
    n: int
    method: str
    enough: bool
    p_value: float | None = None
    groups: tuple[int, ...] = ()
    note: str = ""  # why there is no estimate, when it is not too few samples

    def __str__(self) -> str:
        if self.note:
            return f"{self.note} (n={self.n})"
        if not self.enough:
            return too_few_text(self.n, self.groups)
        text = f"{self.estimate:.3g} [{self.low:.3g}, {self.high:.3g}] (n={self.n}"
        if self.p_value is not None:
            text += f", p={self.p_value:.2g}"
        return text + ")"

    def covers(self, value: float) -> bool:
        """Return whether ``value`` lies inside the interval (bounds included)."""
        return bool(self.low <= value <= self.high)

    def as_dict(self) -> dict[str, object]:
        """Return the fields as a plain dict (``groups`` as a list)."""
        out = asdict(self)
        out["groups"] = list(self.groups)
        return out


def too_few_text(n: int, groups: Sequence[int] = ()) -> str:
    """Return the display text of a statistic without enough samples."""
    if groups and min(groups) < n:
        return f"too few samples (n={n}; smallest group {min(groups)})"
    return f"too few samples (n={n})"


def _enough(n: int, groups: Sequence[int], min_samples: int) -> bool:
    return n >= min_samples and all(g >= min_samples for g in groups)


def _note(n: int, groups: Sequence[int], min_samples: int) -> str:
    return "" if _enough(n, groups, min_samples) else too_few_text(n, groups)


# --- frames -------------------------------------------------------------------------------

def resolved_outcomes(results: pd.DataFrame, score_col: str | None = "overall_score"
                      ) -> pd.DataFrame:
    """Return the rows with a resolved outcome (and a score, when ``score_col`` is given)."""
    needed = ["realized_r", "win"] + ([score_col] if score_col else [])
    missing = [c for c in needed if c not in results.columns]
    if missing:
        raise ValueError(f"results frame lacks column(s) {missing}; "
                         f"has {sorted(map(str, results.columns))}")
    r = pd.to_numeric(results["realized_r"], errors="coerce")
    keep = np.isfinite(r.to_numpy(dtype=float))
    if "exit_reason" in results.columns:
        keep &= ~results["exit_reason"].isin(UNRESOLVED).to_numpy()
    if score_col:
        score = pd.to_numeric(results[score_col], errors="coerce").to_numpy(dtype=float)
        keep &= np.isfinite(score)
    out = results.loc[keep].copy()
    out["realized_r"] = r[keep].astype(float)
    out["win"] = out["win"].astype(bool)
    if score_col:
        out[score_col] = pd.to_numeric(out[score_col]).astype(float)
    return out.reset_index(drop=True)


def excluded_counts(results: pd.DataFrame) -> dict[str, int]:
    """Return how many rows the R statistics leave out, by reason: 'open' (data ended first),
    'not_filled' (the entry never traded), 'no_outcome' (no realized R otherwise)."""
    reason = (results["exit_reason"].astype(object) if "exit_reason" in results.columns
              else pd.Series(None, index=results.index, dtype=object))
    r = pd.to_numeric(results["realized_r"], errors="coerce").to_numpy(dtype=float)
    counts = {name: int((reason == name).sum()) for name in UNRESOLVED}
    counts["no_outcome"] = int((~np.isfinite(r) & ~reason.isin(UNRESOLVED).to_numpy()).sum())
    return counts


def cluster_ids(frame: pd.DataFrame) -> np.ndarray:
    """Return each row's resampling cluster, 0..k-1: its symbol and the UTC month of as_of.

    Trades on one symbol in one month share bars and overlap, so they are resampled together.
    A frame without ``symbol`` or ``as_of`` makes every row its own cluster.
    """
    if not {"symbol", "as_of"} <= set(frame.columns) or frame.empty:
        return np.arange(len(frame), dtype=np.int64)
    month = pd.to_datetime(frame["as_of"], utc=True).dt.strftime("%Y-%m")
    codes, _ = pd.factorize(frame["symbol"].astype(str) + "|" + month.astype(str))
    return np.asarray(codes, dtype=np.int64)


def module_columns(results: pd.DataFrame) -> list[str]:
    """Return the module names that have a ``score__<module>`` column, in frame order."""
    return [c[len(SCORE_PREFIX):] for c in results.columns if str(c).startswith(SCORE_PREFIX)]


def weights_of(config: ScoringConfig) -> dict[str, float]:
    """Return the enabled modules' weights of a scoring configuration."""
    return {m.name: float(m.weight) for m in config.modules if m.enabled}


def recompute_score(results: pd.DataFrame, weights: Mapping[str, float],
                    drop: Sequence[str] = ()) -> pd.Series:
    """Return the weighted mean of the ``score__`` columns of ``weights`` minus ``drop``.

    A module with a missing score is left out of that row's mean, as the orchestrator does;
    a row with no scored module gets NaN.
    """
    names = [m for m in weights if m not in set(drop)]
    missing = [m for m in names if f"{SCORE_PREFIX}{m}" not in results.columns]
    if missing:
        raise ValueError(f"no {SCORE_PREFIX}<module> column for {missing}; "
                         f"modules present: {module_columns(results)}")
    if not names:
        return pd.Series(np.nan, index=results.index, name="score")
    scores = np.column_stack([pd.to_numeric(results[f"{SCORE_PREFIX}{m}"], errors="coerce")
                              .to_numpy(dtype=float) for m in names])
    w = np.array([float(weights[m]) for m in names])
    present = np.isfinite(scores)
    total = (present * w).sum(axis=1)
    summed = np.where(present, scores, 0.0) @ w
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total > 0, summed / total, np.nan)
    return pd.Series(value, index=results.index, name="score")


# --- random streams and bootstrap ---------------------------------------------------------

def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    words = [int(seed)] + [k if isinstance(k, int) else zlib.crc32(str(k).encode())
                           for k in keys]
    return np.random.default_rng(words)


def bootstrap_interval(metric: WeightMetric, clusters: np.ndarray, *, n_boot: int,
                       rng: np.random.Generator) -> tuple[float, float]:
    """Return the 95% percentile interval of ``metric`` over resamples of whole clusters.

    ``scipy.stats.bootstrap`` draws the cluster indices; ``metric`` gets, per resample, each
    row's weight (how often its cluster was drawn; shape resamples x rows) and returns one value
    per resample. Evaluating a statistic on weights for many resamples at once is what no
    library does, and is all that is kept here. No interval (NaN) with fewer than two clusters
    or where the statistic is undefined in some resample (a group drawn empty).
    """
    codes = np.asarray(clusters, dtype=np.int64)
    k = int(codes.max()) + 1 if len(codes) else 0
    if n_boot <= 0 or k < 2:
        return math.nan, math.nan

    def statistic(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        drawn = np.moveaxis(np.asarray(drawn), axis, -1)
        flat = drawn.reshape(-1, drawn.shape[-1])
        b = len(flat)
        counts = np.bincount((flat + k * np.arange(b)[:, None]).ravel(),
                             minlength=b * k).reshape(b, k).astype(np.float64)
        return np.asarray(metric(counts[:, codes]), dtype=np.float64).reshape(drawn.shape[:-1])

    with warnings.catch_warnings():  # an undefined draw gives NaN bounds, reported as such
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap((np.arange(k),), statistic, n_resamples=n_boot,
                                 batch=max(1, _MAX_CELLS // max(len(codes), 1)),
                                 vectorized=True, method="percentile",
                                 confidence_level=CONFIDENCE, rng=rng)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _own(clusters: np.ndarray | None, n: int) -> np.ndarray:
    """Return ``clusters`` checked against n rows, or each row its own cluster when None."""
    if clusters is None:
        return np.arange(n, dtype=np.int64)
    codes = np.asarray(clusters)
    if len(codes) != n:
        raise ValueError(f"clusters must have one value per sample; got {len(codes)} for {n}")
    return np.asarray(pd.factorize(codes)[0], dtype=np.int64)


def _point(metric: CountMetric, x: np.ndarray, y: np.ndarray) -> float:
    return float(metric(x, y, np.ones((1, len(x))))[0]) if len(x) else math.nan


def _boot(metric: CountMetric, x: np.ndarray, y: np.ndarray, clusters: np.ndarray | None, *,
          n_boot: int, rng: np.random.Generator) -> tuple[float, float]:
    return bootstrap_interval(lambda w: metric(x, y, w), _own(clusters, len(x)),
                              n_boot=n_boot, rng=rng)


def _weighted_mean(values: np.ndarray) -> WeightMetric:
    def mean(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ values) / w.sum(axis=1)
    return mean


def mean_statistic(values: Sequence[float] | np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                   stream: str | int = "mean", min_samples: int = MIN_SAMPLES,
                   clusters: np.ndarray | None = None) -> Statistic:
    """Return the mean of ``values`` with a cluster bootstrap interval (``clusters``: one id
    per value; None: every value its own cluster). Non-finite values are left out."""
    x = np.asarray(values, dtype=float)
    ids = _own(clusters, len(x))
    keep = np.isfinite(x)
    x, ids = x[keep], ids[keep]
    n = len(x)
    estimate = float(x.mean()) if n else math.nan
    low, high = bootstrap_interval(_weighted_mean(x), _own(ids, n), n_boot=n_boot,
                                   rng=_rng(seed, stream))
    return Statistic(estimate=estimate, low=low, high=high, n=n, method=BOOTSTRAP_METHOD,
                     enough=_enough(n, (), min_samples))


def mean_difference(first: Sequence[float] | np.ndarray, second: Sequence[float] | np.ndarray,
                    *, n_boot: int = 2000, seed: int = 0, stream: str | int = "diff",
                    min_samples: int = MIN_SAMPLES,
                    clusters: tuple[np.ndarray, np.ndarray] | None = None) -> Statistic:
    """Return mean(first) - mean(second) with a cluster bootstrap interval.

    ``clusters``: the cluster id of each value of ``first`` and of ``second`` (one id space:
    a cluster holding values of both groups is drawn whole, both groups at once); None: every
    value its own cluster. Non-finite values are left out. No interval where a resample draws
    one group empty.
    """
    a, b = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if clusters is None:
        ids = np.arange(len(a) + len(b))
    else:
        ids_a, ids_b = (np.asarray(c) for c in clusters)
        if len(ids_a) != len(a) or len(ids_b) != len(b):
            raise ValueError(f"clusters must have one id per value; got {len(ids_a)} for "
                             f"{len(a)} and {len(ids_b)} for {len(b)}")
        ids = np.concatenate([ids_a, ids_b])
    values = np.concatenate([a, b])
    in_first = np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)]
    keep = np.isfinite(values)
    values, in_first, ids = values[keep], in_first[keep], ids[keep]
    groups = (int(in_first.sum()), int((~in_first).sum()))
    estimate = (float(values[in_first].mean() - values[~in_first].mean())
                if min(groups) > 0 else math.nan)
    low, high = math.nan, math.nan
    if min(groups) > 0:
        on, off = _weighted_mean(np.where(in_first, values, 0.0)), _weighted_mean(
            np.where(in_first, 0.0, values))

        def difference(w: np.ndarray) -> np.ndarray:
            return on(w * in_first) - off(w * ~in_first)

        low, high = bootstrap_interval(difference, _own(ids, len(values)), n_boot=n_boot,
                                       rng=_rng(seed, stream))
    return Statistic(estimate=estimate, low=low, high=high, n=sum(groups),
                     method=BOOTSTRAP_METHOD, enough=_enough(sum(groups), groups, min_samples),
                     groups=groups)


def win_rate_statistic(wins: Sequence[bool] | np.ndarray, *,
                       min_samples: int = MIN_SAMPLES) -> Statistic:
    """Return the fraction of wins with a Wilson score interval (statsmodels)."""
    return rate_statistic(np.asarray(wins, dtype=bool), min_samples=min_samples)


def rate_statistic(hits: Sequence[bool] | np.ndarray, *,
                   min_samples: int = MIN_SAMPLES) -> Statistic:
    """Return the share of True among ``hits`` with statsmodels' Wilson interval."""
    w = np.asarray(hits, dtype=bool)
    n = len(w)
    if n == 0:
        return Statistic(estimate=math.nan, low=math.nan, high=math.nan, n=0, method="Wilson",
                         enough=False)
    low, high = proportion_confint(int(w.sum()), n, alpha=_ALPHA, method="wilson")
    return Statistic(estimate=float(w.mean()), low=float(low), high=float(high), n=n,
                     method="Wilson (statsmodels proportion_confint)",
                     enough=_enough(n, (), min_samples))


# --- metrics over resample counts -----------------------------------------------------------
# Each takes the original samples (1-D) and a count matrix (one resample per row: how often
# each sample was drawn; a row of ones is the sample itself) and returns one value per row.
# Kept because no library evaluates these on thousands of weighted resamples at once; the
# point estimates come from the libraries (roc_auc_score, spearmanr) and tests check these
# against them (``roc_auc_score(sample_weight=...)``). Working on counts over the sorted
# samples avoids sorting every resample.

def _weighted_ranks(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return each sample's average rank within each resample (ties share their mean rank)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new_value = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(new_value)
    group = np.empty(len(values), dtype=int)
    group[order] = np.cumsum(new_value) - 1
    in_group = np.add.reduceat(counts[:, order], starts, axis=1)
    below = np.cumsum(in_group, axis=1) - in_group
    return (below + (in_group + 1) / 2)[:, group]


def _auc_counts(scores: np.ndarray, wins: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return the AUC of scores against wins per resample (ties count one half)."""
    y = wins.astype(float)
    ranks = _weighted_ranks(scores, counts)
    n_pos = counts @ y
    n_neg = counts.sum(axis=1) - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((counts * ranks) @ y - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _spearman_counts(scores: np.ndarray, values: np.ndarray, counts: np.ndarray
                     ) -> np.ndarray:
    """Return Spearman's rho of scores and values per resample."""
    a = _weighted_ranks(scores, counts)
    b = _weighted_ranks(values, counts)
    n = counts.sum(axis=1)
    centre = ((n + 1) / 2)[:, None]
    a -= centre
    b -= centre
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((counts * a * b).sum(axis=1)
                / np.sqrt((counts * a * a).sum(axis=1) * (counts * b * b).sum(axis=1)))


def _tails(scores: np.ndarray, r: np.ndarray, counts: np.ndarray,
           cuts: tuple[float, float] | None) -> tuple[np.ndarray, ...]:
    """Return per resample: top-tail count and R sum, bottom-tail count and R sum, and
    whether the two tails are apart (low cut below high cut)."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    drawn = counts[:, order]
    cum = np.cumsum(drawn, axis=1)
    cum_r = np.cumsum(drawn * r[order], axis=1)
    n = cum[:, -1]
    if cuts is None:
        bounds = []
        for p in (SPREAD_TAIL, 1 - SPREAD_TAIL):  # np.quantile's linear rule on each resample
            h = (n - 1) * p
            lo = np.floor(h)
            x_lo = ordered[(cum <= lo[:, None]).sum(axis=1)]
            x_hi = ordered[(cum <= np.minimum(lo + 1, n - 1)[:, None]).sum(axis=1)]
            bounds.append(x_lo + (h - lo) * (x_hi - x_lo))
        low, high = bounds
    else:
        low, high = np.full(len(n), cuts[0]), np.full(len(n), cuts[1])
    rows = np.arange(len(n))
    k_bottom = np.searchsorted(ordered, low, side="right")  # samples at or below the low cut
    k_top = np.searchsorted(ordered, high, side="left")  # samples below the high cut
    padded, padded_r = np.c_[np.zeros(len(n)), cum], np.c_[np.zeros(len(n)), cum_r]
    n_bottom, r_bottom = padded[rows, k_bottom], padded_r[rows, k_bottom]
    n_top, r_top = n - padded[rows, k_top], cum_r[:, -1] - padded_r[rows, k_top]
    return n_top, r_top, n_bottom, r_bottom, low < high


def _spread_counts(scores: np.ndarray, r: np.ndarray, counts: np.ndarray,
                   cuts: tuple[float, float] | None = None) -> np.ndarray:
    """Return mean R of the top tail minus mean R of the bottom tail per resample (NaN where
    the tails meet: the middle of the scores is one tied value)."""
    n_top, r_top, n_bottom, r_bottom, apart = _tails(scores, r, counts, cuts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(apart, r_top / n_top - r_bottom / n_bottom, np.nan)


def tail_cuts(scores: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Return the score quantiles bounding the bottom and top tails of the decile spread."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if not len(s):
        return math.nan, math.nan
    low, high = np.quantile(s, [SPREAD_TAIL, 1 - SPREAD_TAIL])
    return float(low), float(high)


# --- outcome separation -------------------------------------------------------------------

def auc_statistic(scores: np.ndarray, wins: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                  stream: str | int = "auc", min_samples: int = MIN_SAMPLES,
                  clusters: np.ndarray | None = None) -> Statistic:
    """Return the AUC of ``scores`` against ``wins`` (scikit-learn's ``roc_auc_score``) with
    a cluster bootstrap interval (``clusters``: one id per sample; None: each its own).

    The p-value is the two-sided Mann-Whitney test of AUC = 0.5 (it assumes independent
    samples; the interval does not).
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(wins, dtype=bool)
    n, n_pos = len(s), int(y.sum())
    groups = (n_pos, n - n_pos)
    estimate, p_value = math.nan, None
    if min(groups) > 0:
        estimate = float(roc_auc_score(y, s))
        p_value = float(stats.mannwhitneyu(s[y], s[~y], alternative="two-sided").pvalue)
    low, high = _boot(_auc_counts, s, y, clusters, n_boot=n_boot, rng=_rng(seed, stream))
    return Statistic(estimate=estimate, low=low, high=high, n=n,
                     method=BOOTSTRAP_METHOD, enough=_enough(n, groups, min_samples),
                     p_value=p_value, groups=groups)


def spearman_statistic(scores: np.ndarray, values: np.ndarray, *,
                       min_samples: int = MIN_SAMPLES) -> Statistic:
    """Return Spearman's rho (``scipy.stats.spearmanr``) with a Fisher-z interval
    (Bonett-Wright standard error: scipy gives no interval for rho, so that line is ours)."""
    s = np.asarray(scores, dtype=float)
    v = np.asarray(values, dtype=float)
    n = len(s)
    if n < 4 or np.ptp(s) == 0 or np.ptp(v) == 0:
        return Statistic(estimate=math.nan, low=math.nan, high=math.nan, n=n,
                         method="Fisher z (Bonett-Wright)", enough=False)
    result = stats.spearmanr(s, v)
    rho = float(result.statistic)
    se = math.sqrt((1 + rho**2 / 2) / (n - 3))
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    return Statistic(estimate=rho, low=math.tanh(z - _Z * se), high=math.tanh(z + _Z * se), n=n,
                     method="Fisher z (Bonett-Wright)", enough=_enough(n, (), min_samples),
                     p_value=float(result.pvalue))


def spread_statistic(scores: np.ndarray, r: np.ndarray, *, n_boot: int = 2000, seed: int = 0,
                     stream: str | int = "spread", cuts: tuple[float, float] | None = None,
                     min_samples: int = MIN_SAMPLES, clusters: np.ndarray | None = None
                     ) -> Statistic:
    """Return mean R of the top decile minus mean R of the bottom decile of ``scores``.

    The bottom decile is scores at or below their 10th percentile and the top decile scores at
    or above their 90th (ties stay together; for untied scores these are the first and last
    bins of ``decile_table``, up to the rounding of n/10). ``cuts`` fixes those two bounds
    instead, e.g. to the in-sample ones in a walk-forward evaluation (NaN cuts: no estimate).
    When the 10th and 90th percentiles coincide the tails overlap and there is no estimate.
    No library computes this; the interval is the cluster bootstrap of ``bootstrap_interval``.
    """
    s = np.asarray(scores, dtype=float)
    r = np.asarray(r, dtype=float)
    n = len(s)
    if n == 0 or (cuts is not None and not np.isfinite(cuts).all()):
        return Statistic(estimate=math.nan, low=math.nan, high=math.nan, n=n,
                         method=BOOTSTRAP_METHOD, enough=False, groups=(0, 0))
    n_top, _, n_bottom, _, apart = _tails(s, r, np.ones((1, n)), cuts)
    groups = (int(n_top[0]), int(n_bottom[0]))
    if not apart[0]:
        return Statistic(estimate=math.nan, low=math.nan, high=math.nan, n=n,
                         method=BOOTSTRAP_METHOD, enough=False, groups=groups,
                         note="scores too tied to form a bottom and a top decile")
    metric: CountMetric = partial(_spread_counts, cuts=cuts)
    estimate = _point(metric, s, r)
    low, high = _boot(metric, s, r, clusters, n_boot=n_boot, rng=_rng(seed, stream))
    return Statistic(estimate=estimate, low=low, high=high, n=n, method=BOOTSTRAP_METHOD,
                     enough=_enough(n, groups, min_samples), groups=groups)


def decile_edges(scores: Sequence[float] | np.ndarray, q: int = 10) -> np.ndarray:
    """Return the distinct score quantile bounds of ``q`` bins, for ``decile_table(edges=)``."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if not len(s):
        return np.array([])
    return np.unique(np.quantile(s, np.linspace(0, 1, q + 1)))


def decile_table(results: pd.DataFrame, score_col: str = "overall_score", n_boot: int = 2000,
                 seed: int = 0, *, q: int = 10, edges: Sequence[float] | None = None,
                 min_samples: int = MIN_SAMPLES) -> pd.DataFrame:
    """Return outcomes per score decile: n, mean R (bootstrap CI), win rate (Wilson CI).

    A score's decile is that of its rank (tied scores share their mean rank, so they stay in
    one bin and heavily tied scores leave some deciles empty; empty deciles are not listed).
    ``score_low``/``score_high`` are the lowest and highest score in the bin. Pass ``edges``
    (ascending bounds, e.g. ``decile_edges`` of an earlier sample) to bin by fixed bounds
    instead, right-closed, every bin listed; scores outside them fall into the end bins.
    """
    data = resolved_outcomes(results, score_col)
    columns = ["decile", "score_low", "score_high", "n", "mean_r", "mean_r_low", "mean_r_high",
               "win_rate", "win_rate_low", "win_rate_high", "enough", "note"]
    scores = data[score_col].to_numpy()
    n_all = len(scores)
    if edges is not None:
        bounds = np.asarray(edges, dtype=float)
        if len(bounds) < 2 or np.any(np.diff(bounds) <= 0):
            raise ValueError(f"edges must be at least two ascending bounds, got {list(edges)}")
        bins = np.clip(np.searchsorted(bounds, scores, side="left") - 1, 0, len(bounds) - 2)
        listed: Sequence[int] = range(len(bounds) - 1)
    elif n_all:
        ranks = _weighted_ranks(scores, np.ones((1, n_all)))[0]
        bins = np.floor((ranks - 1) * q / n_all).astype(int)
        listed = sorted(set(bins.tolist()))
    else:
        return pd.DataFrame(columns=columns)
    r = data["realized_r"].to_numpy()
    wins = data["win"].to_numpy()
    clusters = cluster_ids(data)
    rows = []
    for b in listed:
        in_bin = bins == b
        n = int(in_bin.sum())
        mean_r = mean_statistic(r[in_bin], n_boot=n_boot, seed=seed, stream=f"decile-{b}",
                                min_samples=min_samples, clusters=clusters[in_bin])
        win = win_rate_statistic(wins[in_bin], min_samples=min_samples)
        if edges is not None:
            low, high = float(bounds[b]), float(bounds[b + 1])
        else:
            low, high = float(scores[in_bin].min()), float(scores[in_bin].max())
        rows.append({"decile": b + 1, "score_low": low, "score_high": high, "n": n,
                     "mean_r": mean_r.estimate, "mean_r_low": mean_r.low,
                     "mean_r_high": mean_r.high, "win_rate": win.estimate,
                     "win_rate_low": win.low, "win_rate_high": win.high,
                     "enough": mean_r.enough, "note": _note(n, (), min_samples)})
    return pd.DataFrame(rows, columns=columns)


def rank_stats(results: pd.DataFrame, score_col: str = "overall_score", n_boot: int = 2000,
               seed: int = 0, *, min_samples: int = MIN_SAMPLES) -> dict[str, Statistic]:
    """Return the score's separation of outcomes, each statistic with its n and interval.

    ``spearman``: rank correlation of score and realized R (Fisher-z interval, p-value);
    ``auc``: AUC of score against win (bootstrap interval, Mann-Whitney p-value);
    ``decile_spread_r``: top-decile minus bottom-decile mean R (bootstrap interval);
    ``mean_r`` and ``win_rate``: of all resolved outcomes.
    """
    data = resolved_outcomes(results, score_col)
    s = data[score_col].to_numpy()
    r = data["realized_r"].to_numpy()
    w = data["win"].to_numpy()
    c = cluster_ids(data)
    return {
        "auc": auc_statistic(s, w, n_boot=n_boot, seed=seed, min_samples=min_samples,
                             clusters=c),
        "spearman": spearman_statistic(s, r, min_samples=min_samples),
        "decile_spread_r": spread_statistic(s, r, n_boot=n_boot, seed=seed,
                                            min_samples=min_samples, clusters=c),
        "mean_r": mean_statistic(r, n_boot=n_boot, seed=seed, min_samples=min_samples,
                                 clusters=c),
        "win_rate": win_rate_statistic(w, min_samples=min_samples),
    }


def stats_frame(statistics: Mapping[str, Statistic]) -> pd.DataFrame:
    """Return named statistics as a table with estimate, interval, n, p-value and a note."""
    rows = [{"statistic": name, "estimate": s.estimate, "low": s.low, "high": s.high,
             "n": s.n, "p_value": s.p_value, "method": s.method, "enough": s.enough,
             "note": "" if s.enough else str(s)} for name, s in statistics.items()]
    return pd.DataFrame(rows, columns=["statistic", "estimate", "low", "high", "n", "p_value",
                                       "method", "enough", "note"])


# --- severity ------------------------------------------------------------------------------

def severity_reliability(results: pd.DataFrame, n_boot: int = 2000, seed: int = 0, *,
                         min_samples: int = MIN_SAMPLES) -> pd.DataFrame:
    """Return outcomes per overall severity level, mildest first, with n and intervals.

    A reliable severity scale shows mean R and win rate falling as severity rises; ``INFO``
    includes intents with no issue at all. Levels no intent reached are listed with n = 0.
    """
    data = resolved_outcomes(results, None)
    if "overall_severity" not in data.columns:
        raise ValueError("results frame lacks column 'overall_severity'")
    levels = [str(s) for s in Severity]
    severity = data["overall_severity"].astype(str)
    unknown = sorted(set(severity) - set(levels))
    if unknown:
        raise ValueError(f"unknown overall_severity value(s) {unknown}; expected {levels}")
    rows = []
    clusters = cluster_ids(data)
    for rank, level in enumerate(levels):
        at = (severity == level).to_numpy()
        mean_r = mean_statistic(data["realized_r"].to_numpy()[at], n_boot=n_boot, seed=seed,
                                stream=f"severity-{level}", min_samples=min_samples,
                                clusters=clusters[at])
        win = win_rate_statistic(data["win"].to_numpy()[at], min_samples=min_samples)
        n = int(at.sum())
        rows.append({"severity": level, "rank": rank, "n": n, "mean_r": mean_r.estimate,
                     "mean_r_low": mean_r.low, "mean_r_high": mean_r.high,
                     "win_rate": win.estimate, "win_rate_low": win.low,
                     "win_rate_high": win.high, "enough": mean_r.enough,
                     "note": _note(n, (), min_samples)})
    return pd.DataFrame(rows)


def severity_trend(results: pd.DataFrame, *, min_samples: int = MIN_SAMPLES) -> Statistic:
    """Return Spearman's rho of severity rank against realized R (negative when reliable)."""
    data = resolved_outcomes(results, None)
    rank = {str(s): s.rank for s in Severity}
    ranks = data["overall_severity"].astype(str).map(rank).to_numpy(dtype=float)
    return spearman_statistic(ranks, data["realized_r"].to_numpy(), min_samples=min_samples)


# --- ablation ------------------------------------------------------------------------------

def _paired_change(metric: CountMetric, full: np.ndarray, without: np.ndarray,
                   y: np.ndarray, clusters: np.ndarray, *, n_boot: int,
                   rng: np.random.Generator) -> tuple[float, float, float]:
    """Return metric(without) - metric(full), both on the same resamples of clusters."""
    estimate = _point(metric, without, y) - _point(metric, full, y)
    low, high = bootstrap_interval(lambda w: metric(without, y, w) - metric(full, y, w),
                                   _own(clusters, len(full)), n_boot=n_boot, rng=rng)
    return estimate, low, high


def ablation(results: pd.DataFrame, modules: Sequence[str] | None = None,
             weights: Mapping[str, float] | ScoringConfig | None = None, n_boot: int = 2000,
             seed: int = 0, *, min_samples: int = MIN_SAMPLES) -> pd.DataFrame:
    """Return how separation changes when each module is dropped from the overall score.

    The full score is recomputed from the ``score__`` columns with ``weights`` (a mapping or
    the run's ScoringConfig; equal weights when None) over ``modules`` (default: every module
    with a weight and a column), then recomputed without each module in turn. Changes
    (without minus full) in AUC, Spearman rho and decile spread R carry paired bootstrap
    intervals: both scores are evaluated on the same resamples. A negative AUC change means
    the module helped. Rows where either score is missing are left out of that module's row.
    """
    if isinstance(weights, ScoringConfig):
        weights = weights_of(weights)
    present = module_columns(results)
    if weights is None:
        weights = {m: 1.0 for m in (modules or present)}
    names = list(modules) if modules is not None else [m for m in weights if m in present]
    missing = [m for m in names if m not in weights]
    if missing:
        raise ValueError(f"no weight for module(s) {missing}; weights given for "
                         f"{sorted(weights)}")
    used = {m: float(weights[m]) for m in names}
    data = resolved_outcomes(results, None)
    full = recompute_score(data, used).to_numpy()
    clusters = cluster_ids(data)
    r = data["realized_r"].to_numpy()
    w = data["win"].to_numpy()
    rows = []
    for module in names:
        without = recompute_score(data, used, drop=[module]).to_numpy()
        ok = np.isfinite(full) & np.isfinite(without)
        f, d, rr, ww, cc = full[ok], without[ok], r[ok], w[ok], clusters[ok]
        n, n_win = int(ok.sum()), int(ww.sum())
        row: dict[str, object] = {"module": module, "weight": used[module], "n": n}
        for label, metric, target in (("auc", _auc_counts, ww),
                                      ("spearman", _spearman_counts, rr),
                                      ("decile_spread_r", _spread_counts, rr)):
            base = _point(metric, f, target)
            change, low, high = ((math.nan,) * 3 if n == 0 else _paired_change(
                metric, f, d, target, cc, n_boot=n_boot,
                rng=_rng(seed, "ablation", module, label)))
            row.update({f"{label}_full": base, f"{label}_without": base + change,
                        f"{label}_change": change, f"{label}_change_low": low,
                        f"{label}_change_high": high})
        groups = (n_win, n - n_win)
        row["enough"] = _enough(n, groups, min_samples)
        row["note"] = _note(n, groups, min_samples)
        rows.append(row)
    return pd.DataFrame(rows)


# --- flags ---------------------------------------------------------------------------------

def flag_table(results: pd.DataFrame, issues: pd.DataFrame, n_boot: int = 2000, seed: int = 0,
               *, min_samples: int = MIN_SAMPLES) -> pd.DataFrame:
    """Return, per issue code, mean R when it fired and when it did not, with n and intervals.

    An intent counts as fired when the code was raised on it at least once (in the same run).
    ``diff_r`` is mean R fired minus mean R not fired; intervals resample symbol-month clusters
    (both groups drawn together). The claim each code makes is tested against its own measure
    by ``replay.measures.claim_table``; this table is the mean-R view.
    Sorted by the number of intents the code fired on, most first.
    """
    data = resolved_outcomes(results, None)
    columns = ["code", "modules", "n_fired", "n_not_fired", "mean_r_fired", "mean_r_fired_low",
               "mean_r_fired_high", "mean_r_not_fired", "mean_r_not_fired_low",
               "mean_r_not_fired_high", "win_rate_fired", "win_rate_fired_low",
               "win_rate_fired_high", "diff_r", "diff_r_low", "diff_r_high", "enough", "note"]
    if issues.empty or data.empty:
        return pd.DataFrame(columns=columns)
    key = ["run_id", "intent_id"] if "run_id" in data.columns and "run_id" in issues else [
        "intent_id"]
    keys = pd.MultiIndex.from_frame(data[key].astype(str))
    r = data["realized_r"].to_numpy()
    wins = data["win"].to_numpy()
    clusters = cluster_ids(data)
    rows = []
    for code, fired_rows in issues.groupby("code", sort=True):
        fired_keys = pd.MultiIndex.from_frame(fired_rows[key].astype(str)).unique()
        fired = keys.isin(fired_keys)
        groups = (int(fired.sum()), int((~fired).sum()))
        on = mean_statistic(r[fired], n_boot=n_boot, seed=seed, stream=f"flag-{code}-fired",
                            min_samples=min_samples, clusters=clusters[fired])
        off = mean_statistic(r[~fired], n_boot=n_boot, seed=seed, stream=f"flag-{code}-not",
                             min_samples=min_samples, clusters=clusters[~fired])
        diff = mean_difference(r[fired], r[~fired], n_boot=n_boot, seed=seed,
                               stream=f"flag-{code}-diff", min_samples=min_samples,
                               clusters=(clusters[fired], clusters[~fired]))
        win = win_rate_statistic(wins[fired], min_samples=min_samples)
        modules = ", ".join(sorted(fired_rows["module"].astype(str).unique())) if (
            "module" in fired_rows) else ""
        rows.append({"code": str(code), "modules": modules, "n_fired": groups[0],
                     "n_not_fired": groups[1], "mean_r_fired": on.estimate,
                     "mean_r_fired_low": on.low, "mean_r_fired_high": on.high,
                     "mean_r_not_fired": off.estimate, "mean_r_not_fired_low": off.low,
                     "mean_r_not_fired_high": off.high, "win_rate_fired": win.estimate,
                     "win_rate_fired_low": win.low, "win_rate_fired_high": win.high,
                     "diff_r": diff.estimate, "diff_r_low": diff.low, "diff_r_high": diff.high,
                     "enough": diff.enough,
                     "note": _note(groups[0] + groups[1], groups, min_samples)})
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["n_fired", "code"], ascending=[False, True], kind="stable"
                             ).reset_index(drop=True)


# --- walk-forward --------------------------------------------------------------------------

def _years(frame: pd.DataFrame) -> np.ndarray:
    return pd.to_datetime(frame["as_of"], utc=True).dt.year.to_numpy()


def walk_forward(results: pd.DataFrame, split_year: int | None = None, *,
                 splits: Sequence[int] | None = None, score_col: str = "overall_score",
                 n_boot: int = 2000, seed: int = 0,
                 min_samples: int = MIN_SAMPLES) -> pd.DataFrame:
    """Return separation in-sample (earlier years) and out-of-sample (later years) per split.

    Years are the UTC years of ``as_of``. With ``split_year`` there is one split: in-sample
    before it, out-of-sample from it on. With ``splits`` (ascending cut years) the window
    expands: at cut k, in-sample is every year before it and out-of-sample runs up to the
    next cut (the last to the end). Without either, every year after the first is a cut.
    The decile spread out of sample uses the in-sample decile bounds (``tail_cuts``): the
    calibration learnt on earlier years, applied unchanged to later ones.
    """
    if split_year is not None and splits is not None:
        raise ValueError("pass split_year or splits, not both")
    data = resolved_outcomes(results, score_col)
    years = _years(data) if len(data) else np.array([], dtype=int)
    if split_year is not None:
        cuts = [int(split_year)]
    elif splits is not None:
        cuts = [int(y) for y in splits]
        if cuts != sorted(set(cuts)):
            raise ValueError(f"splits must be distinct ascending years, got {list(splits)}")
    else:
        cuts = sorted(set(years.tolist()))[1:]
    s = data[score_col].to_numpy()
    r = data["realized_r"].to_numpy()
    w = data["win"].to_numpy()
    c = cluster_ids(data)
    rows = []
    for k, cut in enumerate(cuts):
        end = cuts[k + 1] if k + 1 < len(cuts) else None
        inside = years < cut
        outside = (years >= cut) & (years < end if end is not None else True)
        bounds = tail_cuts(s[inside])
        for sample, mask, fixed in (("in-sample", inside, None),
                                    ("out-of-sample", outside, bounds)):
            stream = f"walk-{cut}-{sample}"
            auc = auc_statistic(s[mask], w[mask], n_boot=n_boot, seed=seed, stream=stream,
                                min_samples=min_samples, clusters=c[mask])
            rho = spearman_statistic(s[mask], r[mask], min_samples=min_samples)
            spread = spread_statistic(s[mask], r[mask], n_boot=n_boot, seed=seed, stream=stream,
                                      cuts=fixed, min_samples=min_samples, clusters=c[mask])
            mean_r = mean_statistic(r[mask], n_boot=n_boot, seed=seed, stream=stream,
                                    min_samples=min_samples, clusters=c[mask])
            in_years = years[mask]
            rows.append({
                "split": cut, "sample": sample,
                "first_year": int(in_years.min()) if len(in_years) else None,
                "last_year": int(in_years.max()) if len(in_years) else None,
                "n": int(mask.sum()),
                "auc": auc.estimate, "auc_low": auc.low, "auc_high": auc.high,
                "spearman": rho.estimate, "spearman_low": rho.low, "spearman_high": rho.high,
                "decile_spread_r": spread.estimate, "decile_spread_r_low": spread.low,
                "decile_spread_r_high": spread.high,
                "mean_r": mean_r.estimate, "mean_r_low": mean_r.low,
                "mean_r_high": mean_r.high,
                "enough": auc.enough and spread.enough,
                "note": "" if auc.enough and spread.enough else str(
                    auc if not auc.enough else spread)})
    return pd.DataFrame(rows, columns=[
        "split", "sample", "first_year", "last_year", "n", "auc", "auc_low", "auc_high",
        "spearman", "spearman_low", "spearman_high", "decile_spread_r", "decile_spread_r_low",
        "decile_spread_r_high", "mean_r", "mean_r_low", "mean_r_high", "enough", "note"])


# --- tracking ------------------------------------------------------------------------------

def calibration_metrics(results: pd.DataFrame, issues: pd.DataFrame | None = None, *,
                        score_col: str = "overall_score", n_boot: int = 2000,
                        seed: int = 0) -> dict[str, float]:
    """Return flat metrics for experiment tracking (all floats, NaN where undefined).

    ``n``, ``n_wins``, ``mean_r``, ``win_rate``, ``auc``, ``spearman``, ``spearman_p``,
    ``decile_spread_r``, ``severity_spearman``, each estimate with ``_low``/``_high``; per
    issue code ``flag__<CODE>__n_fired``, ``__mean_r_fired``, ``__mean_r_not_fired``,
    ``__diff_r``, ``__diff_r_low``, ``__diff_r_high``.
    """
    ranked = rank_stats(results, score_col, n_boot, seed)
    out: dict[str, float] = {"n": float(ranked["auc"].n),
                             "n_wins": float(ranked["auc"].groups[0])}
    for name, stat in ranked.items():
        out[name] = float(stat.estimate)
        out[f"{name}_low"] = float(stat.low)
        out[f"{name}_high"] = float(stat.high)
    out["spearman_p"] = float(ranked["spearman"].p_value
                              if ranked["spearman"].p_value is not None else math.nan)
    if "overall_severity" in results.columns:
        trend = severity_trend(resolved_outcomes(results, score_col))
        out.update({"severity_spearman": float(trend.estimate),
                    "severity_spearman_low": float(trend.low),
                    "severity_spearman_high": float(trend.high)})
    if issues is not None:
        flags = flag_table(resolved_outcomes(results, score_col), issues, n_boot, seed)
        for row in flags.itertuples(index=False):
            prefix = f"flag__{row.code}__"
            out.update({f"{prefix}n_fired": float(row.n_fired),
                        f"{prefix}mean_r_fired": float(row.mean_r_fired),
                        f"{prefix}mean_r_not_fired": float(row.mean_r_not_fired),
                        f"{prefix}diff_r": float(row.diff_r),
                        f"{prefix}diff_r_low": float(row.diff_r_low),
                        f"{prefix}diff_r_high": float(row.diff_r_high)})
    return out
