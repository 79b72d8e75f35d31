"""The trader's own history as the behaviour detectors read it, as of t.

``load_history(store, user_id, as_of=t)`` reads (through ``buddy.store``) the user's trades
opened by t, their outcomes only when closed by t (a trade closed later is open as of t), the
intents logged before t, the entry facts and reviews of trades closed by t, and the bars
closed by t that say whether a trade's planned stop was touched. ``history.truncated(t)``
gives the same view from a history loaded later (the detectors and the point-in-time tests
use it); ``detect`` itself also masks per intent, so one history serves many times.

The trader's day (``session_day``): the New York date after a 17:00 New York roll (the FX
convention; a stock's regular session falls inside one such day), so "entries per day" and
"hours into the session" mean the same for every instrument.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import pandas as pd

from buddy.store import Store
from buddy.timeframes import Timeframe

__all__ = ["DAY_ROLL", "DAY_ZONE", "INTENT_COLUMNS", "TRADE_COLUMNS", "TraderHistory",
           "load_history", "session_day"]

DAY_ZONE = "America/New_York"
#: Added to New York time before taking the date: the day rolls at 17:00 New York.
DAY_ROLL = pd.Timedelta(hours=7)

#: ``TraderHistory.trades`` columns. Outcome columns are NaN/NaT while open as of t.
TRADE_COLUMNS: tuple[str, ...] = (
    "trade_id",          # trades.trade_id
    "symbol", "asset_class",
    "side",              # long | short
    "sign",              # +1 long, -1 short
    "timeframe",         # the linked intent's, else the symbol's finest stored bars (None)
    "intraday",          # timeframe shorter than a session
    "open_ts", "close_ts",  # UTC; close_ts NaT while open as of t
    "session_day",       # the trader's day of the entry (datetime64, midnight)
    "entry",             # average entry price
    "qty", "multiplier",
    "initial_stop",      # the stop R is measured against (NaN: unknown)
    "risk_amount",       # |entry - stop| x qty x multiplier, account currency (NaN: unknown)
    "notional",          # entry x qty x multiplier, account currency
    "pnl",               # realised after fees, account currency (NaN while open)
    "pnl_r",             # R (NaN while open or without a stop)
    "linked_intent_id",
    "extension_atr",     # (last close - EMA20) / ATR(14) at entry, signed by side (NaN)
    "process_score",     # the post-trade review's share of checks passed (NaN)
    "stop_touch_ts",     # close of the first bar after entry that touched the stop (NaT)
    "stop_touch_open",   # that bar's open (a gap through the stop fills there)
    "stop_checked",      # stop known and bars cover the trade: stop drift can be judged
)
#: ``TraderHistory.intents`` columns (trade_intents', as_of UTC).
INTENT_COLUMNS: tuple[str, ...] = (
    "intent_id", "symbol", "side", "timeframe", "as_of", "proposed_entry", "proposed_stop",
    "proposed_size", "proposed_risk_amount")


def session_day(ts: pd.Series | pd.DatetimeIndex) -> pd.Series:
    """Return the trader's day of each UTC time (midnight, tz-naive datetime64)."""
    local = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).tz_convert(DAY_ZONE) + DAY_ROLL
    return pd.Series(local.tz_localize(None).normalize(), dtype="datetime64[ns]")


@dataclass(frozen=True, slots=True, kw_only=True)
class TraderHistory:
    """A user's trades (TRADE_COLUMNS, by open_ts) and intents (INTENT_COLUMNS, by as_of) as
    of ``as_of`` (None: everything stored), with the account equity and when it became known
    (``equity_since``; None: unknown) and each symbol's asset class (``asset_classes``)."""

    user_id: str
    as_of: pd.Timestamp | None
    trades: pd.DataFrame
    intents: pd.DataFrame
    equity: float | None = None
    equity_since: pd.Timestamp | None = None
    asset_classes: dict[str, str] | None = None

    def truncated(self, as_of: datetime | pd.Timestamp) -> TraderHistory:
        """Return the history as it stood at ``as_of``: trades opened by then, outcomes,
        reviews and stop touches only when known by then, intents logged before then."""
        t = pd.Timestamp(as_of).tz_convert("UTC")
        trades = self.trades[self.trades["open_ts"] <= t].copy()
        trades = _hide_after(trades, t)
        intents = self.intents[self.intents["as_of"] < t].reset_index(drop=True)
        return replace(self, as_of=t, trades=trades.reset_index(drop=True), intents=intents)

    def equity_at(self, ts: pd.Series) -> np.ndarray:
        """Return the equity known at each UTC time (NaN before it was written)."""
        when = pd.to_datetime(ts, utc=True)
        if self.equity is None or self.equity_since is None:
            return np.full(len(when), np.nan)
        return np.where((when >= self.equity_since).to_numpy(), self.equity, np.nan)


def _hide_after(trades: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """Blank what is not known at ``t``: outcomes of trades closed later, stop touches
    after it (a touch is known at its bar's close)."""
    later = ~(trades["close_ts"] <= t)
    for column in ("pnl", "pnl_r", "process_score"):
        trades.loc[later, column] = np.nan
    trades.loc[later, "close_ts"] = pd.NaT
    touched_later = ~(trades["stop_touch_ts"] <= t)
    trades.loc[touched_later, "stop_touch_ts"] = pd.NaT
    trades.loc[touched_later, "stop_touch_open"] = np.nan
    return trades


def load_history(store: Store, user_id: str, *, as_of: datetime | None = None
                 ) -> TraderHistory:
    """Read ``user_id``'s history as of ``as_of`` (timezone-aware; None: everything)."""
    from buddy.store.behavior import account_equity, read_user_intents
    from buddy.store.strategy import read_entry_facts
    from buddy.store.trades import read_reviews, read_trades, timeframes_by_symbol

    t = None if as_of is None else pd.Timestamp(as_of).tz_convert("UTC")
    with store.reading():
        trades = read_trades(store, user_id)
        intents = read_user_intents(store, user_id, before=None if t is None
                                    else t.to_pydatetime())
        all_intents = read_user_intents(store, user_id)
        facts = read_entry_facts(store, user_id)
        reviews = read_reviews(store, user_id)
        tickers = store.tickers()
        symbols = sorted(set(trades["symbol"]))
        frames = timeframes_by_symbol(store, symbols)
        account = account_equity(store, user_id)
        if t is not None:
            trades = trades[pd.to_datetime(trades["open_ts"], utc=True) <= t]
        trades = trades.reset_index(drop=True)
        intent_tf = dict(zip(all_intents["intent_id"], all_intents["timeframe"], strict=True))
        timeframe = [intent_tf.get(i) if isinstance(i, str) and intent_tf.get(i) else
                     _finest(frames.get(s, [])) for i, s in
                     zip(trades["linked_intent_id"], trades["symbol"], strict=True)]
        bars = {(s, tf): store.bars(s, tf, as_of=None if t is None else t.to_pydatetime())
                for s, tf in sorted({(s, tf) for s, tf in zip(trades["symbol"], timeframe,
                                                              strict=True) if tf})}
    frame = _trade_frame(trades, timeframe, tickers, facts, reviews)
    if t is not None:  # a trade closed after t is open as of t, also for its stop
        frame = _hide_after(frame, t)
    _stop_touches(frame, bars)
    known, since = account if account is not None else (np.nan, None)
    classes = dict(zip(tickers["symbol"], tickers["asset_class"], strict=True))
    return TraderHistory(user_id=user_id, as_of=t, trades=frame,
                         intents=_intent_frame(intents), asset_classes=classes,
                         equity=float(known) if np.isfinite(known) else None,
                         equity_since=since)


def _finest(timeframes: list[str]) -> str | None:
    known = [Timeframe.parse(tf) for tf in timeframes if tf in set(Timeframe)]
    return min(known, key=lambda tf: tf.nominal).value if known else None


def _intent_frame(intents: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({c: intents[c] if c in intents.columns else np.nan
                        for c in INTENT_COLUMNS})
    for c in ("proposed_entry", "proposed_stop", "proposed_size", "proposed_risk_amount"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def _trade_frame(trades: pd.DataFrame, timeframe: list[str | None], tickers: pd.DataFrame,
                 facts: pd.DataFrame, reviews: pd.DataFrame) -> pd.DataFrame:
    classes = dict(zip(tickers["symbol"], tickers["asset_class"], strict=True))
    sign = np.where(trades["side"] == "long", 1.0, -1.0)
    entry = trades["avg_entry"].to_numpy(np.float64)
    qty = trades["qty"].to_numpy(np.float64)
    mult = trades["multiplier"].fillna(1.0).to_numpy(np.float64)
    open_ts = pd.to_datetime(trades["open_ts"], utc=True)
    close_ts = pd.to_datetime(trades["close_ts"], utc=True)
    closed = (trades["status"] == "closed").to_numpy()
    ext = facts.set_index("trade_id")["close_ema20_atr"] * facts.set_index("trade_id")[
        "side_sign"] if len(facts) else pd.Series(dtype="float64")
    score = (reviews.set_index("trade_id")["process_score"] if len(reviews)
             else pd.Series(dtype="float64"))
    score = score[~score.index.duplicated(keep="last")]
    frame = pd.DataFrame({
        "trade_id": trades["trade_id"].astype(str),
        "symbol": trades["symbol"].astype(str),
        "asset_class": trades["symbol"].map(classes).astype(object),
        "side": trades["side"].astype(str), "sign": sign,
        "timeframe": pd.Series(timeframe, dtype=object),
        "intraday": [tf is not None and Timeframe.parse(tf).is_intraday for tf in timeframe],
        "open_ts": open_ts, "close_ts": close_ts.where(closed),
        "session_day": session_day(open_ts).to_numpy(),
        "entry": entry, "qty": qty, "multiplier": mult,
        "initial_stop": pd.to_numeric(trades["initial_stop"]).astype("float64"),
        "risk_amount": pd.to_numeric(trades["initial_risk"]).astype("float64"),
        "notional": entry * qty * mult,
        "pnl": np.where(closed, pd.to_numeric(trades["pnl"]).astype("float64"), np.nan),
        "pnl_r": np.where(closed, pd.to_numeric(trades["pnl_r"]).astype("float64"), np.nan),
        "linked_intent_id": trades["linked_intent_id"].astype(object).where(
            trades["linked_intent_id"].notna(), None),
        "extension_atr": trades["trade_id"].map(ext).astype("float64"),
        "process_score": trades["trade_id"].map(score).astype("float64"),
        "stop_touch_ts": pd.Series(pd.NaT, index=trades.index, dtype="datetime64[ns, UTC]"),
        "stop_touch_open": np.nan, "stop_checked": False})
    frame["risk_amount"] = frame["risk_amount"].where(frame["risk_amount"] > 0)
    return frame


def _ns(values: pd.Series) -> np.ndarray:
    """Return UTC times as int64 nanoseconds (NaT: the int64 minimum)."""
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


def _stop_touches(frame: pd.DataFrame, bars: dict[tuple[str, str], pd.DataFrame]) -> None:
    """Fill stop_touch_ts / stop_touch_open / stop_checked from the bars after each entry.

    Only bars that opened at or after the entry count (the part of the entry bar before the
    fill is not the trade's), and a trade is judged only when the bars reach its close (or
    the data's end while it is open)."""
    open_ns, close_ns = _ns(frame["open_ts"]), _ns(frame["close_ts"])
    is_open = frame["close_ts"].isna().to_numpy()
    touch = np.full(len(frame), np.iinfo(np.int64).min)
    # columns as arrays, written back once (a frame.at per trade cost a third of a read)
    stops = frame["initial_stop"].to_numpy(np.float64)
    signs = frame["sign"].to_numpy(np.float64)
    checked = frame["stop_checked"].to_numpy(bool).copy()
    touch_open = frame["stop_touch_open"].to_numpy(np.float64).copy()
    symbols, timeframes = frame["symbol"].to_numpy(object), frame["timeframe"].to_numpy(object)
    for (symbol, tf), b in bars.items():
        rows = np.flatnonzero((symbols == symbol) & (timeframes == tf) & np.isfinite(stops))
        if b.empty or not len(rows):
            continue
        ts, ts_close = _ns(b["ts"]), _ns(b["ts_close"])
        high, low = b["high"].to_numpy(np.float64), b["low"].to_numpy(np.float64)
        opens = b["open"].to_numpy(np.float64)
        start = np.searchsorted(ts, open_ns[rows], side="left")
        end = np.where(is_open[rows], len(ts), np.searchsorted(ts, close_ns[rows], side="right"))
        covered = (start < len(ts)) & (is_open[rows] | (ts_close[-1] >= close_ns[rows])) & (
            end > start)
        for r, a, z, ok in zip(rows, start, end, covered, strict=True):
            if not ok:
                continue
            checked[r] = True
            stop, sign = stops[r], signs[r]
            adverse = low[a:z] if sign > 0 else high[a:z]
            hit = np.flatnonzero((adverse - stop) * sign <= 0)
            if len(hit):
                j = a + int(hit[0])
                touch[r] = ts_close[j]
                touch_open[r] = opens[j]
    frame["stop_checked"] = checked
    frame["stop_touch_open"] = touch_open
    frame["stop_touch_ts"] = pd.to_datetime(np.where(touch == np.iinfo(np.int64).min,
                                                     np.datetime64("NaT"), touch.astype(
                                                         "datetime64[ns]")), utc=True)
