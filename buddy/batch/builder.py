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
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from buddy.batch.columns import repeated, utc_ns
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
from buddy.context.piece_columns import PieceColumn
from buddy.context.providers import ProviderRegistry, ProviderSource
from buddy.data.calendars import get_calendar
from buddy.data.splits import adjust_bars, split_factor_of_times
from buddy.errors import FieldError, IntentValidationError
from buddy.features.ta import PRICE_LEVEL_FEATURES
from buddy.store import Store
from buddy.store.bars import (
    WHOLE_QUERIES as WHOLE_BAR_QUERIES,
)
from buddy.store.bars import (
    all_bars,
    all_features,
    held_actions,
    instrument_row,
)
from buddy.store.core import READ_IDLE_S
from buddy.store.tables import SeriesTable, WholeQuery
from buddy.timeframes import Timeframe

_NS_PER_DAY = 86_400_000_000_000


@dataclass(frozen=True, slots=True)
class _TableTimes:
    """The whole bars and features tables (``buddy.store.bars``) with their time columns as
    int64, converted once per table read instead of once per series and chunk."""

    bars: SeriesTable
    features: SeriesTable
    ts: np.ndarray  # bar open, UTC ns
    ts_close: np.ndarray  # bar close, UTC ns
    session_day: np.ndarray  # the bar's session, day number
    feature_ts: np.ndarray  # the feature row's bar open, UTC ns
    close: np.ndarray  # the bar's close, float64 (read only)
    #: ``Windows.column`` of windows over the whole tables, converted once per table read
    bar_columns: dict[str, np.ndarray] = field(default_factory=dict)
    feature_columns: dict[str, np.ndarray] = field(default_factory=dict)


#: The last tables' times (the entry holds the tables, so an id cannot be reused).
_TIMES: list[_TableTimes] = []


def _table_times(store: Store) -> _TableTimes:
    """Return the whole tables of ``store`` and their time columns (kept per table read)."""
    bars, features = all_bars(store), all_features(store)
    if _TIMES and _TIMES[0].bars is bars and _TIMES[0].features is features:
        return _TIMES[0]
    frame, feature_frame = bars.frame, features.frame
    empty = np.zeros(0, np.int64)
    close = frame["close"].to_numpy(np.float64) if len(frame) else np.zeros(0)
    close = close.view()
    close.flags.writeable = False  # shared with the windows' column (``Windows.column``)
    times = _TableTimes(
        bars=bars, features=features,
        ts=utc_ns(frame["ts"]) if len(frame) else empty,
        ts_close=utc_ns(frame["ts_close"]) if len(frame) else empty,
        session_day=_days(frame["session"]) if len(frame) else empty,
        feature_ts=utc_ns(feature_frame["ts"]) if len(feature_frame) else empty,
        close=close, bar_columns={"close": close} if len(frame) else {})
    _TIMES[:] = [times]
    return times


@dataclass(frozen=True, slots=True, kw_only=True)
class SeriesData:
    """One (symbol, timeframe) series as read once: its rows of the whole bars and features
    tables (``bars``, ``features``: frames made only when asked), the symbol's actions, the
    bars' times (UTC ns, session day numbers) and closes, and each feature row's bar
    position."""

    symbol: str
    timeframe: str
    instrument: dict[str, Any]
    actions: pd.DataFrame  # held for every reader (``held_actions``): read only
    tables: _TableTimes
    bar_at: np.ndarray  # rows of the whole bars table
    feature_at: np.ndarray  # rows of the whole features table
    ts_close: np.ndarray
    session_day: np.ndarray
    close: np.ndarray
    bar_of_feature: np.ndarray
    #: the whole tables' row of the first bar / feature row, where the series' rows are a
    #: slice of the table (-1: a selection)
    bar_row: int = -1
    feature_row: int = -1

    @property
    def bars(self) -> pd.DataFrame:
        """The series' bars closed by the cut (a view of the whole table where a slice)."""
        return _rows_of(self.tables.bars.frame, self.bar_at, self.bar_row)

    @property
    def features(self) -> pd.DataFrame:
        """The series' feature rows of those bars."""
        return _rows_of(self.tables.features.frame, self.feature_at, self.feature_row)

    @classmethod
    def read(cls, store: Store, symbol: str, timeframe: str, until: int,
             times: _TableTimes | None = None) -> SeriesData:
        """Read the series' bars closed by ``until`` (UTC ns), their features and the
        symbol's actions from the whole tables read once per process (``times``: those
        tables, when the caller has them already).

        The cut is the point-in-time rule ``ts_close <= as_of`` over the table's columns
        (``buddy.store.bars.bars_closed_by`` / ``features_closed_by`` give the same rows):
        the closed bars are a prefix of the series when closes ascend with ts (always, for
        bars written by the loaders), sliced without a copy; feature rows join their bars
        on ts.
        """
        instrument = instrument_row(store, symbol)
        if instrument is None:
            raise IntentValidationError([FieldError("symbol", "is not in the tickers table",
                                                    symbol)])
        actions = held_actions(store, symbol)
        if len(actions) and not actions["ex_date"].is_monotonic_increasing:
            actions = actions.sort_values("ex_date", kind="stable", ignore_index=True)
        times = _table_times(store) if times is None else times
        a, b = times.bars.span(symbol, timeframe)
        closed = np.flatnonzero(times.ts_close[a:b] <= until)
        n = len(closed)
        bar_row = feature_row = -1
        if n == 0 or closed[-1] == n - 1:  # a prefix: a view of the whole table
            at = np.arange(a, a + n)
            bar_row = a
        else:
            at = a + closed
        bar_ts = times.ts[at]
        fa, fb = times.features.span(symbol, timeframe)
        feature_ts = times.feature_ts[fa:fb]
        m = int(np.searchsorted(feature_ts, bar_ts[-1], side="right")) if n else 0
        if m == n and np.array_equal(feature_ts[:m], bar_ts):  # a row per bar: a prefix
            feature_at = np.arange(fa, fa + m)
            bar_of_feature = np.arange(m)
            feature_row = fa
        else:  # the join on ts: no feature row without its bar
            keep = np.flatnonzero(np.isin(feature_ts, bar_ts))
            feature_at = fa + keep
            bar_of_feature = np.searchsorted(bar_ts, feature_ts[keep])
        return cls(symbol=symbol, timeframe=timeframe, instrument=instrument, actions=actions,
                   tables=times, bar_at=at, feature_at=feature_at,
                   ts_close=times.ts_close[at], session_day=times.session_day[at],
                   close=times.close[at], bar_of_feature=bar_of_feature, bar_row=bar_row,
                   feature_row=feature_row)


def _rows_of(frame: pd.DataFrame, at: np.ndarray, first: int) -> pd.DataFrame:
    """Return the rows ``at`` of ``frame``: a slice where they are one (``first`` >= 0)."""
    return frame.iloc[first:first + len(at)] if first >= 0 else frame.iloc[at]


@dataclass(slots=True)
class _Parts:
    """What the series loop collects; concatenated into the BatchContext at the end (a
    SeriesData stands for its own rows of the whole tables, framed only if concatenated)."""

    bar_frames: list[pd.DataFrame | SeriesData]
    feature_frames: list[pd.DataFrame | SeriesData]
    n_bars: int = 0
    n_features: int = 0
    #: per group of rows on one basis: (rows, the whole bars table's row minus the
    #: concatenation's for its bars, the same for its features), or None for a group whose
    #: frames are not slices of the whole tables (an adjusted copy, a selection)
    in_tables: list[tuple[np.ndarray, int, int] | None] = field(default_factory=list)


def whole_queries(providers: Mapping[str, ProviderSource] | None = None
                  ) -> tuple[WholeQuery, ...]:
    """Return the whole-table queries a batch context with ``providers`` reads: the bars and
    features tables', and those of each provider that names its own (``whole_queries()``);
    what a run's parent shares ahead of its workers (``buddy.store.tables.share_ahead``)."""
    queries = list(WHOLE_BAR_QUERIES)
    for provider in (providers or {}).values():
        named = getattr(provider, "whole_queries", None)
        if callable(named):
            queries.extend(named())
    return tuple(queries)


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
    dtype = frame["as_of"].dtype
    if not (isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"):
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
    missing_sessions = repeated((), n)
    splits_applied = repeated((), n)
    instruments: list[dict[str, Any]] = []  # one per series; rows point at theirs
    instrument_of = np.zeros(n, np.int64)
    calendars = _CalendarRows(as_of_ns)  # the calendar counts, per calendar at the end
    groups = frame.groupby(["symbol", "timeframe"], sort=True).indices
    times = _table_times(store) if groups else None  # the tables, once per batch
    for (symbol, timeframe), rows in groups.items():
        rows = np.asarray(rows, dtype=np.int64)
        data = SeriesData.read(store, symbol, timeframe, int(as_of_ns[rows].max()), times)
        instrument_of[rows] = len(instruments)
        instruments.append({k: data.instrument[k] for k in INSTRUMENT_FIELDS})
        _series_rows(data, rows, as_of_ns, lookback_bars, parts, bar_start, bar_stop,
                     feat_start, feat_stop, market, latest_index, splits_applied, calendars)
    calendars.count(times, market, missing_sessions)
    bar_columns: dict[str, np.ndarray] = {}
    feature_columns: dict[str, np.ndarray] = {}
    if parts.in_tables and all(group is not None for group in parts.in_tables) and (
            times is not None):
        # every row reads its series as traded from a slice of the whole tables: the windows
        # point into the tables themselves instead of into a copy of those slices (each
        # window is the same rows; a column converted once serves every chunk)
        for rows_k, bar_shift, feature_shift in parts.in_tables:  # type: ignore[misc]
            bar_start[rows_k] += bar_shift
            bar_stop[rows_k] += bar_shift
            feat_start[rows_k] += feature_shift
            feat_stop[rows_k] += feature_shift
            latest_k = latest_index[rows_k]
            latest_index[rows_k] = np.where(latest_k >= 0, latest_k + feature_shift, -1)
        bars_data, features_data = times.bars.frame, times.features.frame
        bar_columns, feature_columns = times.bar_columns, times.feature_columns
    else:
        bars_data = pd.concat([f if isinstance(f, pd.DataFrame) else f.bars
                               for f in parts.bar_frames], ignore_index=True) if (
            parts.bar_frames) else pd.DataFrame()
        features_data = pd.concat([f if isinstance(f, pd.DataFrame) else f.features
                                   for f in parts.feature_frames], ignore_index=True) if (
            parts.feature_frames) else pd.DataFrame()
    features = Windows(features_data, feat_start, feat_stop, feature_columns)
    market_columns = dict(market)
    market_columns["last_bar_close"] = pd.DatetimeIndex(np.where(
        market["has_market"], market["last_bar_close"], np.iinfo(np.int64).min).view(
        "datetime64[ns]")).tz_localize("UTC")  # INT64_MIN is NaT: no bar
    base = BatchContext(
        intents=frame, instrument=_instrument_frame(instruments, instrument_of),
        market=market_frame(market_columns), latest=_latest(features, latest_index),
        bars=Windows(bars_data, bar_start, bar_stop, bar_columns), features=features,
        missing_sessions=missing_sessions, splits_applied=splits_applied,
        pieces=dict.fromkeys(OTHER_PIECES, np.empty(n, dtype=object)), missing={})
    return _with_pieces(store, base, providers)


def _instrument_frame(instruments: list[dict[str, Any]], instrument_of: np.ndarray
                      ) -> pd.DataFrame:
    """Return the instrument of each row (``instruments[instrument_of]``) as columns; text
    columns as objects (the values of the text column, NaN where missing), so the many
    ``to_numpy(object)`` readers share the series' strings instead of converting every row
    each time."""
    frame = pd.DataFrame(instruments, columns=list(INSTRUMENT_FIELDS))
    columns: dict[str, Any] = {}
    for name in INSTRUMENT_FIELDS:
        column = frame[name]
        if isinstance(column.dtype, pd.StringDtype):
            columns[name] = pd.Series(column.to_numpy(object)[instrument_of], dtype=object,
                                      copy=False)
        else:
            columns[name] = column.iloc[instrument_of].reset_index(drop=True)
    # the columns as they are (no copy into one block)
    return pd.DataFrame(columns, columns=list(INSTRUMENT_FIELDS), copy=False)


def _latest(features: Windows, latest_index: np.ndarray) -> pd.DataFrame:
    """Return the numeric feature columns of row ``latest_index`` of ``features.data`` per
    row (-1: NaN), as float64 (each column converted once: ``Windows.column``)."""
    data = features.data
    names = data.select_dtypes("number").columns if len(data.columns) else pd.Index([])
    has = latest_index >= 0
    if not has.any():
        return pd.DataFrame(np.full((len(latest_index), len(names)), np.nan), columns=names)
    values = np.empty((len(names), len(latest_index)))
    at = np.where(has, latest_index, 0)  # rows without one are NaN'd below
    for j, name in enumerate(names):
        column = features.column(name)
        if column.dtype == np.float64:
            np.take(column, at, out=values[j])
        else:
            values[j] = column[at]
    if not has.all():
        values[:, ~has] = np.nan
    return pd.DataFrame(values.T, columns=names, copy=False)


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
    pieces: dict[str, np.ndarray | PieceColumn] = {}
    for name in OTHER_PIECES:
        provider = providers.get(name)
        if provider is None:
            pieces[name] = np.empty(n, dtype=object)  # None on every row
            missing[name] = repeated(NOT_YET_PROVIDED[name], n)
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
                 latest_index: np.ndarray, splits_applied: np.ndarray,
                 calendars: _CalendarRows) -> None:
    actions = data.actions
    t = as_of_ns[rows]
    bars_close = data.ts_close
    stop = np.searchsorted(bars_close, t, side="right")
    start = np.maximum(stop - lookback, 0)
    # features join bars on ts: each feature row closes when its bar does
    bar_pos_of_feature = data.bar_of_feature
    feat_close = bars_close[bar_pos_of_feature] if len(bar_pos_of_feature) else np.zeros(
        0, np.int64)
    fstop = np.searchsorted(feat_close, t, side="right")
    fstart = np.maximum(fstop - lookback, 0)
    has_market = stop > 0
    # ---------------------------------------------------------------- split basis
    utc_day = t // _NS_PER_DAY
    ex_days = _days(actions["ex_date"]) if len(actions) else np.zeros(0, np.int64)
    n_actions = np.searchsorted(ex_days, utc_day, side="right")
    has_feature = np.zeros(len(data.bar_at), bool)
    has_feature[bar_pos_of_feature] = True
    featured_before = np.concatenate([[0], np.cumsum(has_feature)])
    instrument = Instrument.from_row(data.instrument)
    close = data.close
    if not has_market.any():
        bases: Any = []
    elif len(ex_days):
        bases = np.unique(n_actions[has_market])
    else:  # no actions: every row on the as-traded basis
        bases = [0]
    for k in bases:
        group = np.flatnonzero(has_market & (n_actions == k)) if len(ex_days) else (
            np.flatnonzero(has_market))
        adjusted: pd.DataFrame | SeriesData
        adjusted_features: pd.DataFrame | SeriesData
        if k:
            applied = actions.iloc[:k].reset_index(drop=True)
            as_of_k = pd.Timestamp(t[group[0]], tz="UTC")
            adjusted = adjust_bars(data.bars, applied, as_of_k)
            features = data.features
            adjusted_features = features.copy()
            if len(features):
                per_row = split_factor_of_times(features["ts"], instrument.timezone,
                                                applied, as_of_k)
                for column in PRICE_LEVEL_FEATURES:
                    if column in adjusted_features:
                        adjusted_features[column] = (adjusted_features[column].to_numpy()
                                                     / per_row)
            splits = tuple((pd.Timestamp(d).date(), float(r)) for d, r in
                           zip(applied.get("ex_date", []), applied.get("ratio", []),
                               strict=True))
            adjusted_close = adjusted["close"].to_numpy(np.float64)
        else:  # the as-traded basis: the table's rows themselves (framed only if needed)
            adjusted, adjusted_features, splits = data, data, ()
            adjusted_close = close
        bar_offset, feat_offset = parts.n_bars, parts.n_features
        parts.bar_frames.append(adjusted)
        parts.feature_frames.append(adjusted_features)
        parts.n_bars += len(adjusted.bar_at if isinstance(adjusted, SeriesData) else adjusted)
        parts.n_features += len(adjusted_features.feature_at if isinstance(
            adjusted_features, SeriesData) else adjusted_features)
        rows_k = rows[group]
        bar_start[rows_k] = bar_offset + start[group]
        bar_stop[rows_k] = bar_offset + stop[group]
        feat_start[rows_k] = feat_offset + fstart[group]
        feat_stop[rows_k] = feat_offset + fstop[group]
        market["has_market"][rows_k] = True
        market["last_close"][rows_k] = adjusted_close[stop[group] - 1]
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
        if k:
            splits_applied[rows_k] = repeated(splits, len(rows_k))
        parts.in_tables.append(None if k or data.bar_row < 0 or data.feature_row < 0 else (
            rows_k, data.bar_row - bar_offset, data.feature_row - feat_offset))
    calendars.add(data, instrument, rows, t, start, stop, has_market)


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


#: Per calendar the widest span asked for so far: (first day, last day), sessions, closes.
_HELD_SESSIONS: dict[str, tuple[int, int, np.ndarray, np.ndarray]] = {}


def _sessions_covering(calendar_name: str, first_day: int, last_day: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``_sessions`` over a span covering [first_day, last_day]: the one held for the
    calendar when it covers them, else the union of both (held from then on), so the
    calendar is read once per calendar rather than once per series and chunk."""
    held = _HELD_SESSIONS.get(calendar_name)
    if held is not None and held[0] <= first_day and last_day <= held[1]:
        return held[2], held[3]
    if held is not None:
        first_day, last_day = min(first_day, held[0]), max(last_day, held[1])
    session_days, closes = _sessions(calendar_name, first_day, last_day)
    _HELD_SESSIONS[calendar_name] = (first_day, last_day, session_days, closes)
    return session_days, closes


@dataclass(slots=True)
class _CalendarRows:
    """The rows with market of every series, by trading calendar: their sessions since the
    last bar, sessions in the window and missing sessions are counted at the end of the
    series loop, per calendar at once (``count``)."""

    as_of_ns: np.ndarray  # every row's as_of, UTC ns
    #: per calendar, per series: (its data, rows, as_of ns, window start, stop, as_of days)
    by_calendar: dict[str, list[tuple[SeriesData, np.ndarray, np.ndarray, np.ndarray,
                                      np.ndarray, np.ndarray]]] = field(default_factory=dict)
    zone_days: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, data: SeriesData, instrument: Instrument, rows: np.ndarray, t: np.ndarray,
            start: np.ndarray, stop: np.ndarray, has_market: np.ndarray) -> None:
        """Add the rows of one series (window [start, stop) of its bars, as_of ``t``)."""
        live = np.flatnonzero(has_market)
        if not len(live):
            return
        zone_days = self.zone_days.get(instrument.timezone)
        if zone_days is None:  # every row's as_of day in this zone, once per zone and batch
            code, distinct_ns = pd.factorize(self.as_of_ns)  # rows share a few as_of
            zone_days = self.zone_days[instrument.timezone] = (pd.DatetimeIndex(
                pd.to_datetime(np.asarray(distinct_ns, dtype=np.int64), utc=True)).tz_convert(
                instrument.timezone).tz_localize(None).normalize().as_unit("ns").asi8
                // _NS_PER_DAY)[code]
        self.by_calendar.setdefault(instrument.trading_calendar, []).append(
            (data, rows[live], t[live], start[live], stop[live], zone_days[rows[live]]))

    def count(self, times: _TableTimes | None, market: dict[str, np.ndarray],
              missing_sessions: np.ndarray) -> None:
        """Count every calendar's rows: the series read as slices of the whole tables on
        the whole table's bar days (placed on the calendar once per table read and span),
        the others on their own bar days laid end to end."""
        for name, series in self.by_calendar.items():
            # every position is a searchsorted bound, so any span covering [first window
            # day, last as_of day] gives the same counts: one span per calendar
            first = min(int(min(d.session_day[s].min(), d.session_day[0]))
                        for d, _, _, s, _, _ in series)
            last = max(int(max(days.max(), d.session_day[-1]))
                       for d, _, _, _, _, days in series)
            session_days, closes = _sessions_covering(name, first, last)
            sliced = [x for x in series if x[0].bar_row >= 0 and x[0].tables is times]
            others = [x for x in series if not (x[0].bar_row >= 0 and x[0].tables is times)]
            if sliced and times is not None:
                runs = _table_runs(times, name, session_days)
                shift = [d.bar_row for d, *_ in sliced]
                _calendar_columns(runs, session_days, closes, sliced, shift, market,
                                  missing_sessions)
            if others:
                lengths = np.array([len(d.session_day) for d, *_ in others], dtype=np.int64)
                offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
                runs = _DayRuns.of(np.concatenate([d.session_day for d, *_ in others]),
                                   offsets, session_days)
                _calendar_columns(runs, session_days, closes, others, offsets.tolist(),
                                  market, missing_sessions)


@dataclass(frozen=True, slots=True)
class _DayRuns:
    """Bars' session days laid end to end (series after series) placed on a calendar's
    sessions: each bar's position among them, whether its day is one, whether it opens a
    session of its series, and how many counted sessions open before it."""

    days: np.ndarray
    pos: np.ndarray
    in_calendar: np.ndarray
    new_session: np.ndarray
    before: np.ndarray

    @classmethod
    def of(cls, days: np.ndarray, starts: np.ndarray, session_days: np.ndarray) -> _DayRuns:
        """Place ``days`` (each series from ``starts``) on ``session_days``."""
        pos = np.searchsorted(session_days, days)
        in_calendar = (pos < len(session_days)) & (
            session_days[np.minimum(pos, max(len(session_days) - 1, 0))] == days
        ) if len(session_days) else np.zeros(len(days), bool)
        new_session = np.ones(len(days), bool)
        new_session[1:] = days[1:] != days[:-1]
        new_session[starts] = True  # a series' first bar opens its first session
        before = np.concatenate([[0], np.cumsum(new_session & in_calendar)])
        return cls(days, pos, in_calendar, new_session, before)


#: Per calendar, the whole bars table's days on its held sessions (``_table_runs``).
_TABLE_RUNS: dict[str, tuple[_TableTimes, np.ndarray, _DayRuns]] = {}


def _table_runs(times: _TableTimes, calendar_name: str, session_days: np.ndarray) -> _DayRuns:
    """Return the whole bars table's day runs on ``session_days`` (kept per table read and
    calendar span)."""
    held = _TABLE_RUNS.get(calendar_name)
    if held is not None and held[0] is times and held[1] is session_days:
        return held[2]
    starts = np.array([a for a, _ in times.bars.spans.values()], dtype=np.int64)
    runs = _DayRuns.of(times.session_day, starts, session_days)
    _TABLE_RUNS[calendar_name] = (times, session_days, runs)
    return runs


def _calendar_columns(runs: _DayRuns, session_days: np.ndarray, closes: np.ndarray,
                      series: list[tuple[SeriesData, np.ndarray, np.ndarray, np.ndarray,
                                         np.ndarray, np.ndarray]],
                      shift: list[int], market: dict[str, np.ndarray],
                      missing_sessions: np.ndarray) -> None:
    """Sessions since the last bar, sessions in the window and missing sessions, per row, as
    ``market_data`` counts them, for the rows of ``series`` (their bars are ``runs`` from
    ``shift``) on one calendar's sessions."""
    rows = np.concatenate([x[1] for x in series])
    t = np.concatenate([x[2] for x in series])
    s = np.concatenate([x[3] + k for x, k in zip(series, shift, strict=True)])
    st = np.concatenate([x[4] + k for x, k in zip(series, shift, strict=True)])
    as_of_days = np.concatenate([x[5] for x in series])
    days = runs.days
    a = np.searchsorted(session_days, days[s], side="left")
    b_day = np.searchsorted(session_days, as_of_days, side="right")
    # sessions in [a, b_day) that closed by as_of: closes rise with sessions
    e = np.minimum(b_day, np.maximum(np.searchsorted(closes, t, side="right"), a))
    c = np.searchsorted(session_days, days[st - 1], side="right")
    upper = np.minimum(e, c)
    window_sessions = np.maximum(upper - a, 0)
    since_last = np.maximum(e - np.maximum(a, c), 0)
    # sessions the window has bars for, among the expected ones
    have = runs.before[st] - runs.before[s] + (runs.in_calendar[s] & ~runs.new_session[s])
    # the last session is not expected while it has not closed by as_of
    open_last = runs.in_calendar[st - 1] & (runs.pos[st - 1] >= e)
    have = have - open_last
    n_missing = np.maximum(window_sessions - have, 0)
    market["window_sessions"][rows] = window_sessions
    market["sessions_since_last_bar"][rows] = since_last
    market["n_missing_sessions"][rows] = n_missing
    for j in np.flatnonzero(n_missing > 0):
        expected = session_days[a[j]:upper[j]]
        window = set(days[s[j]:st[j]].tolist())
        gone = [d for d in expected.tolist() if d not in window]
        missing_sessions[rows[j]] = tuple(
            pd.Timestamp(d * _NS_PER_DAY).date() for d in gone)
        market["n_missing_sessions"][rows[j]] = len(gone)
