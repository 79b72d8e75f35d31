"""Build a BatchContext from the store: each table read once per process (whole, as Arrow,
kept while the file's context is unchanged: ``buddy.store.tables``), each series cut at its
rows' last as_of with the one point-in-time rule (``buddy.store.bars``).

Row by row this gives what ``ContextPackBuilder.build`` gives (``tests/batch`` compares the
two on every row), computed per series with array operations:

- windows: a row's bars are the last ``lookback`` bars with ``ts_close <= as_of``, its
  features the last ``lookback`` feature rows likewise (``searchsorted`` on ts_close);
- split basis: a row applies the corporate actions ex-dated on or before its as_of's UTC
  date (the store's read). Rows that apply the same actions share one adjusted copy of the
  series (``adjust_bars`` over the whole series: element-wise, so each window equals the
  scalar path's), and price-level features are divided by the same per-bar divisor;
- calendar facts (sessions since the last bar, sessions in the window, missing sessions):
  the calendar's sessions over the series' span once, then ``searchsorted`` per row;
- pieces: each registered provider's batch form (``buddy.batch.pieces.provide``).

A feature row is put on the as-of basis by its own bar's split factor, also where the
feature window reaches further back than the bar window (``market_data`` does the same).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.context import (
    INSTRUMENT_FIELDS,
    OTHER_PIECES,
    BatchContext,
    Windows,
    intent_columns,
    market_frame,
)
from buddy.batch.pieces import BatchPieceRequest, provide
from buddy.context.builder import (
    DEFAULT_LOOKBACK_BARS,
    NOT_YET_PROVIDED,
)
from buddy.context.pack import Instrument
from buddy.context.providers import ProviderRegistry, ProviderSource
from buddy.data.calendars import get_calendar
from buddy.data.splits import adjust_bars, split_factor_of_times
from buddy.errors import FieldError, IntentValidationError
from buddy.features.ta import PRICE_LEVEL_FEATURES
from buddy.store import Store
from buddy.store.bars import (
    bars_closed_by,
    features_closed_by,
    instrument_row,
    symbol_actions,
)
from buddy.store.core import READ_IDLE_S
from buddy.timeframes import Timeframe

_NS_PER_DAY = 86_400_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesData:
    """One (symbol, timeframe) series as read once: raw bars, features and actions."""

    symbol: str
    timeframe: str
    instrument: dict[str, Any]
    bars: pd.DataFrame
    features: pd.DataFrame
    actions: pd.DataFrame

    @classmethod
    def read(cls, store: Store, symbol: str, timeframe: str, until: pd.Timestamp
             ) -> SeriesData:
        """Read the series' bars and features closed by ``until`` and its actions, from the
        whole tables read once per process (``buddy.store.bars``; cut at ``until`` there)."""
        instrument = instrument_row(store, symbol)
        if instrument is None:
            raise IntentValidationError([FieldError("symbol", "is not in the tickers table",
                                                    symbol)])
        actions = symbol_actions(store, symbol)
        if len(actions):
            actions = actions.sort_values("ex_date", kind="stable", ignore_index=True)
        bars = bars_closed_by(store, symbol, timeframe, until)
        return cls(symbol=symbol, timeframe=timeframe, instrument=instrument, bars=bars,
                   features=features_closed_by(store, symbol, timeframe, until, bars=bars),
                   actions=actions)


@dataclass(slots=True)
class _Parts:
    """What the series loop collects; concatenated into the BatchContext at the end."""

    bar_frames: list[pd.DataFrame]
    feature_frames: list[pd.DataFrame]
    n_bars: int = 0
    n_features: int = 0


def build_batch_context(store: Store, intents: pd.DataFrame, *,
                        lookback_bars: int = DEFAULT_LOOKBACK_BARS,
                        providers: Mapping[str, ProviderSource] | None = None
                        ) -> BatchContext:
    """Return the BatchContext of ``intents`` (INTENT_COLUMNS, as_of tz-aware); ``providers``
    are registered in a ProviderRegistry (validated, plain functions run row by row).

    Reads made in quick succession share one read-only connection (``Store.reading``;
    the per-row on-demand reads of a piece are several per row, and a connection costs
    20-30 ms to open), but it is closed as soon as it sits unused for READ_IDLE_S or
    another process waits to write: the long work between reads (pieces, on-demand HMM
    fits) holds no lock that a write would wait on.
    """
    with store.reading(idle_s=READ_IDLE_S, yield_to_writers=True):
        return _build(store, intents, lookback_bars, ProviderRegistry(providers))


def _build(store: Store, intents: pd.DataFrame, lookback_bars: int,
           providers: ProviderRegistry) -> BatchContext:
    frame = intent_columns(intents)
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True)
    n = len(frame)
    as_of_ns = frame["as_of"].dt.as_unit("ns").astype("int64").to_numpy()
    parts = _Parts([], [])
    bar_start, bar_stop = np.zeros(n, np.int64), np.zeros(n, np.int64)
    feat_start, feat_stop = np.zeros(n, np.int64), np.zeros(n, np.int64)
    market: dict[str, np.ndarray] = {
        "has_market": np.zeros(n, bool), "last_close": np.full(n, np.nan),
        "last_bar_close": np.full(n, np.iinfo(np.int64).min, np.int64),
        "sessions_since_last_bar": np.zeros(n, np.int64),
        "window_sessions": np.zeros(n, np.int64),
        "n_missing_sessions": np.zeros(n, np.int64),
        "bars_without_features": np.zeros(n, np.int64), "n_bars": np.zeros(n, np.int64),
        "has_latest": np.zeros(n, bool)}
    latest_index = np.full(n, -1, np.int64)  # row of the concatenated features, -1: none
    missing_sessions = np.empty(n, dtype=object)
    splits_applied = np.empty(n, dtype=object)
    instruments: list[dict[str, Any]] = [{}] * n
    groups = frame.groupby(["symbol", "timeframe"], sort=True).indices
    for (symbol, timeframe), rows in groups.items():
        rows = np.asarray(rows, dtype=np.int64)
        until = pd.Timestamp(as_of_ns[rows].max(), tz="UTC")
        data = SeriesData.read(store, symbol, timeframe, until)
        instrument = {k: data.instrument[k] for k in INSTRUMENT_FIELDS}
        for i in rows:
            instruments[i] = instrument
        _series_rows(data, rows, as_of_ns, lookback_bars, parts, bar_start, bar_stop,
                     feat_start, feat_stop, market, latest_index, missing_sessions,
                     splits_applied)
    bars_data = pd.concat(parts.bar_frames, ignore_index=True) if parts.bar_frames else (
        pd.DataFrame())
    features_data = pd.concat(parts.feature_frames, ignore_index=True) if (
        parts.feature_frames) else pd.DataFrame()
    numeric = features_data.select_dtypes("number") if len(features_data.columns) else (
        pd.DataFrame())
    latest = pd.DataFrame(np.nan, index=range(n), columns=numeric.columns, dtype=np.float64)
    has = latest_index >= 0
    if has.any() and len(numeric.columns):
        latest.loc[has, :] = numeric.to_numpy(dtype=np.float64)[latest_index[has]]
    market_columns = dict(market)
    market_columns["last_bar_close"] = pd.to_datetime(
        np.where(market["has_market"], market["last_bar_close"], np.iinfo(np.int64).min),
        utc=True).where(market["has_market"])
    base = BatchContext(
        intents=frame, instrument=pd.DataFrame(instruments, columns=list(INSTRUMENT_FIELDS)),
        market=market_frame(market_columns), latest=latest,
        bars=Windows(bars_data, bar_start, bar_stop),
        features=Windows(features_data, feat_start, feat_stop),
        missing_sessions=missing_sessions, splits_applied=splits_applied,
        pieces={name: np.full(n, None, dtype=object) for name in OTHER_PIECES},
        missing={})
    return _with_pieces(store, base, providers)


def _with_pieces(store: Store, base: BatchContext, providers: ProviderRegistry
                 ) -> BatchContext:
    n = base.n
    has_market = base.market["has_market"].to_numpy(bool)
    missing: dict[str, np.ndarray] = {}
    reasons = np.empty(n, dtype=object)
    for i in np.flatnonzero(~has_market):
        row = base.intents.iloc[i]
        reasons[i] = (f"no {Timeframe.parse(row['timeframe'])} bars of {row['symbol']} closed "
                      f"at or before {pd.Timestamp(row['as_of']).isoformat()}")
    missing["market"] = reasons
    request = BatchPieceRequest(store=store, intents=base.intents, instrument=base.instrument,
                                market=base.market, market_data=base.market_data)
    pieces: dict[str, np.ndarray] = {}
    for name in OTHER_PIECES:
        provider = providers.get(name)
        if provider is None:
            pieces[name] = np.full(n, None, dtype=object)
            missing[name] = np.full(n, NOT_YET_PROVIDED[name], dtype=object)
            continue
        pieces[name], missing[name] = provide(name, provider, request)
    return BatchContext(intents=base.intents, instrument=base.instrument, market=base.market,
                        latest=base.latest, bars=base.bars, features=base.features,
                        missing_sessions=base.missing_sessions,
                        splits_applied=base.splits_applied, pieces=pieces, missing=missing)


def _days(values: Any) -> np.ndarray:
    """Return dates / timestamps as int64 day numbers (naive, date part)."""
    return pd.DatetimeIndex(pd.to_datetime(values)).tz_localize(None).normalize(
    ).as_unit("ns").asi8 // _NS_PER_DAY if len(values) else np.zeros(0, np.int64)


def _series_rows(data: SeriesData, rows: np.ndarray, as_of_ns: np.ndarray, lookback: int,
                 parts: _Parts, bar_start: np.ndarray, bar_stop: np.ndarray,
                 feat_start: np.ndarray, feat_stop: np.ndarray, market: dict[str, np.ndarray],
                 latest_index: np.ndarray, missing_sessions: np.ndarray,
                 splits_applied: np.ndarray) -> None:
    bars, features, actions = data.bars, data.features, data.actions
    t = as_of_ns[rows]
    bars_close = pd.DatetimeIndex(bars["ts_close"]).tz_convert("UTC").as_unit("ns").asi8
    stop = np.searchsorted(bars_close, t, side="right")
    start = np.maximum(stop - lookback, 0)
    # features join bars on ts: each feature row closes when its bar does
    bar_pos_of_feature = pd.DatetimeIndex(bars["ts"]).get_indexer(
        pd.DatetimeIndex(features["ts"]))
    feat_close = bars_close[bar_pos_of_feature] if len(features) else np.zeros(0, np.int64)
    fstop = np.searchsorted(feat_close, t, side="right")
    fstart = np.maximum(fstop - lookback, 0)
    has_market = stop > 0
    for i in rows:
        missing_sessions[i] = ()
        splits_applied[i] = ()
    # ---------------------------------------------------------------- split basis
    utc_day = t // _NS_PER_DAY
    ex_days = _days(actions["ex_date"]) if len(actions) else np.zeros(0, np.int64)
    n_actions = np.searchsorted(ex_days, utc_day, side="right")
    has_feature = np.zeros(len(bars), bool)
    has_feature[bar_pos_of_feature] = True
    featured_before = np.concatenate([[0], np.cumsum(has_feature)])
    timezone = Instrument.from_row(data.instrument).timezone
    for k in np.unique(n_actions[has_market]) if has_market.any() else []:
        group = np.flatnonzero(has_market & (n_actions == k))
        applied = actions.iloc[:k].reset_index(drop=True)
        as_of_k = pd.Timestamp(t[group[0]], tz="UTC")
        adjusted = adjust_bars(bars, applied, as_of_k) if k else bars.copy()
        adjusted_features = features.copy()
        if k and len(features):
            per_row = split_factor_of_times(features["ts"], timezone, applied, as_of_k)
            for column in PRICE_LEVEL_FEATURES:
                if column in adjusted_features:
                    adjusted_features[column] = adjusted_features[column].to_numpy() / per_row
        splits = tuple((pd.Timestamp(d).date(), float(r)) for d, r in
                       zip(applied.get("ex_date", []), applied.get("ratio", []), strict=True))
        bar_offset, feat_offset = parts.n_bars, parts.n_features
        parts.bar_frames.append(adjusted)
        parts.feature_frames.append(adjusted_features)
        parts.n_bars += len(adjusted)
        parts.n_features += len(adjusted_features)
        rows_k = rows[group]
        bar_start[rows_k] = bar_offset + start[group]
        bar_stop[rows_k] = bar_offset + stop[group]
        feat_start[rows_k] = feat_offset + fstart[group]
        feat_stop[rows_k] = feat_offset + fstop[group]
        market["has_market"][rows_k] = True
        market["last_close"][rows_k] = adjusted["close"].to_numpy(np.float64)[stop[group] - 1]
        market["last_bar_close"][rows_k] = bars_close[stop[group] - 1]
        market["n_bars"][rows_k] = stop[group] - start[group]
        n_window_feat = featured_before[stop[group]] - featured_before[start[group]]
        market["bars_without_features"][rows_k] = np.where(
            fstop[group] > fstart[group], (stop[group] - start[group]) - n_window_feat,
            stop[group] - start[group])
        same_bar = np.zeros(len(group), bool)
        ok = fstop[group] > fstart[group]
        if ok.any():
            last_feature_bar = bar_pos_of_feature[fstop[group][ok] - 1]
            same_bar[ok] = last_feature_bar == stop[group][ok] - 1
        market["has_latest"][rows_k] = same_bar
        latest_index[rows_k[same_bar]] = feat_offset + fstop[group][same_bar] - 1
        for i in rows_k:
            splits_applied[i] = splits
    _calendar_columns(data, rows, t, start, stop, has_market, market, missing_sessions)


@lru_cache(maxsize=1024)
def _sessions(calendar_name: str, first_day: int, last_day: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Return the calendar's sessions from ``first_day`` to ``last_day`` (day numbers) as day
    numbers and their closes (UTC ns)."""
    calendar = get_calendar(calendar_name)
    span = calendar.sessions(pd.Timestamp(first_day * _NS_PER_DAY).date(),
                             pd.Timestamp(last_day * _NS_PER_DAY).date())
    closes = pd.DatetimeIndex(calendar.session_open_close(span)["close"]).tz_convert(
        "UTC").as_unit("ns").asi8 if len(span) else np.zeros(0, np.int64)
    session_days, closes = _days(span), np.asarray(closes)
    session_days.flags.writeable = False  # shared between calls
    closes.flags.writeable = False
    return session_days, closes


def _calendar_columns(data: SeriesData, rows: np.ndarray, t: np.ndarray, start: np.ndarray,
                      stop: np.ndarray, has_market: np.ndarray, market: dict[str, np.ndarray],
                      missing_sessions: np.ndarray) -> None:
    """Sessions since the last bar, sessions in the window and missing sessions, per row, as
    ``market_data`` counts them, from one read of the calendar over the series' span."""
    if not has_market.any():
        return
    bars = data.bars
    instrument = Instrument.from_row(data.instrument)
    bar_days = _days(bars["session"])
    live = np.flatnonzero(has_market)
    first_days = bar_days[start[live]]
    as_of_local = pd.DatetimeIndex(pd.to_datetime(t[live], utc=True)).tz_convert(
        instrument.timezone)
    as_of_days = as_of_local.tz_localize(None).normalize().as_unit("ns").asi8 // _NS_PER_DAY
    # every position below is a searchsorted bound, so any span covering [first window day,
    # last as_of day] gives the same counts: the series' own span repeats from chunk to chunk
    session_days, closes = _sessions(instrument.trading_calendar,
                                     int(min(first_days.min(), bar_days[0])),
                                     int(max(as_of_days.max(), bar_days[-1])))
    a = np.searchsorted(session_days, first_days, side="left")
    b_day = np.searchsorted(session_days, as_of_days, side="right")
    # sessions in [a, b_day) that closed by as_of: closes rise with sessions
    e = np.minimum(b_day, np.maximum(np.searchsorted(closes, t[live], side="right"), a))
    last_day = bar_days[stop[live] - 1]
    c = np.searchsorted(session_days, last_day, side="right")
    upper = np.minimum(e, c)
    window_sessions = np.maximum(upper - a, 0)
    since_last = np.maximum(e - np.maximum(a, c), 0)
    # sessions the window has bars for, among the expected ones
    pos = np.searchsorted(session_days, bar_days)
    in_calendar = (pos < len(session_days)) & (
        session_days[np.minimum(pos, max(len(session_days) - 1, 0))] == bar_days
    ) if len(session_days) else np.zeros(len(bar_days), bool)
    new_session = np.ones(len(bar_days), bool)
    new_session[1:] = bar_days[1:] != bar_days[:-1]
    counted = new_session & in_calendar
    before = np.concatenate([[0], np.cumsum(counted)])
    s, st = start[live], stop[live]
    have = before[st] - before[s] + (in_calendar[s] & ~new_session[s])
    # the last session is not expected while it has not closed by as_of
    last_pos = pos[st - 1]
    open_last = in_calendar[st - 1] & (last_pos >= e)
    have = have - open_last
    n_missing = np.maximum(window_sessions - have, 0)
    rows_live = rows[live]
    market["window_sessions"][rows_live] = window_sessions
    market["sessions_since_last_bar"][rows_live] = since_last
    market["n_missing_sessions"][rows_live] = n_missing
    for j in np.flatnonzero(n_missing > 0):
        expected = session_days[a[j]:upper[j]]
        window = set(bar_days[s[j]:st[j]].tolist())
        gone = [d for d in expected.tolist() if d not in window]
        missing_sessions[rows_live[j]] = tuple(
            pd.Timestamp(d * _NS_PER_DAY).date() for d in gone)
        market["n_missing_sessions"][rows_live[j]] = len(gone)
