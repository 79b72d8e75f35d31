"""Post-trade reviews job: review every closed trade without a review of the current version.

Gathers each trade's inputs (the linked intent and its latest evaluation, the user's rules
and exit templates, the bars of the trade's timeframe) and hands them to the pure
``buddy.trades.review.generate_reviews``; writes the rows in one transaction.

The trade's timeframe is the linked intent's; without an intent, the finest timeframe the
store holds for the symbol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from buddy.store.trades import (
    read_intent_evaluations,
    read_intents,
    read_trade_fills,
    read_trades,
    timeframes_by_symbol,
    trades_to_review,
    write_reviews,
)
from buddy.timeframes import Timeframe
from buddy.trades.review import (
    CONTEXT_COLUMNS,
    DEFAULT_REVIEW_CONFIG,
    REVIEW_VERSION,
    ReviewConfig,
    generate_reviews,
)
from buddy.users.store import get_user, rules_at_version

if TYPE_CHECKING:
    from buddy.store import Store

_SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

#: Bars read before the first trade's open, so a bar that opened before it is included.
_BARS_MARGIN = pd.Timedelta(days=10)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewJobSummary:
    """What a reviews run wrote."""

    version: str
    n_reviewed: int
    n_not_measured: int  # trades whose bars do not cover them (no MAE/MFE)
    n_not_graded: int  # trades with no process check possible


def run_reviews_job(store: Store, user_id: str | None = None, *,
                    version: str = REVIEW_VERSION,
                    config: ReviewConfig = DEFAULT_REVIEW_CONFIG) -> ReviewJobSummary:
    """Review every closed trade (of ``user_id``, or of everyone) lacking a ``version``
    review, and write the reviews."""
    trades = trades_to_review(store, version, user_id)
    reviews = review_trades(store, trades, version=version, config=config)
    write_reviews(store, reviews)
    return ReviewJobSummary(
        version=version, n_reviewed=len(reviews),
        n_not_measured=int(reviews["mae_price"].isna().sum()) if len(reviews) else 0,
        n_not_graded=int((reviews["process_grade"] == "not graded").sum())
        if len(reviews) else 0)


def review_trade_ids(store: Store, user_id: str, trade_ids: Sequence[str], *,
                     version: str = REVIEW_VERSION,
                     config: ReviewConfig = DEFAULT_REVIEW_CONFIG) -> pd.DataFrame:
    """Review (again) the given closed trades of a user, write and return the reviews."""
    trades = read_trades(store, user_id, status="closed", trade_ids=list(trade_ids))
    reviews = review_trades(store, trades, version=version, config=config)
    write_reviews(store, reviews)
    return reviews


def review_trades(store: Store, trades: pd.DataFrame, *, version: str = REVIEW_VERSION,
                  config: ReviewConfig = DEFAULT_REVIEW_CONFIG,
                  generated_at: pd.Timestamp | None = None) -> pd.DataFrame:
    """Return review rows for closed ``trades`` (any users), reading their inputs."""
    stamp = pd.Timestamp.now(tz="UTC") if generated_at is None else generated_at
    if trades.empty:
        return generate_reviews(trades, pd.DataFrame(columns=list(CONTEXT_COLUMNS)),
                                _no_bars(), generated_at=stamp, version=version,
                                config=config)
    trades = trades.reset_index(drop=True)
    with store.reading():
        context = pd.concat([_context(store, user, group) for user, group in
                             trades.groupby("user_id", sort=False)]).loc[trades.index]
        bars = _bars(store, trades, context)
    return generate_reviews(trades, context, bars, generated_at=stamp, version=version,
                            config=config)


def _context(store: Store, user_id: str, trades: pd.DataFrame) -> pd.DataFrame:
    linked = sorted(set(trades["linked_intent_id"].dropna()))
    intents = read_intents(store, user_id, linked)
    intents = intents.set_index("intent_id") if len(intents) else intents
    evals = read_intent_evaluations(store, user_id, linked)
    state = get_user(store, user_id)
    out = pd.DataFrame(index=trades.index, columns=list(CONTEXT_COLUMNS), dtype=object)
    parts = read_trade_fills(store, user_id, trades["trade_id"].tolist())
    before_exit = parts.groupby("trade_id")["ts"].apply(
        lambda s: s.iloc[-2] if len(s) > 1 else s.iloc[0])
    out["last_exec_ts"] = trades["trade_id"].map(before_exit)
    finest = {s: min(tfs, key=lambda t: Timeframe.parse(t).nominal) for s, tfs in
              timeframes_by_symbol(store, sorted(set(trades["symbol"]))).items()}
    evaluations = evals["evaluations"]
    eval_by_intent = (evaluations.set_index("intent_id") if len(evaluations)
                      else pd.DataFrame())
    items = evals["items"]
    for i, trade in trades.iterrows():
        link = trade["linked_intent_id"]
        intent = (intents.loc[link].to_dict()
                  if isinstance(link, str) and len(intents) and link in intents.index else None)
        evaluation = (eval_by_intent.loc[trade["linked_intent_id"]].to_dict()
                      if intent is not None and link in eval_by_intent.index
                      else None)
        rules = None
        if state is not None:
            rules = state.rules
            version = None if evaluation is None else evaluation.get("rules_version")
            if version is not None and not pd.isna(version):
                rules = rules_at_version(store, user_id, int(version)) or rules
        template = None
        if state is not None:
            name = (intent or {}).get("exit_template") or (
                rules.default_exit_template if rules is not None else None)
            template = state.context.exit_template(name) if name else None
        out.at[i, "timeframe"] = (intent["timeframe"] if intent is not None
                                  else finest.get(trade["symbol"]))
        out.at[i, "equity"] = (state.account.equity_snapshot if state is not None
                               and state.account.equity_snapshot else np.nan)
        out.at[i, "budget_pct"] = rules.max_risk_per_trade_pct if rules is not None else np.nan
        out.at[i, "proposed_size"] = intent["proposed_size"] if intent is not None else np.nan
        out.at[i, "plan_target_r"] = _plan_target_r(intent, template)
        out.at[i, "time_stop_bars"] = (template.time_stop_bars if template is not None
                                       and template.time_stop_bars else np.nan)
        top = _top_items(items, evaluation, DEFAULT_REVIEW_CONFIG.top_issues)
        out.at[i, "top_issues"] = len(top)
        out.at[i, "top_size_actions"] = sum("SIZE" in a for _, a in top)
        out.at[i, "top_stop_actions"] = sum(a == "SET_STOP" or c == "NO_STOP" for c, a in top)
        out.at[i, "top_issue_codes"] = ", ".join(c for c, _ in top)
        out.at[i, "linked_eval_id"] = None if evaluation is None else evaluation["eval_id"]
        out.at[i, "currency"] = (state.account.base_currency if state is not None else "USD")
    for column in ("equity", "budget_pct", "proposed_size", "plan_target_r", "time_stop_bars",
                   "top_issues", "top_size_actions", "top_stop_actions"):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return out


def _plan_target_r(intent: dict[str, Any] | None, template: Any) -> float:
    if template is not None and template.target_r:
        return float(template.target_r)
    if intent is None or intent.get("proposed_target") is None or intent.get(
            "proposed_stop") is None or pd.isna(intent["proposed_target"]) or pd.isna(
            intent["proposed_stop"]):
        return np.nan
    risk = abs(intent["proposed_entry"] - intent["proposed_stop"])
    return abs(intent["proposed_target"] - intent["proposed_entry"]) / risk if risk else np.nan


def _top_items(items: pd.DataFrame, evaluation: dict[str, Any] | None, n: int
               ) -> list[tuple[str, str]]:
    import json

    if evaluation is None or items.empty:
        return []
    mine = items[items["eval_id"] == evaluation["eval_id"]]
    ranked = sorted(mine.to_dict("records"),
                    key=lambda r: (-_SEVERITY_RANK.get(r["severity"], 0), r["eval_item_id"]))
    return [(r["issue_code"], str(json.loads(r["recommendation_json"]).get("action", "")))
            for r in ranked[:n]]


def _bars(store: Store, trades: pd.DataFrame, context: pd.DataFrame) -> pd.DataFrame:
    series = pd.DataFrame({"symbol": trades["symbol"], "timeframe": context["timeframe"],
                           "open_ts": pd.to_datetime(trades["open_ts"], utc=True)}).dropna()
    frames = [store.bars(symbol, timeframe, start=(group["open_ts"].min() - _BARS_MARGIN)
                         .to_pydatetime())
              for (symbol, timeframe), group in series.groupby(["symbol", "timeframe"])]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else _no_bars()


def _no_bars() -> pd.DataFrame:
    return pd.DataFrame({"symbol": pd.Series(dtype=object), "timeframe": pd.Series(dtype=object),
                         "ts": pd.Series(dtype="datetime64[us, UTC]"),
                         "ts_close": pd.Series(dtype="datetime64[us, UTC]"),
                         "session": pd.Series(dtype="datetime64[s]"),
                         "high": pd.Series(dtype=float), "low": pd.Series(dtype=float)})
