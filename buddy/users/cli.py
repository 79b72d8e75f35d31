"""``buddy user``: a user's account, versioned risk rules, exit templates and opt-outs.

Attached to the main command with ``cli.add_command(user)``, it uses the main command's store
(``buddy --db PATH``); used on its own, it opens $BUDDY_DB (else data/buddy.duckdb).
Invalid input exits with status 2 and a message naming each key, rule and value.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from buddy.disclosures import DISCLOSURES
from buddy.errors import BuddyError, FieldError
from buddy.users.model import ExitTemplate, PartialExit, RiskRules
from buddy.users.store import (
    NUDGE_SENSITIVITY,
    STRICTNESS,
    UserSettingsError,
    UserState,
    get_user,
    known_modules,
    name_errors,
    parse_rule_value,
    rules_history,
    save_exit_template,
    set_user,
)

if TYPE_CHECKING:
    from buddy.store import Store

#: Named options of ``user set`` and the rule each one sets.
RULE_OPTIONS: dict[str, str] = {
    "max_risk_pct": "max_risk_per_trade_pct",
    "max_daily_loss_pct": "max_daily_loss_pct",
    "max_heat_pct": "max_open_heat_pct",
    "min_rr": "min_reward_risk",
    "stop_required": "stop_required",
    "allow_symbols": "allowed_symbols",
    "allow_timeframes": "allowed_timeframes",
    "windows": "trading_windows",
    "default_exit_template": "default_exit_template",
}


def _store() -> Store:
    opener = getattr(click.get_current_context().find_root().obj, "store", None)
    if callable(opener):
        return opener()
    from buddy.store import Store

    return Store()


def _fail(exc: Exception) -> NoReturn:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group()
def user() -> None:
    """Accounts, versioned risk rules, exit templates and opt-outs."""


# ---------------------------------------------------------------------------- set
@user.command("set")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--currency", default=None, help="Base currency, e.g. USD.")
@click.option("--equity", type=float, default=None, help="Equity snapshot (base currency).")
@click.option("--buying-power", type=float, default=None,
              help="Buying-power snapshot (base currency).")
@click.option("--max-risk-pct", type=float, default=None,
              help="Max risk per trade, % of equity.")
@click.option("--max-daily-loss-pct", type=float, default=None,
              help="Max daily loss, % of equity.")
@click.option("--max-heat-pct", type=float, default=None,
              help="Max open heat (risk at stops), % of equity.")
@click.option("--min-rr", type=float, default=None, help="Minimum reward:risk (R).")
@click.option("--stop-required/--no-stop-required", default=None,
              help="Every intent must carry a stop.")
@click.option("--allow-symbols", default=None, help="Comma-separated; '' allows any.")
@click.option("--allow-timeframes", default=None, help="Comma-separated; '' allows any.")
@click.option("--windows", default=None,
              help="Trading windows 'HH:MM-HH:MM,...' in exchange time; '' means any time.")
@click.option("--default-exit-template", default=None,
              help="Saved exit template used when an intent names none ('' for none).")
@click.option("--rule", "rule_pairs", multiple=True, metavar="KEY=VALUE",
              help="Any rule by name, e.g. --rule min_reward_risk=2 (repeatable).")
@click.option("--disable-module", multiple=True, help="Switch an evaluator module off.")
@click.option("--enable-module", multiple=True, help="Switch an evaluator module back on.")
@click.option("--disclosure-off", multiple=True,
              help="Switch a report disclosure off (" + ", ".join(
                  n for n, d in DISCLOSURES.items() if not d.mandatory) + ").")
@click.option("--disclosure-on", multiple=True, help="Switch a report disclosure back on.")
@click.option("--strictness", type=click.Choice(STRICTNESS), default=None)
@click.option("--nudge-sensitivity", type=click.Choice(NUDGE_SENSITIVITY), default=None)
def set_cmd(user_id: str, currency: str | None, equity: float | None,
            buying_power: float | None, rule_pairs: tuple[str, ...],
            disable_module: tuple[str, ...], enable_module: tuple[str, ...],
            disclosure_off: tuple[str, ...], disclosure_on: tuple[str, ...],
            strictness: str | None, nudge_sensitivity: str | None, **rule_options: Any
            ) -> None:
    """Create or update a user; a changed rule set becomes a new rules version."""
    store = _store()
    try:
        rules = _rules_from_options(rule_pairs, rule_options)
        current = get_user(store, user_id)
        prefs = current.preferences if current else None
        disabled = _toggled(prefs.disabled_modules if prefs else (), disable_module,
                            enable_module, known_modules(), "--enable-module")
        disclosures = _toggled(prefs.disclosures_off if prefs else (), disclosure_off,
                               disclosure_on, list(DISCLOSURES), "--disclosure-on")
        state = set_user(store, user_id, base_currency=currency, equity=equity,
                         buying_power=buying_power, rules=rules or None,
                         disabled_modules=disabled, disclosures_off=disclosures,
                         strictness=strictness, nudge_sensitivity=nudge_sensitivity)
    except BuddyError as exc:
        _fail(exc)
    change = "new version" if state.rules_changed else "unchanged"
    click.echo(f"user {user_id}: rules v{state.rules_version} ({change})")


def _rules_from_options(pairs: tuple[str, ...], options: dict[str, Any]) -> dict[str, Any]:
    """Return the rule updates given by --rule KEY=VALUE and the named options."""
    rules: dict[str, Any] = {}
    errors: list[FieldError] = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            errors.append(FieldError("--rule", "must be KEY=VALUE", pair))
            continue
        rules[key.strip()] = parse_rule_value(key.strip(), text)
    for option, key in RULE_OPTIONS.items():
        value = options.get(option)
        if value is None:
            continue
        if key in rules:
            errors.append(FieldError(f"rules.{key}", f"is given twice (--rule and "
                                     f"--{option.replace('_', '-')})", value))
        rules[key] = parse_rule_value(key, value) if isinstance(value, str) else value
    if errors:
        raise UserSettingsError(errors)
    return rules


def _toggled(current: tuple[str, ...], off: tuple[str, ...], on: tuple[str, ...],
             known: list[str], on_option: str) -> tuple[str, ...] | None:
    """Return the names switched off after switching ``off`` off and ``on`` on (None: as is)."""
    if not off and not on:
        return None
    errors = name_errors(on, known, on_option, "known")
    errors += [FieldError(on_option, "is also switched off in the same command", name)
               for name in sorted(set(off) & set(on))]
    if errors:
        raise UserSettingsError(errors)
    return tuple(sorted((set(current) | set(off)) - set(on)))


# ---------------------------------------------------------------------------- show, history
@user.command("show")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(user_id: str, as_json: bool) -> None:
    """Print a user's account, current rules (with version), exit templates and opt-outs."""
    state = _existing_user(user_id)
    if as_json:
        click.echo(json.dumps(_state_dict(state), indent=2, default=str))
        return
    account = state.account
    click.echo(f"user {user_id}  base currency {account.base_currency}")
    click.echo(f"  equity {_money(account.equity_snapshot)}   buying power "
               f"{_money(account.buying_power_snapshot)}")
    click.echo(f"rules v{state.rules_version}")
    units = {d["name"]: d["unit"] for d in RiskRules.describe()}
    for name, value in state.rules.as_dict().items():
        click.echo(f"  {name:<24} {_rule_text(value)} {units[name]}".rstrip())
    click.echo("exit templates" + ("" if state.exit_templates else ": none"))
    for template in state.exit_templates:
        click.echo(f"  {template.name}: {_template_text(template)}")
    prefs = state.preferences
    click.echo("preferences")
    click.echo(f"  modules off: {', '.join(prefs.disabled_modules) or 'none'}")
    click.echo(f"  disclosures off: {', '.join(prefs.disclosures_off) or 'none'}")
    click.echo(f"  strictness {prefs.strictness}   nudge sensitivity "
               f"{prefs.nudge_sensitivity}")


@user.command("history")
@click.option("--user", "user_id", required=True, help="User id.")
def history_cmd(user_id: str) -> None:
    """Print every rules version of a user and what each one changed."""
    _existing_user(user_id)
    previous: dict[str, Any] | None = None
    for entry in rules_history(_store(), user_id):
        values = entry.rules.as_dict()
        if previous is None:
            change = "first version: " + ", ".join(f"{k}={_rule_text(v)}"
                                                   for k, v in values.items())
        else:
            change = ", ".join(f"{k} {_rule_text(previous[k])} -> {_rule_text(v)}"
                               for k, v in values.items() if previous[k] != v)
        click.echo(f"v{entry.version}  {entry.created_at:%Y-%m-%d %H:%M:%S} UTC  {change}")
        previous = values


def _existing_user(user_id: str) -> UserState:
    state = get_user(_store(), user_id)
    if state is None:
        _fail(BuddyError(f"user {user_id} has no account; run `buddy user set --user "
                         f"{user_id} ...`"))
    return state


# ---------------------------------------------------------------------------- exit templates
@user.group("exit-template")
def exit_template() -> None:
    """Saved exit plans (target, time stop, break-even, partials)."""


@exit_template.command("save")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--name", required=True, help="Template name.")
@click.option("--target-r", type=float, default=None, help="Target distance in R.")
@click.option("--time-stop-bars", type=int, default=None, help="Exit after this many bars.")
@click.option("--breakeven-at-r", type=float, default=None,
              help="Move the stop to entry once price is this many R in favour.")
@click.option("--trailing-atr", type=float, default=None,
              help="Trail the stop this many ATR behind.")
@click.option("--partial", "partials", multiple=True, metavar="R:FRACTION",
              help="Take a fraction off at an R level, e.g. 1R:0.5 (repeatable).")
def save_template_cmd(user_id: str, name: str, target_r: float | None,
                      time_stop_bars: int | None, breakeven_at_r: float | None,
                      trailing_atr: float | None, partials: tuple[str, ...]) -> None:
    """Save (or replace) an exit template."""
    try:
        template = ExitTemplate(name=name, target_r=target_r, time_stop_bars=time_stop_bars,
                                breakeven_at_r=breakeven_at_r, trailing_atr=trailing_atr,
                                partials=_partials(partials))
        save_exit_template(_store(), user_id, template)
    except BuddyError as exc:
        _fail(exc)
    click.echo(f"user {user_id}: exit template {name} saved ({_template_text(template)})")


_PARTIAL = re.compile(r"\s*(\d+(?:\.\d+)?)\s*[rR]?\s*:\s*(\d*\.?\d+)\s*")


def _partials(texts: tuple[str, ...]) -> tuple[PartialExit, ...]:
    out, errors = [], []
    for text in texts:
        match = _PARTIAL.fullmatch(text)
        if match is None:
            errors.append(FieldError("--partial", "must look like 1R:0.5 (R level : fraction "
                                     "of the position)", text))
            continue
        out.append(PartialExit(at_r=float(match.group(1)), fraction=float(match.group(2))))
    if errors:
        raise UserSettingsError(errors)
    return tuple(out)


# ---------------------------------------------------------------------------- text forms
def _money(value: float | None) -> str:
    return "unknown" if value is None else f"{value:,.2f}"


def _rule_text(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) if value else "any"
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _template_text(template: ExitTemplate) -> str:
    parts = []
    if template.target_r is not None:
        parts.append(f"target {template.target_r:g}R")
    if template.time_stop_bars is not None:
        parts.append(f"time stop {template.time_stop_bars} bars")
    if template.breakeven_at_r is not None:
        parts.append(f"break-even at {template.breakeven_at_r:g}R")
    if template.trailing_atr is not None:
        parts.append(f"trail {template.trailing_atr:g} ATR")
    parts += [f"take {p.fraction:.0%} at {p.at_r:g}R" for p in template.partials]
    return ", ".join(parts) or "no exits set"


def _state_dict(state: UserState) -> dict[str, Any]:
    return {"user_id": state.account.user_id,
            "account": {"base_currency": state.account.base_currency,
                        "equity_snapshot": state.account.equity_snapshot,
                        "buying_power_snapshot": state.account.buying_power_snapshot},
            "rules_version": state.rules_version, "rules": state.rules.as_dict(),
            "exit_templates": [{"name": t.name, "text": _template_text(t)}
                               for t in state.exit_templates],
            "preferences": {"disabled_modules": list(state.preferences.disabled_modules),
                            "disclosures_off": list(state.preferences.disclosures_off),
                            "strictness": state.preferences.strictness,
                            "nudge_sensitivity": state.preferences.nudge_sensitivity}}
