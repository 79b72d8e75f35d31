"""Validate the behaviour detectors on known truth: the demo trader's injected behaviours and
the clean trader's false alarms.

The demo trader (``buddy.trades.demo_history``) has behaviours injected on dates its seed
chose, recorded apart in ``demo_behavior_truth``. Each detector with a matching kind is
scored on the unit the truth is stated in:

| detector    | truth kind           | unit                                     |
| ----------- | -------------------- | ---------------------------------------- |
| revenge     | size_up_after_loss   | the trade entered bigger after the loss   |
| overtrading | overtrading_day      | the trader's day                          |
| fatigue     | late_session         | the late trade                            |
| stop_drift  | stop_moved           | the trade whose stop was moved            |

precision = flagged units that are true / flagged units; recall = true units flagged / true
units (each with n and a Wilson 95% interval). The scan reads only the trades (an intent
that never became a trade has no truth). FOMO, rule drift and sizing have no injected truth:
their events are counted, and all detectors' false alarms are measured on the CLEAN trader
(the same generator and seed with nothing injected): events per 100 trades, with a 95%
interval (exact Poisson on the count).

Every detector is measured, those off by default too (fatigue and FOMO:
``buddy.behavior.params.DEFAULT_OFF_REASONS``; its lines say so). The clean trader's
false alarms are summed twice: ``default`` (the detectors a trader gets unless they opt in,
``DEFAULT_ENABLED``) and ``all`` (every detector measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from buddy.behavior.detectors import scan
from buddy.behavior.history import load_history, session_day
from buddy.behavior.params import (
    DEFAULT_ENABLED,
    DEFAULT_OFF_REASONS,
    DETECTORS,
    BehaviorParams,
    params_for,
)
from buddy.store import Store

__all__ = ["TRUTH_KINDS", "CleanRate", "DetectorScore", "Validation", "ensure_clean_trader",
           "validate"]

#: detector -> the injected behaviour kind it is scored against.
TRUTH_KINDS: dict[str, str] = {"revenge": "size_up_after_loss",
                               "overtrading": "overtrading_day",
                               "fatigue": "late_session", "stop_drift": "stop_moved"}
#: Precision and recall the issue aims at, and the clean trader's alerts per 100 trades.
AIM_PRECISION, AIM_RECALL, AIM_CLEAN_PER_100 = 0.9, 0.8, 1.0


def _wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


@dataclass(frozen=True, slots=True)
class DetectorScore:
    """One detector against its truth kind: flagged units (``flagged``), of which true
    (``true_flagged``); true units (``truth``), of which flagged (``found``); true units the
    detector cannot judge from what is stored (``uncheckable``: a trade without a planned
    stop has no risk and no stop to honour); false flags on a day with another injected
    behaviour (``false_on_injected_days``)."""

    detector: str
    kind: str
    flagged: int
    true_flagged: int
    truth: int
    found: int
    uncheckable: int = 0
    false_on_injected_days: int = 0

    @property
    def precision(self) -> float:
        """Return true_flagged / flagged (NaN when nothing was flagged)."""
        return self.true_flagged / self.flagged if self.flagged else np.nan

    @property
    def recall(self) -> float:
        """Return found / truth (NaN without truth)."""
        return self.found / self.truth if self.truth else np.nan

    def line(self) -> str:
        """Return the score as one line with n and Wilson 95% intervals."""
        p_lo, p_hi = _wilson(self.true_flagged, self.flagged)
        r_lo, r_hi = _wilson(self.found, self.truth)
        notes = []
        if self.uncheckable:
            notes.append(f"{self.uncheckable} of the true ones not checkable (no planned stop)")
        if self.false_on_injected_days:
            notes.append(f"{self.false_on_injected_days} of the false ones on days with "
                         "another injected behaviour")
        return (f"{self.detector:<12} vs {self.kind:<19} precision {_pct(self.precision)} "
                f"({self.true_flagged}/{self.flagged}, 95% {_pct(p_lo)}-{_pct(p_hi)})  "
                f"recall {_pct(self.recall)} ({self.found}/{self.truth}, 95% "
                f"{_pct(r_lo)}-{_pct(r_hi)})" + (f"  [{'; '.join(notes)}]" if notes else ""))


@dataclass(frozen=True, slots=True)
class CleanRate:
    """One detector's events on the clean trader: ``events`` over ``trades`` trades."""

    detector: str
    events: int
    trades: int

    @property
    def per_100(self) -> float:
        """Return events per 100 trades."""
        return 100.0 * self.events / self.trades if self.trades else np.nan

    def interval(self) -> tuple[float, float]:
        """Return the exact Poisson 95% interval of events per 100 trades."""
        k, n = self.events, self.trades
        lo = 0.0 if k == 0 else stats.chi2.ppf(0.025, 2 * k) / 2
        hi = stats.chi2.ppf(0.975, 2 * k + 2) / 2
        return 100.0 * lo / n, 100.0 * hi / n

    def line(self) -> str:
        """Return the rate as one line with n and its interval."""
        lo, hi = self.interval()
        return (f"{self.detector:<12} {self.per_100:5.2f} alerts / 100 trades ({self.events} "
                f"in {self.trades} trades, 95% {lo:.2f}-{hi:.2f})")


@dataclass(frozen=True, slots=True)
class Validation:
    """The scores of every detector with truth, the other detectors' event counts on the
    demo trader, and the clean trader's false alarms per detector, for the default set
    (``default``) and for every detector measured (``all``)."""

    user_id: str
    clean_user_id: str | None
    sensitivity: str
    params_hash: str
    trades: int
    scores: tuple[DetectorScore, ...]
    untruthed: dict[str, int]
    clean: tuple[CleanRate, ...]

    def text(self) -> str:
        """Return the report printed by ``buddy behavior validate``."""
        lines = [f"Behaviour detectors at {self.sensitivity} sensitivity (params "
                 f"#{self.params_hash}) on {self.user_id!r} ({self.trades} trades), against "
                 f"its injected behaviours (aim: precision >= {AIM_PRECISION:.0%}, recall >= "
                 f"{AIM_RECALL:.0%}):"]
        lines += ["  " + s.line() + _off_note(s.detector) for s in self.scores]
        if self.untruthed:
            lines.append("  no injected truth (events on the demo trader): " + ", ".join(
                f"{d} {n}" for d, n in self.untruthed.items()))
        off = [d for d in DEFAULT_OFF_REASONS if any(s.detector == d for s in self.scores)
               or d in self.untruthed]
        lines += [f"  {d} is off by default (a trader opts it in): {DEFAULT_OFF_REASONS[d]}"
                  for d in off]
        if self.clean_user_id is None:
            lines.append("clean trader: not checked (not loaded)")
        else:
            lines.append(f"Clean trader {self.clean_user_id!r} (same generator, nothing "
                         f"injected; aim <= {AIM_CLEAN_PER_100:g} alert / 100 trades):")
            lines += ["  " + c.line() + _clean_note(c.detector) for c in self.clean]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        """Return the figures as plain values (``--json``)."""
        return {"user_id": self.user_id, "clean_user_id": self.clean_user_id,
                "sensitivity": self.sensitivity, "params_hash": self.params_hash,
                "trades": self.trades,
                "scores": [{"detector": s.detector, "kind": s.kind, "flagged": s.flagged,
                            "true_flagged": s.true_flagged, "truth": s.truth,
                            "found": s.found, "uncheckable": s.uncheckable,
                            "false_on_injected_days": s.false_on_injected_days,
                            "precision": _plain(s.precision),
                            "recall": _plain(s.recall)} for s in self.scores],
                "untruthed": self.untruthed, "default_enabled": list(DEFAULT_ENABLED),
                "off_by_default": dict(DEFAULT_OFF_REASONS),
                "clean": [{"detector": c.detector, "events": c.events, "trades": c.trades,
                           "per_100": _plain(c.per_100),
                           "interval": [_plain(v) for v in c.interval()]}
                          for c in self.clean]}


def _off_note(detector: str) -> str:
    return "  [off by default]" if detector in DEFAULT_OFF_REASONS else ""


def _clean_note(name: str) -> str:
    if name == "default":
        return ("  [the default set: every detector but "
                + ", ".join(DEFAULT_OFF_REASONS) + "]")
    if name == "all":
        return "  [every detector, those off by default too]"
    return _off_note(name)


def _plain(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def _pct(value: float) -> str:
    return "  n/a" if not np.isfinite(value) else f"{value:5.0%}"


def ensure_clean_trader(store: Store, user_id: str = "demo-clean") -> str | None:
    """Load the clean trader (``load_demo_history(..., behaviours=False)``) and its entry
    facts when ``user_id`` has no trades yet; return what was done, or None when it was
    there already."""
    from buddy.jobs.strategy import refresh_entry_facts
    from buddy.store.trades import count_trades
    from buddy.trades.demo_history import load_demo_history

    if count_trades(store, user_id):
        return None
    loaded = load_demo_history(store, user_id=user_id, behaviours=False,
                               folder=store.path.parent / "demo_clean_broker_files")
    refresh_entry_facts(store, user_id)
    return str(loaded)


def validate(store: Store, *, user_id: str = "demo", clean_user_id: str | None = "demo-clean",
             sensitivity: str = "medium", params: BehaviorParams | None = None) -> Validation:
    """Scan ``user_id`` (a demo trader with truth) and ``clean_user_id`` (None, or a user
    without trades: not checked) and score the detectors (see the module docstring); without
    ``params``, every detector at ``sensitivity``, those off by default too."""
    from buddy.store.demo_truth import demo_behavior_truth, demo_trade_truth

    params = params or params_for(sensitivity, enabled=DETECTORS)
    history = load_history(store, user_id)
    if history.trades.empty:
        raise ValueError(f"user_id: {user_id!r} has no trades to validate against (load the "
                         "demo trader first: buddy demo)")
    events = scan(history, params, include_intents=False)
    truth = demo_behavior_truth(store, user_id)
    if truth.empty:
        raise ValueError(f"user_id: {user_id!r} has no injected behaviours on record "
                         "(demo_behavior_truth)")
    trade_of = dict(zip(*(demo_trade_truth(store, user_id)[c] for c in
                          ("trade_key", "trade_id")), strict=True))
    scores = tuple(_score(d, k, events, truth, trade_of, history.trades)
                   for d, k in TRUTH_KINDS.items() if d in params.enabled)
    untruthed = {d: int((events["event_type"] == d).sum()) for d in DETECTORS
                 if d not in TRUTH_KINDS and d in params.enabled}
    clean: tuple[CleanRate, ...] = ()
    if clean_user_id is not None:
        clean_history = load_history(store, clean_user_id)
        if clean_history.trades.empty:
            clean_user_id = None
        else:
            clean_events = scan(clean_history, params, include_intents=False)
            n = len(clean_history.trades)
            clean = tuple(CleanRate(d, int((clean_events["event_type"] == d).sum()), n)
                          for d in DETECTORS if d in params.enabled)
            default = clean_events["event_type"].isin(DEFAULT_ENABLED)
            clean += (CleanRate("default", int(default.sum()), n),
                      CleanRate("all", len(clean_events), n))
    return Validation(user_id=user_id, clean_user_id=clean_user_id, sensitivity=sensitivity,
                      params_hash=params.hash, trades=len(history.trades), scores=scores,
                      untruthed=untruthed, clean=clean)


def _score(detector: str, kind: str, events: pd.DataFrame, truth: pd.DataFrame,
           trade_of: dict[str, object], trades: pd.DataFrame) -> DetectorScore:
    mine = events[events["event_type"] == detector]
    rows = truth[truth["kind"] == kind]
    # the trader's days holding an injected behaviour of another kind
    other = truth[truth["kind"] != kind]
    other_days = set(session_day(pd.to_datetime(other["ts"], utc=True)).dt.date)
    other_days |= {d.date() for d in pd.to_datetime(
        other.loc[other["kind"] == "overtrading_day", "session_date"])}
    day_of = dict(zip(trades["trade_id"], pd.to_datetime(trades["session_day"]).dt.date,
                      strict=True))
    if kind == "overtrading_day":
        flagged = set(pd.to_datetime(mine["session_date"]).dt.date)
        # the truth's day is the UTC date of the day's entries (06:00-20:00 UTC): the same
        # trader's day as session_day of its midday
        true = {session_day(pd.Series([pd.Timestamp(d).tz_convert("UTC")
                                       + pd.Timedelta(hours=12)])).iloc[0].date()
                for d in rows["ts"]}
        false_days = flagged - true
        uncheckable = 0
    else:
        # an entry's event is linked to the entry's own trade (revenge: the bigger entry,
        # not the loss before it); a stop event to the trade that did not honour its stop
        flagged = set(mine["linked_trade_id_optional"].dropna())
        true = {trade_of.get(k) for k in rows["trade_key"]} - {None}
        false_days = {day_of.get(t) for t in flagged - true}
        no_stop = set(trades.loc[trades["initial_stop"].isna(), "trade_id"])
        uncheckable = len(true & no_stop) if detector in ("revenge", "stop_drift") else 0
    return DetectorScore(detector=detector, kind=kind, flagged=len(flagged),
                         true_flagged=len(flagged & true), truth=len(true),
                         found=len(true & flagged), uncheckable=uncheckable,
                         false_on_injected_days=len(false_days & other_days))
