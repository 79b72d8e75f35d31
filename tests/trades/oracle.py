"""Plain-loop statement of the fills-to-trades rules: the oracle grouping is checked against."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd

STEP = 10**8


def group_fills_loop(fills: pd.DataFrame, method: str = "fifo") -> tuple[list[dict], list[dict]]:
    """Return (trades, parts) as dicts, one fill at a time, with a lot list per position."""
    rows = fills.reset_index(drop=True)
    by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in rows.iterrows():
        by_key[(r["user_id"], r["symbol"])].append(i)
    trades: list[dict] = []
    parts: list[dict] = []
    for key in sorted(by_key):
        order = sorted(by_key[key], key=lambda i: (pd.Timestamp(rows.at[i, "ts"]), i))
        position = 0
        lots: list[list[Any]] = []  # [units, price], oldest first
        basis = 0.0  # average method: cost of the units held
        trade: dict | None = None
        for i in order:
            r = rows.loc[i]
            units = round(float(r["qty"]) * STEP)
            signed = units if r["side"] == "buy" else -units
            cost = abs(r.get("commission", 0.0) or 0.0) + abs(r.get("fees", 0.0) or 0.0)
            pieces = [signed]
            if position and position + signed and (position > 0) != (position + signed > 0):
                pieces = [-position, position + signed]
            for piece in pieces:
                before, after = position, position + piece
                if before == 0:
                    trade = {"user_id": key[0], "symbol": key[1], "open_ts": r["ts"],
                             "side": "long" if piece > 0 else "short", "entry_units": 0,
                             "entry_value": 0.0, "exit_units": 0, "exit_value": 0.0,
                             "gross": 0.0, "fees": 0.0, "n": 0, "max": 0}
                    trades.append(trade)
                    lots, basis = [], 0.0
                assert trade is not None
                n = abs(piece)
                fee = cost * n / units
                trade["fees"] += fee
                trade["n"] += 1
                realized = 0.0
                if abs(after) > abs(before):
                    kind = "open" if before == 0 else "add"
                    lots.append([n, float(r["price"])])
                    basis += n / STEP * float(r["price"])
                    trade["entry_units"] += n
                    trade["entry_value"] += n / STEP * float(r["price"])
                else:
                    kind = "close" if after == 0 else "reduce"
                    if method == "average":
                        matched = basis * n / abs(before)
                        basis -= matched
                    else:
                        matched, need = 0.0, n
                        while need:
                            lot = lots[0] if method == "fifo" else lots[-1]
                            take = min(need, lot[0])
                            matched += take / STEP * lot[1]
                            lot[0] -= take
                            need -= take
                            if not lot[0]:
                                lots.remove(lot)
                    sign = 1 if trade["side"] == "long" else -1
                    realized = sign * (n / STEP * float(r["price"]) - matched)
                    trade["gross"] += realized
                    trade["exit_units"] += n
                    trade["exit_value"] += n / STEP * float(r["price"])
                position = after
                trade["max"] = max(trade["max"], abs(after))
                trade["close_ts"] = r["ts"] if after == 0 else None
                trade["open_units"] = after
                trade["open_basis"] = (None if after == 0 else
                                       (basis if method == "average" else
                                        sum(u / STEP * p for u, p in lots)) / (abs(after) / STEP))
                parts.append({"exec_id": r["exec_id"], "fill_type": kind, "qty": n / STEP,
                              "realized_pnl": realized, "position_after": after / STEP})
    return trades, parts
