"""The ContextPack's ``mtfa`` piece, read point-in-time from bars and TA features.

For each timeframe of the instrument's stack the provider reads the LAST CLOSED bar
(``ts_close <= as_of``) and its feature row. A higher-timeframe bar still forming at as_of
(this week's 1w bar on a Wednesday, today's 1d bar at noon) has ``ts_close > as_of`` and is
never read: on a Wednesday the 1w read is last week's bar.

The piece is all or nothing: when any stack timeframe has no closed bar, no feature row or
undefined indicators on its last closed bar, or a last closed bar older than
``MAX_STALE_BARS`` bar lengths plus ``STALE_GRACE`` (weekends and holidays), the piece is None
and the reason names every such timeframe. A partial stack would score alignment on fewer
timeframes than it claims to.
"""

from __future__ import annotations

import math
from datetime import datetime

import pandas as pd

from buddy.context.builder import PieceRequest
from buddy.context.pieces import MTFASnapshot
from buddy.mtfa.compute import (
    DEFAULT_TREND_RULE,
    ClosedBarReading,
    TrendRule,
    mtfa_snapshot,
    reading_problem,
    stack_for,
)
from buddy.store import Store
from buddy.timeframes import Timeframe

#: A last closed bar older than this many bar lengths (plus the grace) is stale.
MAX_STALE_BARS = 3
#: Calendar time allowed on top of MAX_STALE_BARS for weekends and holidays.
STALE_GRACE = pd.Timedelta(days=4)

#: The last closed bar of each requested timeframe, its feature values and the number of
#: closed bars (point-in-time: ts_close <= as_of, so a forming bar is never read).
LAST_CLOSED_BARS_SQL = """
SELECT b.timeframe, b.ts, b.ts_close, b.close, b.n_closed,
       f.ts IS NOT NULL AS has_features, f.ema_20, f.ema_50, f.atr_14, f.adx_14
FROM (
    SELECT symbol, timeframe, ts, ts_close, close,
           count(*) OVER (PARTITION BY timeframe) AS n_closed
    FROM bars
    WHERE symbol = ? AND list_contains(?, timeframe) AND ts_close <= ?
    QUALIFY row_number() OVER (PARTITION BY timeframe ORDER BY ts DESC) = 1
) b
LEFT JOIN ta_features f ON f.symbol = b.symbol AND f.timeframe = b.timeframe AND f.ts = b.ts
"""


def mtfa_provider(request: PieceRequest) -> tuple[MTFASnapshot | None, str | None]:
    """Return the MTFA snapshot of ``request.instrument`` at ``request.as_of``, or None and
    which stack timeframes are missing and why."""
    inst = request.instrument
    return read_mtfa(request.store, inst.symbol, stack_for(inst.asset_class,
                                                           inst.trading_calendar),
                     request.as_of)


def read_mtfa(store: Store, symbol: str, stack: tuple[Timeframe, ...], as_of: datetime,
              rule: TrendRule = DEFAULT_TREND_RULE) -> tuple[MTFASnapshot | None, str | None]:
    """Return the MTFA snapshot of ``symbol`` over ``stack`` from bars closed at ``as_of``."""
    rows = store.query(LAST_CLOSED_BARS_SQL, [symbol, [str(tf) for tf in stack], as_of])
    by_tf = {Timeframe.parse(r["timeframe"]): r for r in rows.to_dict("records")}
    as_of_ts = pd.Timestamp(as_of)
    readings, problems = [], []
    for tf in stack:
        row = by_tf.get(tf)
        if row is None:
            problems.append(f"{tf}: no bar closed at or before as_of")
            continue
        bar_day = f"{pd.Timestamp(row['ts']):%Y-%m-%d}, {int(row['n_closed'])} closed bars"
        if not row["has_features"]:
            problems.append(f"{tf}: no feature row for the last closed bar ({bar_day}); run "
                            f"`buddy jobs features --symbols {symbol} --timeframes {tf}`")
            continue
        reading = ClosedBarReading(
            timeframe=tf, bar_ts=pd.Timestamp(row["ts"]).to_pydatetime(),
            close=float(row["close"]), **{k: _float(row[k]) for k in
                                          ("ema_20", "ema_50", "atr_14", "adx_14")})
        problem = reading_problem(reading)
        if problem is not None:
            problems.append(f"{tf}: {problem} ({bar_day})")
            continue
        age = as_of_ts - pd.Timestamp(row["ts_close"])
        if age > MAX_STALE_BARS * tf.nominal + STALE_GRACE:
            problems.append(f"{tf}: the last closed bar closed {age} before as_of (stale)")
            continue
        readings.append(reading)
    if problems:
        stack_text = "/".join(str(tf) for tf in stack)
        return None, (f"MTFA stack {stack_text} of {symbol} incomplete at "
                      f"{as_of_ts.isoformat()}: " + "; ".join(problems))
    return mtfa_snapshot(readings, rule), None


def _float(value: object) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)  # type: ignore[arg-type]
