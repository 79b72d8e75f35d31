"""Users in the store: accounts, versioned risk rules, exit templates and preferences.

Every function takes a Store and a user id, and every query filters by that id: one user's
rows never appear in another user's results.

A write validates everything first (UserSettingsError names each key, the rule it broke and
the value, and suggests the closest valid key for a typo), then writes in ONE transaction and
touches the store's context stamp so cached ContextPacks see the change.

Rules are versioned: ``user_rules`` holds the current version and ``user_rules_history`` every
version, so the rules an evaluation used (``trade_evaluations.rules_version``) can be read
back. Setting an identical rule set writes no new version.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from buddy.config import canonical_json, did_you_mean
from buddy.disclosures import DISCLOSURES, validate_disclosures_off
from buddy.errors import BuddyError, ConfigError, FieldError
from buddy.timeframes import Timeframe
from buddy.users.model import AccountContext, ExitTemplate, PartialExit, RiskRules, UserAccount

# The SQL lives in buddy.store.users, imported inside the functions that run it: importing
# this module (and the CLI) loads no duckdb.
if TYPE_CHECKING:  # annotations only: importing this module (and the CLI) loads no duckdb
    from duckdb import DuckDBPyConnection

    from buddy.store import Store

STRICTNESS: tuple[str, ...] = ("lenient", "standard", "strict")
NUDGE_SENSITIVITY: tuple[str, ...] = ("off", "low", "medium", "high")

#: Upper bounds of exit template settings (R multiples, ATR multiples, bars).
MAX_TEMPLATE_R = 50.0
MAX_TRAILING_ATR = 20.0
MAX_TIME_STOP_BARS = 10_000


class UserSettingsError(ConfigError):
    """An account, rule, template or preference setting broke a rule; nothing was written."""

    what = "user settings"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserPreferences:
    """Opt-outs and controls: modules and disclosures switched off, strictness, nudges."""

    disabled_modules: tuple[str, ...] = ()
    disclosures_off: tuple[str, ...] = ()
    strictness: str = "standard"
    nudge_sensitivity: str = "medium"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserState:
    """Everything stored about one user, as read (or as just written)."""

    account: UserAccount
    rules: RiskRules
    rules_version: int
    preferences: UserPreferences
    exit_templates: tuple[ExitTemplate, ...] = ()
    rules_changed: bool = False  # True when the call that returned this wrote a new version

    @property
    def context(self) -> AccountContext:
        """Return the ContextPack's ``account`` piece."""
        return AccountContext(account=self.account, rules=self.rules,
                              rules_version=self.rules_version,
                              exit_templates=self.exit_templates,
                              disabled_modules=self.preferences.disabled_modules,
                              disclosures_off=self.preferences.disclosures_off)


@dataclass(frozen=True, slots=True, kw_only=True)
class RulesVersion:
    """One stored version of a user's rules."""

    version: int
    rules: RiskRules
    created_at: datetime


# ---------------------------------------------------------------------------- reads
def get_user(store: Store, user_id: str) -> UserState | None:
    """Return what is stored about ``user_id``, or None when the user has no account."""
    with store.connect(read_only=True) as con:
        return _read_user(con, user_id)


def get_account_context(store: Store, user_id: str) -> AccountContext | None:
    """Return the ``account`` ContextPack piece of ``user_id``, or None without an account."""
    state = get_user(store, user_id)
    return None if state is None else state.context


def rules_history(store: Store, user_id: str) -> tuple[RulesVersion, ...]:
    """Return every stored rules version of ``user_id``, oldest first."""
    from buddy.store.users import rules_history_rows
    rows = rules_history_rows(store, user_id)
    return tuple(RulesVersion(version=v, rules=rules_from_json(text), created_at=ts)
                 for v, text, ts in rows)


def rules_at_version(store: Store, user_id: str, version: int) -> RiskRules | None:
    """Return the rules ``user_id`` had at ``version`` (what an evaluation logged), or None."""
    from buddy.store.users import rules_json_at
    text = rules_json_at(store, user_id, version)
    return None if text is None else rules_from_json(text)


def exit_templates(store: Store, user_id: str) -> tuple[ExitTemplate, ...]:
    """Return the saved exit templates of ``user_id``, by name."""
    with store.connect(read_only=True) as con:
        return _read_templates(con, user_id)


def _read_user(con: DuckDBPyConnection, user_id: str) -> UserState | None:
    from buddy.store.users import account_row, preferences_row, rules_row
    account = account_row(con, user_id)
    if account is None:
        return None
    rules = rules_row(con, user_id)
    prefs = preferences_row(con, user_id)
    preferences = UserPreferences() if prefs is None else UserPreferences(
        disabled_modules=tuple(json.loads(prefs[0])),
        disclosures_off=tuple(json.loads(prefs[1])), strictness=prefs[2],
        nudge_sensitivity=prefs[3])
    return UserState(
        account=UserAccount(user_id=user_id, base_currency=account[0],
                            equity_snapshot=account[1], buying_power_snapshot=account[2]),
        rules=RiskRules() if rules is None else rules_from_json(rules[0]),
        rules_version=0 if rules is None else int(rules[1]),
        preferences=preferences, exit_templates=_read_templates(con, user_id))


def _read_templates(con: DuckDBPyConnection, user_id: str) -> tuple[ExitTemplate, ...]:
    from buddy.store.users import template_rows
    rows = template_rows(con, user_id)
    return tuple(_template_from_json(name, text) for name, text in rows)


# ---------------------------------------------------------------------------- writes
def set_user(store: Store, user_id: str, *, base_currency: str | None = None,
             equity: float | None = None, buying_power: float | None = None,
             rules: Mapping[str, Any] | RiskRules | None = None,
             disabled_modules: Iterable[str] | None = None,
             disclosures_off: Iterable[str] | None = None, strictness: str | None = None,
             nudge_sensitivity: str | None = None) -> UserState:
    """Create or update a user and return the stored state.

    Arguments left as None keep their stored value (a new user starts from the defaults).
    ``equity`` and ``buying_power`` are snapshots in the base currency. ``rules`` keys are
    merged over the current rules; a changed rule set is written as version n+1 (a new user's
    first version is 1), an identical one writes no version. ``disabled_modules`` and
    ``disclosures_off`` replace the stored sets. Everything is validated before anything is
    written; UserSettingsError lists every problem.
    """
    _check_user_id(user_id)
    current = get_user(store, user_id)
    proposed = _proposed_state(current, user_id, base_currency=base_currency, equity=equity,
                               buying_power=buying_power, rules=rules,
                               disabled_modules=disabled_modules,
                               disclosures_off=disclosures_off, strictness=strictness,
                               nudge_sensitivity=nudge_sensitivity)
    if _write_user(store, current, proposed):
        store.touch_context_stamp()
    return proposed


def save_exit_template(store: Store, user_id: str, template: ExitTemplate) -> ExitTemplate:
    """Save (or replace) one of the user's exit templates; the user needs an account."""
    errors = exit_template_errors(template)
    if get_user(store, user_id) is None:
        errors.append(FieldError("user_id", "has no account; run `buddy user set --user "
                                 f"{user_id} ...` first", user_id))
    if errors:
        raise UserSettingsError(errors)
    from buddy.store.users import write_exit_template
    write_exit_template(store, user_id, template.name, _template_json(template))
    store.touch_context_stamp()
    return template


def _write_user(store: Store, current: UserState | None, proposed: UserState) -> bool:
    """Write what changed in ONE transaction; return False when nothing did."""
    account_changed = current is None or proposed.account != current.account
    prefs_changed = current is None or proposed.preferences != current.preferences
    if not (account_changed or prefs_changed or proposed.rules_changed):
        return False
    user_id = proposed.account.user_id
    from buddy.store.users import write_account, write_preferences, write_rules_version
    rules_json = canonical_json(proposed.rules.as_dict())
    with store.transaction() as con:
        if _read_user(con, user_id) != current:
            raise BuddyError(f"user {user_id} was changed by another process while this "
                             "update was checked; nothing was written, run it again")
        if account_changed or proposed.rules_changed:
            account = proposed.account
            write_account(con, user_id, account.base_currency, account.equity_snapshot,
                          account.buying_power_snapshot, rules_json)
        if proposed.rules_changed:
            write_rules_version(con, user_id, rules_json, proposed.rules_version)
        if prefs_changed:
            prefs = proposed.preferences
            write_preferences(con, user_id, json.dumps(list(prefs.disabled_modules)),
                              json.dumps(list(prefs.disclosures_off)), prefs.strictness,
                              prefs.nudge_sensitivity)
    return True


# ---------------------------------------------------------------------------- validation
def _proposed_state(current: UserState | None, user_id: str, *, base_currency: Any,
                    equity: Any, buying_power: Any, rules: Any, disabled_modules: Any,
                    disclosures_off: Any, strictness: Any, nudge_sensitivity: Any
                    ) -> UserState:
    """Return the state after the update, or raise UserSettingsError listing every problem."""
    errors: list[FieldError] = []
    account = current.account if current else UserAccount(user_id=user_id)
    if base_currency is not None:
        if isinstance(base_currency, str) and re.fullmatch(r"[A-Za-z]{3}",
                                                           base_currency.strip()):
            account = dataclasses.replace(account, base_currency=base_currency.strip().upper())
        else:
            errors.append(FieldError("account.base_currency", "must be a 3-letter currency "
                                     "code such as USD", base_currency))
    if equity is not None:
        if _finite_number(equity) and equity > 0:
            account = dataclasses.replace(account, equity_snapshot=float(equity))
        else:
            errors.append(FieldError("account.equity_snapshot", "must be a finite number > 0",
                                     equity))
    if buying_power is not None:
        if _finite_number(buying_power) and buying_power >= 0:
            account = dataclasses.replace(account, buying_power_snapshot=float(buying_power))
        else:
            errors.append(FieldError("account.buying_power_snapshot",
                                     "must be a finite number >= 0", buying_power))

    current_rules = current.rules if current else None
    new_rules, rule_errors = _merged_rules(current_rules, rules)
    errors += rule_errors
    templates = current.exit_templates if current else ()
    default = new_rules.default_exit_template if new_rules else None
    saved = [t.name for t in templates]
    if default is not None and default not in saved:
        errors.append(FieldError("rules.default_exit_template", "must name a saved exit "
                                 f"template (saved: {', '.join(saved) or 'none'}; "
                                 f"{did_you_mean(default, saved)})", default))

    prefs = current.preferences if current else UserPreferences()
    if disabled_modules is not None:
        names, name_errors = _names(disabled_modules, known_modules(),
                                    "preferences.disabled_modules", "a registered module")
        errors += name_errors
        prefs = dataclasses.replace(prefs, disabled_modules=names)
    if disclosures_off is not None:
        names, name_errors = _names(disclosures_off, list(DISCLOSURES),
                                    "preferences.disclosures_off", "a report disclosure")
        if not name_errors:
            try:  # also refuses the mandatory ones (no_prediction)
                names = validate_disclosures_off(names)
            except ConfigError as exc:
                name_errors = list(exc.errors)
        errors += name_errors
        prefs = dataclasses.replace(prefs, disclosures_off=names)
    for name, value, choices in (("strictness", strictness, STRICTNESS),
                                 ("nudge_sensitivity", nudge_sensitivity, NUDGE_SENSITIVITY)):
        if value is None:
            continue
        if value in choices:
            prefs = dataclasses.replace(prefs, **{name: value})
        else:
            errors.append(FieldError(f"preferences.{name}",
                                     f"must be one of {', '.join(choices)}", value))
    if errors or new_rules is None:
        raise UserSettingsError(errors)
    changed = current is None or new_rules != current.rules
    version = (current.rules_version if current else 0) + (1 if changed else 0)
    return UserState(account=account, rules=new_rules, rules_version=version,
                     preferences=prefs, exit_templates=templates, rules_changed=changed)


def _merged_rules(current: RiskRules | None, updates: Mapping[str, Any] | RiskRules | None
                  ) -> tuple[RiskRules | None, list[FieldError]]:
    """Return the rules with ``updates`` merged over ``current`` (defaults when None)."""
    if isinstance(updates, RiskRules):
        updates = updates.as_dict()
    if updates is not None and not isinstance(updates, Mapping):
        return None, [FieldError("rules", "must be a mapping of rule names to values",
                                 updates)]
    values, errors = _normalised_rules(updates or {})
    unknown = {k: v for k, v in values.items() if k not in _RULE_KINDS}
    if unknown:
        try:
            RiskRules.from_mapping(unknown)
        except ConfigError as exc:  # names each unknown key with the closest valid one
            errors += exc.errors
    known = {k: v for k, v in values.items() if k in _RULE_KINDS}
    try:
        rules = RiskRules.from_mapping({**(current.as_dict() if current else {}), **known})
    except ConfigError as exc:
        return None, errors + list(exc.errors)
    return (None if errors else rules), errors


def _normalised_rules(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[FieldError]]:
    """Return rule values in their canonical types (lists as sorted tuples, ints as floats)."""
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key, value in values.items():
        kind = _RULE_KINDS.get(key)
        name = f"rules.{key}"
        if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                errors.append(FieldError(name, "must be a finite number", value))
                continue
        elif kind == "bool" and not isinstance(value, bool):
            errors.append(FieldError(name, "must be true or false", value))
            continue
        elif kind == "list":
            value, error = _rule_list(key, value)
            if error is not None:
                errors.append(error)
                continue
        elif kind == "text" and value is not None:
            if not isinstance(value, str):
                errors.append(FieldError(name, "must be a name or None", value))
                continue
            value = value.strip() or None
        out[key] = value
    return out, errors


def _rule_list(key: str, value: Any) -> tuple[tuple[str, ...], FieldError | None]:
    name = f"rules.{key}"
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        return (), FieldError(name, "must be a list of names (or one comma-separated text)",
                              value)
    items = [v.strip() for v in value if v.strip()]
    if key == "allowed_symbols":
        return tuple(sorted({v.upper() for v in items})), None
    if key == "allowed_timeframes":
        labels = [t.value for t in Timeframe]
        bad = [v for v in items if v.lower() not in labels]
        if bad:
            return (), FieldError(name, f"must be timeframes among {', '.join(labels)}", bad)
        return tuple(t for t in labels if t in {v.lower() for v in items}), None
    if key == "trading_windows":
        bad = [v for v in items if not _is_window(v)]
        if bad:
            return (), FieldError(name, "must be windows 'HH:MM-HH:MM' (00:00 to 24:00, "
                                  "start != end)", bad)
        return tuple(sorted(set(items))), None
    return tuple(items), None


def _is_window(text: str) -> bool:
    match = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", text)
    if not match:
        return False
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    return h1 < 24 and m1 < 60 and m2 < 60 and end <= 24 * 60 and start != end


def exit_template_errors(template: ExitTemplate) -> list[FieldError]:
    """Return what is wrong with ``template`` (R and ATR multiples > 0, fractions in (0, 1])."""
    errors: list[FieldError] = []
    if not isinstance(template.name, str) or not template.name.strip() or (
        template.name != template.name.strip()
    ):
        errors.append(FieldError("exit_template.name", "must be a non-empty name without "
                                 "surrounding spaces", template.name))
    bounded = (("target_r", MAX_TEMPLATE_R), ("breakeven_at_r", MAX_TEMPLATE_R),
               ("trailing_atr", MAX_TRAILING_ATR))
    for field_name, hi in bounded:
        value = getattr(template, field_name)
        if value is not None and not (_finite_number(value) and 0 < value <= hi):
            errors.append(FieldError(f"exit_template.{field_name}",
                                     f"must be > 0 and <= {hi:g}", value))
    bars = template.time_stop_bars
    if bars is not None and (not isinstance(bars, int) or isinstance(bars, bool)
                             or not 1 <= bars <= MAX_TIME_STOP_BARS):
        errors.append(FieldError("exit_template.time_stop_bars",
                                 f"must be a whole number between 1 and {MAX_TIME_STOP_BARS}",
                                 bars))
    partials = template.partials
    if not isinstance(partials, tuple) or not all(isinstance(p, PartialExit) for p in partials):
        errors.append(FieldError("exit_template.partials", "must be a tuple of PartialExit",
                                 partials))
        partials = ()
    for partial in partials:
        if not (_finite_number(partial.at_r) and 0 < partial.at_r <= MAX_TEMPLATE_R):
            errors.append(FieldError("exit_template.partials.at_r",
                                     f"must be > 0 and <= {MAX_TEMPLATE_R:g}", partial.at_r))
        if not (_finite_number(partial.fraction) and 0 < partial.fraction <= 1):
            errors.append(FieldError("exit_template.partials.fraction",
                                     "must be > 0 and <= 1", partial.fraction))
    if not errors:
        total = sum(p.fraction for p in partials)
        if total > 1 + 1e-9:
            errors.append(FieldError("exit_template.partials", "fractions must sum to <= 1",
                                     round(total, 6)))
        levels = [p.at_r for p in partials]
        if len(set(levels)) != len(levels):
            errors.append(FieldError("exit_template.partials", "must not repeat an R level",
                                     levels))
    return errors


def known_modules() -> list[str]:
    """Return the names of the registered evaluator modules (what a user may switch off)."""
    from buddy.evaluators import available

    return sorted(available())


def name_errors(names: Iterable[Any], choices: list[str], field_name: str, what: str
                ) -> list[FieldError]:
    """Return one error per name not among ``choices``, with the closest choice for a typo."""
    return [FieldError(field_name, f"is not {what} ({did_you_mean(n, choices)})", n)
            for n in names if n not in choices]


def _names(values: Iterable[str], choices: list[str], field_name: str, what: str
           ) -> tuple[tuple[str, ...], list[FieldError]]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, Iterable):
        return (), [FieldError(field_name, "must be a list of names", values)]
    values = list(values)
    errors = name_errors(values, choices, field_name, what)
    return (() if errors else tuple(sorted(set(values)))), errors


def _check_user_id(user_id: Any) -> None:
    if not isinstance(user_id, str) or not user_id.strip() or user_id != user_id.strip():
        raise UserSettingsError([FieldError("user_id", "must be a non-empty name without "
                                            "surrounding spaces", user_id)])


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# ---------------------------------------------------------------------------- JSON forms
def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int | float):
        return "number"
    if isinstance(default, tuple):
        return "list"
    return "text"


_RULE_KINDS = {f.name: _kind(f.default) for f in dataclasses.fields(RiskRules)}
_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}


def parse_rule_value(key: str, text: str) -> Any:
    """Return the command-line text of rule ``key`` in that rule's type.

    Numbers, true/false words, comma-separated lists and names ('' or 'none' for no name).
    Text that does not parse is returned as is, for validation to name the rule; an unknown
    key's text too, for validation to suggest the closest key.
    """
    kind = _RULE_KINDS.get(key)
    text = text.strip()
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "bool":
        word = text.lower()
        return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else text
    if kind == "list":
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if kind == "text":
        return None if text.lower() in ("", "none") else text
    return text


def rules_from_json(text: str) -> RiskRules:
    """Return the RiskRules stored as ``text`` (canonical JSON)."""
    values = json.loads(text)
    return RiskRules.from_mapping({k: tuple(v) if isinstance(v, list) else v
                                   for k, v in values.items()})


def _template_json(template: ExitTemplate) -> str:
    def number(value: float | None) -> float | None:
        return None if value is None else float(value)

    return canonical_json({
        "target_r": number(template.target_r), "time_stop_bars": template.time_stop_bars,
        "breakeven_at_r": number(template.breakeven_at_r),
        "trailing_atr": number(template.trailing_atr),
        "partials": [{"at_r": float(p.at_r), "fraction": float(p.fraction)}
                     for p in template.partials]})


def _template_from_json(name: str, text: str) -> ExitTemplate:
    values = json.loads(text)
    partials = tuple(PartialExit(**p) for p in values.pop("partials", []))
    return ExitTemplate(name=name, partials=partials, **values)
