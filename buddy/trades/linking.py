"""Trades to the intents that preceded them, and R against the initial risk.

The match rule (``LinkRule``): an intent is a candidate for a trade when it has the same
user, symbol and side, its decision time ``as_of`` is at or before the trade's first fill
and no more than ``window`` before it, and its proposed entry is within
``max_entry_distance_pct`` percent of the first fill's price. An intent belongs to the
earliest trade it is a candidate of (a re-entry later in the window is not the trade the
intent planned). A trade that is the earliest of exactly one intent is linked to it; a trade
that is the earliest of several is reported as ambiguous and left unlinked: the buddy never
picks one silently.

R: the initial risk is |avg_entry - stop| x units entered x multiplier, with the linked
intent's stop, else a stop the trader gave for the trade; with neither, pnl_r stays NULL and
``r_source`` says 'none' (a stop on the wrong side of the entry says 'stop_wrong_side').
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

#: |pnl_r| below this is a scratch, R.
SCRATCH_R = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkRule:
    """How close an intent must be to a trade to be linked to it."""

    window: timedelta = timedelta(days=3)  # intent as_of at most this long before the fill
    max_entry_distance_pct: float = 2.0  # |first fill - proposed entry| / proposed entry, %


DEFAULT_LINK_RULE = LinkRule()


def link_intents(trades: pd.DataFrame, intents: pd.DataFrame,
                 rule: LinkRule = DEFAULT_LINK_RULE) -> pd.DataFrame:
    """Return per trade (in ``trades`` order): linked_intent_id, link_status
    (linked | ambiguous | none) and link_candidates_json (the candidates when ambiguous)."""
    out = pd.DataFrame({"linked_intent_id": pd.Series([None] * len(trades), dtype=object),
                        "link_status": "none",
                        "link_candidates_json": pd.Series([None] * len(trades), dtype=object)},
                       index=trades.index)
    if trades.empty or intents.empty:
        return out
    left = trades[["trade_id", "symbol", "side", "open_ts", "first_fill_price"]].reset_index()
    pairs = left.merge(intents[["intent_id", "symbol", "side", "as_of", "proposed_entry"]],
                       on=["symbol", "side"])
    open_ts = pd.to_datetime(pairs["open_ts"], utc=True)
    as_of = pd.to_datetime(pairs["as_of"], utc=True)
    distance_pct = (100 * (pairs["first_fill_price"] - pairs["proposed_entry"]).abs()
                    / pairs["proposed_entry"].abs())
    pairs = pairs[(as_of <= open_ts) & (open_ts - as_of <= rule.window)
                  & (distance_pct <= rule.max_entry_distance_pct)]
    if pairs.empty:
        return out
    pairs = pairs.assign(open_ts=pd.to_datetime(pairs["open_ts"], utc=True)).sort_values(
        ["open_ts", "trade_id"], kind="stable")
    pairs = pairs.drop_duplicates("intent_id", keep="first")  # each intent: its first trade
    per_trade = pairs.groupby("index")["intent_id"].agg(list)
    for index, candidates in per_trade.items():
        if len(candidates) == 1:
            out.at[index, "linked_intent_id"] = candidates[0]
            out.at[index, "link_status"] = "linked"
        else:
            out.at[index, "link_status"] = "ambiguous"
            out.at[index, "link_candidates_json"] = json.dumps(sorted(candidates))
    return out


def risk_columns(trades: pd.DataFrame, links: pd.DataFrame, intents: pd.DataFrame,
                 user_stops: dict[str, float]) -> pd.DataFrame:
    """Return initial_stop, initial_risk, r_source, pnl_r, slippage_est and outcome_label per
    trade (same index as ``trades``)."""
    by_id = intents.set_index("intent_id") if len(intents) else pd.DataFrame()
    linked = links["linked_intent_id"]
    has_link = linked.notna()

    def intent_value(column: str) -> pd.Series:
        if by_id.empty:
            return pd.Series(np.nan, index=trades.index)
        return linked.map(by_id[column]).astype(float)

    intent_stop = intent_value("proposed_stop")
    intent_entry = intent_value("proposed_entry")
    user_stop = trades["trade_id"].map(user_stops).astype(float)
    stop = intent_stop.where(intent_stop.notna(), user_stop)
    source = np.where(intent_stop.notna(), "intent", np.where(user_stop.notna(), "user", "none"))
    direction = np.where(trades["side"] == "long", 1.0, -1.0)
    risk_per_unit = (trades["avg_entry"] - stop) * direction
    wrong_side = stop.notna() & (risk_per_unit <= 0)
    source = np.where(wrong_side, "stop_wrong_side", source)
    risk = (risk_per_unit * trades["qty"] * trades["multiplier"]).where(~wrong_side)
    pnl_r = trades["pnl"] / risk
    closed = trades["status"] == "closed"
    label = np.where(pnl_r.notna(),
                     np.where(pnl_r.abs() < SCRATCH_R, "scratch",
                              np.where(pnl_r > 0, "win", "loss")),
                     np.where(trades["pnl"] > 0, "win",
                              np.where(trades["pnl"] < 0, "loss", "scratch")))
    return pd.DataFrame({
        "initial_stop": stop,
        "initial_risk": risk,
        "r_source": source,
        "pnl_r": pnl_r,
        "slippage_est": ((trades["first_fill_price"] - intent_entry) * direction
                         ).where(has_link),
        "outcome_label": pd.Series(label, index=trades.index, dtype=object).where(closed),
    }, index=trades.index)
