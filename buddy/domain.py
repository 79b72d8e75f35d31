"""Domain values: the trade intent, the facts an evaluator finds, and the Buddy Report.

All values are frozen, keyword-only dataclasses. Timestamps are timezone-aware UTC.
An Issue carries a machine-readable code (the contract) and numeric facts; the words a trader
reads are rendered from those facts by ``buddy.explain``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd

from buddy.config import did_you_mean
from buddy.errors import FieldError, IntentValidationError
from buddy.timeframes import Timeframe

__all__ = [
    "EvaluationResult",
    "Fact",
    "Issue",
    "Mitigation",
    "ModuleStatus",
    "NotChecked",
    "OrderType",
    "Severity",
    "Side",
    "TradeIntent",
    "Verdict",
    "as_utc",
]


class Side(StrEnum):
    """Direction of a trade."""

    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        """Return +1 for long, -1 for short."""
        return 1 if self is Side.LONG else -1


class OrderType(StrEnum):
    """How the trader means to enter."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class Severity(StrEnum):
    """How much an issue matters, from a note to a hard stop. Ordered by ``rank``."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Return 0 (info) to 4 (critical)."""
        return _SEVERITY_RANK[self]

    @classmethod
    def highest(cls, severities: Any) -> Severity:
        """Return the most severe of ``severities``, INFO when empty."""
        return max(severities, key=lambda s: s.rank, default=cls.INFO)


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Verdict(StrEnum):
    """What a report asks of the trader, from the worst ranked issue (``Verdict.of``):
    critical -> blocked, high -> fix first, medium -> review, else clear. Ordered by ``rank``
    (0 clear .. 3 blocked)."""

    CLEAR = "clear"
    REVIEW = "review"
    FIX_FIRST = "fix first"
    BLOCKED = "blocked"

    @property
    def rank(self) -> int:
        """Return 0 (clear) to 3 (blocked)."""
        return _VERDICT_RANK[self]

    @classmethod
    def of(cls, severity: Severity) -> Verdict:
        """Return the verdict a worst issue of ``severity`` leads to."""
        return _VERDICT_OF_SEVERITY[severity]


_VERDICT_RANK = {v: i for i, v in enumerate(Verdict)}
_VERDICT_OF_SEVERITY = {Severity.INFO: Verdict.CLEAR, Severity.LOW: Verdict.CLEAR,
                        Severity.MEDIUM: Verdict.REVIEW, Severity.HIGH: Verdict.FIX_FIRST,
                        Severity.CRITICAL: Verdict.BLOCKED}


class ModuleStatus(StrEnum):
    """Whether a module produced a result."""

    OK = "ok"
    SKIPPED = "skipped"  # a required context piece is missing; the reason is reported
    ERROR = "error"  # the module raised; the report carries the error as an item


def as_utc(value: datetime | str | pd.Timestamp, *, field_name: str = "as_of") -> datetime:
    """Return ``value`` as an aware UTC datetime; reject naive values with a FieldError."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise IntentValidationError(
            [FieldError(field_name, "must be an ISO timestamp", value)]
        ) from exc
    if ts is pd.NaT:
        raise IntentValidationError([FieldError(field_name, "must be an ISO timestamp", value)])
    if ts.tzinfo is None:
        raise IntentValidationError(
            [FieldError(field_name, "must carry a timezone (e.g. 2012-06-01T20:00Z)", value)]
        )
    return ts.tz_convert("UTC").to_pydatetime()


@dataclass(frozen=True, slots=True, kw_only=True)
class Fact:
    """One numeric (or categorical) fact with its unit: the atom of evidence.

    ``threshold`` is the limit the value was compared against, in the same unit, when there is
    one. Units are short and fixed: 'price', 'ATR', 'R', '%', 'USD' (or another currency),
    'bars', 'days', 'shares', 'ratio', 'z', 'pctile', '' for a label.
    """

    name: str
    value: float | int | str | bool | None
    unit: str = ""
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"name": self.name, "value": _jsonable(self.value), "unit": self.unit,
                "threshold": _jsonable(self.threshold)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Mitigation:
    """An action that would address an issue, with the numbers it rests on."""

    action: str  # SCREAMING_SNAKE, e.g. WIDEN_STOP
    facts: tuple[Fact, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"action": self.action, "facts": [f.as_dict() for f in self.facts]}


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """One finding: a stable code, a severity, numeric evidence and a mitigation."""

    module: str
    code: str
    severity: Severity
    evidence: tuple[Fact, ...]
    mitigation: Mitigation

    def fact(self, name: str) -> Fact | None:
        """Return the evidence fact called ``name``, if any."""
        return next((f for f in self.evidence if f.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "module": self.module,
            "code": self.code,
            "severity": self.severity.value,
            "evidence": [f.as_dict() for f in self.evidence],
            "recommendation": self.mitigation.as_dict(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NotChecked:
    """Something a report could not check, and why: a module that could not run (skipped
    for a missing piece, or failed) or a ``not_checked`` code a module emitted. Never ranked,
    never scored as good."""

    module: str
    code: str  # CONTEXT_MISSING, MODULE_ERROR or the module's not_checked code
    what: str  # the module's name, or the code's title
    why: str

    def as_dict(self) -> dict[str, str]:
        """Return a JSON-ready dict."""
        return {"module": self.module, "code": self.code, "what": self.what, "why": self.why}


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationResult:
    """What one evaluator says about one intent: the seed's (score, severity, issues,
    recommendations, explain_facts).

    ``score`` is 0-100, 100 meaning the module found nothing to flag; None when the module
    could not evaluate (status skipped or error). ``missing`` names the context pieces that
    were absent, each with the reason.
    """

    module: str
    version: str
    score: float | None
    severity: Severity
    issues: tuple[Issue, ...] = ()
    recommendations: tuple[Mitigation, ...] = ()
    explain_facts: tuple[Fact, ...] = ()
    status: ModuleStatus = ModuleStatus.OK
    missing: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "module": self.module,
            "version": self.version,
            "status": self.status.value,
            "score": _jsonable(self.score),
            "severity": self.severity.value,
            "issues": [i.as_dict() for i in self.issues],
            "recommendations": [r.as_dict() for r in self.recommendations],
            "explain_facts": [f.as_dict() for f in self.explain_facts],
            "missing": dict(self.missing),
            "error": self.error,
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _new_intent_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeIntent:
    """A trade the trader is considering: the seed's trade_intents row.

    Prices are in the instrument's quote currency, as traded at ``as_of``. ``proposed_size`` is
    in units (shares, or currency units for FX). ``holding_horizon`` is in bars of
    ``timeframe``. ``as_of`` is the moment of the decision: nothing after it is read.

    Construction checks what the intent alone can tell (finite positive prices, sides of stop
    and target, size, horizon, timezone); checks against the instrument and the data (known
    symbol and timeframe, tick size, as_of inside the data) are ``buddy.validation``'s.
    """

    user_id: str
    symbol: str
    side: Side
    timeframe: Timeframe
    proposed_entry: float
    proposed_stop: float | None
    proposed_target: float | None
    proposed_size: float
    as_of: datetime
    proposed_risk_amount: float | None = None
    holding_horizon: int | None = None
    order_type: OrderType = OrderType.LIMIT
    exit_template: str | None = None  # name of a saved exit template, if the trader chose one
    status: str = "draft"
    intent_id: str = field(default_factory=_new_intent_id)

    def __post_init__(self) -> None:
        from buddy.validation import intent_errors  # the rule table (it imports this module)

        errors = intent_errors(self)
        if errors:
            raise IntentValidationError(errors)

    @classmethod
    def create(cls, **raw: Any) -> TradeIntent:
        """Build an intent from loose input (CLI strings, widget values), validating every field.

        Coerces strings to enums, numbers and UTC timestamps; collects every problem and raises
        one IntentValidationError naming each field, rule and value.
        """
        from buddy.validation import FIELD_PARSERS, PARSE_RULES

        errors: list[FieldError] = []
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        for key in unknown:
            errors.append(FieldError(key, "is not a trade intent field ("
                                     f"{did_you_mean(key, sorted(known))})",
                                     raw[key]))
        values: dict[str, Any] = {k: v for k, v in raw.items() if k in known}
        for name, parse in FIELD_PARSERS.items():
            if name in values and values[name] is not None:
                try:
                    values[name] = parse(values[name])
                except (ValueError, TypeError, IntentValidationError) as exc:
                    rule = exc.errors[0].rule if isinstance(exc, IntentValidationError) else (
                        PARSE_RULES[name])
                    errors.append(FieldError(name, rule, raw[name]))
                    values.pop(name)
        for name in ("user_id", "symbol", "side", "timeframe", "proposed_entry",
                     "proposed_size", "as_of"):
            if values.get(name) in (None, "") and not any(e.field == name for e in errors):
                errors.append(FieldError(name, "is required", values.get(name)))
        values.setdefault("proposed_stop", None)
        values.setdefault("proposed_target", None)
        if errors:
            raise IntentValidationError(errors)
        if "symbol" in values:
            values["symbol"] = str(values["symbol"]).strip().upper()
        return cls(**values)

    @property
    def stop_distance(self) -> float | None:
        """Return |entry - stop| in price, None without a stop."""
        if self.proposed_stop is None:
            return None
        return abs(self.proposed_entry - self.proposed_stop)

    @property
    def reward_distance(self) -> float | None:
        """Return |target - entry| in price, None without a target."""
        if self.proposed_target is None:
            return None
        return abs(self.proposed_target - self.proposed_entry)

    @property
    def reward_risk(self) -> float | None:
        """Return reward over risk (R multiple of the target), None without stop or target."""
        if self.stop_distance is None or self.reward_distance is None:
            return None
        return self.reward_distance / self.stop_distance

    def as_row(self) -> dict[str, Any]:
        """Return the trade_intents row for this intent (created_at is set by the store)."""
        return {
            "intent_id": self.intent_id,
            "user_id": self.user_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "timeframe": self.timeframe.value,
            "proposed_entry": self.proposed_entry,
            "proposed_stop": self.proposed_stop,
            "proposed_target": self.proposed_target,
            "proposed_size": self.proposed_size,
            "proposed_risk_amount": self.proposed_risk_amount,
            "holding_horizon": self.holding_horizon,
            "order_type": self.order_type.value,
            "exit_template": self.exit_template,
            "as_of": self.as_of,
            "status": self.status,
        }

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        row = self.as_row()
        row["as_of"] = self.as_of.isoformat()
        return row


#: Upper bound of holding_horizon: the trade_intents column is a 32-bit INTEGER, and no
#: horizon this long (about 400 years of daily bars) is meaningful.
MAX_HORIZON_BARS = 100_000
