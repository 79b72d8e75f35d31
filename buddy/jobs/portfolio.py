"""Portfolio Exposure Builder: write a user's exposure snapshots at each session close over a
date range and at each position change (a fill, an imported statement).

Session closes are the close times of the daily bars of the symbols the user has traded or
stated (``ts_close`` of each distinct daily bar in the range); a position change is the time
of a fill or a statement. Each snapshot as of t reads only what was known at t
(``buddy.portfolio.state``); rows replace those at the same (user, ts), so a rerun writes the
same rows (``computed_at`` aside).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.portfolio.positions import DAILY, FillInputs
from buddy.portfolio.snapshot import SnapshotConfig, build_snapshot
from buddy.portfolio.state import portfolio_state_with_reason
from buddy.store.bars import all_bars
from buddy.store.portfolio import (
    fill_times,
    replace_snapshots,
    statement_times,
    traded_symbols,
)

if TYPE_CHECKING:
    from buddy.store import Store

#: Snapshot rows are written in chunks of this many (one transaction each).
_CHUNK = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioJobSummary:
    """What a run of the exposure builder wrote."""

    user_id: str
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    session_closes: int
    position_changes: int
    snapshots: int
    not_checked: int  # times with no positions source: nothing written
    seconds: float

    def __str__(self) -> str:
        if self.start is None:
            return f"portfolio {self.user_id}: no fills or statements, no snapshots"
        return (f"portfolio {self.user_id}: {self.snapshots} exposure snapshots "
                f"{self.start.date()} to {self.end.date() if self.end is not None else '?'} "
                f"({self.session_closes} session closes, {self.position_changes} position "
                f"changes; {self.not_checked} times without a positions source); "
                f"{self.seconds:.1f} s")


def snapshot_times(store: Store, user_id: str, start: Any | None = None,
                   end: Any | None = None) -> pd.DataFrame:
    """Return the times (UTC) to snapshot, with their trigger (``close`` or
    ``position_change``), in [start, end]: by default from the user's first fill or
    statement to the last daily bar of the symbols they hold or held."""
    symbols = traded_symbols(store, user_id)
    lo = pd.Timestamp.min.tz_localize("UTC") if start is None else _utc(start)
    hi = pd.Timestamp.max.tz_localize("UTC") if end is None else _utc(end)
    changes = pd.concat([fill_times(store, user_id, lo.to_pydatetime(), hi.to_pydatetime()),
                         statement_times(store, user_id, lo.to_pydatetime(),
                                         hi.to_pydatetime())], ignore_index=True)
    if changes.empty and start is None:
        return pd.DataFrame({"ts": pd.Series(dtype="datetime64[ns, UTC]"),
                             "trigger": pd.Series(dtype=object)})
    if start is None:
        lo = changes.min()
    table = all_bars(store)
    closes: list[np.ndarray] = []
    for symbol in symbols:
        a, b = table.span(symbol, DAILY)
        if b > a:
            closes.append(pd.DatetimeIndex(table.frame["ts_close"].iloc[a:b]).tz_convert(
                "UTC").as_unit("ns").asi8)
    close_ns = np.unique(np.concatenate(closes)) if closes else np.array([], np.int64)
    if end is None and len(close_ns):
        hi = pd.Timestamp(int(close_ns.max()), tz="UTC")
    close_ns = close_ns[(close_ns >= lo.value) & (close_ns <= hi.value)]
    change_ns = pd.DatetimeIndex(changes).as_unit("ns").asi8 if len(changes) else np.array(
        [], np.int64)
    change_ns = np.setdiff1d(change_ns[(change_ns >= lo.value) & (change_ns <= hi.value)],
                             close_ns)
    ts = np.concatenate([close_ns, change_ns])
    trigger = np.array(["close"] * len(close_ns) + ["position_change"] * len(change_ns),
                       dtype=object)
    order = np.argsort(ts, kind="stable")
    return pd.DataFrame({"ts": pd.to_datetime(ts[order], utc=True), "trigger": trigger[order]})


def run_portfolio_job(store: Store, user_id: str, *, start: Any | None = None,
                      end: Any | None = None, config: SnapshotConfig | None = None,
                      echo: Callable[[str], None] | None = None) -> PortfolioJobSummary:
    """Build and write ``user_id``'s exposure snapshots at each session close and position
    change in [start, end] (default: the user's whole history, ``snapshot_times``)."""
    started = time.perf_counter()
    times = snapshot_times(store, user_id, start, end)
    if times.empty:
        return PortfolioJobSummary(user_id=user_id, start=None, end=None, session_closes=0,
                                   position_changes=0, snapshots=0, not_checked=0,
                                   seconds=time.perf_counter() - started)
    computed_at = pd.Timestamp.now(tz="UTC")  # the edge: when the job ran
    rows: list[dict[str, Any]] = []
    written = missing = 0
    with store.reading():
        inputs = FillInputs.read(store, user_id)
        for i, (t, trigger) in enumerate(times.itertuples(index=False)):
            state, _ = portfolio_state_with_reason(store, user_id, t, inputs=inputs)
            if state is None:
                missing += 1
                continue
            rows.append(build_snapshot(state, config).row(computed_at=computed_at,
                                                          trigger=str(trigger)))
            if len(rows) >= _CHUNK:
                written += replace_snapshots(store, pd.DataFrame(rows))
                rows = []
            if echo is not None and (i + 1) % 1000 == 0:
                echo(f"  {i + 1} of {len(times)} times")
    written += replace_snapshots(store, pd.DataFrame(rows))
    return PortfolioJobSummary(
        user_id=user_id, start=times["ts"].iloc[0], end=times["ts"].iloc[-1],
        session_closes=int((times["trigger"] == "close").sum()),
        position_changes=int((times["trigger"] == "position_change").sum()),
        snapshots=written, not_checked=missing, seconds=time.perf_counter() - started)


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


#: The demo trader's account equity is on record from here (before its first fill, 2000-06).
DEMO_EQUITY_FROM = pd.Timestamp("2000-01-03T00:00Z")
#: The range of the demo's snapshots: the last year of the equities' history (about 300
#: session closes and position changes, ~30 s) and, inside it, a day the demo trader held
#: four technology stocks in one correlation cluster.
DEMO_RANGE = (pd.Timestamp("2012-01-01T00:00Z"), pd.Timestamp("2013-03-01T23:59Z"))
DEMO_STACKED_AT = pd.Timestamp("2012-02-28T21:00Z")


def build_demo_portfolio(store: Store, user_id: str = "demo", *,
                         start: Any = DEMO_RANGE[0], end: Any = DEMO_RANGE[1],
                         show_at: Any = DEMO_STACKED_AT,
                         echo: Callable[[str], None] = print) -> PortfolioJobSummary:
    """Put the demo account's equity on record (the simulation's constant USD 100,000, from
    before its first fill: the trader's sizes were computed from it), write its exposure
    snapshots over [start, end] and print the snapshot as of ``show_at``."""
    from buddy.portfolio.snapshot import exposure_snapshot
    from buddy.store.portfolio import record_equity
    from buddy.trades.demo_history import EQUITY

    record_equity(store, user_id, DEMO_EQUITY_FROM.to_pydatetime(), EQUITY, "USD",
                  "demo account (simulated at constant equity)")
    summary = run_portfolio_job(store, user_id, start=start, end=end)
    echo(f"\n{summary}")
    snapshot, reason = exposure_snapshot(store, user_id, show_at)
    echo(f"\n# The demo trader's portfolio\n{snapshot.text() if snapshot else reason}")
    return summary
