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
    # 'stop' | 'target' | 'time' | 'open' (data ended first) | 'not_filled' (the entry did
    # not trade within the fill window: no trade, no R) | 'trade' (a linked real trade)
    "exit_reason",
    "entry_ts",  # the decision time: ts_close of the signal bar (the intent's as_of)
    "exit_ts",  # ts_close of the exit bar, NaT while open or not filled
    "exit_price",  # float, price (NaN when not filled)
    "realized_r",  # float, R from the fill (NaN when not filled)
    "mae_r",  # float, R (<= 0): maximum adverse excursion from the fill (NaN when not filled)
    "mfe_r",  # float, R (>= 0): maximum favourable excursion from the fill (NaN: not filled)
    "mae_price",  # float, price distance (>= 0)
    "mfe_price",  # float, price distance (>= 0)
    "bars_held",  # int: bars from the fill bar to the exit bar, both counted (0: not filled)
    "win",  # bool: realized_r > 0 (False when not filled)
    "outcome_source",  # 'simulated' | 'trade'
    # (the fill columns come last: migration 0012 added them to existing files)
    "filled",  # bool: the entry order filled (a 'not_filled' row and a pending 'open' one not)
    "fill_ts",  # ts_close of the bar the entry filled on, NaT when not filled
    "fill_price",  # float, price the entry filled at (NaN when not filled)
)

#: Exit reasons with no realized R: excluded from every R statistic (and counted).
UNRESOLVED_EXIT_REASONS: tuple[str, ...] = ("not_filled", "open")

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

# The integer codes of the compact result tables (migration 0015 writes the same lists):
# a stored value is the position in its tuple. Append only: a reordering changes the
# meaning of every stored row.
#: Severities by rank (``buddy.domain.Severity.rank``): replay_results.verdict,
#: module_severity and replay_issues.severity.
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
#: ``buddy.domain.ModuleStatus`` values: replay_results.module_status.
MODULE_STATUSES: tuple[str, ...] = ("ok", "skipped", "error")
#: OUTCOME_COLUMNS' exit_reason values: replay_results.exit_reason.
EXIT_REASONS: tuple[str, ...] = ("stop", "target", "time", "open", "not_filled", "trade")
#: OUTCOME_COLUMNS' outcome_source values: replay_results.outcome_source.
OUTCOME_SOURCES: tuple[str, ...] = ("simulated", "trade")

#: The bar-touch rule, stated once: when one bar's range touches both the stop and the
#: target, the stop is assumed hit first (conservative).
BOTH_TOUCHED_RULE = "stop first"

#: The gap rules of an exit, by name (``replay.outcomes.OutcomeRules.gap_rule``). A bar that
#: opens beyond an exit level trades at its open, not at the level.
GAP_SYMMETRIC = "symmetric"
GAP_CONSERVATIVE = "conservative"
GAP_RULES: dict[str, str] = {
    GAP_SYMMETRIC: "a stop gapped through fills at the (worse) open; a target gapped through "
                   "fills at the (better) open: both at the price the market opened at",
    GAP_CONSERVATIVE: "a stop gapped through fills at the (worse) open; a target gapped "
                      "through fills at the target (no price improvement assumed; a position "
                      "opened beyond its target exits at its fill)",
}
#: The default gap rule.
DEFAULT_GAP_RULE = GAP_SYMMETRIC

#: How each entry order fills (``replay.outcomes``), by order type. Prices are mirrored for
#: shorts: "through" means at or below the entry for a long limit, above for a short one.
FILL_RULES: dict[str, str] = {
    "market": "at the open of the first bar after as_of",
    "limit": "on the first bar within the fill window that trades at or through the entry, "
             "at the entry, or at the bar's open when it opens through it (a limit order "
             "gets the better price of a gap)",
    "stop": "on the first bar within the fill window that trades at or through the entry, "
            "at the entry, or at the bar's open when it opens through it (a stop order gets "
            "the worse price of a gap)",
    "stop_limit": "on the first bar within the fill window whose range holds the entry, at "
                  "the entry (stop and limit both at the entry)",
}
#: Bars after as_of in which a limit, stop or stop-limit entry may fill, by default.
DEFAULT_FILL_WINDOW = 5
