"""Rebuild a user's trades from their broker fills: group, link, measure R, write.

``rebuild_trades`` is what the import calls inside its transaction (``con``) and what a
trader runs after changing a stop or the matching method. It is idempotent: trade ids come
from (user, symbol, first fill), so rebuilding twice writes the same rows, and reviews,
journal notes and tags stay attached to their trades.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from buddy.store.trades import (
    fill_symbols,
    read_fills,
    read_link_inputs,
    replace_trades,
)
from buddy.trades.grouping import MatchMethod, group_fills
from buddy.trades.linking import DEFAULT_LINK_RULE, LinkRule, link_intents, risk_columns

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from buddy.store import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildSummary:
    """What a rebuild read and wrote."""

    user_id: str
    symbols: tuple[str, ...]
    method: str
    n_fills: int
    n_trades: int
    n_open: int
    n_trade_fills: int
    n_positions: int
    n_linked: int
    n_without_r: int  # trades with no stop known: pnl_r not computed
    ambiguous: dict[str, tuple[str, ...]] = field(default_factory=dict)  # trade -> intents

    def lines(self) -> list[str]:
        """Return the summary as short lines for the command line."""
        out = [f"{self.user_id}: {self.n_fills} fills -> {self.n_trades} trades "
               f"({self.n_open} open, matching {self.method}), {self.n_positions} positions",
               f"linked to intents: {self.n_linked}; without a stop (no R): {self.n_without_r}"]
        out += [f"ambiguous link: trade {t} matches intents {', '.join(i)}"
                for t, i in sorted(self.ambiguous.items())]
        return out


def build_trade_rows(fills: pd.DataFrame, link_inputs: dict, *, method: MatchMethod = "fifo",
                     rule: LinkRule = DEFAULT_LINK_RULE, now: pd.Timestamp | None = None
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (trades, trade_fills, positions) rows built from fills (pure)."""
    built_at = pd.Timestamp.now(tz="UTC") if now is None else now
    grouped = group_fills(fills, method=method, multipliers=link_inputs["multipliers"])
    trades = grouped.trades
    intents = link_inputs["intents"]
    links = link_intents(trades, intents, rule)
    risk = risk_columns(trades, links, intents, link_inputs["user_stops"])
    rows = pd.concat([trades.drop(columns=["gross_pnl", "first_fill_price", "first_fill_id"]),
                      links, risk], axis=1)
    rows["tags_json"] = rows["trade_id"].map(link_inputs["tags"]).astype(object)
    rows["built_at"] = built_at
    open_rows = rows[rows["status"] == "open"]
    positions = pd.DataFrame({
        "user_id": open_rows["user_id"], "symbol": open_rows["symbol"],
        "qty": open_rows["open_position"], "avg_price": open_rows["open_cost_basis"],
        "open_ts": open_rows["open_ts"],
        "unrealized_pnl": np.nan,  # needs a mark price: not computed here
        "risk_est_optional": ((open_rows["open_cost_basis"] - open_rows["initial_stop"]).abs()
                              * open_rows["open_position"].abs() * open_rows["multiplier"]),
        "updated_at": built_at})
    return rows, grouped.trade_fills, positions


def rebuild_trades(store: Store, user_id: str, symbols: Sequence[str] | None = None, *,
                   con: DuckDBPyConnection | None = None, method: MatchMethod = "fifo",
                   rule: LinkRule = DEFAULT_LINK_RULE) -> RebuildSummary:
    """Rebuild ``user_id``'s trades, trade_fills and positions for ``symbols`` (all when None)
    from broker_fills in ONE transaction (``con``'s when given: the caller commits, then
    calls ``store.touch_context_stamp()``)."""
    if con is None:
        with store.transaction() as own:
            summary = _rebuild(own, user_id, symbols, method, rule)
        store.touch_context_stamp()  # positions are part of what a ContextPack reads
        return summary
    return _rebuild(con, user_id, symbols, method, rule)


def _rebuild(con: DuckDBPyConnection, user_id: str, symbols: Sequence[str] | None,
             method: MatchMethod, rule: LinkRule) -> RebuildSummary:
    chosen = tuple(sorted({str(s) for s in symbols})) if symbols else tuple(
        fill_symbols(con, user_id))
    fills = read_fills(con, user_id, chosen)
    trades, trade_fills, positions = build_trade_rows(
        fills, read_link_inputs(con, user_id, chosen), method=method, rule=rule)
    written = replace_trades(con, user_id, chosen, trades, trade_fills, positions)
    ambiguous = trades[trades["link_status"] == "ambiguous"]
    return RebuildSummary(
        user_id=user_id, symbols=chosen, method=method, n_fills=len(fills),
        n_trades=written["trades"], n_open=int((trades["status"] == "open").sum()),
        n_trade_fills=written["trade_fills"], n_positions=written["positions"],
        n_linked=int((trades["link_status"] == "linked").sum()),
        n_without_r=int(trades["pnl_r"].isna().sum()),
        ambiguous={t: tuple(json.loads(c)) for t, c in
                   zip(ambiguous["trade_id"], ambiguous["link_candidates_json"], strict=True)})
