"""A trader's playbooks: stable clusters of their own entries, placement and novelty of a new one.

Embedding
    Each trade (or intent) is the vector of ``recipe.features`` (a subset of the entry facts'
    ``EMBEDDING_FEATURES``: what was known at the entry, never the outcome). A row missing any
    of them is left out of the fit and counted (``n_left_out``); it is never imputed. Scaling
    is fitted on the training rows: ``standard`` (the default) is z = (x - mean) / sd,
    ``robust`` is z = (x - median) / (IQR / 1.349) (the IQR of a normal is 1.349 sd, so z is
    in sd-like units); a feature with no spread falls back to its sd, then to 1. Standard was
    chosen on the demo trader at a 0.5 split (ARI 0.995 against 0.983, later intents in their
    setup's playbook 0.990 against 0.959), before the 0.7 split the validation reports:
    robust scaling stretches the heavy tails of high20_atr and bb_z, which then outweigh the
    plan (side, stop, target) that tells setups apart.

Exact duplicates
    hdbscan's outlier scores break on exact duplicate points, so a training point equal to an
    earlier one is moved by ``recipe.jitter`` scaled units in a seeded random direction
    (``n_duplicates`` says how many). The moved vectors are the ones stored and refitted.

Clustering
    ``hdbscan.HDBSCAN(prediction_data=True)``, Euclidean on the scaled vectors (a precomputed
    or Gower distance would make placing a new point impossible; ``cluster_selection_epsilon``
    is ignored by prediction, so it is not used). Below ``recipe.min_trades_hdbscan`` rows the
    fallback is k-means with k in 2..``max_k`` chosen by silhouette (no noise: every row gets
    the nearest centroid; its membership is the inverse-distance share of that centroid).

Stability (clusterboot, Hennig 2007)
    ``n_resamples`` subsamples of ``subsample`` of the rows, drawn WITHOUT replacement (with
    replacement makes exact duplicates), are clustered with the same settings; a cluster's
    stability is the mean over resamples of its best Jaccard similarity with a resample's
    cluster (on the subsample's rows). Only clusters with stability >= ``min_jaccard`` are
    published as playbooks; members of the others are "no playbook".

Playbooks
    Numbered 1..k by size (largest first). Stats: n, win rate with a Wilson 95% interval,
    mean R with a bootstrap 95% interval, dispersion (mean and max distance to the centroid in
    scaled units) and stability. The centroid is the members' mean in scaled units; its name
    reads the centroid back in raw units (``playbook_name``): the kind (breakout: a long whose
    close is above the 20-bar high; mean reversion: bb_z beyond 1.5 against the side;
    pullback: trend with the side and the close within 1 ATR of the EMA20; else trend or
    counter-trend), the side, the trend (EMA20 - EMA50 beyond 0.5 ATR up or down, else flat),
    the stop in ATR and the target in R.

Placement and novelty
    ``place`` gives each row its playbook (``approximate_predict``; a cluster that is not
    published counts as no playbook), its membership (``membership_vector`` of that cluster,
    0-1; NaN when no playbook), the strongest membership among the published playbooks even
    when noise (``nearest_*``), and its novelty: the mean Euclidean distance to the ``knn_k``
    nearest training trades (scaled units). Its p-value is conformal: p = (1 + #{reference >=
    score}) / (n + 1), the reference being the training trades' leave-one-out scores; at least
    19 reference trades are needed for p to reach 0.05. ``membership_vector`` folds in how much
    of an outlier a point is, so a trade plainly in a playbook can read low: on the demo
    trader's later intents placed in their setup's playbook the median is about 0.7 (10th
    percentile about 0.2). ``n_reference`` is the fit's, on every row.

Validation (``buddy.strategy.validation``, ``buddy playbooks validate --user demo``): ARI
0.999 against the injected setups; false out-of-pattern rate on the trader's own later intents
0.067 at p < 0.05 (n=240; above the 5% aim) and 0.004 at p < 0.01.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import hdbscan
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score

from buddy.config import Config, param
from buddy.errors import FieldError, FieldErrors
from buddy.strategy.facts import EMBEDDING_FEATURES
from buddy.trades.summary import Stat, bootstrap_mean, wilson

__all__ = [
    "FIT_SCHEMA_VERSION",
    "PLACE_COLUMNS",
    "Playbook",
    "PlaybookFit",
    "PlaybookRecipe",
    "fit_playbooks",
    "playbook_name",
]

#: Version of the ``PlaybookFit.to_dict`` format.
FIT_SCHEMA_VERSION = 1
_EMBEDDING = EMBEDDING_FEATURES
#: Columns of ``PlaybookFit.place``.
PLACE_COLUMNS: tuple[str, ...] = (
    "placed", "playbook_id", "playbook_number", "playbook_name", "membership",
    "nearest_number", "nearest_membership", "novelty", "p_value", "n_reference")
_IQR_SD = 1.349


class PlaybookFitError(FieldErrors):
    """The facts cannot be fitted, or a stored fit does not reproduce."""

    what = "playbook fit"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybookRecipe(Config):
    """How a user's playbooks are fitted (hashed: the recipe hash is part of a fit's key)."""

    config_name: ClassVar[str] = "playbooks"

    features: tuple[str, ...] = param(_EMBEDDING, choices=_EMBEDDING, min_items=2,
                                      doc="embedding features, in vector order")
    scaling: str = param("standard", choices=("standard", "robust"),
                         doc="standard: (x - mean) / sd; robust: (x - median) / (IQR / 1.349)")
    min_cluster_size: int = param(15, lo=2, hi=10_000, unit="trades",
                                  doc="hdbscan min_cluster_size: the smallest playbook")
    min_samples: int = param(5, lo=1, hi=1_000, unit="trades",
                             doc="hdbscan min_samples: larger marks more points as noise")
    cluster_selection_method: str = param("eom", choices=("eom", "leaf"),
                                          doc="hdbscan's cluster selection")
    min_trades_hdbscan: int = param(60, lo=4, hi=100_000, unit="trades",
                                    doc="below this many rows: k-means fallback")
    max_k: int = param(6, lo=2, hi=20, unit="clusters", doc="largest k the fallback tries")
    n_resamples: int = param(20, lo=2, hi=500, unit="resamples",
                             doc="subsamples for the stability (clusterboot) estimate")
    subsample: float = param(0.8, lo=0.5, hi=0.95, unit="share",
                             doc="share of rows in each subsample (without replacement)")
    min_jaccard: float = param(0.75, lo=0.0, hi=1.0, unit="Jaccard",
                               doc="a cluster is published when its mean best Jaccard "
                                   "over the resamples reaches this")
    knn_k: int = param(5, lo=1, hi=100, unit="trades",
                       doc="novelty: mean distance to this many nearest training trades")
    jitter: float = param(1e-6, lo=0.0, hi=0.01, unit="scaled units",
                          doc="how far an exact duplicate point is moved")
    seed: int = param(0, lo=0, hi=2**31 - 1, doc="seed of the resamples, jitter and k-means")

    def check(self) -> list[FieldError]:
        """Return rules across fields: no repeated feature."""
        if len(set(self.features)) != len(self.features):
            return [FieldError("playbooks.features", "must not repeat a feature",
                               self.features)]
        return []


def _stat_dict(stat: Stat) -> dict[str, Any]:
    return {"value": stat.value, "n": stat.n, "low": stat.low, "high": stat.high,
            "method": stat.method}


@dataclass(frozen=True, slots=True, kw_only=True)
class Playbook:
    """One published playbook: its number, name, centroid and stats."""

    number: int
    label: int  # the cluster's label in the fitted model
    name: str
    n: int
    stability: float
    centroid: tuple[float, ...]  # scaled units, in recipe.features order
    centroid_raw: dict[str, float]  # raw units by feature
    stats: dict[str, Any]  # win_rate, mean_r (value, n, low, high, method)
    dispersion: dict[str, float]  # mean/max distance to the centroid (scaled units)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"number": self.number, "label": self.label, "name": self.name, "n": self.n,
                "stability": self.stability, "centroid": list(self.centroid),
                "centroid_raw": dict(self.centroid_raw), "stats": self.stats,
                "dispersion": dict(self.dispersion)}

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> Playbook:
        """Build a playbook from ``as_dict``'s output."""
        return cls(number=int(d["number"]), label=int(d["label"]), name=str(d["name"]),
                   n=int(d["n"]), stability=float(d["stability"]),
                   centroid=tuple(map(float, d["centroid"])),
                   centroid_raw={k: float(v) for k, v in d["centroid_raw"].items()},
                   stats=dict(d["stats"]), dispersion=dict(d["dispersion"]))

    def summary(self) -> str:
        """Return '#2 name: n=.., win rate .., mean R .., stability ..'."""
        win, mean_r = self.stats["win_rate"], self.stats["mean_r"]
        return (f"#{self.number} {self.name}: n={self.n}, win rate {_stat_text(win)}, "
                f"mean R {_stat_text(mean_r)}, stability {self.stability:.2f}")


def _stat_text(d: Mapping[str, Any]) -> str:
    if d.get("value") is None:
        return f"n/a (n={d.get('n', 0)})"
    interval = "" if d.get("low") is None else f" [{d['low']:.2f}, {d['high']:.2f}]"
    return f"{d['value']:.2f}{interval} (n={d['n']})"


def playbook_name(raw: Mapping[str, float]) -> str:
    """Name a centroid in words from its raw-unit features ('pullback long, uptrend, 1.5 ATR
    stop, 2.0R target'); a feature the recipe left out is left out of the name."""
    side_sign = raw.get("side_sign")
    side = None if side_sign is None else ("long" if side_sign >= 0 else "short")
    sign = 1.0 if side_sign is None or side_sign >= 0 else -1.0
    trend = raw.get("trend_atr")
    kind = None
    if raw.get("high20_atr") is not None and sign > 0 and raw["high20_atr"] >= 0:
        kind = "breakout"
    elif raw.get("bb_z") is not None and raw["bb_z"] * sign <= -1.5:
        kind = "mean reversion"
    elif trend is not None:
        near = raw.get("close_ema20_atr")
        if trend * sign > 0 and near is not None and abs(near) <= 1.0:
            kind = "pullback"
        else:
            kind = "trend" if trend * sign > 0 else "counter-trend"
    parts = [" ".join(p for p in (kind, side) if p) or "setup"]
    if trend is not None:
        parts.append("uptrend" if trend > 0.5 else "downtrend" if trend < -0.5 else "flat trend")
    if raw.get("stop_atr") is not None:
        parts.append(f"{raw['stop_atr']:.1f} ATR stop")
    if raw.get("reward_risk") is not None:
        parts.append(f"{raw['reward_risk']:.1f}R target")
    return ", ".join(parts)


def _scale(x: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    if how == "robust":
        center = np.median(x, axis=0)
        q75, q25 = np.percentile(x, [75, 25], axis=0)
        scale = (q75 - q25) / _IQR_SD
    else:
        center = x.mean(axis=0)
        scale = x.std(axis=0)
    sd = x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, np.where(sd > 1e-12, sd, 1.0))
    return center, scale


def _hdbscan(recipe: PlaybookRecipe, x: np.ndarray) -> hdbscan.HDBSCAN:
    model = hdbscan.HDBSCAN(min_cluster_size=recipe.min_cluster_size,
                            # more neighbours than points fails: use every other point
                            min_samples=max(1, min(recipe.min_samples, len(x) - 1)),
                            cluster_selection_method=recipe.cluster_selection_method,
                            prediction_data=True, approx_min_span_tree=False,
                            # pinned ('best' picks it below 60 features): the plan's
                            # near-discrete stop and target make tied distances, and
                            # another tree algorithm breaks the ties into other labels
                            algorithm="boruvka_kdtree", core_dist_n_jobs=1)
    return model.fit(x)


def _kmeans(recipe: PlaybookRecipe, x: np.ndarray) -> KMeans:
    best: tuple[float, KMeans] | None = None
    for k in range(2, min(recipe.max_k, len(x) - 1) + 1):
        model = KMeans(n_clusters=k, n_init=10, random_state=recipe.seed).fit(x)
        if len(set(model.labels_)) < 2:
            continue
        score = float(silhouette_score(x, model.labels_))
        if best is None or score > best[0]:
            best = (score, model)
    if best is None:
        return KMeans(n_clusters=1, n_init=1, random_state=recipe.seed).fit(x)
    return best[1]


def _cluster(recipe: PlaybookRecipe, x: np.ndarray, method: str) -> np.ndarray:
    if method == "hdbscan":
        return np.asarray(_hdbscan(recipe, x).labels_, dtype=np.int64)
    return np.asarray(_kmeans(recipe, x).labels_, dtype=np.int64)


def _stability(recipe: PlaybookRecipe, x: np.ndarray, labels: np.ndarray,
               method: str) -> dict[int, float]:
    rng = np.random.default_rng(recipe.seed)
    n = len(x)
    m = max(2, round(recipe.subsample * n))
    clusters = [c for c in sorted(set(labels.tolist())) if c >= 0]
    scores: dict[int, list[float]] = {c: [] for c in clusters}
    for _ in range(recipe.n_resamples):
        idx = np.sort(rng.choice(n, size=m, replace=False))
        enough = m > recipe.min_samples if method == "hdbscan" else m >= 3
        sub = _cluster(recipe, x[idx], method) if enough else np.full(m, -1)
        found = [set(idx[sub == d].tolist()) for d in sorted(set(sub.tolist())) if d >= 0]
        kept = set(idx.tolist())
        for c in clusters:
            a = set(np.flatnonzero(labels == c).tolist()) & kept
            if not a:
                continue  # the cluster is not in this subsample: no evidence either way
            best = max((len(a & b) / len(a | b) for b in found), default=0.0)
            scores[c].append(best)
    return {c: float(np.mean(v)) if v else 0.0 for c, v in scores.items()}


def _jitter_duplicates(x: np.ndarray, amount: float, seed: int) -> tuple[np.ndarray, int]:
    _, first, inverse = np.unique(x, axis=0, return_index=True, return_inverse=True)
    dup = np.flatnonzero(first[inverse.ravel()] != np.arange(len(x)))
    if len(dup) == 0:
        return x, 0
    rng = np.random.default_rng(seed + 1)
    moved = x.copy()
    step = rng.standard_normal((len(dup), x.shape[1]))
    moved[dup] += amount * step / np.linalg.norm(step, axis=1, keepdims=True)
    return moved, len(dup)


def _knn_reference(x: np.ndarray, k: int) -> tuple[cKDTree, np.ndarray]:
    # scipy's tree, not sklearn's NearestNeighbors: sklearn dispatches through joblib, which
    # reads the wall clock inside an evaluator (the contract kit refuses that)
    k = min(k, len(x) - 1)
    tree = cKDTree(x)
    dist, _ = tree.query(x, k=k + 1)
    # the first neighbour of a training point is itself: leave it out
    return tree, dist.reshape(len(x), -1)[:, 1:].mean(axis=1)


@dataclass(slots=True, kw_only=True)
class PlaybookFit:
    """A fitted set of playbooks with what is needed to place and score new entries.

    ``x`` holds the training rows' scaled vectors (after the duplicate jitter), ``labels``
    their cluster labels (-1 noise), ``trade_ids`` their ids; ``playbooks`` the published
    clusters numbered 1..k by size.
    """

    user_id: str
    recipe: PlaybookRecipe
    fitted_until: datetime | None
    method: str  # "hdbscan" or "kmeans"
    trade_ids: tuple[str, ...]
    x: np.ndarray
    labels: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    playbooks: tuple[Playbook, ...]
    stability: dict[int, float]  # every cluster label -> stability (published or not)
    n_left_out: int
    n_duplicates: int
    reference: np.ndarray  # leave-one-out kNN scores of the training rows
    _model: Any = field(default=None, repr=False)
    _knn: Any = field(default=None, repr=False)

    @property
    def n_trades(self) -> int:
        """Return the number of trades the fit was made on."""
        return len(self.trade_ids)

    @property
    def features(self) -> tuple[str, ...]:
        """Return the embedding features, in vector order."""
        return self.recipe.features

    @property
    def key(self) -> str:
        """Return the hash of the training trade ids and the recipe hash (16 hex digits)."""
        text = json.dumps([sorted(self.trade_ids), self.recipe.hash])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def playbook_id(self, number: int) -> str:
        """Return the stored id of playbook ``number`` (user, fit key and number)."""
        return f"pb-{self.user_id}-{self.key[:10]}-{number}"

    @property
    def coverage(self) -> float:
        """Return the share of training trades in a published playbook (NaN with none)."""
        if self.n_trades == 0:
            return math.nan
        return float(np.isin(self.labels, [p.label for p in self.playbooks]).mean())

    @property
    def mean_stability(self) -> float:
        """Return the mean stability of the published playbooks (NaN with none)."""
        return float(np.mean([p.stability for p in self.playbooks])) if self.playbooks \
            else math.nan

    def members(self) -> pd.DataFrame:
        """Return trade_id, playbook_number, playbook_id, distance_to_centroid (scaled units)
        of the training trades in a published playbook."""
        rows = []
        for p in self.playbooks:
            idx = np.flatnonzero(self.labels == p.label)
            dist = np.linalg.norm(self.x[idx] - np.asarray(p.centroid), axis=1)
            rows.append(pd.DataFrame({
                "trade_id": [self.trade_ids[i] for i in idx], "playbook_number": p.number,
                "playbook_id": self.playbook_id(p.number), "distance_to_centroid": dist}))
        if not rows:
            return pd.DataFrame({"trade_id": pd.Series(dtype=object),
                                 "playbook_number": pd.Series(dtype="int64"),
                                 "playbook_id": pd.Series(dtype=object),
                                 "distance_to_centroid": pd.Series(dtype=float)})
        return pd.concat(rows, ignore_index=True)

    def training_labels(self) -> pd.DataFrame:
        """Return trade_id and playbook_number (None outside a published playbook) of every
        training trade."""
        by_label = {p.label: p.number for p in self.playbooks}
        return pd.DataFrame({"trade_id": list(self.trade_ids),
                             "playbook_number": pd.array([by_label.get(int(c)) for c in
                                                          self.labels], dtype="Int64")})

    def vectors(self, facts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return the scaled vectors of ``facts`` and a mask of rows with every feature."""
        missing = [f for f in self.features if f not in facts.columns]
        if missing:
            raise PlaybookFitError([FieldError("facts.columns", "must hold every embedding "
                                               "feature of the recipe", missing)])
        raw = facts.loc[:, list(self.features)].apply(pd.to_numeric, errors="coerce"
                                                      ).to_numpy(np.float64)
        ok = np.isfinite(raw).all(axis=1)
        return (raw - self.center) / self.scale, ok

    def place(self, facts: pd.DataFrame) -> pd.DataFrame:
        """Place each row of ``facts`` (entry facts of trades or intents) among the playbooks.

        Return ``PLACE_COLUMNS`` on ``facts``'s index: playbook (None when noise or in a
        cluster not published), membership 0-1 (NaN when none), the strongest published
        membership (``nearest_*``, also when none), novelty (mean distance to the ``knn_k``
        nearest training trades, scaled units), its conformal p-value and the reference size.
        A row missing a feature has ``placed`` False and nothing else.
        """
        z, ok = self.vectors(facts)
        n = len(facts)
        out = pd.DataFrame({
            "placed": ok, "playbook_id": pd.Series([None] * n, dtype=object),
            "playbook_number": pd.array([None] * n, dtype="Int64"),
            "playbook_name": pd.Series([None] * n, dtype=object),
            "membership": np.full(n, np.nan),
            "nearest_number": pd.array([None] * n, dtype="Int64"),
            "nearest_membership": np.full(n, np.nan), "novelty": np.full(n, np.nan),
            "p_value": np.full(n, np.nan),
            "n_reference": np.full(n, len(self.reference), dtype=np.int64)},
            index=facts.index)
        rows = np.flatnonzero(ok)
        if len(rows) == 0 or self.n_trades == 0:
            return out
        zr = z[rows]
        labels, soft = self._predict(zr)
        by_label = {p.label: p for p in self.playbooks}
        numbers = [by_label[int(c)].number if int(c) in by_label else None for c in labels]
        member = np.array([soft[i, int(c)] if int(c) in by_label else np.nan
                           for i, c in enumerate(labels)])
        if self.playbooks:
            cols = [p.label for p in self.playbooks]
            published = soft[:, cols]
            best = np.argmax(np.nan_to_num(published, nan=-1.0), axis=1)
            out.iloc[rows, out.columns.get_loc("nearest_number")] = [
                self.playbooks[b].number for b in best]
            out.iloc[rows, out.columns.get_loc("nearest_membership")] = published[
                np.arange(len(rows)), best]
        out.iloc[rows, out.columns.get_loc("playbook_number")] = numbers
        out.iloc[rows, out.columns.get_loc("playbook_id")] = [
            None if k is None else self.playbook_id(k) for k in numbers]
        out.iloc[rows, out.columns.get_loc("playbook_name")] = [
            None if c not in by_label else by_label[c].name for c in map(int, labels)]
        out.iloc[rows, out.columns.get_loc("membership")] = member
        if len(self.reference) == 0:
            return out  # fewer than 2 training trades: no novelty to rank
        novelty = self.novelty(zr)
        out.iloc[rows, out.columns.get_loc("novelty")] = novelty
        ref = np.sort(self.reference)
        greater_equal = len(ref) - np.searchsorted(ref, novelty, side="left")
        out.iloc[rows, out.columns.get_loc("p_value")] = (1 + greater_equal) / (len(ref) + 1)
        return out

    def novelty(self, z: np.ndarray) -> np.ndarray:
        """Return the mean distance of scaled vectors ``z`` to their ``knn_k`` nearest
        training trades (scaled units)."""
        if self._knn is None:
            self._knn, _ = _knn_reference(self.x, self.recipe.knn_k)
        k = min(self.recipe.knn_k, self.n_trades - 1)
        dist, _ = self._knn.query(z, k=k)
        return dist.reshape(len(z), -1).mean(axis=1)

    def _predict(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return cluster labels (-1 noise) and soft memberships (rows x clusters)."""
        n_clusters = int(self.labels.max()) + 1 if len(self.labels) else 0
        if n_clusters == 0:
            return np.full(len(z), -1), np.zeros((len(z), 0))
        if self.method == "kmeans":
            centroids = np.vstack([self.x[self.labels == c].mean(axis=0)
                                   for c in range(n_clusters)])
            d = np.linalg.norm(z[:, None, :] - centroids[None, :, :], axis=2)
            inv = 1.0 / np.maximum(d, 1e-12)
            return np.argmin(d, axis=1), inv / inv.sum(axis=1, keepdims=True)
        model = self._model
        with warnings.catch_warnings():
            # hdbscan divides by a zero distance when a point sits on an exemplar
            warnings.simplefilter("ignore", RuntimeWarning)
            labels, _ = hdbscan.approximate_predict(model, z)
            soft = np.atleast_2d(hdbscan.membership_vector(model, z))
        soft = soft.reshape(len(z), n_clusters)
        return np.asarray(labels, dtype=np.int64), soft

    def to_dict(self) -> dict[str, Any]:
        """Return the fit as a JSON-safe dict (``from_dict`` refits and verifies it)."""
        return {
            "schema_version": FIT_SCHEMA_VERSION, "user_id": self.user_id,
            "recipe": self.recipe.as_dict(), "recipe_hash": self.recipe.hash,
            "fitted_until": None if self.fitted_until is None
            else pd.Timestamp(self.fitted_until).isoformat(),
            "method": self.method, "key": self.key, "trade_ids": list(self.trade_ids),
            "x": self.x.tolist(), "labels": self.labels.tolist(),
            "center": self.center.tolist(), "scale": self.scale.tolist(),
            "playbooks": [p.as_dict() for p in self.playbooks],
            "stability": {str(k): v for k, v in self.stability.items()},
            "n_left_out": self.n_left_out, "n_duplicates": self.n_duplicates,
            "reference": self.reference.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PlaybookFit:
        """Rebuild a fit from ``to_dict``'s output: refit on the stored vectors with the
        stored recipe and check that the labels and the key come back (no pickle)."""
        if d.get("schema_version") != FIT_SCHEMA_VERSION:
            raise PlaybookFitError([FieldError("schema_version", f"must be "
                                               f"{FIT_SCHEMA_VERSION}",
                                               d.get("schema_version"))])
        recipe = PlaybookRecipe.from_mapping(d["recipe"])
        if recipe.hash != d.get("recipe_hash"):
            raise PlaybookFitError([FieldError("recipe_hash", "must be the stored recipe's "
                                               "hash", d.get("recipe_hash"))])
        x = np.asarray(d["x"], dtype=np.float64).reshape(-1, len(recipe.features))
        labels = np.asarray(d["labels"], dtype=np.int64)
        method = str(d["method"])
        model = None
        if method == "hdbscan" and len(x):
            model = _hdbscan(recipe, x)
            if not np.array_equal(np.asarray(model.labels_), labels):
                raise PlaybookFitError([FieldError("labels", "must be reproduced by refitting "
                                                   "the stored vectors", "labels differ")])
        until = d.get("fitted_until")
        fit = cls(user_id=str(d["user_id"]), recipe=recipe,
                  fitted_until=None if until is None else pd.Timestamp(until).to_pydatetime(),
                  method=method, trade_ids=tuple(d["trade_ids"]), x=x, labels=labels,
                  center=np.asarray(d["center"], dtype=np.float64),
                  scale=np.asarray(d["scale"], dtype=np.float64),
                  playbooks=tuple(Playbook.from_mapping(p) for p in d["playbooks"]),
                  stability={int(k): float(v) for k, v in d["stability"].items()},
                  n_left_out=int(d["n_left_out"]), n_duplicates=int(d["n_duplicates"]),
                  reference=np.asarray(d["reference"], dtype=np.float64), _model=model)
        if fit.key != d.get("key"):
            raise PlaybookFitError([FieldError("key", "must be the hash of the stored trade "
                                               "ids and recipe", d.get("key"))])
        return fit

    def text(self) -> str:
        """Return the playbooks in words, one line each, after a header with the counts."""
        head = (f"{self.user_id}: {len(self.playbooks)} playbook(s) from {self.n_trades} trades"
                f" ({self.method}; {self.n_left_out} left out for a missing feature; "
                f"coverage {self.coverage:.2f}; fitted until {self.fitted_until})")
        return "\n".join([head, *(f"  {p.summary()}" for p in self.playbooks)])


def _outcome_stats(facts: pd.DataFrame, seed: int) -> dict[str, Any]:
    win = facts["win"] if "win" in facts.columns else pd.Series(dtype=object)
    win = win.dropna().astype(bool)
    r = pd.to_numeric(facts["pnl_r"], errors="coerce").dropna().to_numpy(np.float64) \
        if "pnl_r" in facts.columns else np.array([])
    return {"win_rate": _stat_dict(wilson(int(win.sum()), len(win))),
            "mean_r": _stat_dict(bootstrap_mean(r, seed=seed))}


def fit_playbooks(facts: pd.DataFrame, recipe: PlaybookRecipe | None = None, *, user_id: str,
                  fitted_until: datetime | None) -> PlaybookFit:
    """Fit ``recipe``'s playbooks on ``facts`` (entry facts of closed trades: ``trade_id``,
    the recipe's features and, for stats, ``win`` and ``pnl_r``).

    Rows missing a feature are left out and counted; the caller passes only trades closed by
    ``fitted_until`` (the fit reads nothing else).
    """
    recipe = recipe or PlaybookRecipe()
    errors = []
    if "trade_id" not in facts.columns:
        errors.append(FieldError("facts.trade_id", "is required", list(facts.columns)))
    missing = [f for f in recipe.features if f not in facts.columns]
    if missing:
        errors.append(FieldError("facts.columns", "must hold every embedding feature of the "
                                 "recipe", missing))
    if not errors and facts["trade_id"].duplicated().any():
        errors.append(FieldError("facts.trade_id", "must be unique",
                                 facts.loc[facts["trade_id"].duplicated(), "trade_id"]
                                 .head(3).tolist()))
    if errors:
        raise PlaybookFitError(errors)
    raw = facts.loc[:, list(recipe.features)].apply(pd.to_numeric, errors="coerce"
                                                    ).to_numpy(np.float64)
    ok = np.isfinite(raw).all(axis=1)
    used = facts.loc[ok].reset_index(drop=True)
    raw = raw[ok]
    n = len(raw)
    k = len(recipe.features)
    if n < 3:
        return PlaybookFit(user_id=user_id, recipe=recipe, fitted_until=fitted_until,
                           method="none", trade_ids=tuple(map(str, used["trade_id"])),
                           x=raw.reshape(-1, k), labels=np.full(n, -1, dtype=np.int64),
                           center=np.zeros(k), scale=np.ones(k), playbooks=(), stability={},
                           n_left_out=int((~ok).sum()), n_duplicates=0,
                           reference=np.array([]))
    center, scale = _scale(raw, recipe.scaling)
    x, n_dup = _jitter_duplicates((raw - center) / scale, recipe.jitter, recipe.seed)
    method = "hdbscan" if n >= recipe.min_trades_hdbscan else "kmeans"
    model = _hdbscan(recipe, x) if method == "hdbscan" else None
    labels = np.asarray(model.labels_, dtype=np.int64) if model is not None \
        else _cluster(recipe, x, method)
    stability = _stability(recipe, x, labels, method)
    stable = [c for c, s in stability.items() if s >= recipe.min_jaccard]
    stable.sort(key=lambda c: (-int((labels == c).sum()), c))
    playbooks = []
    for number, c in enumerate(stable, start=1):
        idx = labels == c
        centroid = x[idx].mean(axis=0)
        centroid_raw = dict(zip(recipe.features, (centroid * scale + center).tolist(),
                                strict=True))
        dist = np.linalg.norm(x[idx] - centroid, axis=1)
        playbooks.append(Playbook(
            number=number, label=int(c), name=playbook_name(centroid_raw), n=int(idx.sum()),
            stability=stability[c], centroid=tuple(centroid.tolist()),
            centroid_raw=centroid_raw, stats=_outcome_stats(used.loc[idx], recipe.seed),
            dispersion={"mean_distance": float(dist.mean()), "max_distance": float(dist.max()),
                        "unit": "scaled units"}))  # type: ignore[dict-item]
    knn, reference = _knn_reference(x, recipe.knn_k)
    return PlaybookFit(user_id=user_id, recipe=recipe, fitted_until=fitted_until, method=method,
                       trade_ids=tuple(map(str, used["trade_id"])), x=x, labels=labels,
                       center=center, scale=scale, playbooks=tuple(playbooks),
                       stability=stability, n_left_out=int((~ok).sum()), n_duplicates=n_dup,
                       reference=reference, _model=model, _knn=knn)


def playbook_tables(fit: PlaybookFit, created_at: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the ``playbooks`` and ``playbook_members`` rows of ``fit`` (seed columns)."""
    books = pd.DataFrame({
        "playbook_id": [fit.playbook_id(p.number) for p in fit.playbooks],
        "user_id": fit.user_id, "name": [p.name for p in fit.playbooks],
        "centroid_vector": [list(p.centroid) for p in fit.playbooks],
        "dispersion_metrics_json": [json.dumps({**p.dispersion, "stability": p.stability,
                                                "n": p.n, "number": p.number,
                                                "fit_key": fit.key,
                                                "features": list(fit.features)})
                                    for p in fit.playbooks],
        "stats_json": [json.dumps({"n": p.n, **p.stats, "centroid_raw": p.centroid_raw})
                       for p in fit.playbooks],
        "created_at": created_at, "updated_at": created_at})
    members = fit.members()
    members = pd.DataFrame({"user_id": fit.user_id, "playbook_id": members["playbook_id"],
                            "trade_id": members["trade_id"],
                            "distance_to_centroid": members["distance_to_centroid"],
                            "created_at": created_at})
    return books, members
