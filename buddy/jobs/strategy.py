"""The entry-facts job: compute ``trade_entry_facts`` for trades new or rebuilt since.

A trade's facts are recomputed when it has none, when they were made under another
``FACTS_VERSION``, or when the trade was rebuilt after them (``trades.built_at`` differs from
the stored ``trade_built_at``); rows of trades that no longer exist are deleted. Each trade
becomes an intent row as of its open (``buddy.strategy.facts.trades_as_intents``) and goes
through ``build_batch_context`` with the levels and mtfa providers, then ``entry_facts``.

The levels piece is read from the key_levels table; computed on demand per as_of it costs
about 40 ms a trade, so the job first brings key_levels up to date for the series the trades
need (``run_levels_job``, incremental: one run over the demo's series takes about 1 s, a
second run writes nothing). Levels at t read only bars closed by t, so storing them ahead
leaks nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from buddy.store import Store
from buddy.store.accounts import equity_as_of
from buddy.store.strategy import (
    ENTRY_FACTS_COLUMNS,
    entry_facts_users,
    remove_orphan_entry_facts,
    trades_for_facts,
    write_entry_facts,
)
from buddy.store.trades import timeframes_by_symbol
from buddy.strategy.facts import FACTS_VERSION, entry_facts, outcome_columns, trades_as_intents
from buddy.timeframes import Timeframe

__all__ = ["FactsJobResult", "refresh_entry_facts", "trade_entry_facts"]


@dataclass(frozen=True, slots=True)
class FactsJobResult:
    """What an entry-facts run did: users and trades examined, rows written and removed, the
    trades whose embedding is incomplete (a feature NaN: no stop, no target, short history)
    and the seconds it took."""

    users: int
    trades_refreshed: int
    rows_removed: int
    incomplete: int
    seconds: float

    def __str__(self) -> str:
        return (f"entry facts: {self.trades_refreshed} trades of {self.users} users refreshed "
                f"({self.incomplete} with an incomplete embedding), {self.rows_removed} stale "
                f"rows removed; {self.seconds:.1f} s")


def trade_entry_facts(store: Store, trades: pd.DataFrame, *, progress: bool = False,
                      update_levels: bool = True) -> pd.DataFrame:
    """Return the trade_entry_facts rows (ENTRY_FACTS_COLUMNS, without writing them) of
    ``trades`` (rows of ``trades_for_facts``: trades with ``intent_timeframe`` and
    ``intent_target``). ``update_levels``: bring key_levels up to date first."""
    from buddy.batch.builder import build_batch_context
    from buddy.jobs.levels import run_levels_job
    from buddy.levels.provider import levels_provider
    from buddy.mtfa.provider import mtfa_provider

    trades = trades.reset_index(drop=True)
    n = len(trades)
    symbols = sorted(set(trades["symbol"].astype(str)))
    finest = {s: min(tfs, key=lambda t: Timeframe.parse(t).nominal)
              for s, tfs in timeframes_by_symbol(store, symbols).items()}
    intents = trades_as_intents(trades, finest)
    usable = np.flatnonzero(intents["timeframe"].notna().to_numpy())
    facts = pd.DataFrame(index=range(n))
    if len(usable):
        if update_levels:
            series = intents.iloc[usable][["symbol", "timeframe"]].drop_duplicates()
            run_levels_job(store, symbols=sorted(set(series["symbol"])),
                           timeframes=sorted(set(series["timeframe"])), workers=1,
                           progress=progress)
        ctx = build_batch_context(store, intents.iloc[usable].reset_index(drop=True),
                                  providers={"levels": levels_provider, "mtfa": mtfa_provider})
        found = entry_facts(ctx)
        found.index = usable
        facts = found.reindex(range(n))
    # a trade whose symbol has no bars still has its side, symbol and times
    facts["side_sign"] = np.where(trades["side"].to_numpy() == "long", 1.0, -1.0)
    facts["symbol"] = trades["symbol"].astype(str).to_numpy()
    facts["side"] = trades["side"].astype(str).to_numpy()
    facts["timeframe"] = intents["timeframe"].to_numpy()
    facts["regime"] = facts["regime"].astype(object).where(facts["regime"].notna(), None)
    equity = equity_as_of(store, trades["user_id"].astype(str).tolist(), trades["open_ts"])
    currency = store.tickers().set_index("symbol")["currency"]
    quote = trades["symbol"].map(currency).to_numpy(object)
    # a notional in another currency than the account's is not comparable: not checked
    same = quote == equity["base_currency"].to_numpy(object)
    outcome = outcome_columns(trades, np.where(same, equity["equity"].to_numpy(np.float64),
                                               np.nan))
    now = pd.Timestamp.now(tz="UTC")
    out = pd.concat([outcome.drop(columns=["trade_id"]), facts.reset_index(drop=True)], axis=1)
    out["user_id"] = trades["user_id"].astype(str).to_numpy()
    out["trade_id"] = trades["trade_id"].astype(str).to_numpy()
    out["intent_id"] = trades["linked_intent_id"].astype(object).where(
        trades["linked_intent_id"].notna(), None).to_numpy()
    out["facts_version"] = FACTS_VERSION
    out["trade_built_at"] = pd.to_datetime(trades["built_at"], utc=True).to_numpy()
    out["trade_built_at"] = pd.to_datetime(out["trade_built_at"], utc=True)
    out["computed_at"] = now
    return out[list(ENTRY_FACTS_COLUMNS)]


def refresh_entry_facts(store: Store, user_id: str | None = None, *, progress: bool = False
                        ) -> FactsJobResult:
    """Compute and store the entry facts of ``user_id``'s trades (all users when None) that
    have none, have them under another FACTS_VERSION, or were rebuilt since; delete rows of
    trades that no longer exist. Each user's rows are written in one transaction."""
    from buddy.strategy.facts import EMBEDDING_FEATURES

    started = time.perf_counter()
    users = [user_id] if user_id is not None else entry_facts_users(store)
    refreshed = incomplete = 0
    removed = remove_orphan_entry_facts(store, user_id)
    for user in users:
        trades = trades_for_facts(store, user, FACTS_VERSION)
        if trades.empty:
            continue
        rows = trade_entry_facts(store, trades, progress=progress)
        write_entry_facts(store, rows)
        refreshed += len(rows)
        incomplete += int(rows[list(EMBEDDING_FEATURES)].isna().any(axis=1).sum())
    return FactsJobResult(users=len(users), trades_refreshed=refreshed, rows_removed=removed,
                          incomplete=incomplete, seconds=time.perf_counter() - started)
