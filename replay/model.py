"""Column contracts shared by intent sources, outcome labelling, the replay engine and
calibration. Frames are pandas DataFrames with exactly these columns, in this order.

Time: timezone-aware UTC. Prices: as traded at the intent's as_of (the basis the ContextPack
uses). R: a multiple of the initial risk |entry - stop|, signed by the trade's direction.
"""

from __future__ import annotations

#: A replayable intent: the trade_intents columns plus where it came from.
INTENT_COLUMNS: tuple[str, ...] = (
    "intent_id",  # str, unique within a run
    "user_id",  # str
    "symbol",  # str
    "side",  # 'long' | 'short'
    "timeframe",  # Timeframe value
    "as_of",  # decision time: the close of the signal bar (ts_close), UTC
    "proposed_entry",  # float, price
    "proposed_stop",  # float, price (replayed intents always carry a stop)
    "proposed_target",  # float or NaN
    "proposed_size",  # float, units
    "holding_horizon",  # int, bars (the time stop)
    "order_type",  # OrderType value
    "source",  # 'generator:<name>' | 'database' | 'import:<file>'
    "linked_trade_id",  # str or None: a real trade whose actual result is the outcome
)

#: The outcome of one intent, from the bars after entry (or the linked real trade).
OUTCOME_COLUMNS: tuple[str, ...] = (
    "intent_id",
    "exit_reason",  # 'stop' | 'target' | 'time' | 'open' (data ended first) | 'trade' (real)
    "entry_ts",  # ts_close of the bar the entry is taken at (the signal bar: fill at entry)
    "exit_ts",  # ts_close of the exit bar, NaT while open
    "exit_price",  # float, price
    "realized_r",  # float, R
    "mae_r",  # float, R (<= 0): maximum adverse excursion
    "mfe_r",  # float, R (>= 0): maximum favourable excursion
    "mae_price",  # float, price distance (>= 0)
    "mfe_price",  # float, price distance (>= 0)
    "bars_held",  # int
    "win",  # bool: realized_r > 0
    "outcome_source",  # 'simulated' | 'trade'
)

#: One row per replayed intent: the orchestrator's verdict joined to the outcome.
RESULT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "intent_id",
    "symbol",
    "timeframe",
    "side",
    "as_of",
    "overall_score",  # 0-100 or NaN when no module scored
    "overall_severity",
    "n_issues",
    # + one 'score__<module>' column per module in the config (NaN when skipped/errored)
    # + the OUTCOME_COLUMNS after intent_id
)

#: One row per (intent, issue) fired: the flag-to-outcome table.
ISSUE_COLUMNS: tuple[str, ...] = ("run_id", "intent_id", "module", "code", "severity")

#: The bar-touch rule, stated once: when one bar's range touches both the stop and the
#: target, the stop is assumed hit first (conservative). A gap through the stop fills at the
#: bar's open, not at the stop.
BOTH_TOUCHED_RULE = "stop first"
