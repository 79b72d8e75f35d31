"""One series' regime, bar by bar: rule labels plus walk-forward HMM probabilities.

``compute_series`` is the single computation behind the regime job (every bar, or the bars
after the last stored one) and the on-demand provider (the last bar at as_of). Both read the
same inputs for bars up to t, so the snapshot at t is the same whichever path made it and
whatever bars came later (``tests/regime`` prove it on the real data).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa

from buddy.config import Config, config_hash, param
from buddy.context.pieces import RegimeSnapshot
from buddy.features.ta import FEATURE_SET_VERSION, PRICE_LEVEL_FEATURES, compute_features
from buddy.regime.hmm import (
    HMMConfig,
    HMMParams,
    WalkForward,
    hmm_features,
    walk_forward,
)
from buddy.regime.rules import RegimeRulesConfig, regime_rules, split_basis

REGIME_VERSION = "1.0.0"

#: The TA feature columns the regime reads (price-level ones are as traded at each bar).
REGIME_FEATURES: tuple[str, ...] = ("adx_14", "ema_20", "atr_14", "rv_20", "relvol_20", "ret_1")
#: The bar columns the regime reads (and compute_features needs when features are missing).
REGIME_BAR_COLUMNS: tuple[str, ...] = ("symbol", "timeframe", "ts", "session", "high", "low",
                                       "close", "volume")
#: regime_snapshots columns, in table order.
SNAPSHOT_COLUMNS: tuple[str, ...] = (
    "symbol", "timeframe", "ts", "trend_state", "trend_strength", "vol_state", "vol_z",
    "vol_expansion_flag", "liquidity_state", "spread_proxy", "relvol", "hmm_state_id_optional",
    "hmm_probs_json", "computed_at", "version", "hmm_state_label", "hmm_state_labels_json",
    "transition_json", "model_version", "fitted_through")


@dataclass(frozen=True, slots=True, kw_only=True)
class RegimeConfig(Config):
    """Everything that determines a regime snapshot: the rule thresholds and the HMM."""

    config_name: ClassVar[str] = "regime"

    # param() is a field specifier (it returns dataclasses.field), which ruff cannot see
    rules: RegimeRulesConfig = param(factory=RegimeRulesConfig,  # noqa: RUF009
                                     doc="the rule labels' thresholds")
    hmm: HMMConfig = param(factory=HMMConfig, doc="the HMM's fit settings")  # noqa: RUF009

    @property
    def version(self) -> str:
        """Return the snapshot version: code version + hash of both configs."""
        content = {"rules": self.rules.as_dict(), "hmm": self.hmm.as_dict()}
        return f"{REGIME_VERSION}+{config_hash(content)[:8]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesRegime:
    """The regime of one series from bar ``start`` on (earlier rows are not computed)."""

    symbol: str
    timeframe: str
    ts: pd.Series  # bar open times, the whole series
    start: int
    rules: pd.DataFrame  # regime_rules() columns, the whole series
    hmm: WalkForward

    def params_of(self) -> dict[int, HMMParams]:
        """Return the fits in force from ``start`` on, by refit index (skipped ones left out)."""
        return {f.refit_index: f.params for f in self.hmm.fits if f.params is not None}


def series_inputs(bars: pd.DataFrame, features: pd.DataFrame | None,
                  splits: pd.DataFrame | None) -> pd.DataFrame:
    """Return one series' regime inputs on the first bar's continuous price basis.

    ``bars`` are one symbol and timeframe by ts, as traded. ``features`` are its stored
    ta_features rows; when they do not cover every bar with the current feature set, the
    features are computed from ``bars`` and ``splits`` instead (the same numbers the features
    job stores). ``splits`` are the symbol's corporate actions known at the last bar.
    """
    bars = bars.reset_index(drop=True)
    usable = (features is not None and len(features) == len(bars) and (
        "feature_set_version" not in features
        or bool((features["feature_set_version"] == FEATURE_SET_VERSION).all()))
        and features["ts"].reset_index(drop=True).equals(bars["ts"]))
    if features is None or not usable:
        features = compute_features(bars[list(REGIME_BAR_COLUMNS)], splits)
    features = features.reset_index(drop=True)
    sessions = pd.to_datetime(bars["session"]).to_numpy(dtype="datetime64[D]")
    basis = split_basis(sessions, splits)
    out = pd.DataFrame({"ts": bars["ts"]})
    for column in ("high", "low", "close"):
        out[column] = bars[column].to_numpy(np.float64) * basis
    for column in REGIME_FEATURES:
        values = features[column].to_numpy(np.float64)
        out[column] = values * basis if column in PRICE_LEVEL_FEATURES else values
    return out


def compute_series(bars: pd.DataFrame, features: pd.DataFrame | None,
                   splits: pd.DataFrame | None, config: RegimeConfig, *, start: int = 0,
                   fitted: Mapping[int, HMMParams] | None = None) -> SeriesRegime:
    """Return the regime of one series for bars ``start`` onwards (see ``series_inputs``).

    ``fitted``: HMM fits already stored, by refit index; they are reused, not refitted.
    """
    inputs = series_inputs(bars, features, splits)
    rules = regime_rules(inputs, config.rules)
    x = hmm_features(inputs["ret_1"].to_numpy(), inputs["high"].to_numpy(),
                     inputs["low"].to_numpy())
    hmm = walk_forward(x, config.hmm, start=start, fitted=fitted)
    return SeriesRegime(symbol=str(bars["symbol"].iloc[0]),
                        timeframe=str(bars["timeframe"].iloc[0]),
                        ts=bars["ts"].reset_index(drop=True), start=start, rules=rules, hmm=hmm)


def _transition_json(params: HMMParams) -> str:
    return json.dumps([list(row) for row in params.transmat])


def snapshot_table(series: SeriesRegime, config: RegimeConfig, computed_at: pd.Timestamp
                   ) -> pa.Table:
    """Return the regime_snapshots rows of bars ``series.start`` onwards as an Arrow table."""
    sl = slice(series.start, None)
    rules = series.rules.iloc[sl]
    n = len(rules)
    probs = series.hmm.probs[sl]
    refit_of = series.hmm.refit_of[sl]
    has_hmm = refit_of >= 0  # a skipped refit leaves -1: no model in force
    state = np.where(has_hmm, np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1), 0)
    params = series.params_of()
    refits = np.array(sorted(params), dtype=np.int64)
    model = np.where(has_hmm, np.searchsorted(refits, refit_of), 0)  # row -> fit position

    def per_model(values: list[Any]) -> np.ndarray:
        return np.asarray([*values, None], dtype=object)[np.where(has_hmm, model, len(values))]

    fits = [params[int(r)] for r in refits]
    names = np.array([list(p.labels) for p in fits] if fits else [[None]], dtype=object)
    label = np.where(has_hmm, names[model, np.minimum(state, names.shape[1] - 1)], None)
    ts_us = pd.DatetimeIndex(series.ts).as_unit("us").asi8
    fitted_through = ts_us[refits][model] if len(refits) else np.zeros(n, np.int64)
    # A list<double> column: the INSERT casts it to JSON text in DuckDB, exactly (shortest
    # round-trip digits) and much faster than formatting floats in Python.
    k = probs.shape[1]
    probs_list = pa.ListArray.from_arrays(
        pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32)),
        pa.array(np.where(has_hmm[:, None], probs, 0.0).ravel()),
        mask=pa.array(~has_hmm))
    flag = rules["vol_expansion_flag"].to_numpy()
    stamp = pa.timestamp("us", tz="UTC")

    def text(values: Any) -> pa.Array:
        return pa.array(np.asarray(values, dtype=object), pa.string(), from_pandas=True)

    def floats(column: str) -> pa.Array:
        return pa.array(rules[column].to_numpy(np.float64), pa.float64(), from_pandas=True)

    columns: dict[str, pa.Array] = {
        "symbol": text(np.full(n, series.symbol, dtype=object)),
        "timeframe": text(np.full(n, series.timeframe, dtype=object)),
        "ts": pa.array(ts_us[sl], pa.int64()).cast(stamp),
        "trend_state": text(rules["trend_state"]),
        "trend_strength": floats("trend_strength"),
        "vol_state": text(rules["vol_state"]),
        "vol_z": floats("vol_z"),
        "vol_expansion_flag": pa.array(flag == 1.0, pa.bool_(), mask=~np.isfinite(flag)),
        "liquidity_state": text(rules["liquidity_state"]),
        "spread_proxy": floats("spread_proxy"),
        "relvol": floats("relvol"),
        "hmm_state_id_optional": pa.array(state.astype(np.int32), pa.int32(), mask=~has_hmm),
        "hmm_probs_json": probs_list,
        # microseconds since the epoch (Timestamp.value is nanoseconds whatever the unit)
        "computed_at": pa.array(np.full(n, pd.Timestamp(computed_at).as_unit("us").asm8.view(
            np.int64)), pa.int64()).cast(stamp),
        "version": text(np.full(n, config.version, dtype=object)),
        "hmm_state_label": text(label),
        "hmm_state_labels_json": text(per_model([json.dumps(list(p.labels)) for p in fits])),
        "transition_json": text(per_model([_transition_json(p) for p in fits])),
        "model_version": text(per_model([config.hmm.model_version] * len(fits))),
        "fitted_through": pa.array(fitted_through, pa.int64(), mask=~has_hmm).cast(stamp),
    }
    return pa.table([columns[c] for c in SNAPSHOT_COLUMNS], names=list(SNAPSHOT_COLUMNS))


def model_table(series: SeriesRegime, config: RegimeConfig, computed_at: pd.Timestamp, *,
                skip: Collection[int] = ()) -> pa.Table:
    """Return the regime_models rows of the series' fits, except those refit at ``skip``."""
    rows = []
    for fit in series.hmm.fits:
        if fit.params is None or fit.refit_index in skip:
            continue
        ts = series.ts.iloc[fit.refit_index]
        payload = {**fit.params.to_dict(), "refit_index": fit.refit_index,
                   "window_start": fit.window_start,
                   "window_start_ts": series.ts.iloc[fit.window_start].isoformat()}
        rows.append({"symbol": series.symbol, "timeframe": series.timeframe, "ts": ts,
                     "model_version": config.hmm.model_version, "fitted_through": ts,
                     "n_obs": fit.params.n_obs, "params_json": json.dumps(payload),
                     "log_likelihood": fit.params.log_likelihood, "computed_at": computed_at})
    schema = pa.schema([("symbol", pa.string()), ("timeframe", pa.string()),
                        ("ts", pa.timestamp("us", tz="UTC")), ("model_version", pa.string()),
                        ("fitted_through", pa.timestamp("us", tz="UTC")),
                        ("n_obs", pa.int32()), ("params_json", pa.string()),
                        ("log_likelihood", pa.float64()),
                        ("computed_at", pa.timestamp("us", tz="UTC"))])
    return pa.Table.from_pylist(rows, schema=schema)


def stored_fits(models: pd.DataFrame, ts: pd.Series) -> dict[int, HMMParams] | None:
    """Return stored regime_models rows of one series by refit index, or None when any of
    them no longer sits on its refit bar (history was added before it: refit everything)."""
    out: dict[int, HMMParams] = {}
    stamps = ts.to_numpy()
    for row in models.itertuples(index=False):
        payload = json.loads(row.params_json)
        refit = int(payload["refit_index"])
        if refit >= len(stamps) or pd.Timestamp(stamps[refit]) != pd.Timestamp(row.ts):
            return None
        out[refit] = HMMParams.from_dict(payload)
    return out


# ------------------------------------------------------------------------- snapshots
def incomplete_reason(values: Mapping[str, Any]) -> str | None:
    """Return why a row cannot make a RegimeSnapshot (a state still warming up), or None."""
    missing = [name for name in ("trend_state", "vol_state", "liquidity_state",
                                 "vol_expansion_flag") if _absent(values.get(name))]
    if not missing:
        return None
    return (f"{', '.join(missing)} not yet defined at this bar: the regime needs about "
            "80 bars of history (ADX, realised volatility and its trailing z-score, relative "
            "volume and the spread proxy warm up first)")


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def snapshot_from_row(row: Mapping[str, Any], memo: dict[Any, Any] | None = None
                      ) -> RegimeSnapshot:
    """Return the RegimeSnapshot of a complete regime_snapshots row (see incomplete_reason).

    ``memo``: a dict shared by the rows of one batch; the parts of one HMM fit (labels,
    transition matrix, fit time), the same text on every bar the fit is in force, are then
    parsed once and their (immutable) values shared by the snapshots.
    """
    state = row.get("hmm_state_id_optional")
    has_hmm = not _absent(state) and not _absent(row.get("hmm_probs_json"))
    if memo is None:
        memo = {}
    return RegimeSnapshot(
        symbol=str(row["symbol"]), timeframe=str(row["timeframe"]), ts=_datetime(row["ts"]),
        trend_state=str(row["trend_state"]), trend_strength=float(row["trend_strength"]),
        vol_state=str(row["vol_state"]), vol_z=float(row["vol_z"]),
        vol_expansion_flag=bool(row["vol_expansion_flag"]),
        liquidity_state=str(row["liquidity_state"]), spread_proxy=float(row["spread_proxy"]),
        relvol=float(row["relvol"]),
        hmm_state_id=int(state) if has_hmm and state is not None else None,
        hmm_state_labels=_once(memo, _labels, row["hmm_state_labels_json"]) if has_hmm else (),
        hmm_probs=tuple(map(float, _json(row["hmm_probs_json"]))) if has_hmm else (),
        transition_matrix=_once(memo, _matrix, row["transition_json"]) if has_hmm else (),
        model_version=str(row["model_version"]) if has_hmm else "",
        fitted_through=_once(memo, _datetime, row["fitted_through"]) if has_hmm else None)


#: The state columns a complete row defines (``incomplete_reason``).
_STATE_COLUMNS: tuple[str, ...] = ("trend_state", "vol_state", "liquidity_state",
                                   "vol_expansion_flag")


def snapshots_from_table(table: pa.Table, memo: dict[Any, Any] | None = None, *,
                         ts: str = "ts") -> list[tuple[RegimeSnapshot | None, str | None]]:
    """Return (snapshot, None), or (None, why) for a row still warming up, per row of a table
    of regime_snapshots rows whose bar time is column ``ts``: ``incomplete_reason`` and
    ``snapshot_from_row`` over columns (equal row by row; ``memo`` as there).

    Each column is converted once, an HMM fit's parts (labels, transitions, fit time) once
    per distinct value, every row's probabilities in one JSON call, and each distinct set
    of missing states words its reason once: a row costs one constructor call instead of a
    dict and a parse per value.
    """
    if memo is None:
        memo = {}

    def column(name: str) -> list[Any]:
        values = table.column(name)
        return _utc_datetimes(values) if pa.types.is_timestamp(values.type) else (
            values.to_pylist())

    def absent(name: str) -> list[bool]:
        values = table.column(name)
        if pa.types.is_floating(values.type) or pa.types.is_null(values.type):
            return [_absent(v) for v in values.to_pylist()]  # NaN is absent too
        return values.is_null().to_pylist()  # nothing else but a null is absent here

    def shared(name: str, parse: Callable[[Any], Any]) -> list[Any]:
        """Per row: ``_once(memo, parse, value)`` computed per distinct value (None: null)."""
        encoded = table.column(name).combine_chunks().dictionary_encode()
        dictionary = encoded.dictionary
        values = _utc_datetimes(dictionary) if pa.types.is_timestamp(dictionary.type) else (
            dictionary.to_pylist())
        made = [_once(memo, parse, v) for v in values]
        return [None if k is None else made[k] for k in encoded.indices.to_pylist()]

    missing = list(zip(*(absent(name) for name in _STATE_COLUMNS), strict=True)) if (
        table.num_rows) else []
    reasons: dict[tuple[bool, ...], str | None] = {}
    for key in set(missing):  # one wording per distinct set of missing states
        reasons[key] = incomplete_reason(
            {name: None if gone else "" for name, gone in zip(_STATE_COLUMNS, key,
                                                               strict=True)})
    state, probs_text = column("hmm_state_id_optional"), column("hmm_probs_json")
    has_hmm = [not (s or p) for s, p in zip(absent("hmm_state_id_optional"),
                                           absent("hmm_probs_json"), strict=True)]
    # parsed only where snapshot_from_row parses them: complete rows with a model in force
    parse = [h and reasons[gone] is None for h, gone in zip(has_hmm, missing, strict=True)]
    parsed = iter(_parse_all([p for p, use in zip(probs_text, parse, strict=True) if use]))
    probs = [next(parsed) if use else None for use in parse]
    labels = shared("hmm_state_labels_json", _labels)
    matrices = shared("transition_json", _matrix)
    fitted = shared("fitted_through", _datetime)
    out: list[tuple[RegimeSnapshot | None, str | None]] = []
    for i, (gone, symbol, timeframe, bar, trend, strength, vol, vol_z, flag, liquidity,
            spread_proxy, relvol, hmm, s, p, model) in enumerate(zip(
            missing, column("symbol"), column("timeframe"), column(ts),
            column("trend_state"), column("trend_strength"), column("vol_state"),
            column("vol_z"), column("vol_expansion_flag"), column("liquidity_state"),
            column("spread_proxy"), column("relvol"), has_hmm, state, probs,
            column("model_version"), strict=True)):
        reason = reasons[gone]
        if reason is not None:
            out.append((None, reason))
            continue
        if hmm:  # a null part of a model in force reads as the row would (None parsed)
            parts = [part[i] if part[i] is not None else _once(memo, parse_one, None)
                     for part, parse_one in ((labels, _labels), (matrices, _matrix),
                                             (fitted, _datetime))]
        out.append((RegimeSnapshot(
            symbol=str(symbol), timeframe=str(timeframe),
            # a UTC datetime already (what _datetime gives), else converted as a row is
            ts=bar if type(bar) is datetime and bar.tzinfo is UTC and not bar.fold else (
                _datetime(bar)),
            trend_state=str(trend), trend_strength=float(strength), vol_state=str(vol),
            vol_z=float(vol_z), vol_expansion_flag=bool(flag),
            liquidity_state=str(liquidity), spread_proxy=float(spread_proxy),
            relvol=float(relvol), hmm_state_id=int(s) if hmm and s is not None else None,
            hmm_state_labels=parts[0] if hmm else (),
            hmm_probs=tuple(map(float, p)) if hmm else (),
            transition_matrix=parts[1] if hmm else (),
            model_version=str(model) if hmm else "",
            fitted_through=parts[2] if hmm else None), None))
    return out


def _utc_datetimes(values: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Return a timestamp column's values as UTC datetimes (None for nulls): the instants
    ``to_pylist`` gives, without its per-value time-zone conversion (most of its cost)."""
    unit = values.type.unit
    if unit not in ("s", "ms", "us") or values.type.tz is None:
        return values.to_pylist()
    null = values.is_null().to_numpy(zero_copy_only=False)
    instants = values.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    naive = instants.astype(f"datetime64[{unit}]").tolist()  # UTC wall times
    if not all(type(v) is datetime for v in naive):
        return values.to_pylist()
    return [None if gone else v.replace(tzinfo=UTC) for v, gone in zip(naive, null.tolist(),
                                                                       strict=True)]


def _parse_all(values: list[Any]) -> list[Any]:
    """Return ``_json`` of each value; JSON texts are parsed in one call (the same numbers:
    each is parsed on its own either way)."""
    if values and all(isinstance(v, str) for v in values):
        parsed = json.loads("[" + ",".join(values) + "]")
        if isinstance(parsed, list) and len(parsed) == len(values):
            return parsed
    return [_json(v) for v in values]


def _once(memo: dict[Any, Any], parse: Callable[[Any], Any], value: Any) -> Any:
    """Return ``parse(value)``, computed once per distinct (parse, value) in ``memo``."""
    key = (parse, value)
    out = memo.get(key, memo)  # the memo itself: a sentinel no parse returns
    if out is memo:
        out = memo[key] = parse(value)
    return out


def _labels(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _matrix(text: str) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in r) for r in json.loads(text))


def _json(value: Any) -> Any:
    """Return a JSON column's value: parsed text from the table, or the list we built."""
    return json.loads(value) if isinstance(value, str) else value


_ZERO = timedelta(0)


def _datetime(value: Any) -> datetime:
    """Return ``value`` as a datetime in UTC (``datetime.UTC``) (what pandas' conversion gives)."""
    if type(value) is datetime and value.fold == 0 and value.utcoffset() == _ZERO:
        return value.replace(tzinfo=UTC)  # already UTC: skip pandas (same value)
    return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()


def series_snapshot(series: SeriesRegime, config: RegimeConfig, index: int = -1
                    ) -> tuple[RegimeSnapshot | None, str | None]:
    """Return the snapshot of bar ``index`` (>= ``series.start``), or None and why not."""
    table = snapshot_table(series, config, pd.Timestamp(0, tz="UTC"))
    position = index if index >= 0 else len(series.ts) + index
    return snapshots_from_table(table.slice(position - series.start, 1))[0]
