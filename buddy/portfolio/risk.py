"""Portfolio risk math over columns: returns, covariance, betas, correlation clusters,
volatility, Euler risk contributions, parametric and historical VaR, and the exact effect of K
candidate trades on one book.

Pure numpy/scipy, no I/O. Conventions shared by every function:

- a return matrix is (T, N): T days (oldest first) by N instruments, daily LOG returns, NaN
  where a day is missing for an instrument (not traded yet, halted, delisted);
- weights ``w`` are (N,) signed fractions of equity (0.05 is a 5% long, -0.05 a 5% short;
  percent of equity / 100); an instrument not held has weight 0;
- ``cov`` is (N, N) in (daily log return)^2, so volatilities and VaR come out as fractions of
  equity per day (per ``horizon_days`` for parametric VaR);
- VaR is a LOSS, positive, as a fraction of equity, at a confidence ``level`` in (0.5, 1)
  (0.95: the loss exceeded on 5% of days). Parametric VaR assumes a zero mean: no expected
  return is forecast;
- a result that cannot be computed (too few observations, a needed covariance unknown) is NaN,
  which callers report as "not checked", never as zero risk;
- bad input raises ``RiskInputError`` naming the field, the rule and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from buddy.errors import FieldError, FieldErrors

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Blume's adjustment of a raw beta toward 1: 0.67 b + 0.33 (Blume 1975).
BLUME_WEIGHT = 0.67
#: Distance given to a pair whose correlation rests on too few days: sqrt((1 - 0) / 2), i.e.
#: treated as uncorrelated, so an unmeasured pair never makes a cluster.
UNKNOWN_PAIR_DISTANCE = math.sqrt(0.5)
#: Candidates per block in the batch historical VaR (bounds memory to block x T floats).
_BLOCK = 1024


class RiskInputError(FieldErrors):
    """Input to the risk math broke a rule; nothing was computed."""

    what = "risk input"


@dataclass(frozen=True, slots=True)
class ReturnMoments:
    """Pairwise-complete sample moments of a (T, N) return matrix.

    ``cov`` (N, N) in (daily log return)^2 and ``corr`` (N, N) use, for each pair, only the
    days both are observed (ddof 1), as pandas' ``DataFrame.cov``/``corr`` do; ``n`` (N, N) is
    that day count (the diagonal: each column's own count). Entries with n < ``min_obs`` are
    NaN. A pairwise matrix need not be positive semi-definite when columns have different gaps:
    see ``nearest_psd``.
    """

    cov: FloatArray
    corr: FloatArray
    n: IntArray
    min_obs: int


@dataclass(frozen=True, slots=True)
class BetaEstimate:
    """OLS beta of each asset on its benchmark (with an intercept), per column (N,).

    ``beta`` (unitless), its standard error ``se``, the days used ``n`` (both observed), and
    the two-sided ``level`` interval [``low``, ``high``] from Student's t with n - 2 degrees
    of freedom. With ``blume`` the beta, se and bounds are Blume-adjusted (0.67 b + 0.33).
    NaN where n < 3 or the benchmark did not move.
    """

    beta: FloatArray
    se: FloatArray
    n: IntArray
    low: FloatArray
    high: FloatArray
    level: float
    blume: bool


@dataclass(frozen=True, slots=True)
class CorrelationClusters:
    """Average-linkage clusters on the correlation distance sqrt((1 - rho) / 2).

    ``labels`` (N,): cluster 1, 2, ... numbered by the first column in each; 0 for a column not
    clustered (excluded by ``include`` or observed on fewer than ``min_obs`` days: unknown, not
    "alone"). ``corr`` and ``n`` as in ``ReturnMoments``; ``distance`` (N, N) in [0, 1], NaN
    where the correlation is unknown (the linkage then uses ``UNKNOWN_PAIR_DISTANCE``). Columns
    in one cluster merged at an average distance <= ``max_distance`` (0.5 is an average
    correlation of 0.5).
    """

    labels: IntArray
    corr: FloatArray
    distance: FloatArray
    n: IntArray
    max_distance: float
    min_obs: int


@dataclass(frozen=True, slots=True)
class ClusterJoin:
    """Which existing cluster each of K candidate columns would join, (K,) each.

    ``label``: the cluster (as in ``CorrelationClusters.labels``) whose members are at the
    lowest average correlation distance from the candidate, if that average is <=
    ``max_distance``; the candidate's own cluster if it is a clustered column; else 0.
    ``mean_distance`` and ``mean_corr``: the candidate's average distance and correlation to
    that nearest cluster's members (NaN when there is no cluster); ``n_min``: the fewest days
    behind any of those correlations (0 when unknown).
    """

    label: IntArray
    mean_distance: FloatArray
    mean_corr: FloatArray
    n_min: IntArray


@dataclass(frozen=True, slots=True)
class HistoricalVaR:
    """Historical VaR of a book: a loss, fraction of equity, one day.

    ``var`` = -(the (1 - level) quantile of the daily P&L scenarios, np.quantile's default
    "linear" definition), over ``n`` days on which every held instrument is observed. [``low``,
    ``high``]: a distribution-free 95% interval from order statistics (binomial ranks); NaN
    when n is too small for a bound.
    """

    var: float
    n: int
    low: float
    high: float
    level: float


@dataclass(frozen=True, slots=True)
class CandidateRisk:
    """The book's risk before and after each of K candidate trades, (K,) arrays, exact.

    Volatility (``vol_*``, fraction of equity per day), parametric VaR (``var_param_*``, loss,
    fraction of equity over ``horizon_days``), historical VaR (``var_hist_*``, loss, fraction
    of equity, one day, over the ``n_hist`` days on which the book and the candidate's
    instrument are all observed; before and after on the SAME days, so the difference is the
    candidate's incremental VaR), its interval after entry (``var_hist_after_low``/``_high``,
    as in ``HistoricalVaR``), and after entry the Euler risk contribution of the whole position
    in the candidate's instrument (``contribution_after``) and of the candidate's added part
    alone (``candidate_contribution_after``), fraction of equity per day. NaN where a needed
    covariance or too few days are unknown.
    """

    vol_before: FloatArray
    vol_after: FloatArray
    var_param_before: FloatArray
    var_param_after: FloatArray
    var_hist_before: FloatArray
    var_hist_after: FloatArray
    var_hist_after_low: FloatArray
    var_hist_after_high: FloatArray
    n_hist: IntArray
    contribution_after: FloatArray
    candidate_contribution_after: FloatArray
    level: float
    horizon_days: int


# ---------------------------------------------------------------- input checks


def _fail(field: str, rule: str, value: object) -> RiskInputError:
    return RiskInputError([FieldError(field, rule, value)])


def _matrix(values: ArrayLike, field: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise _fail(field, "must be a (T, N) matrix", f"shape {arr.shape}")
    if np.isinf(arr).any():
        raise _fail(field, "must be finite or NaN", "inf")
    return arr


def _weights(w: ArrayLike, n: int, field: str = "w") -> FloatArray:
    arr = np.asarray(w, dtype=np.float64)
    if arr.shape != (n,):
        raise _fail(field, f"must have shape ({n},)", f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise _fail(field, "must be finite", arr[~np.isfinite(arr)][0])
    return arr


def _cov(cov: ArrayLike) -> FloatArray:
    arr = np.asarray(cov, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise _fail("cov", "must be a square (N, N) matrix", f"shape {arr.shape}")
    return arr


def _level(level: float) -> float:
    if not 0.5 < level < 1.0:
        raise _fail("level", "must be in (0.5, 1)", level)
    return float(level)


def _horizon(horizon_days: int) -> int:
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, int | np.integer) \
            or horizon_days < 1:
        raise _fail("horizon_days", "must be an integer >= 1", horizon_days)
    return int(horizon_days)


def _min_obs(min_obs: int, least: int) -> int:
    if isinstance(min_obs, bool) or not isinstance(min_obs, int | np.integer) \
            or min_obs < least:
        raise _fail("min_obs", f"must be an integer >= {least}", min_obs)
    return int(min_obs)


# ---------------------------------------------------------------- returns and moments


def log_returns(closes: ArrayLike) -> FloatArray:
    """Return daily log returns (T - 1, N) from aligned closes (T, N) (or (T,) -> (T - 1, 1)).

    Closes are prices on one date index, oldest first, split-adjusted on one basis, NaN where
    a day is missing. A return is NaN unless both its closes are present: a gap is not bridged
    (the return across it would span several days).
    """
    arr = _matrix(closes, "closes")
    bad = arr <= 0
    if bad.any():
        raise _fail("closes", "must be > 0 where present", float(arr[bad][0]))
    return np.log(arr[1:] / arr[:-1])


def moments(returns: ArrayLike, *, min_obs: int = 2) -> ReturnMoments:
    """Return the pairwise-complete sample covariance, correlation and day counts of ``returns``.

    ``returns`` (T, N) daily log returns with NaN gaps; ``min_obs`` (>= 2) days a pair needs.
    """
    min_obs = _min_obs(min_obs, 2)
    r = _matrix(returns, "returns")
    observed = ~np.isnan(r)
    counts = observed.sum(axis=0)
    # centring on each column's mean first keeps the one-pass sums below accurate; the
    # covariance does not depend on the shift
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.where(counts > 0, np.nansum(r, axis=0) / np.maximum(counts, 1), 0.0)
    x = np.where(observed, r - centre, 0.0)
    t = r.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        if observed.all():
            # no gaps: one product gives every pair (the common case, and the fast one)
            n = np.full((r.shape[1], r.shape[1]), t, dtype=np.int64)
            cov = (x.T @ x) / (t - 1) if t > 1 else np.full(n.shape, np.nan)
            sd = np.sqrt(np.diag(cov))
            corr = cov / np.outer(sd, sd)
        else:
            m = observed.astype(np.float64)
            nf = m.T @ m
            n = np.rint(nf).astype(np.int64)
            sums = x.T @ m  # [i, j]: sum of x_i over the days i and j are both observed
            squares = (x * x).T @ m
            cov = (x.T @ x - sums * sums.T / nf) / (nf - 1)
            var_on_pair = (squares - sums * sums / nf) / (nf - 1)
            corr = cov / np.sqrt(var_on_pair * var_on_pair.T)
    corr = np.clip(corr, -1.0, 1.0)
    short = n < min_obs
    cov = np.where(short, np.nan, cov)
    corr = np.where(short, np.nan, corr)
    diag = np.arange(corr.shape[0])
    corr[diag, diag] = np.where(short[diag, diag] | ~(np.diag(cov) > 0), np.nan, 1.0)
    return ReturnMoments(cov=cov, corr=corr, n=n, min_obs=min_obs)


def nearest_psd(cov: ArrayLike) -> FloatArray:
    """Return ``cov`` with its negative eigenvalues set to zero (the nearest PSD matrix in the
    Frobenius norm); a pairwise-complete covariance can have small negative ones."""
    arr = _cov(cov)
    if not np.isfinite(arr).all():
        raise _fail("cov", "must be finite to repair", "NaN")
    sym = (arr + arr.T) / 2
    values, vectors = np.linalg.eigh(sym)
    fixed: FloatArray = (vectors * np.clip(values, 0.0, None)) @ vectors.T
    return (fixed + fixed.T) / 2


# ---------------------------------------------------------------- betas


def betas(asset_returns: ArrayLike, bench_returns: ArrayLike, *, blume: bool = False,
          level: float = 0.95) -> BetaEstimate:
    """Return each asset's OLS beta on its benchmark with se, n and a ``level`` interval.

    ``asset_returns`` (T, N) and ``bench_returns`` (T, N) (column i is asset i's benchmark) or
    (T,) (one benchmark for all), returns over one window (daily or weekly, log), NaN gaps;
    each column uses the periods both are observed. The regression has an intercept, as
    ``statsmodels.OLS(y, add_constant(x))``. ``blume``: report 0.67 b + 0.33 (se and bounds
    scaled alike).
    """
    level = _level(level)
    y = _matrix(asset_returns, "asset_returns")
    xb = np.asarray(bench_returns, dtype=np.float64)
    if xb.ndim == 1:
        xb = xb[:, None]
    x = _matrix(xb, "bench_returns")
    if x.shape[0] != y.shape[0] or x.shape[1] not in (1, y.shape[1]):
        raise _fail("bench_returns", f"must have shape ({y.shape[0]},) or {y.shape}",
                    f"shape {np.shape(bench_returns)}")
    x = np.broadcast_to(x, y.shape)
    both = ~np.isnan(y) & ~np.isnan(x)
    n = both.sum(axis=0).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        nf = n.astype(np.float64)
        x_mean = np.where(both, x, 0.0).sum(axis=0) / nf
        y_mean = np.where(both, y, 0.0).sum(axis=0) / nf
        xc = np.where(both, x - x_mean, 0.0)
        yc = np.where(both, y - y_mean, 0.0)
        sxx = (xc * xc).sum(axis=0)
        sxy = (xc * yc).sum(axis=0)
        syy = (yc * yc).sum(axis=0)
        beta = sxy / sxx
        # the residual sum of squares, from the fitted line's decomposition
        ssr = np.clip(syy - beta * sxy, 0.0, None)
        se = np.sqrt(ssr / (nf - 2) / sxx)
    ok = (n >= 3) & (sxx > 0)
    beta = np.where(ok, beta, np.nan)
    se = np.where(ok, se, np.nan)
    t_crit = stats.t.ppf(0.5 + level / 2, np.where(ok, n - 2, 1))
    low, high = beta - t_crit * se, beta + t_crit * se
    if blume:
        beta = BLUME_WEIGHT * beta + (1 - BLUME_WEIGHT)
        se = BLUME_WEIGHT * se
        low = BLUME_WEIGHT * low + (1 - BLUME_WEIGHT)
        high = BLUME_WEIGHT * high + (1 - BLUME_WEIGHT)
    return BetaEstimate(beta=beta, se=se, n=n, low=low, high=high, level=level, blume=blume)


# ---------------------------------------------------------------- correlation clusters


def correlation_distance(corr: ArrayLike) -> FloatArray:
    """Return sqrt((1 - rho) / 2), in [0, 1], elementwise (NaN stays NaN)."""
    rho = np.asarray(corr, dtype=np.float64)
    return np.sqrt(np.clip((1.0 - rho) / 2.0, 0.0, 1.0))


def correlation_clusters(returns: ArrayLike | ReturnMoments, *, max_distance: float = 0.5,
                         min_obs: int = 60, include: ArrayLike | None = None
                         ) -> CorrelationClusters:
    """Cluster the columns of ``returns`` by average linkage on sqrt((1 - rho) / 2), cut at
    ``max_distance``.

    ``returns`` (T, N) daily log returns over the stated window, or the ``ReturnMoments``
    already computed from them (saves a second pass); ``min_obs`` days a pair's correlation
    needs (fewer: the pair is unknown, linked as uncorrelated); ``include`` (N,) bools: the
    columns to cluster (e.g. the held ones), the others get label 0 but keep their
    correlations (for ``join_cluster``). Uses ``scipy.cluster.hierarchy.linkage(method=
    "average")`` and ``fcluster(criterion="distance")``.
    """
    if not 0.0 < max_distance <= 1.0:
        raise _fail("max_distance", "must be in (0, 1]", max_distance)
    min_obs = _min_obs(min_obs, 2)
    if isinstance(returns, ReturnMoments):
        short = returns.n < min_obs
        mom = ReturnMoments(cov=np.where(short, np.nan, returns.cov),
                            corr=np.where(short, np.nan, returns.corr), n=returns.n,
                            min_obs=max(min_obs, returns.min_obs))
    else:
        mom = moments(returns, min_obs=min_obs)
    n_cols = mom.corr.shape[0]
    chosen = np.ones(n_cols, dtype=bool) if include is None else np.asarray(include, bool)
    if chosen.shape != (n_cols,):
        raise _fail("include", f"must have shape ({n_cols},)", f"shape {chosen.shape}")
    distance = correlation_distance(mom.corr)
    eligible = np.flatnonzero(chosen & (np.diag(mom.n) >= mom.min_obs))
    labels = np.zeros(n_cols, dtype=np.int64)
    if eligible.size == 1:
        labels[eligible] = 1
    elif eligible.size > 1:
        sub = np.nan_to_num(distance[np.ix_(eligible, eligible)], nan=UNKNOWN_PAIR_DISTANCE)
        sub = (sub + sub.T) / 2
        np.fill_diagonal(sub, 0.0)
        tree = hierarchy.linkage(squareform(sub, checks=False), method="average")
        raw = hierarchy.fcluster(tree, t=max_distance, criterion="distance")
        labels[eligible] = _first_seen_order(raw)
    return CorrelationClusters(labels=labels, corr=mom.corr, distance=distance, n=mom.n,
                               max_distance=float(max_distance), min_obs=mom.min_obs)


def _first_seen_order(raw: NDArray[np.int32]) -> IntArray:
    # fcluster's numbering is arbitrary: renumber by the first column in each cluster
    _, first, inverse = np.unique(raw, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(1, first.size + 1)
    return rank[inverse]


def join_cluster(clusters: CorrelationClusters, cand_index: ArrayLike) -> ClusterJoin:
    """Return the existing cluster each candidate column (K,) would join, with the evidence.

    ``cand_index`` (K,) column indices into the matrices of ``clusters``. A candidate joins
    the cluster at the lowest average distance from it when that average is <=
    ``clusters.max_distance`` (the average-linkage merge rule, applied to the candidate as a
    singleton against the book's clusters, which do not change).
    """
    n_cols = clusters.labels.size
    idx = np.asarray(cand_index)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (
            idx.size and (idx.min() < 0 or idx.max() >= n_cols)):
        raise _fail("cand_index", f"must be (K,) integers in [0, {n_cols})",
                    idx.tolist()[:5])
    n_clusters = int(clusters.labels.max(initial=0))
    k = idx.size
    if n_clusters == 0:
        return ClusterJoin(label=np.zeros(k, np.int64), mean_distance=np.full(k, np.nan),
                           mean_corr=np.full(k, np.nan), n_min=np.zeros(k, np.int64))
    # computed once per distinct column (at most N), then spread over the K candidates
    columns, inverse = np.unique(idx, return_inverse=True)
    u = columns.size
    rows = np.arange(u)
    member = (clusters.labels[:, None] == np.arange(1, n_clusters + 1)[None, :]).astype(
        np.float64)  # (N, C)
    # a candidate already in the book is not compared with itself
    not_self = np.ones((u, n_cols), dtype=bool)
    not_self[rows, columns] = False
    corr_known = ~np.isnan(clusters.corr[columns]) & not_self
    dist = np.where(not_self, np.nan_to_num(clusters.distance[columns],
                                            nan=UNKNOWN_PAIR_DISTANCE), 0.0)
    corr = np.where(corr_known, clusters.corr[columns], 0.0)
    count = not_self.astype(np.float64) @ member  # (U, C)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_dist = np.where(count > 0, (dist @ member) / count, np.inf)
        mean_corr = (corr @ member) / count
    best = np.argmin(mean_dist, axis=1)
    own = clusters.labels[columns]
    label = np.where(own > 0, own,
                     np.where(mean_dist[rows, best] <= clusters.max_distance, best + 1, 0))
    chosen = np.where(own > 0, own - 1, best)
    in_chosen = (clusters.labels[None, :] == (chosen + 1)[:, None]) & not_self  # (U, N)
    unknown = (in_chosen & ~corr_known).any(axis=1)
    n_pairs = np.where(in_chosen & corr_known, clusters.n[columns], np.iinfo(np.int64).max)
    n_min = n_pairs.min(axis=1)
    n_min = np.where(unknown | (n_min == np.iinfo(np.int64).max), 0, n_min)
    out_dist = mean_dist[rows, chosen]
    out_dist = np.where(np.isfinite(out_dist), out_dist, np.nan)
    return ClusterJoin(label=label.astype(np.int64)[inverse], mean_distance=out_dist[inverse],
                       mean_corr=mean_corr[rows, chosen][inverse],
                       n_min=n_min.astype(np.int64)[inverse])


# ---------------------------------------------------------------- volatility and VaR


def _book_products(w: FloatArray, cov: FloatArray) -> tuple[FloatArray, float]:
    # (cov w) and w' cov w over the held columns only: an unknown covariance between two
    # instruments the book does not hold must not make the book's risk unknown
    held = w != 0
    sigma_w = cov[:, held] @ w[held] if held.any() else np.zeros(w.size)
    variance = float(w[held] @ sigma_w[held]) if held.any() else 0.0
    scale = float(np.abs(w[held]) @ np.abs(cov[np.ix_(held, held)]) @ np.abs(w[held])) \
        if held.any() else 0.0
    if variance < 0:
        if variance < -1e-10 * scale:
            raise _fail("cov", "must be positive semi-definite over the held columns "
                        "(w' cov w < 0; see nearest_psd)", variance)
        variance = 0.0
    return sigma_w, variance


def portfolio_vol(w: ArrayLike, cov: ArrayLike) -> float:
    """Return the book's volatility sqrt(w' cov w): fraction of equity per day.

    ``w`` (N,) signed fractions of equity; ``cov`` (N, N) daily log-return covariance. NaN when
    a covariance between two held instruments is unknown.
    """
    c = _cov(cov)
    weights = _weights(w, c.shape[0])
    _, variance = _book_products(weights, c)
    return math.sqrt(variance) if not math.isnan(variance) else math.nan


def risk_contributions(w: ArrayLike, cov: ArrayLike) -> FloatArray:
    """Return each position's Euler risk contribution w_i (cov w)_i / sigma_p, (N,), fraction
    of equity per day; they sum to ``portfolio_vol(w, cov)``. Zeros for an empty or riskless
    book; NaN where a needed covariance is unknown."""
    c = _cov(cov)
    weights = _weights(w, c.shape[0])
    sigma_w, variance = _book_products(weights, c)
    vol = math.sqrt(variance) if not math.isnan(variance) else math.nan
    if vol == 0:
        return np.zeros(weights.size)
    out: FloatArray = np.where(weights != 0, weights * sigma_w / vol, 0.0)
    return out


def var_parametric(w: ArrayLike, cov: ArrayLike, level: float = 0.95,
                   horizon_days: int = 1) -> float:
    """Return the normal (zero-mean) VaR z_level * sigma_p * sqrt(horizon_days): a loss,
    fraction of equity over ``horizon_days`` trading days."""
    z = float(stats.norm.ppf(_level(level)))
    return z * portfolio_vol(w, cov) * math.sqrt(_horizon(horizon_days))


@dataclass(frozen=True, slots=True)
class _Ranks:
    """0-based order-statistic ranks for the p-quantile of n values and its interval."""

    lo: int
    hi: int
    frac: float
    lower: int | None  # the interval's lower P&L rank (the loss's upper bound)
    upper: int | None

    @property
    def deepest(self) -> int:
        return max(r for r in (self.lo, self.hi, self.lower, self.upper) if r is not None)


@cache
def _ranks(n: int, p: float) -> _Ranks:
    # np.quantile's default ("linear", Hyndman-Fan 7): virtual index (n - 1) p
    h = (n - 1) * p
    lo = math.floor(h)
    # distribution-free 95% interval for the p-quantile: order statistics X_(l), X_(u)
    # (1-based) with l = Binom(n, p).ppf(0.025), u = Binom(n, p).ppf(0.975) + 1
    l_rank = int(stats.binom.ppf(0.025, n, p))
    u_rank = int(stats.binom.ppf(0.975, n, p)) + 1
    return _Ranks(lo=lo, hi=min(lo + 1, n - 1), frac=h - lo,
                  lower=l_rank - 1 if l_rank >= 1 else None,
                  upper=u_rank - 1 if u_rank <= n else None)


def _lerp(a: FloatArray, b: FloatArray, t: float) -> FloatArray:
    # numpy's own interpolation (numpy.lib._function_base_impl._lerp), for equal results
    diff = b - a
    out: FloatArray = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    return out


def _loss_quantiles(pnl: FloatArray, ranks: _Ranks) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return VaR, its interval's low and high (losses) of each row of ``pnl`` (K, n)."""
    # one partition at the deepest rank needed, then a sort of the few values below it: much
    # cheaper than partitioning at several ranks
    deepest = ranks.deepest
    pnl.partition(deepest, axis=1)
    head = pnl[:, :deepest + 1].copy()
    head.sort(axis=1)
    var = -_lerp(head[:, ranks.lo], head[:, ranks.hi], ranks.frac)
    nan = np.full(pnl.shape[0], np.nan)
    # the loss is the negated P&L: the upper P&L rank bounds the loss from below
    low = -head[:, ranks.upper] if ranks.upper is not None else nan
    high = -head[:, ranks.lower] if ranks.lower is not None else nan
    return var, low, high


def var_historical(w: ArrayLike, returns: ArrayLike, level: float = 0.95) -> HistoricalVaR:
    """Return the one-day historical VaR of the book (a loss, fraction of equity) with n and a
    95% interval.

    ``returns`` (T, N) daily log returns; each day's scenario P&L revalues the book exactly:
    sum_i w_i (exp(r_i) - 1). Days on which a held instrument is missing are dropped.
    """
    level = _level(level)
    r = _matrix(returns, "returns")
    weights = _weights(w, r.shape[1])
    held = weights != 0
    pnl = np.expm1(r[:, held]) @ weights[held]
    pnl = pnl[~np.isnan(pnl)]
    n = int(pnl.size)
    if n == 0:
        return HistoricalVaR(var=math.nan, n=0, low=math.nan, high=math.nan, level=level)
    var, low, high = _loss_quantiles(pnl[None, :].copy(), _ranks(n, 1.0 - level))
    return HistoricalVaR(var=float(var[0]), n=n, low=float(low[0]), high=float(high[0]),
                         level=level)


def sigma_interval(sigma: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Return the chi-square ``level`` interval of a volatility estimated from n days (normal
    returns): sigma sqrt((n - 1) / chi2_{hi}), sigma sqrt((n - 1) / chi2_{lo}); NaN for n < 2.
    The interval of a parametric VaR is this times its factor z sqrt(horizon)."""
    level = _level(level)
    if n < 2 or math.isnan(sigma):
        return math.nan, math.nan
    df = n - 1
    upper_q = float(stats.chi2.ppf(0.5 + level / 2, df))
    lower_q = float(stats.chi2.ppf(0.5 - level / 2, df))
    return sigma * math.sqrt(df / upper_q), sigma * math.sqrt(df / lower_q)


# ---------------------------------------------------------------- K candidates, one book


def with_candidates(w: ArrayLike, cov: ArrayLike, returns: ArrayLike, cand_index: ArrayLike,
                    cand_weight: ArrayLike, level: float = 0.95, *,
                    horizon_days: int = 1) -> CandidateRisk:
    """Return the book's risk before and after each of K candidate trades, exactly.

    ``w`` (N,) the book's signed fractions of equity; ``cov`` (N, N) daily log-return
    covariance and ``returns`` (T, N) daily log returns over the same columns (held
    instruments and every candidate's); ``cand_index`` (K,) the column each candidate trades;
    ``cand_weight`` (K,) the signed fraction of equity it adds to that column (it may add to,
    reduce or reverse a held position). Volatility after entry is sqrt(w' S w + 2 a (S w)_i +
    a^2 S_ii), not a linear approximation; historical VaR revalues every day's scenario with
    the candidate in. Vectorised over K.
    """
    level = _level(level)
    horizon = _horizon(horizon_days)
    c = _cov(cov)
    n_cols = c.shape[0]
    weights = _weights(w, n_cols)
    r = _matrix(returns, "returns")
    if r.shape[1] != n_cols:
        raise _fail("returns", f"must have {n_cols} columns (as cov)", f"shape {r.shape}")
    idx = np.asarray(cand_index)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (
            idx.size and (idx.min() < 0 or idx.max() >= n_cols)):
        raise _fail("cand_index", f"must be (K,) integers in [0, {n_cols})",
                    idx.tolist()[:5])
    a = np.asarray(cand_weight, dtype=np.float64)
    if a.shape != idx.shape:
        raise _fail("cand_weight", f"must have shape {idx.shape} (as cand_index)",
                    f"shape {a.shape}")
    if not np.isfinite(a).all():
        raise _fail("cand_weight", "must be finite", a[~np.isfinite(a)][0])
    k = idx.size

    sigma_w, variance = _book_products(weights, c)
    var_after = variance + 2 * a * sigma_w[idx] + a * a * np.diag(c)[idx]
    # rounding can leave an exactly-closed book a hair below zero
    var_after = np.where((var_after < 0) & (var_after > -1e-12), 0.0, var_after)
    with np.errstate(invalid="ignore", divide="ignore"):
        vol_after = np.sqrt(var_after)
        marginal_after = sigma_w[idx] + a * np.diag(c)[idx]  # (S w_after)_i
        contribution = np.where(vol_after > 0,
                                (weights[idx] + a) * marginal_after / vol_after, 0.0)
        cand_contribution = np.where(vol_after > 0, a * marginal_after / vol_after, 0.0)
    vol_before = np.full(k, math.sqrt(variance) if not math.isnan(variance) else math.nan)
    factor = float(stats.norm.ppf(level)) * math.sqrt(horizon)

    hist_before = np.full(k, np.nan)
    hist_after = np.full(k, np.nan)
    after_low = np.full(k, np.nan)
    after_high = np.full(k, np.nan)
    n_hist = np.zeros(k, dtype=np.int64)
    held = weights != 0
    scenario = np.expm1(r)
    book_pnl = scenario[:, held] @ weights[held]  # NaN on a day a held instrument is missing
    # candidates are grouped by the days their instrument and the book are all observed (one
    # group when nothing is missing), each group's scenarios revalued in blocks
    columns, local = np.unique(idx, return_inverse=True)
    observed = ~np.isnan(book_pnl)[:, None] & ~np.isnan(scenario[:, columns])  # (T, U)
    _, mask_group = np.unique(np.packbits(observed, axis=0).T, axis=0, return_inverse=True)
    mask_group = mask_group.ravel()
    cand_group = mask_group[local]
    order = np.argsort(cand_group, kind="stable")
    bounds = np.searchsorted(cand_group[order], np.arange(int(mask_group.max()) + 2)) \
        if k else np.zeros(1, dtype=np.int64)
    position = np.empty(columns.size, dtype=np.int64)  # an instrument's row in its group
    for group in range(bounds.size - 1):
        group_columns = np.flatnonzero(mask_group == group)
        position[group_columns] = np.arange(group_columns.size)
        days = observed[:, group_columns[0]]
        n = int(days.sum())
        members = order[bounds[group]:bounds[group + 1]]
        n_hist[members] = n
        if n == 0:
            continue
        ranks = _ranks(n, 1.0 - level)
        base = book_pnl[days]
        hist_before[members] = _loss_quantiles(base[None, :].copy(), ranks)[0][0]
        moves = scenario[np.ix_(days, columns[group_columns])].T  # (instruments, n)
        for start in range(0, members.size, _BLOCK):
            block = members[start:start + _BLOCK]
            # in place: one gather and two passes over the block, no temporaries
            pnl = moves[position[local[block]]]
            pnl *= a[block, None]
            pnl += base
            hist_after[block], after_low[block], after_high[block] = _loss_quantiles(
                pnl, ranks)
    return CandidateRisk(
        vol_before=vol_before, vol_after=vol_after, var_param_before=factor * vol_before,
        var_param_after=factor * vol_after, var_hist_before=hist_before,
        var_hist_after=hist_after, var_hist_after_low=after_low,
        var_hist_after_high=after_high, n_hist=n_hist, contribution_after=contribution,
        candidate_contribution_after=cand_contribution, level=level, horizon_days=horizon)
