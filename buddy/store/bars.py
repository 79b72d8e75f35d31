"""Bars in the store: the point-in-time filter (written once here) and the whole-series
reads the jobs, the catalogue and the command line make.

A bar is visible as of t only when it was complete by t: ``ts_close <= as_of``. Every read of
bars as of a moment builds its filter with ``closed_by``, so the rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: buddy.store.core imports this module
    import pandas as pd

    from buddy.store.core import Store
    from buddy.store.tables import SeriesTable


def closed_by(alias: str | None = None) -> str:
    """Return the point-in-time filter on bars, ``ts_close <= ?`` (bind as_of, UTC), for the
    bars table under ``alias`` (none: unqualified)."""
    return f"{alias}.ts_close <= ?" if alias else "ts_close <= ?"


def bar_spans(store: Store) -> pd.DataFrame:
    """Return each series' first and last bar close (symbol, timeframe, first_close,
    last_ts_close; UTC)."""
    return store.query("SELECT symbol, timeframe, min(ts_close) AS first_close, "
                       "max(ts_close) AS last_ts_close FROM bars GROUP BY ALL")


def last_close(store: Store, symbol: str, timeframe: str) -> Any:
    """Return the close time (UTC) of the series' last bar; NaT/None when it has none."""
    return store.query("SELECT max(ts_close) FROM bars WHERE symbol = ? AND timeframe = ?",
                       [symbol, timeframe]).iloc[0, 0]


def series_bars(store: Store, symbols: Sequence[str] | None, timeframes: Sequence[str] | None
                ) -> pd.DataFrame:
    """Return every bar of the selected series (all when None), by symbol, timeframe, ts."""
    from buddy.store.core import series_where

    where, params = series_where(symbols, timeframes)
    return store.query(f"SELECT * FROM bars {where} ORDER BY symbol, timeframe, ts", params)


def last_bar_ts(store: Store, symbols: Sequence[str] | None, timeframes: Sequence[str] | None
                ) -> pd.DataFrame:
    """Return each selected series' last bar open (symbol, timeframe, last_ts; UTC)."""
    from buddy.store.core import series_where

    where, params = series_where(symbols, timeframes)
    return store.query(f"SELECT symbol, timeframe, max(ts) AS last_ts FROM bars {where} "
                       "GROUP BY ALL ORDER BY symbol, timeframe", params)


def bars_closing_after(store: Store, keys: Sequence[tuple[str, str]],
                       first_as_of: Sequence[Any]) -> dict[tuple[str, str], pd.DataFrame]:
    """Return, for each series ``keys[i]`` (symbol, timeframe), its bars closing after
    ``first_as_of[i]`` (a time with a zone), by ts: what comes after a decision, for outcomes
    only. From the whole bars table read once per process (``all_bars``); a series without
    such bars gets an empty frame. The frames share the table's memory: read-only."""
    import numpy as np

    table = all_bars(store)
    frame = table.frame
    out: dict[tuple[str, str], pd.DataFrame] = {}
    for (symbol, timeframe), first in zip(keys, first_as_of, strict=True):
        a, b = table.span(str(symbol), str(timeframe))
        after = ~closed_mask(frame["ts_close"].iloc[a:b], first)  # ts_close > first
        n = int(after.sum())
        if after[len(after) - n:].all():  # closes ascend with ts: the later bars are a suffix
            out[(str(symbol), str(timeframe))] = frame.iloc[b - n:b].reset_index(drop=True)
        else:
            out[(str(symbol), str(timeframe))] = frame.iloc[
                np.flatnonzero(after) + a].reset_index(drop=True)
    return out


# ---------------------------------------------------------------- whole tables, per process
_ALL_BARS_SQL = "SELECT * FROM bars ORDER BY symbol, timeframe, ts"
_ALL_FEATURES_SQL = "SELECT * FROM ta_features ORDER BY symbol, timeframe, ts"
#: The whole-table queries of ``all_bars`` and ``all_features`` (``tables.share_ahead``).
WHOLE_QUERIES: tuple[tuple[str, None], ...] = ((_ALL_BARS_SQL, None), (_ALL_FEATURES_SQL, None))


def _whole(sql: str) -> Any:
    def read(store: Store) -> Any:
        from buddy.store.tables import SeriesTable, arrow_frame, query_arrow

        return SeriesTable.of(arrow_frame(query_arrow(store, sql)))

    return read


def all_bars(store: Store) -> SeriesTable:
    """Return the whole bars table by series, read once per process while the file is
    unchanged (``buddy.store.tables``). Not point-in-time: cut with ``bars_closed_by``."""
    from buddy.store.tables import cached

    return cached(store, "bars", _whole(_ALL_BARS_SQL))


def all_features(store: Store) -> SeriesTable:
    """Return the whole ta_features table by series, read once per process while the file is
    unchanged. Not point-in-time: cut with ``features_closed_by``."""
    from buddy.store.tables import cached

    return cached(store, "ta_features", _whole(_ALL_FEATURES_SQL))


def closed_mask(ts_close: Any, as_of: Any) -> Any:
    """Return ``ts_close <= as_of`` over a column of bar closes (``closed_by`` over columns
    already read: the same rule, for the whole-table reads)."""
    import numpy as np
    import pandas as pd

    closes = pd.DatetimeIndex(ts_close).tz_convert("UTC").as_unit("ns").asi8
    return closes <= np.int64(pd.Timestamp(as_of).tz_convert("UTC").as_unit("ns").value)


def bars_closed_by(store: Store, symbol: str, timeframe: str, as_of: Any) -> pd.DataFrame:
    """Return the series' bars with ``ts_close <= as_of``, by ts: ``Store.bars(symbol,
    timeframe, as_of=as_of)`` from the whole-table read."""
    table = all_bars(store)
    a, b = table.span(symbol, timeframe)
    keep = closed_mask(table.frame["ts_close"].iloc[a:b], as_of)
    n = int(keep.sum())
    if keep[:n].all():  # closes ascend with ts: the closed bars are a prefix
        return table.frame.iloc[a:a + n].reset_index(drop=True)
    return table.frame.iloc[a:b][keep].reset_index(drop=True)


def features_closed_by(store: Store, symbol: str, timeframe: str, as_of: Any,
                       bars: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return the series' feature rows of bars with ``ts_close <= as_of``, by ts:
    ``Store.features(symbol, timeframe, as_of=as_of)`` from the whole-table reads
    (``bars``: that series' bars closed by as_of, when the caller has them)."""
    if bars is None:
        bars = bars_closed_by(store, symbol, timeframe, as_of)
    import numpy as np
    import pandas as pd

    table = all_features(store)
    a, b = table.span(symbol, timeframe)
    feature_ts = pd.DatetimeIndex(table.frame["ts"].iloc[a:b]).as_unit("ns").asi8
    bar_ts = pd.DatetimeIndex(bars["ts"]).as_unit("ns").asi8
    n = int(np.searchsorted(feature_ts, bar_ts[-1], side="right")) if len(bar_ts) else 0
    if n == len(bar_ts) and np.array_equal(feature_ts[:n], bar_ts):
        return table.frame.iloc[a:a + n].reset_index(drop=True)  # a row per bar: a prefix
    keep = np.isin(feature_ts, bar_ts)  # the join on ts: no feature row without its bar
    return table.frame.iloc[a:b][keep].reset_index(drop=True)


_ALL_TICKERS_SQL = "SELECT * FROM tickers ORDER BY symbol"
_ALL_ACTIONS_SQL = "SELECT * FROM corporate_actions ORDER BY symbol, ex_date"


def _frame_read(sql: str) -> Any:
    def read(store: Store) -> Any:
        # small tables: through .df(), so a row reads exactly as the per-symbol query's
        return store.query(sql)

    return read


def _by_symbol(sql: str, split: Any, whole: Any = None) -> Any:
    """Return a read of the small table ``sql`` (ordered by symbol) cut once into
    ``split(frame, rows)`` per symbol: a batch asks for one symbol after another, chunk after
    chunk, and a look-up beats a pass over the table each time. The read's first element is
    ``whole(frame)`` (default: the frame)."""
    def read(store: Store) -> Any:
        frame = store.query(sql)
        symbols = frame["symbol"].to_numpy(object)
        import pandas as pd

        rows = pd.Series(range(len(frame))).groupby(symbols, sort=False).indices if len(
            frame) else {}
        return (frame if whole is None else whole(frame)), {
            str(symbol): split(frame, at) for symbol, at in rows.items()}

    return read


def instrument_row(store: Store, symbol: str) -> dict[str, Any] | None:
    """Return ``Store.instrument(symbol)`` (the tickers row as a dict, None when unknown)
    from the whole tickers table, read once per process while the file is unchanged."""
    from buddy.store.tables import cached

    _, rows = cached(store, "tickers:by_symbol", _by_symbol(
        _ALL_TICKERS_SQL, lambda frame, at: frame.iloc[int(at[0])].to_dict()))
    row = rows.get(symbol)
    return None if row is None else dict(row)  # the caller's own dict


def symbol_actions(store: Store, symbol: str) -> pd.DataFrame:
    """Return ``Store.corporate_actions(symbol)`` (by ex_date) from the whole table, read
    once per process while the file is unchanged."""
    return held_actions(store, symbol).copy()  # the caller's own frame


def held_actions(store: Store, symbol: str) -> pd.DataFrame:
    """Return ``symbol_actions(store, symbol)`` as held for every caller (read only: no
    copy; a symbol without actions gets the table's empty frame)."""
    from buddy.store.tables import cached

    frame, rows = cached(store, "corporate_actions:by_symbol", _by_symbol(
        _ALL_ACTIONS_SQL, lambda frame, at: frame.iloc[at].reset_index(drop=True),
        lambda frame: frame.iloc[:0].reset_index(drop=True)))
    actions = rows.get(symbol)
    return frame if actions is None else actions
