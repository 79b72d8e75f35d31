"""The trade idea a brainstorm fills slot by slot: what is known, what is missing, what clashes.

A ``TradeIdeaDraft`` is a frozen value: every turn makes a new one (``parse.apply_updates``).
It holds only what the trader said; nothing is defaulted or guessed here. ``missing()`` names
the slots an evaluation still needs, ``problems()`` the contradictions (a long's stop above its
entry, two different entries in one turn, a value that could not be read), each as a
``FieldError`` naming the field, the rule and the value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from buddy.errors import FieldError, FieldErrors

if TYPE_CHECKING:
    from buddy.domain import Fact

__all__ = [
    "OPTIONAL_SLOTS",
    "REQUIRED_SLOTS",
    "SLOTS",
    "DraftError",
    "TradeIdeaDraft",
    "format_number",
]

SLOTS = ("symbol", "side", "thesis", "entry", "stop", "target", "size", "horizon")
# What an evaluation needs before it runs. The thesis and the horizon are asked for by no
# question: an intent is valid without them, and the trader may simply not have one.
REQUIRED_SLOTS = ("symbol", "side", "entry", "stop", "target", "size")
OPTIONAL_SLOTS = ("thesis", "horizon")
SIDES = ("long", "short")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIMEFRAMES = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
# A risk above this share of equity on one idea is refused as a likely slip ("risk 50").
MAX_RISK_PCT = 100.0


class DraftError(FieldErrors):
    """A stored draft could not be read back; names each field, rule and value."""

    what = "trade idea draft"


@dataclass(frozen=True, slots=True)
class TradeIdeaDraft:
    """What the trader has said about one idea so far; None means not said yet.

    Prices are in the instrument's quote currency; ``size`` in units (shares, contracts);
    ``risk_pct`` in percent of equity (0.5 = half a percent); ``risk_amount`` in the
    account's currency; ``horizon`` in bars of ``timeframe``; ``as_of`` an ISO date or
    date-time the trader named (None: the latest closed bar). ``target_r`` is a target said
    as a multiple of the stop distance ("target 2R"): ``target`` follows it while entry and
    stop are known. ``declined`` holds slots the trader said they have none of ("no target").
    ``conflicts`` holds what the last turn could not settle (two entries, an unreadable
    value); a slot's conflict clears when a later turn sets that slot.
    """

    symbol: str | None = None
    side: str | None = None
    thesis: str | None = None
    entry: float | None = None
    stop: float | None = None
    target: float | None = None
    size: float | None = None
    risk_pct: float | None = None
    risk_amount: float | None = None
    horizon: int | None = None
    timeframe: str | None = None
    order_type: str | None = None
    as_of: str | None = None
    target_r: float | None = None
    declined: tuple[str, ...] = ()
    conflicts: tuple[FieldError, ...] = field(default=())

    def has(self, slot: str) -> bool:
        """Return True when ``slot`` (one of SLOTS) is filled; size counts risk as well."""
        if slot == "size":
            return any(v is not None for v in (self.size, self.risk_pct, self.risk_amount))
        if slot == "target":
            return self.target is not None or self.target_r is not None
        return getattr(self, slot) is not None

    def missing(self) -> tuple[str, ...]:
        """Return the required slots still empty (and not declined), in SLOTS order."""
        return tuple(s for s in SLOTS if s in REQUIRED_SLOTS and s not in self.declined
                     and not self.has(s))

    def problems(self) -> tuple[FieldError, ...]:
        """Return every contradiction: the turn's conflicts first, then the values' rules."""
        out: list[FieldError] = list(self.conflicts)
        out.extend(_value_errors(self))
        out.extend(_geometry_errors(self))
        return tuple(out)

    def is_complete(self) -> bool:
        """Return True when nothing is missing and nothing contradicts: ready to evaluate."""
        return not self.missing() and not self.problems()

    @property
    def filled(self) -> tuple[str, ...]:
        """Return the slots filled so far, in SLOTS order."""
        return tuple(s for s in SLOTS if self.has(s))

    def summary(self, *, thesis: bool = True) -> str:
        """Return one line of what is known, only the trader's own numbers ('' when empty).

        The thesis is the trader's words verbatim ("it will go up" included): leave it out
        (``thesis=False``) where a reply must pass the guardrails.
        """
        parts: list[str] = []
        head = " ".join(v for v in (self.side, self.symbol) if v)
        if head:
            parts.append(head)
        if self.timeframe:
            parts.append(f"timeframe {self.timeframe}")
        if self.entry is not None:
            kind = f" ({self.order_type})" if self.order_type else ""
            parts.append(f"entry {format_number(self.entry)}{kind}")
        elif self.order_type == "market":
            parts.append("entry at market")
        if self.stop is not None:
            parts.append(f"stop {format_number(self.stop)}")
        if self.target_r is not None:
            at = f" ({format_number(self.target)})" if self.target is not None else ""
            parts.append(f"target {format_number(self.target_r)}R{at}")
        elif self.target is not None:
            parts.append(f"target {format_number(self.target)}")
        if self.size is not None:
            parts.append(f"size {format_number(self.size)} units")
        if self.risk_pct is not None:
            parts.append(f"risk {format_number(self.risk_pct)}% of equity")
        if self.risk_amount is not None:
            parts.append(f"risk {format_number(self.risk_amount)} in account currency")
        if self.horizon is not None:
            parts.append(f"horizon {self.horizon} bars")
        if self.as_of is not None:
            parts.append(f"as of {self.as_of}")
        if thesis and self.thesis:
            parts.append(f"thesis: {self.thesis}")
        return ", ".join(parts)

    def facts(self) -> tuple[Fact, ...]:
        """Return the trader's numbers as Facts (prices in 'price', size in 'shares', risk in
        '%' of equity or the account's currency, horizon in 'bars', target in 'R'; as_of,
        timeframe and the words of each conflict as labels; the risk limit when a risk is
        set): what a reply built from this draft may cite (``guardrails.check_text``)."""
        from buddy.domain import Fact

        units = {"entry": "price", "stop": "price", "target": "price", "size": "shares",
                 "risk_pct": "%", "risk_amount": "", "horizon": "bars", "target_r": "R"}
        out = [Fact(name=f"draft_{name}", value=getattr(self, name), unit=unit)
               for name, unit in units.items() if getattr(self, name) is not None]
        if self.risk_pct is not None:
            out.append(Fact(name="max_risk_pct", value=MAX_RISK_PCT, unit="%"))
        for name in ("as_of", "timeframe"):
            if getattr(self, name) is not None:
                out.append(Fact(name=f"draft_{name}", value=getattr(self, name)))
        for c in self.conflicts:
            said = c.value if isinstance(c.value, list | tuple) else [c.value]
            out.append(Fact(name=f"said_{c.field}",
                            value=" ".join(format_number(v) if isinstance(v, float) else str(v)
                                           for v in said)))
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (conflicts as {field, rule, value}); ``from_dict`` reads it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "conflicts":
                value = [{"field": e.field, "rule": e.rule, "value": _jsonable(e.value)}
                         for e in value]
            elif f.name == "declined":
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TradeIdeaDraft:
        """Return the draft ``d`` describes; raise DraftError naming each bad field."""
        if not isinstance(d, Mapping):
            raise DraftError([FieldError("draft", "must be a mapping", d)])
        known = {f.name for f in fields(cls)}
        errors = [FieldError(k, "is not a draft field", d[k]) for k in d if k not in known]
        values: dict[str, Any] = {}
        for name in ("symbol", "side", "thesis", "timeframe", "order_type", "as_of"):
            v = d.get(name)
            if v is not None and not isinstance(v, str):
                errors.append(FieldError(name, "must be text or null", v))
            else:
                values[name] = v
        for name in ("entry", "stop", "target", "size", "risk_pct", "risk_amount", "target_r"):
            v = d.get(name)
            if v is None:
                values[name] = None
            elif isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                errors.append(FieldError(name, "must be a finite number or null", v))
            else:
                values[name] = float(v)
        h = d.get("horizon")
        if h is not None and (isinstance(h, bool) or not isinstance(h, int | float)
                              or not float(h).is_integer()):
            errors.append(FieldError("horizon", "must be a whole number of bars or null", h))
        else:
            values["horizon"] = None if h is None else int(h)
        declined = d.get("declined", [])
        if not isinstance(declined, list | tuple) or any(s not in SLOTS for s in declined):
            errors.append(FieldError("declined", f"must be a list of slots from {SLOTS}",
                                     declined))
        else:
            values["declined"] = tuple(declined)
        conflicts = d.get("conflicts", [])
        try:
            values["conflicts"] = tuple(FieldError(str(c["field"]), str(c["rule"]), c["value"])
                                        for c in conflicts)
        except (TypeError, KeyError):
            errors.append(FieldError("conflicts", "must be a list of {field, rule, value}",
                                     conflicts))
        if errors:
            raise DraftError(errors)
        return cls(**values)

    def with_updates(self, **values: Any) -> TradeIdeaDraft:
        """Return a copy with ``values`` set (no parsing: callers pass typed values)."""
        return replace(self, **values)


def format_number(x: float) -> str:
    """Return ``x`` as a trader writes it: no trailing zeros ('555', '0.5', '1250.25')."""
    return f"{x:.10g}" if not float(x).is_integer() else str(int(x))


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, str | int | float | bool):
        return v
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return str(v)


def _value_errors(d: TradeIdeaDraft) -> list[FieldError]:
    """Return the one-field rules: choices, signs and ranges."""
    out: list[FieldError] = []
    if d.side is not None and d.side not in SIDES:
        out.append(FieldError("side", f"must be one of {', '.join(SIDES)}", d.side))
    if d.order_type is not None and d.order_type not in ORDER_TYPES:
        out.append(FieldError("order_type", f"must be one of {', '.join(ORDER_TYPES)}",
                              d.order_type))
    if d.timeframe is not None and d.timeframe not in TIMEFRAMES:
        out.append(FieldError("timeframe", f"must be one of {', '.join(TIMEFRAMES)}",
                              d.timeframe))
    for name in ("entry", "stop", "target", "size", "risk_amount", "target_r"):
        v = getattr(d, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            out.append(FieldError(name, "must be a positive number", v))
    if d.risk_pct is not None and not (0 < d.risk_pct <= MAX_RISK_PCT):
        out.append(FieldError("risk_pct", f"must be positive and at most {MAX_RISK_PCT:g} "
                              "(percent of equity)", d.risk_pct))
    if d.horizon is not None and d.horizon < 1:
        out.append(FieldError("horizon", "must be at least 1 bar", d.horizon))
    if d.as_of is not None:
        try:
            datetime.fromisoformat(d.as_of)
        except ValueError:
            out.append(FieldError("as_of", "must be an ISO date or date-time", d.as_of))
    return out


def _geometry_errors(d: TradeIdeaDraft) -> list[FieldError]:
    """Return the contradictions between prices for the side: stop and target on the wrong
    side of the entry (or of each other when the entry is not known yet)."""
    if d.side not in SIDES:
        return []
    long = d.side == "long"
    out: list[FieldError] = []
    # a price already refused by its own rule is not compared again
    e, s, t = (v if v is not None and math.isfinite(v) and v > 0 else None
               for v in (d.entry, d.stop, d.target))

    def wrong(a: float, b: float) -> bool:
        # For a long, a must be strictly below b; for a short strictly above.
        return a >= b if long else a <= b

    where_stop, where_target = ("below", "above") if long else ("above", "below")
    if e is not None and s is not None and wrong(s, e):
        out.append(FieldError("stop", f"a {d.side}'s stop must be {where_stop} its entry "
                              f"({format_number(e)})", s))
    if e is not None and t is not None and d.target_r is None and wrong(e, t):
        out.append(FieldError("target", f"a {d.side}'s target must be {where_target} its "
                              f"entry ({format_number(e)})", t))
    if e is None and s is not None and t is not None and wrong(s, t):
        out.append(FieldError("target", f"a {d.side}'s target must be {where_target} its "
                              f"stop ({format_number(s)})", t))
    return out
