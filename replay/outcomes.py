"""Outcome labelling: what happened after each intent, from the bars after its decision.

The rules, stated once (``OutcomeRules`` holds the two settings: ``fill_window`` and
``gap_rule``):

- The walk starts at the first bar that closes after ``as_of`` (``ts_close > as_of``).
- Fill (``replay.model.FILL_RULES``). Prices are mirrored for shorts (x = direction x price),
  so each rule is stated for a long:
  - market: fills at the open of the first bar after as_of.
  - limit: fills on the first of the ``fill_window`` bars after as_of whose low is at or below
    the entry, at the entry, or at the bar's open when it opens below it (a limit order gets
    the better price of a gap: the improvement is real).
  - stop: fills on the first of those bars whose high is at or above the entry, at the entry,
    or at the bar's open when it opens above it (a stop order gets the worse price).
  - stop_limit: fills on the first of those bars whose range holds the entry, at the entry
    (stop and limit both at the entry).
  When no bar fills it within the window the outcome is 'not_filled': filled False, no fill
  or exit time, exit_price, realized_r, mae_r, mfe_r and the excursions NaN, win False,
  bars_held 0. It is no trade and enters no R statistic (``UNRESOLVED_EXIT_REASONS``). When
  the data ends inside the window with no fill, the order is still pending: 'open', filled
  False, the same NaN values.
- The holding horizon starts at the fill: the trade lasts at most ``holding_horizon`` bars,
  the fill bar being the first. ``bars_held`` counts the bars from the fill bar to the exit
  bar, both included.
- R: a multiple of the planned risk |entry - stop|, measured from the actual fill price and
  signed by direction: realized_r = direction x (exit - fill) / |entry - stop|. The stop and
  target stay at their planned prices.
- The fill bar: a fill at the bar's open (every market fill, every gap fill) is followed by the
  whole bar. A fill inside the bar (at the entry, not at the open) leaves the order of the
  bar's prices unknown, and the fill bar is read conservatively: the stop counts when the bar
  reached it (filled at the stop), the target does not count, MAE takes the bar's adverse
  extreme and MFE only its close.
- Stop: a long is stopped when a bar's low is at or below the stop. It fills at the stop, or
  at the bar's open when a bar that opens after the fill opens through the stop (the worse
  price).
- Target: a long reaches the target when a bar's high is at or above it. It fills at the
  target; when the bar opens beyond it the gap rule (``replay.model.GAP_RULES``) decides:
  ``'symmetric'`` (default): at the bar's open, the better price, as a gap through the stop
  fills at the worse open; ``'conservative'``: at the target (no price improvement assumed),
  except that a position opened beyond its target (filled at a gap's open) exits at its fill.
- Both in one bar: ``BOTH_TOUCHED_RULE``, the stop first (conservative).
- Time stop: neither within ``holding_horizon`` bars from the fill: exit at the close of the
  horizon's last bar.
- Open: the data ends before any of these: exit_reason 'open', realized R at the last close,
  ``exit_ts`` NaT. This is the flag: an open row is not a finished trade.
- Excursions: MAE/MFE are the worst and best prices the trade saw from the fill to the exit,
  as distances from the fill price (price, >= 0) and in R (MAE <= 0, MFE >= 0). Bars before
  the exit bar count whole (the fill bar as stated above). On a stop's bar only the way from
  the open to the fill counts (the stop came first); on a target's bar the whole low counts
  (conservative) but the high only up to the exit price; a time stop's bar counts whole.
- No ``-0.0``: every float output is normalised (+0.0).
- Splits: bars are as traded and the intent's prices are on the basis in force at
  ``as_of`` (``buddy.data.splits``' convention: a split is in force from its ex_date, as_of
  compared by its UTC date). Each later bar is put on that basis: multiplied by the ratios of
  the splits with ``as_of``'s date < ex_date <= the bar's session. A 2:1 split the day after
  an entry at 88 shows the next bar's 44 as 88, not as a 50% fall through the stop. (A
  weekly bar whose week holds an ex_date mixes both bases in its high and low: as traded it
  cannot be put on one basis, and it is scaled by its session, the week's last.)

``label_outcomes`` is vectorised over every intent at once: the bars of the intents' series
are laid end to end, each intent's window starts in its own series and never reaches past
that series' last bar, a [intents x window] block of bar positions is read at once and the
fill, the first stop and the first target touches are found with argmax (no Python work per
series beyond taking its columns). ``label_outcome_scalar`` is the same rules written as a
plain loop over one intent's bars; the tests prove the two agree on thousands of intents over
real data. ``label_with_trades`` replaces the simulated outcome by the real result where an
intent is linked to a closed trade.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from buddy.config import Config, param
from buddy.data.splits import split_factor_as_of
from replay.model import (
    BOTH_TOUCHED_RULE,
    DEFAULT_FILL_WINDOW,
    DEFAULT_GAP_RULE,
    FILL_RULES,
    GAP_CONSERVATIVE,
    GAP_RULES,
    GAP_SYMMETRIC,
    INTENT_COLUMNS,
    OUTCOME_COLUMNS,
)

__all__ = [
    "BOTH_TOUCHED_RULE",
    "GAP_CONSERVATIVE",
    "GAP_RULES",
    "GAP_SYMMETRIC",
    "WINDOW_CELLS",
    "OutcomeRules",
    "label_outcome_scalar",
    "label_outcomes",
    "label_with_trades",
]

#: Upper bound of intents x bars read at once (memory: about 12 float64 arrays of this size).
WINDOW_CELLS = 500_000

_NAT = np.iinfo(np.int64).min
_FLOATS = ("fill_price", "exit_price", "realized_r", "mae_r", "mfe_r", "mae_price",
           "mfe_price")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeRules(Config):
    """How entries fill and gaps exit. ``fill_window``: bars after as_of in which a limit,
    stop or stop-limit entry may fill (a market order fills on the first); ``gap_rule``:
    'symmetric' (a target gapped through fills at the open, as a stop does) or
    'conservative' (a target gapped through fills at the target)."""

    config_name: ClassVar[str] = "outcome_rules"

    fill_window: int = param(DEFAULT_FILL_WINDOW, lo=1, hi=100_000, unit="bars",
                             doc="bars after as_of in which a limit or stop entry may fill")
    gap_rule: str = param(DEFAULT_GAP_RULE, choices=tuple(GAP_RULES),
                          doc="where a target gapped through fills: the open or the target")


_DEFAULT_RULES = OutcomeRules()


@dataclass(frozen=True, slots=True)
class OutcomeBars:
    """The bars of many series laid end to end as arrays, each series by ts_close and its
    prices on the basis of its symbol's last split (``label_outcomes`` puts an intent's
    prices on that basis too): what every labelling of those series reads, prepared once.

    ``of(bars_by_key, corporate_actions)`` prepares them; a run that labels chunk after
    chunk of intents over the same series prepares them once (``label_outcomes`` takes
    either form and gives the same outcomes)."""

    spans: dict[tuple[str, str], tuple[int, int]]  # series -> [start, stop) of the arrays
    ts_close: np.ndarray  # int64 UTC ns
    prices: dict[str, np.ndarray]  # open, high, low, close: float64, divided by the split basis
    splits: pd.DataFrame  # the splits (any symbols)
    last_ex: dict[str, Any]  # per symbol with splits: its last ex_date (the basis)

    @classmethod
    def of(cls, bars_by_key: Mapping[tuple[str, str], pd.DataFrame],
           corporate_actions: pd.DataFrame | None = None) -> OutcomeBars:
        """Prepare ``bars_by_key`` (bars as traded per (symbol, timeframe), at least
        ts_close, session, open, high, low, close) under ``corporate_actions``' splits."""
        splits = _splits(corporate_actions)
        spans: dict[tuple[str, str], tuple[int, int]] = {}
        last_ex: dict[str, Any] = {}
        times: list[np.ndarray] = []
        parts: dict[str, list[np.ndarray]] = {c: [] for c in _PRICES}
        offset = 0
        for (symbol, timeframe), bars in bars_by_key.items():
            if not bars["ts_close"].is_monotonic_increasing:
                bars = bars.sort_values("ts_close", kind="stable")
            ts_close = pd.DatetimeIndex(bars["ts_close"]).as_unit("ns").asi8
            prices = {c: bars[c].to_numpy(dtype=np.float64) for c in _PRICES}
            symbol_splits = splits[splits["symbol"] == str(symbol)] if len(splits) else splits
            if len(symbol_splits):
                last = last_ex[str(symbol)] = symbol_splits["ex_date"].max()
                bar_divisor = split_factor_as_of(bars["session"], symbol_splits, last)
                prices = {c: v / bar_divisor for c, v in prices.items()}
            spans[(str(symbol), str(timeframe))] = (offset, offset + len(ts_close))
            times.append(ts_close)
            for column, values in prices.items():
                parts[column].append(values)
            offset += len(ts_close)
        return cls(spans=spans,
                   ts_close=np.concatenate(times) if times else np.zeros(0, np.int64),
                   prices={c: np.concatenate(v) if v else np.zeros(0) for c, v in parts.items()},
                   splits=splits, last_ex=last_ex)


_PRICES = ("open", "high", "low", "close")


def label_outcomes(intents: pd.DataFrame,
                   bars_by_key: Mapping[tuple[str, str], pd.DataFrame] | OutcomeBars,
                   corporate_actions: pd.DataFrame | None = None,
                   rules: OutcomeRules | None = None) -> pd.DataFrame:
    """Return the simulated outcome of every intent as ``OUTCOME_COLUMNS``, in input order.

    ``intents``: ``INTENT_COLUMNS`` rows. ``bars_by_key``: bars as traded (the store's
    columns, at least ts_close, session, open, high, low, close) per (symbol, timeframe), up to
    whatever the data holds after the intents, or those bars prepared (``OutcomeBars``, whose
    splits are then the ones used). ``corporate_actions``: the splits (any symbols); None when
    there are none. ``rules``: fill window and gap rule (default ``OutcomeRules()``).
    Pure: reads nothing else.
    """
    rules = rules or _DEFAULT_RULES
    _check_intents(intents)
    n = len(intents)
    columns: dict[str, np.ndarray] = {
        "exit_reason": np.empty(n, dtype=object), "filled": np.zeros(n, dtype=bool),
        "fill_ts": np.full(n, _NAT), "exit_ts": np.full(n, _NAT),
        **{c: np.full(n, np.nan) for c in _FLOATS},
        "bars_held": np.zeros(n, dtype=np.int64)}
    groups = intents.groupby(["symbol", "timeframe"], sort=False).indices
    keys = [(str(symbol), str(timeframe)) for symbol, timeframe in groups]
    for key, positions in zip(keys, groups.values(), strict=True):
        if key not in (bars_by_key.spans if isinstance(bars_by_key, OutcomeBars)
                       else bars_by_key):
            raise KeyError(f"bars_by_key: no bars for {key} ({len(positions)} intents)")
    if n:
        bars = bars_by_key if isinstance(bars_by_key, OutcomeBars) else OutcomeBars.of(
            {key: bars_by_key[key] for key in keys}, corporate_actions)
        for name, values in _label_all(intents, groups, bars, rules).items():
            columns[name] = values
    return _outcome_frame(intents["intent_id"].to_numpy(), intents["as_of"], columns)


def _check_intents(intents: pd.DataFrame) -> None:
    missing = [c for c in INTENT_COLUMNS if c not in intents.columns]
    if missing:
        raise ValueError(f"intents: missing columns {missing}")
    sign = np.where(intents["side"].to_numpy() == "long", 1.0, -1.0)
    entry = intents["proposed_entry"].to_numpy(dtype=np.float64)
    stop = intents["proposed_stop"].to_numpy(dtype=np.float64)
    horizon = intents["holding_horizon"].to_numpy()
    bad = ~(sign * (entry - stop) > 0) | ~np.isin(intents["side"].to_numpy(), ["long", "short"])
    bad |= ~(pd.to_numeric(pd.Series(horizon), errors="coerce").to_numpy() >= 1)
    if bad.any():
        ids = intents["intent_id"].to_numpy()[bad][:5].tolist()
        raise ValueError(f"intents: {int(bad.sum())} rows need a side of long/short, a stop on "
                         f"the losing side of the entry and a horizon >= 1 bar (e.g. {ids})")
    order_type = intents["order_type"].astype(str).to_numpy()
    unknown = ~np.isin(order_type, list(FILL_RULES))
    if unknown.any():
        raise ValueError(f"intents.order_type: must be one of {', '.join(FILL_RULES)} "
                         f"(got {order_type[unknown][0]!r} on {int(unknown.sum())} rows)")


def _splits(corporate_actions: pd.DataFrame | None) -> pd.DataFrame:
    if corporate_actions is None or corporate_actions.empty:
        return pd.DataFrame({"symbol": pd.Series(dtype="str"),
                             "ex_date": pd.Series(dtype="datetime64[s]"),
                             "action": pd.Series(dtype="str"),
                             "ratio": pd.Series(dtype="float64")})
    return corporate_actions[corporate_actions["action"] == "split"]


def _label_all(intents: pd.DataFrame, groups: Mapping[Any, np.ndarray], bars: OutcomeBars,
               rules: OutcomeRules) -> dict[str, np.ndarray]:
    """Label every intent in one walk over the series laid end to end (``bars``), each
    intent's window starting in its own series and never reaching past that series' last
    bar."""
    n = len(intents)
    as_of = pd.DatetimeIndex(intents["as_of"]).tz_convert("UTC")
    as_of_ns = as_of.as_unit("ns").asi8
    start, available = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    entry_scale = np.ones(n)
    splits = bars.splits
    for (symbol, timeframe), positions in groups.items():
        a, b = bars.spans[(str(symbol), str(timeframe))]
        last_ex = bars.last_ex.get(str(symbol))
        if last_ex is not None:
            symbol_splits = splits[splits["symbol"] == str(symbol)]
            entry_scale[positions] = split_factor_as_of(as_of[positions], symbol_splits,
                                                        last_ex)
        first = np.searchsorted(bars.ts_close[a:b], as_of_ns[positions], side="right")
        start[positions] = a + first
        available[positions] = (b - a) - first
    every_ts_close, every_price = bars.ts_close, bars.prices
    horizon = intents["holding_horizon"].to_numpy().astype(np.int64)
    order_type = intents["order_type"].astype(str).to_numpy()
    window = np.where(order_type == "market", 1, rules.fill_window).astype(np.int64)
    # the fill may come on the window's last bar and the trade lasts a horizon from there
    span = np.minimum(window - 1 + horizon, available)
    direction = np.where(intents["side"].to_numpy() == "long", 1.0, -1.0)
    order = np.argsort(span, kind="stable")
    result = {name: np.empty(n, dtype=dtype) for name, dtype in (
        ("exit_reason", object), ("filled", bool), ("fill_ts", np.int64),
        ("exit_ts", np.int64), *((c, np.float64) for c in _FLOATS), ("bars_held", np.int64))}
    columns = {c: intents[c].to_numpy(dtype=np.float64)
               for c in ("proposed_entry", "proposed_stop", "proposed_target")}
    for chunk in _chunks(span[order]):
        rows = order[chunk]
        walked = _walk(every_price, every_ts_close, start=start[rows], span=span[rows],
                       available=available[rows], window=window[rows], horizon=horizon[rows],
                       order_type=order_type[rows], direction=direction[rows],
                       scale=entry_scale[rows], entry=columns["proposed_entry"][rows],
                       stop=columns["proposed_stop"][rows],
                       target=columns["proposed_target"][rows],
                       gap_at_open=rules.gap_rule == GAP_SYMMETRIC)
        for name, values in walked.items():
            result[name][rows] = values
    return result


def _chunks(sorted_span: np.ndarray) -> list[slice]:
    """Split positions (sorted by span) into slices of at most WINDOW_CELLS window cells (a
    slice of one row may hold more): each slice is the longest run from its first row
    whose rows times the widest span stay within them."""
    chunks, first, n = [], 0, len(sorted_span)
    widths = np.maximum(sorted_span.astype(np.int64), 1)
    while first < n:
        # spans ascend, so a slice's cells are its rows times its last span; no slice holds
        # more than WINDOW_CELLS rows of at least one cell each
        stop = min(n, first + WINDOW_CELLS + 1)
        cells = np.arange(1, stop - first + 1, dtype=np.int64) * widths[first:stop]
        over = np.flatnonzero(cells[1:] > WINDOW_CELLS)
        size = int(over[0]) + 1 if len(over) else stop - first
        chunks.append(slice(first, first + size))
        first += size
    return chunks


def _first(mask: np.ndarray, none: int) -> np.ndarray:
    """Return each row's first True column, ``none`` where a row has none."""
    return np.where(mask.any(axis=1), mask.argmax(axis=1), none)


def _walk(prices: Mapping[str, np.ndarray], ts_close: np.ndarray, *, start: np.ndarray,
          span: np.ndarray, available: np.ndarray, window: np.ndarray, horizon: np.ndarray,
          order_type: np.ndarray, direction: np.ndarray, scale: np.ndarray,
          entry: np.ndarray, stop: np.ndarray, target: np.ndarray,
          gap_at_open: bool) -> dict[str, np.ndarray]:
    """Walk a [intents x bars] window. Prices are mirrored for shorts (x = direction x price)
    so one set of long-side comparisons serves both sides."""
    n_intents = len(start)
    width = max(int(span.max()) if n_intents else 0, 1)
    offsets = np.arange(width)
    index = np.minimum(start[:, None] + offsets, max(len(ts_close) - 1, 0))
    valid = offsets < span[:, None]
    if len(ts_close):
        factor = (scale * direction)[:, None]
        is_long = (direction > 0)[:, None]
        low, high = prices["low"][index] * factor, prices["high"][index] * factor
        lo_x, hi_x = np.where(is_long, low, high), np.where(is_long, high, low)
        open_x, close_x = prices["open"][index] * factor, prices["close"][index] * factor
    else:
        lo_x = hi_x = open_x = close_x = np.zeros((n_intents, width))
    entry_x, stop_x, target_x = entry * direction, stop * direction, target * direction
    rows = np.arange(n_intents)

    # --- the fill
    in_window = valid & (offsets < window[:, None])
    at_or_below, at_or_above = lo_x <= entry_x[:, None], hi_x >= entry_x[:, None]
    trades_through = np.select(
        [(order_type == "market")[:, None], (order_type == "limit")[:, None],
         (order_type == "stop")[:, None]],
        [np.ones_like(in_window), at_or_below, at_or_above], at_or_below & at_or_above)
    k_fill = _first(in_window & trades_through, width)
    filled = k_fill < width
    f = np.where(filled, k_fill, 0)
    open_f = open_x[rows, f]
    fill_x = np.select([order_type == "market", order_type == "limit", order_type == "stop"],
                       [open_f, np.minimum(open_f, entry_x), np.maximum(open_f, entry_x)],
                       entry_x)
    at_open = fill_x == open_f

    # --- the trade, from the fill bar for at most a horizon
    last = np.minimum(f + horizon, available)  # first offset past the trade
    live = filled[:, None] & (offsets >= f[:, None]) & (offsets < last[:, None])
    fill_bar = offsets == f[:, None]
    inside = fill_bar & ~at_open[:, None]  # the bar the entry filled inside, not at its open
    stop_touch = live & (lo_x <= stop_x[:, None])
    target_touch = live & (hi_x >= target_x[:, None]) & ~inside
    k_stop, k_target = _first(stop_touch, width + 1), _first(target_touch, width + 1)
    is_stop = filled & (k_stop <= np.minimum(k_target, width))  # BOTH_TOUCHED_RULE
    is_target = filled & ~is_stop & (k_target <= width)
    is_time = filled & ~is_stop & ~is_target & (f + horizon <= available)
    is_open = filled & ~is_stop & ~is_target & ~is_time
    k_exit = np.where(is_stop, k_stop, np.where(is_target, k_target, last - 1))
    k = np.clip(k_exit, 0, width - 1)
    open_k, low_k, close_k = open_x[rows, k], lo_x[rows, k], close_x[rows, k]
    exit_inside = (k == f) & ~at_open
    stop_fill = np.where(exit_inside, stop_x, np.minimum(open_k, stop_x))
    # a position opened beyond its target (at a gap's open) exits at once at its fill
    target_fill = np.maximum(open_k if gap_at_open else target_x, np.maximum(target_x, fill_x))
    # bars before the exit bar count whole (stop and target exits), every bar otherwise
    through = np.where(is_stop | is_target, k_exit, last)
    whole = live & (offsets < through[:, None])
    favourable = np.where(inside, close_x, hi_x)
    worst = np.minimum(fill_x, np.where(whole, lo_x, np.inf).min(axis=1))
    best = np.maximum(fill_x, np.where(whole, favourable, -np.inf).max(axis=1))
    worst = np.where(is_stop, np.minimum(worst, stop_fill),
                     np.where(is_target, np.minimum(worst, low_k), worst))
    best = np.where(is_stop & ~exit_inside, np.maximum(best, open_k),
                    np.where(is_target, np.maximum(best, target_fill), best))
    exit_x = np.where(is_stop, stop_fill, np.where(is_target, target_fill, close_k))
    risk = np.abs(entry - stop)
    mae_price, mfe_price = fill_x - worst, best - fill_x
    pending = ~filled & (available < window)
    reason = np.select([is_stop, is_target, is_time, is_open, pending],
                       ["stop", "target", "time", "open", "open"], "not_filled")
    nan = np.full(n_intents, np.nan)
    return {
        "exit_reason": reason.astype(object), "filled": filled,
        "fill_ts": np.where(filled, ts_close[index[rows, f]] if len(ts_close) else _NAT, _NAT),
        "exit_ts": np.where(is_stop | is_target | is_time,
                            ts_close[index[rows, k]] if len(ts_close) else _NAT, _NAT),
        "fill_price": np.where(filled, fill_x * direction, nan),
        "exit_price": np.where(filled, exit_x * direction, nan),
        "realized_r": np.where(filled, (exit_x - fill_x) / risk, nan),
        "mae_r": np.where(filled, -mae_price / risk, nan),
        "mfe_r": np.where(filled, mfe_price / risk, nan),
        "mae_price": np.where(filled, mae_price, nan),
        "mfe_price": np.where(filled, mfe_price, nan),
        "bars_held": np.where(filled, k_exit - f + 1, 0).astype(np.int64),
    }


def _outcome_frame(intent_ids: np.ndarray, as_of: pd.Series,
                   columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    def stamps(values: np.ndarray) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(pd.to_datetime(np.asarray(values, dtype="int64"), unit="ns",
                                               utc=True)).as_unit("us")

    filled = np.asarray(columns["filled"], dtype=bool)
    frame = pd.DataFrame({
        "intent_id": pd.array(intent_ids, dtype="str"),
        "exit_reason": pd.array(columns["exit_reason"], dtype="str"),
        "entry_ts": pd.DatetimeIndex(as_of).tz_convert("UTC").as_unit("us"),
        "filled": filled,
        "fill_ts": stamps(columns["fill_ts"]),
        "fill_price": np.asarray(columns["fill_price"], dtype=np.float64) + 0.0,
        "exit_ts": stamps(columns["exit_ts"]),
        # + 0.0: no -0.0 in outputs (an excursion of nothing, negated, is -0.0)
        **{c: np.asarray(columns[c], dtype=np.float64) + 0.0 for c in (
            "exit_price", "realized_r", "mae_r", "mfe_r", "mae_price", "mfe_price")},
        "bars_held": pd.array(columns["bars_held"], dtype="Int64"),
    })
    frame["win"] = filled & (frame["realized_r"].fillna(0.0).to_numpy() > 0)
    frame["outcome_source"] = "simulated"
    return frame.loc[:, list(OUTCOME_COLUMNS)]


def label_outcome_scalar(intent_row: Mapping[str, Any], bars: pd.DataFrame,
                         corporate_actions: pd.DataFrame | None = None,
                         rules: OutcomeRules | None = None) -> dict[str, Any]:
    """Return one intent's outcome (``OUTCOME_COLUMNS`` as a dict): the reference loop.

    The same rules as ``label_outcomes``, written bar by bar for one intent and its series'
    bars, so the vectorised path has something plain to be checked against.
    """
    rules = rules or _DEFAULT_RULES
    sign = 1.0 if intent_row["side"] == "long" else -1.0
    # mirrored prices (x = sign x price): a short's rules are a long's on -price
    entry = sign * float(intent_row["proposed_entry"])
    stop = sign * float(intent_row["proposed_stop"])
    target = sign * float(intent_row["proposed_target"])
    has_target = not math.isnan(target)
    horizon = int(intent_row["holding_horizon"])
    order_type = str(intent_row["order_type"])
    window = 1 if order_type == "market" else rules.fill_window
    as_of = pd.Timestamp(intent_row["as_of"]).tz_convert("UTC")
    as_of_date = np.datetime64(as_of.tz_localize(None).normalize(), "D")
    splits = []
    if corporate_actions is not None:
        actions = zip(*(corporate_actions[c].tolist() for c in ("symbol", "action", "ex_date",
                                                                "ratio")), strict=True)
        for symbol, action, ex_date, ratio in actions:
            if symbol == intent_row["symbol"] and action == "split":
                splits.append((np.datetime64(pd.Timestamp(ex_date), "D"), float(ratio)))
    risk = abs(entry - stop)
    if not bars["ts_close"].is_monotonic_increasing:
        bars = bars.sort_values("ts_close", kind="stable")
    first = int(bars["ts_close"].searchsorted(as_of, side="right"))
    after = slice(first, len(bars))
    opens, highs, lows, closes = (bars[c].to_numpy(dtype=np.float64)[after].tolist()
                                  for c in ("open", "high", "low", "close"))
    sessions = bars["session"].to_numpy()[after].astype("datetime64[D]")
    stamps = bars["ts_close"].iloc[first:].tolist()

    def bar(j: int) -> tuple[float, float, float, float]:
        """Bar j after as_of on the as_of basis, mirrored: (open, low, high, close) in x."""
        bar_open, high, low, close = opens[j], highs[j], lows[j], closes[j]
        for ex_date, ratio in splits:
            if as_of_date < ex_date <= sessions[j]:
                bar_open, high, low, close = (bar_open * ratio, high * ratio, low * ratio,
                                              close * ratio)
        if sign > 0:
            return bar_open, low, high, close
        return -bar_open, -high, -low, -close

    fill_bar, fill = -1, math.nan
    for j in range(min(window, len(opens))):
        bar_open, low, high, _ = bar(j)
        if order_type == "market":
            fill_bar, fill = j, bar_open
        elif order_type == "limit" and low <= entry:
            fill_bar, fill = j, min(bar_open, entry)
        elif order_type == "stop" and high >= entry:
            fill_bar, fill = j, max(bar_open, entry)
        elif order_type == "stop_limit" and low <= entry <= high:
            fill_bar, fill = j, entry
        if fill_bar >= 0:
            break
    if fill_bar < 0:
        return {
            "intent_id": intent_row["intent_id"],
            "exit_reason": "open" if len(opens) < window else "not_filled",
            "entry_ts": pd.Timestamp(as_of), "filled": False, "fill_ts": pd.NaT,
            "fill_price": math.nan, "exit_ts": pd.NaT, "exit_price": math.nan,
            "realized_r": math.nan, "mae_r": math.nan, "mfe_r": math.nan,
            "mae_price": math.nan, "mfe_price": math.nan, "bars_held": 0, "win": False,
            "outcome_source": "simulated"}

    worst = best = fill  # the worst and best mirrored prices since the fill
    reason, exit_price, exit_bar, held = "open", math.nan, -1, 0
    for j in range(fill_bar, min(fill_bar + horizon, len(opens))):
        bar_open, low, high, close = bar(j)
        inside = j == fill_bar and fill != bar_open  # filled within the bar, not at its open
        held += 1
        if low <= stop:
            exit_price = stop if inside else min(bar_open, stop)
            worst = min(worst, exit_price)
            if not inside:
                best = max(best, bar_open)
            reason, exit_bar = "stop", j
            break
        if has_target and not inside and high >= target:
            exit_price = max(bar_open if rules.gap_rule == GAP_SYMMETRIC else target,
                             target, fill)
            worst, best = min(worst, low), max(best, exit_price)
            reason, exit_bar = "target", j
            break
        worst = min(worst, low)
        best = max(best, close if inside else high)
        exit_price = close
        if held == horizon:
            reason, exit_bar = "time", j
            break
    realized_r = (exit_price - fill) / risk
    return {
        "intent_id": intent_row["intent_id"], "exit_reason": reason,
        "entry_ts": pd.Timestamp(as_of), "filled": True,
        "fill_ts": pd.Timestamp(stamps[fill_bar]), "fill_price": sign * fill + 0.0,
        "exit_ts": pd.NaT if reason == "open" else pd.Timestamp(stamps[exit_bar]),
        "exit_price": sign * exit_price + 0.0, "realized_r": realized_r + 0.0,
        "mae_r": -(fill - worst) / risk + 0.0, "mfe_r": (best - fill) / risk + 0.0,
        "mae_price": fill - worst + 0.0, "mfe_price": best - fill + 0.0, "bars_held": held,
        "win": realized_r > 0, "outcome_source": "simulated",
    }


def label_with_trades(outcomes: pd.DataFrame, trades: pd.DataFrame,
                      intents: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return ``outcomes`` with each intent linked to a closed real trade given that trade's
    actual result: exit_reason and outcome_source 'trade', filled, fill_ts = open_ts,
    fill_price = avg_entry, exit_ts = close_ts, exit_price = avg_exit, realized_r = pnl_r.

    Links come from ``trades.linked_intent_id`` and, when ``intents`` is given, from its
    ``linked_trade_id`` (which wins). With ``intents`` a missing pnl_r is computed from the
    fills and the intent's stop. MAE/MFE and bars held are unknown from a trade record (NaN /
    NA). Trades still open, or without an R, leave the simulated outcome in place.
    """
    result = outcomes.copy()
    if trades.empty or result.empty:
        return result
    trades = trades.sort_values(["open_ts", "trade_id"], kind="stable")
    linked = trades[trades["linked_intent_id"].notna()].drop_duplicates("linked_intent_id")
    trade_of = pd.Series(linked["trade_id"].to_numpy(), index=linked["linked_intent_id"]
                         ).reindex(result["intent_id"])
    if intents is not None:
        named = intents.set_index("intent_id")["linked_trade_id"].reindex(result["intent_id"])
        trade_of = named.where(named.notna(), trade_of)
    chosen = trades.drop_duplicates("trade_id").set_index("trade_id").reindex(
        trade_of.to_numpy())
    realized_r = chosen["pnl_r"].to_numpy(dtype=np.float64)
    if intents is not None:
        rows = intents.set_index("intent_id").reindex(result["intent_id"])
        sign = np.where(rows["side"].to_numpy() == "long", 1.0, -1.0)
        risk = np.abs(rows["proposed_entry"].to_numpy(dtype=np.float64)
                      - rows["proposed_stop"].to_numpy(dtype=np.float64))
        from_fills = sign * (chosen["avg_exit"].to_numpy(dtype=np.float64)
                             - chosen["avg_entry"].to_numpy(dtype=np.float64)) / risk
        realized_r = np.where(np.isnan(realized_r), from_fills, realized_r)
    close_ts = pd.DatetimeIndex(pd.to_datetime(chosen["close_ts"], utc=True))
    use = (~np.isnan(realized_r) & ~np.asarray(close_ts.isna())
           & ~np.isnan(chosen["avg_exit"].to_numpy(dtype=np.float64)))
    if not use.any():
        return result
    result.loc[use, "exit_reason"] = "trade"
    # a real trade is a filled entry: at its open time and average entry price
    result.loc[use, "filled"] = True
    result.loc[use, "fill_ts"] = pd.DatetimeIndex(pd.to_datetime(chosen["open_ts"], utc=True)
                                                  )[use].as_unit("us")
    result.loc[use, "fill_price"] = chosen["avg_entry"].to_numpy(dtype=np.float64)[use]
    result.loc[use, "exit_ts"] = close_ts[use].as_unit("us")
    result.loc[use, "exit_price"] = chosen["avg_exit"].to_numpy(dtype=np.float64)[use]
    result.loc[use, "realized_r"] = realized_r[use]
    for column in ("mae_r", "mfe_r", "mae_price", "mfe_price"):
        result.loc[use, column] = np.nan
    result["bars_held"] = result["bars_held"].astype("Int64")
    result.loc[use, "bars_held"] = pd.NA
    result.loc[use, "win"] = realized_r[use] > 0
    result.loc[use, "outcome_source"] = "trade"
    return result[list(OUTCOME_COLUMNS)]
