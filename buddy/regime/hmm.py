"""A Gaussian HMM over return and volatility features, fitted walk-forward, filtered forward.

Pure functions over arrays: no store, no clock.

Features (``FEATURE_NAMES``), one row per bar
    ``ret_1``: the bar's log close-to-close return (split-adjusted, from the TA features);
    ``log_range``: log of the bar's log high/low range, floored at ``MIN_LOG_RANGE``. A range
    within one bar is split-free and carries the bar's own volatility, so it tells calm from
    volatile bars sooner than a trailing window does. A row with a non-finite value (the first
    bar has no return) is skipped by the fit and carries no evidence in the filter.

Fit (``fit_hmm``)
    hmmlearn's ``GaussianHMM`` (diagonal covariances, ``implementation='scaling'``) on the
    window's rows standardised by the window's own mean and standard deviation and clipped at
    +-``CLIP_Z`` (hmmlearn's ``min_covar`` assumes unit-scale data; the clip keeps a crash
    day from claiming a state of its own). ``n_seeds`` fits, seed s = 0, 1, ...: hmmlearn
    draws the start and transition probabilities from ``random_state=s`` and sets the
    covariances from the data; the means start at the feature means of the rows in each
    ``log_range`` quantile bin, jittered by N(0, ``SEED_JITTER``) for s > 0
    (``initial_means``: same quality as hmmlearn's 10-restart k-means start on our data, at a
    third of the cost). The fit with the highest final EM log-likelihood is kept. Its states
    are then sorted by their mean ``log_range``, calm first, so state 0 is always the calmest
    and labels never swap between refits (``STATE_LABELS``).

Forward filter (``forward_filter``), implemented here
    alpha_0 = normalise(p * b_0) from a prior p, alpha_t = normalise((alpha_{t-1} @ A) * b_t),
    where b_t are the per-state diagonal-Gaussian likelihoods of the standardised row,
    computed here from the stored parameters (``HMMParams.log_likelihoods``; equal to
    hmmlearn's ``model._compute_log_likelihood``, tested), shifted by the row's maximum before
    exponentiating. alpha_t uses rows up to t only: it is P(state_t | x_0..x_t). hmmlearn's
    ``predict``/``predict_proba`` smooth with the backward pass (P(state_t | all rows)) and
    are never used for a snapshot. A skipped row propagates the prediction alpha_{t-1} @ A.

Walk-forward (``refit_schedule``, ``walk_forward``)
    Refit bars are counted from the series' first bar: d_k = min_fit_bars - 1 +
    k * refit_every_bars. The fit at d_k sees the window of the last ``max_fit_bars`` bars
    ending at d_k (bars after d_k are never read) and is in force for bars d_k .. d_{k+1} - 1.
    Its filter starts ``filter_warmup_bars`` before d_k, from the chain's stationary
    distribution, so the probability at bar t depends on the fit in force at t and the bars
    from its filter start up to t, nothing else (filtering from the window's first bar instead
    changes the probabilities negligibly, tested, at several times the cost). Each fit is
    independent of the previous ones (no warm start), so a snapshot at t can be recomputed
    from the one fit in force at t, and the job can resume from stored fits. A refit whose
    window lacks ``MIN_VALID_SHARE`` of ``min_fit_bars`` finite rows is skipped: its bars have
    no HMM state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from buddy.config import ModuleConfig, param
from buddy.errors import FieldError
from buddy.regime.markov import stationary_distribution

if TYPE_CHECKING:
    from hmmlearn.hmm import GaussianHMM

HMM_VERSION = "1.0.0"
FEATURE_NAMES: tuple[str, ...] = ("ret_1", "log_range")
VOL_FEATURE = FEATURE_NAMES.index("log_range")
MIN_LOG_RANGE = 1e-6  # floor of log(high / low) before taking its log
CLIP_Z = 8.0  # standardised features are clipped to +-CLIP_Z
MIN_VALID_SHARE = 0.9  # of min_fit_bars: finite rows a window needs to be fitted
SEED_JITTER = 0.5  # standard units: spread of the initial means of seeds after the first

#: State names by number of states, calmest first.
STATE_LABELS: Mapping[int, tuple[str, ...]] = {
    2: ("calm", "volatile"),
    3: ("calm", "normal", "volatile"),
    4: ("calm", "normal", "active", "volatile"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class HMMConfig(ModuleConfig):
    """How the HMM is fitted and refitted (bars are bars of the series' own timeframe)."""

    config_name: ClassVar[str] = "regime_hmm"

    n_states: int = param(2, lo=2, hi=4, unit="states",
                          doc="hidden states, named calm .. volatile by mean volatility")
    n_seeds: int = param(3, lo=1, hi=20, unit="fits",
                         doc="random initialisations per refit; the best log-likelihood wins")
    n_iter: int = param(100, lo=1, hi=10_000, unit="EM iterations",
                        doc="most EM iterations per fit")
    tol: float = param(1e-2, lo=1e-9, hi=10.0, unit="log-likelihood",
                       doc="EM stops when an iteration gains less than this")
    min_fit_bars: int = param(252, lo=50, hi=1_000_000, unit="bars",
                              doc="bars before the first fit (its window ends at that bar)")
    refit_every_bars: int = param(126, lo=1, hi=1_000_000, unit="bars",
                                  doc="bars between walk-forward refits (126: half a year "
                                      "of daily bars)")
    max_fit_bars: int = param(1000, lo=50, hi=10_000_000, unit="bars",
                              doc="rolling fit window (above the history length: expanding)")
    filter_warmup_bars: int = param(100, lo=0, hi=10_000_000, unit="bars",
                                    doc="bars before a refit bar its forward filter starts "
                                        "at, so the refit bar already weighs recent bars")

    def check(self) -> list[FieldError]:
        """Return the window rule: the rolling window holds at least the first fit's bars."""
        if self.max_fit_bars < self.min_fit_bars:
            return [FieldError("regime_hmm.max_fit_bars",
                               f"must be >= min_fit_bars ({self.min_fit_bars})",
                               self.max_fit_bars)]
        return []

    @property
    def model_version(self) -> str:
        """Return the version of fits made with these settings: code version + config hash."""
        return f"hmm-{HMM_VERSION}+{self.hash[:8]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HMMParams:
    """A fitted HMM, states sorted calm first; plain floats, so JSON round-trips exactly."""

    labels: tuple[str, ...]
    center: tuple[float, ...]  # feature means of the fit window
    scale: tuple[float, ...]  # feature standard deviations of the fit window
    startprob: tuple[float, ...]
    transmat: tuple[tuple[float, ...], ...]  # transmat[i][j] = P(state j next | state i now)
    means: tuple[tuple[float, ...], ...]  # per state, standardised feature units
    variances: tuple[tuple[float, ...], ...]  # per state, diagonal, standardised units
    log_likelihood: float  # final EM log-likelihood of the window (standardised rows)
    n_obs: int  # finite rows the fit used
    seed: int
    n_iter: int  # EM iterations run
    converged: bool

    @property
    def n_states(self) -> int:
        """Return the number of states."""
        return len(self.startprob)

    def stationary(self) -> tuple[float, ...]:
        """Return the transition matrix's stationary distribution (pi @ A = pi)."""
        return stationary_distribution(self.transmat)

    def standardise(self, features: np.ndarray) -> np.ndarray:
        """Return ``features`` in the fit window's standard units, clipped at +-CLIP_Z."""
        z = (features - np.asarray(self.center)) / np.asarray(self.scale)
        return np.clip(z, -CLIP_Z, CLIP_Z)

    def log_likelihoods(self, features: np.ndarray) -> np.ndarray:
        """Return log p(row | state) per row and state, NaN for rows with a non-finite value."""
        z = self.standardise(features)
        means = np.asarray(self.means)
        variances = np.asarray(self.variances)
        n_features = means.shape[1]
        diff = z[:, None, :] - means[None, :, :]
        return -0.5 * (n_features * math.log(2.0 * math.pi) + np.log(variances).sum(axis=1)
                       + (diff * diff / variances[None, :, :]).sum(axis=2))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def to_json(self) -> str:
        """Return the parameters as JSON (floats round-trip exactly)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> HMMParams:
        """Rebuild from ``to_dict()`` output (extra keys are ignored)."""
        def rows(v: Any) -> tuple[tuple[float, ...], ...]:
            return tuple(tuple(float(x) for x in r) for r in v)

        return cls(labels=tuple(values["labels"]),
                   center=tuple(map(float, values["center"])),
                   scale=tuple(map(float, values["scale"])),
                   startprob=tuple(map(float, values["startprob"])),
                   transmat=rows(values["transmat"]), means=rows(values["means"]),
                   variances=rows(values["variances"]),
                   log_likelihood=float(values["log_likelihood"]), n_obs=int(values["n_obs"]),
                   seed=int(values["seed"]), n_iter=int(values["n_iter"]),
                   converged=bool(values["converged"]))


def hmm_features(ret_1: np.ndarray, high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Return the (bars, 2) feature matrix [ret_1, log_range]; NaN where undefined."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_range = np.log(np.maximum(np.log(high / low), MIN_LOG_RANGE))
    features = np.column_stack([np.asarray(ret_1, dtype=np.float64), log_range])
    features[~np.isfinite(features).all(axis=1)] = np.nan
    return features


def initial_means(z: np.ndarray, n_states: int, seed: int) -> np.ndarray:
    """Return starting state means: the mean row of each ``log_range`` quantile bin of the
    standardised rows ``z``, calm first, jittered by N(0, SEED_JITTER) when ``seed`` > 0."""
    order = np.argsort(z[:, VOL_FEATURE], kind="stable")
    means = np.array([z[rows].mean(axis=0) for rows in np.array_split(order, n_states)])
    if seed:
        means = means + np.random.default_rng(seed).normal(0.0, SEED_JITTER, means.shape)
    return means


def new_model(config: HMMConfig, seed: int, z: np.ndarray) -> GaussianHMM:
    """Return the hmmlearn model that fit number ``seed`` runs on the standardised rows
    ``z``, initial means set (the job and the bench's bare-hmmlearn baseline both use it)."""
    # imported here: hmmlearn pulls in scikit-learn (~0.7 s), and most evaluations read
    # stored regime snapshots without fitting anything
    from hmmlearn.hmm import GaussianHMM

    model = GaussianHMM(n_components=config.n_states, covariance_type="diag",
                        n_iter=config.n_iter, tol=config.tol, random_state=seed,
                        implementation="scaling", init_params="stc")
    model.means_ = initial_means(z, config.n_states, seed)
    return model


def standardise_window(window: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (finite rows standardised and clipped, center, scale) of a fit window."""
    rows = window[np.isfinite(window).all(axis=1)]
    center = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale[~(scale > 0)] = 1.0
    return np.clip((rows - center) / scale, -CLIP_Z, CLIP_Z), center, scale


def fit_hmm(window: np.ndarray, config: HMMConfig) -> HMMParams | None:
    """Fit ``n_seeds`` HMMs on the window's finite rows; return the best, states sorted calm
    first, or None when the window has too few rows or no seed converged to a finite fit."""
    z, center, scale = standardise_window(window)
    if len(z) < MIN_VALID_SHARE * config.min_fit_bars:
        return None
    best: tuple[float, int, GaussianHMM] | None = None
    for seed in range(config.n_seeds):
        model = new_model(config, seed, z)
        try:
            model.fit(z)
        except ValueError:  # a degenerate start (e.g. a state with no rows)
            continue
        score = float(model.monitor_.history[-1]) if model.monitor_.history else math.nan
        if not math.isfinite(score) or not np.isfinite(model.transmat_).all():
            continue
        if best is None or score > best[0]:
            best = (score, seed, model)
    if best is None:
        return None
    score, seed, model = best
    return ordered_params(model, center, scale, score=score, n_obs=len(z), seed=seed)


def ordered_params(model: GaussianHMM, center: np.ndarray, scale: np.ndarray, *, score: float,
                   n_obs: int, seed: int) -> HMMParams:
    """Return a fitted diagonal GaussianHMM's parameters with its states sorted by mean
    ``log_range``, calmest first, and named by ``STATE_LABELS``."""
    order = np.argsort(model.means_[:, VOL_FEATURE], kind="stable")
    variances = np.diagonal(model.covars_, axis1=1, axis2=2)

    def rows(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
        return tuple(tuple(float(x) for x in r) for r in a)

    return HMMParams(
        labels=STATE_LABELS[model.n_components], center=tuple(map(float, center)),
        scale=tuple(map(float, scale)), startprob=tuple(map(float, model.startprob_[order])),
        transmat=rows(model.transmat_[np.ix_(order, order)]), means=rows(model.means_[order]),
        variances=rows(variances[order]), log_likelihood=float(score), n_obs=n_obs, seed=seed,
        n_iter=int(model.monitor_.iter), converged=bool(model.monitor_.converged))


def forward_filter(params: HMMParams, features: np.ndarray,
                   prior: tuple[float, ...] | None = None) -> np.ndarray:
    """Return P(state_t | rows 0..t) for every row t: the normalised forward recursion from
    ``prior`` (the state distribution before row 0; default the fit's start probabilities)."""
    log_lik = params.log_likelihoods(features)
    with np.errstate(invalid="ignore"):
        evidence = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))
    known = np.isfinite(evidence).all(axis=1).tolist()
    rows = evidence.tolist()
    alpha = list(params.startprob if prior is None else prior)
    # The recursion is sequential; over a handful of states, plain floats are several times
    # faster than numpy calls on tiny arrays, and two states (the default) faster still.
    out: Sequence[Sequence[float]]
    if len(alpha) == 2:
        out = _forward_two_states(alpha, params.transmat, rows, known)
    else:
        out = _forward_any(alpha, params.transmat, rows, known)
    return np.array(out, dtype=np.float64).reshape(len(rows), len(alpha))


def _forward_any(alpha: list[float], transmat: tuple[tuple[float, ...], ...],
                 rows: list[list[float]], known: list[bool]) -> list[list[float]]:
    columns = list(zip(*transmat, strict=True))  # columns[j][i] = P(j | i)
    states = range(len(columns))
    out = []
    for t, row in enumerate(rows):
        prediction = ([sum(a * p for a, p in zip(alpha, column, strict=True))
                       for column in columns] if t else alpha)
        if known[t]:
            weighted = [prediction[j] * row[j] for j in states]
            total = sum(weighted)
            alpha = [w / total for w in weighted] if total > 0 else prediction
        else:  # no evidence at this row
            alpha = prediction
        out.append(alpha)
    return out


def _forward_two_states(alpha: list[float], transmat: tuple[tuple[float, ...], ...],
                        rows: list[list[float]], known: list[bool]) -> list[tuple[float, float]]:
    (a00, a01), (a10, a11) = transmat
    p0, p1 = alpha
    out = []
    for t, (e0, e1) in enumerate(rows):
        if t:
            p0, p1 = p0 * a00 + p1 * a10, p0 * a01 + p1 * a11
        if known[t]:
            w0, w1 = p0 * e0, p1 * e1
            total = w0 + w1
            if total > 0:
                p0, p1 = w0 / total, w1 / total
        out.append((p0, p1))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkForwardFit:
    """One scheduled refit: its bar, its window's first bar, and the fit (None if skipped)."""

    refit_index: int
    window_start: int
    params: HMMParams | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WalkForward:
    """Filtered probabilities per bar and the refit in force at each bar.

    ``probs[t]`` is NaN and ``refit_of[t]`` is -1 before ``start``, before the first fit, and
    under a skipped refit. ``fits`` holds every refit in force at or after ``start``.
    """

    probs: np.ndarray  # (bars, n_states)
    refit_of: np.ndarray  # (bars,) refit_index of the fit in force, -1 when none
    fits: tuple[WalkForwardFit, ...]


def refit_schedule(n_bars: int, config: HMMConfig) -> list[tuple[int, int]]:
    """Return (refit_index, window_start) of every refit within ``n_bars`` bars."""
    return [(d, max(0, d + 1 - config.max_fit_bars))
            for d in range(config.min_fit_bars - 1, n_bars, config.refit_every_bars)]


def filter_start(refit: int, window_start: int, config: HMMConfig) -> int:
    """Return the bar the forward filter of the fit at ``refit`` starts at."""
    return max(window_start, refit - config.filter_warmup_bars)


def walk_forward(features: np.ndarray, config: HMMConfig, *, start: int = 0,
                 fitted: Mapping[int, HMMParams] | None = None) -> WalkForward:
    """Fit and filter walk-forward over ``features`` for bars ``start`` onwards.

    ``fitted`` maps refit indices to parameters already fitted (stored by an earlier run);
    those refits are not fitted again. Only the refit in force at ``start`` and later ones
    are fitted, so ``start = len(features) - 1`` costs one fit at most.
    """
    fitted = fitted or {}
    n = len(features)
    probs = np.full((n, config.n_states), np.nan)
    refit_of = np.full(n, -1, dtype=np.int64)
    schedule = refit_schedule(n, config)
    fits = []
    for k, (refit, window_start) in enumerate(schedule):
        until = schedule[k + 1][0] if k + 1 < len(schedule) else n
        if until <= start:
            continue
        params = fitted.get(refit)
        if params is None:
            params = fit_hmm(features[window_start:refit + 1], config)
        fits.append(WalkForwardFit(refit_index=refit, window_start=window_start, params=params))
        if params is None:
            continue
        begin = filter_start(refit, window_start, config)
        filtered = forward_filter(params, features[begin:until], params.stationary())
        first = max(refit, start)
        probs[first:until] = filtered[first - begin:]
        refit_of[first:until] = refit
    return WalkForward(probs=probs, refit_of=refit_of, fits=tuple(fits))
