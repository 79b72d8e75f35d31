"""The public contract kit of evaluators: ``check_evaluator(cls)``.

Every evaluator, built in or third-party, passes the same checks::

    from buddy.testing import check_evaluator

    def test_my_evaluator_keeps_the_contract() -> None:
        check_evaluator(MyEvaluator)  # raises one AssertionError listing every problem

``check_evaluator`` checks that

- the class is valid (``check_evaluator_class``: name, version, pieces, config class, codes,
  evidence declarations, thresholds naming config fields, template placeholders naming
  declared facts) and its templates carry no predictive wording;
- its config refuses values outside each ``param()`` range or choices, values of the wrong
  type and unknown names (with a did-you-mean), naming the field, and round-trips its JSON;
- ``evaluate_batch`` is deterministic (same input twice, same result), opens no file, socket
  or subprocess and reads no clock while it runs, and treats rows independently (a batch of N
  says, row by row, what N batches of one say, in any order);
- it reads only the pieces it declares (removing every piece it neither requires nor lists as
  optional changes nothing; removing an optional one does not break it);
- every issue carries the evidence its ``Code`` declares (same names in order, same units,
  thresholds where declared, at least one number) and the declared mitigation action and
  facts; the explain facts are the declared ones;
- it is point-in-time on real data: a pack built as of t from the whole history and one built
  from a store holding only what had closed by t give the same result.

The default cases come from the real market data the project ships (``sample_cases`` and
``point_in_time_cases``): a small store built once per process in a temporary folder, AAPL
daily around its 2005 split and EURUSD hourly, with every standard context piece, plus edge
cases (a short history, stale data, a pack holding only market data).
"""

from __future__ import annotations

import atexit
import builtins
import dataclasses
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

import pandas as pd

from buddy.batch.context import BatchContext, from_packs
from buddy.batch.result import BatchResult, issue_evidence_json
from buddy.config import Config, ModuleConfig
from buddy.context.pack import PIECES, ContextPack
from buddy.domain import EvaluationResult, Fact, ModuleStatus, OrderType, Side, TradeIntent
from buddy.errors import ConfigError
from buddy.evaluators.base import Code, Evaluator, check_evaluator_class
from buddy.guardrails import predictive_phrases
from buddy.timeframes import Timeframe

__all__ = [
    "Case",
    "KitReport",
    "PointInTimeCase",
    "assert_evidence",
    "assert_number",
    "assert_row_matches",
    "assert_rows_cover_codes",
    "assert_rows_match_batches_of_one",
    "assert_value",
    "check_evaluator",
    "codes_of_batches_of_one",
    "evaluator_problems",
    "point_in_time_cases",
    "result_differences",
    "runnable",
    "sample_cases",
]

#: One evaluation input: an intent and the ContextPack it is judged against.
Case = tuple[TradeIntent, ContextPack]

#: Relative and absolute tolerance of float comparisons between two computations of one value.
REL = 1e-9
ABS = 1e-12
#: Problems listed per check before the rest are counted.
MAX_LISTED = 5
#: The reason a piece removed by the kit is missing.
REMOVED = "removed by buddy.testing"


@dataclass(frozen=True, slots=True)
class PointInTimeCase:
    """An intent at t, its pack built from the whole history (``full``) and from a store
    holding only the bars, features and corporate actions that had closed by t (``cut``)."""

    intent: TradeIntent
    full: ContextPack
    cut: ContextPack


@dataclass(frozen=True, slots=True)
class KitReport:
    """What ``check_evaluator`` ran: cases (``rows``: those holding the required pieces),
    issues emitted per code, point-in-time comparisons, and the problems found."""

    name: str
    cases: int
    rows: int
    issues: Counter[str] = field(default_factory=Counter)
    point_in_time_rows: int = 0
    problems: tuple[str, ...] = ()
    declared: tuple[str, ...] = ()

    @property
    def codes_not_fired(self) -> tuple[str, ...]:
        """Declared codes no case triggered (their evidence went unchecked)."""
        return tuple(c for c in self.declared if c not in self.issues)


# ============================================================================ the kit
def check_evaluator(cls: type[Evaluator[Any]], *, cases: Sequence[Case] | None = None,
                    point_in_time: Sequence[PointInTimeCase] | None = None,
                    config: ModuleConfig | None = None) -> KitReport:
    """Check ``cls`` against the evaluator contract; raise one AssertionError listing every
    problem, else return what was checked.

    ``cases``: (intent, pack) pairs to run on (default: ``sample_cases()``, real data and its
    edge cases; pass ``[*sample_cases(), *yours]`` to add some). ``point_in_time``: triples
    of an intent and its packs from the whole and the truncated history (default:
    ``point_in_time_cases()``; ``()`` skips the check). ``config``: the config to run with
    (default: the config class's defaults).
    """
    report = evaluator_problems(cls, cases=cases, point_in_time=point_in_time, config=config)
    if report.problems:
        lines = "\n".join(f"  - {p}" for p in report.problems)
        raise AssertionError(f"check_evaluator({getattr(cls, '__name__', cls)}) found "
                             f"{len(report.problems)} problem(s):\n{lines}")
    return report


def evaluator_problems(cls: type[Evaluator[Any]], *, cases: Sequence[Case] | None = None,
                       point_in_time: Sequence[PointInTimeCase] | None = None,
                       config: ModuleConfig | None = None) -> KitReport:
    """Return what ``check_evaluator`` checks, with the problems found instead of raising."""
    found = _Problems()
    name = str(getattr(cls, "name", getattr(cls, "__name__", cls)))
    found.extend("class", check_evaluator_class(cls))
    if not (isinstance(cls, type) and issubclass(cls, Evaluator)):
        return KitReport(name=name, cases=0, rows=0, problems=found.lines())
    found.extend("wording", wording_problems(cls))
    config_cls = getattr(cls, "config_cls", None)
    if isinstance(config_cls, type) and issubclass(config_cls, Config):
        found.extend("config", config_problems(config_cls))
    codes = getattr(cls, "codes", None)
    if not isinstance(codes, Mapping) or not codes:
        found.add("evidence", "codes are not declared (Code per issue code): the evidence "
                              "checks need them")
    try:
        evaluator = cls(config)
    except Exception as exc:  # the kit reports, the author fixes
        found.add("config", f"{name}({config!r}) raised {type(exc).__name__}: {exc}")
        return KitReport(name=name, cases=0, rows=0, problems=found.lines())

    all_cases = list(sample_cases() if cases is None else cases)
    rows = runnable(evaluator, all_cases)
    issues: Counter[str] = Counter()
    if not rows:
        found.add("cases", f"none of the {len(all_cases)} cases holds the required pieces "
                           f"{sorted(cls.requires)}")
    else:
        results = _behaviour(evaluator, rows, found)
        if results is not None:
            for intent, result in zip((i for i, _ in rows), results, strict=True):
                found.extend("evidence", declaration_problems(cls, result,
                                                              label=intent.intent_id))
                issues.update(i.code for i in result.issues)
            if not issues:
                found.add("cases", f"no issue fired on any of the {len(rows)} cases: the "
                                   "evidence checks ran on nothing (add cases that trip it)")
    pit = list(point_in_time_cases() if point_in_time is None else point_in_time)
    pit_rows = [c for c in pit if not c.full.missing_pieces(cls.requires)
                and not c.cut.missing_pieces(cls.requires)]
    if pit and not pit_rows:
        found.add("point-in-time", "no point-in-time case holds the required pieces "
                                   f"{sorted(cls.requires)}")
    elif pit_rows:
        full = _run(evaluator, [(c.intent, c.full) for c in pit_rows], found, "point-in-time")
        cut = _run(evaluator, [(c.intent, c.cut) for c in pit_rows], found, "point-in-time")
        if full is not None and cut is not None:
            for case, a, b in zip(pit_rows, full, cut, strict=True):
                found.extend("point-in-time", [
                    f"{case.intent.intent_id}: with only the data closed by its as_of, {d}"
                    for d in result_differences(b, a)])
    return KitReport(name=name, cases=len(all_cases), rows=len(rows), issues=issues,
                     point_in_time_rows=len(pit_rows), problems=found.lines(),
                     declared=tuple(codes) if isinstance(codes, Mapping) else ())


def _behaviour(evaluator: Evaluator[Any], rows: list[Case], found: _Problems
               ) -> list[EvaluationResult] | None:
    """Run the determinism, purity, row-independence and declared-pieces checks; return the
    per-row results of the batch (None when the batch form could not run)."""
    batch = _run(evaluator, rows, found, "purity")
    if batch is None:
        return None
    again = _run(evaluator, rows, found, "determinism")
    if again is not None:
        found.extend("determinism", [f"{rows[k][0].intent_id}: run twice, {d}"
                                     for k, (a, b) in enumerate(zip(batch, again, strict=True))
                                     for d in _exact_differences(b, a)])
    for k, (intent, pack) in enumerate(rows):
        one = _run(evaluator, [(intent, pack)], found, "rows")
        if one is not None:
            found.extend("rows", [f"{intent.intent_id}: alone vs row {k} of {len(rows)}, {d}"
                                  for d in result_differences(one[0], batch[k])])
    backwards = _run(evaluator, rows[::-1], found, "rows")
    if backwards is not None:
        found.extend("rows", [f"{rows[k][0].intent_id}: in reversed order, {d}"
                              for k, result in enumerate(backwards[::-1])
                              for d in result_differences(result, batch[k])])
    for k, result in enumerate(batch):
        if result.status is not ModuleStatus.OK:
            found.add("result", f"{rows[k][0].intent_id}: status {result.status.value}")
        if result.score is not None and not 0.0 <= result.score <= 100.0:
            found.add("result", f"{rows[k][0].intent_id}: score {result.score} outside 0..100")
    cls = type(evaluator)
    undeclared = [p for p in PIECES if p not in cls.requires | cls.optional]
    stripped = _run(evaluator, [(i, without(p, undeclared)) for i, p in rows], found, "pieces")
    if stripped is not None:
        found.extend("pieces", [
            f"{rows[k][0].intent_id}: reads an undeclared piece: without "
            f"{', '.join(undeclared)}, {d}"
            for k, result in enumerate(stripped) for d in result_differences(result, batch[k])])
    for piece in sorted(cls.optional):
        _run(evaluator, [(i, without(p, [piece])) for i, p in rows], found, "pieces",
             what=f"without its optional piece {piece!r}")
    return batch


def _run(evaluator: Evaluator[Any], rows: Sequence[Case], found: _Problems, check: str, *,
         what: str = "") -> list[EvaluationResult] | None:
    """Return the per-row results of one ``evaluate_batch`` over ``rows``, run under the
    purity guard (I/O and clock reads are problems); None when it raised."""
    ctx = from_packs([i for i, _ in rows], [p for _, p in rows])
    seen: list[str] = []
    try:
        with guarded(seen):
            batch = evaluator.evaluate_batch(ctx)
    except Exception as exc:
        found.extend("purity", seen)
        found.add(check, f"evaluate_batch on {len(rows)} row(s){' ' + what if what else ''} "
                         f"raised {type(exc).__name__}: {exc}")
        return None
    found.extend("purity", seen)
    if not isinstance(batch, BatchResult) or len(batch) != len(rows):
        found.add(check, f"evaluate_batch returned {type(batch).__name__} of "
                         f"{len(batch) if isinstance(batch, BatchResult) else '?'} rows for "
                         f"{len(rows)}")
        return None
    return [batch.row(k) for k in range(len(rows))]


def runnable(evaluator: Evaluator[Any] | type[Evaluator[Any]], cases: Sequence[Case]
             ) -> list[Case]:
    """Return the cases whose packs hold every piece ``evaluator`` requires."""
    return [(i, p) for i, p in cases if not p.missing_pieces(evaluator.requires)]


def without(pack: ContextPack, pieces: Sequence[str]) -> ContextPack:
    """Return ``pack`` with ``pieces`` removed (None, and missing for the kit's reason)."""
    changes: dict[str, Any] = {p: None for p in pieces}
    return dataclasses.replace(pack, **changes,
                               missing={**pack.missing, **{p: REMOVED for p in pieces}})


class _Problems:
    """Problems per check, listed up to MAX_LISTED each, the rest counted."""

    def __init__(self) -> None:
        self._by_check: dict[str, list[str]] = {}

    def add(self, check: str, text: str) -> None:
        listed = self._by_check.setdefault(check, [])
        if text not in listed:
            listed.append(text)

    def extend(self, check: str, texts: Sequence[str]) -> None:
        for text in texts:
            self.add(check, text)

    def lines(self) -> tuple[str, ...]:
        out = []
        for check, texts in self._by_check.items():
            out += [f"{check}: {t}" for t in texts[:MAX_LISTED]]
            if len(texts) > MAX_LISTED:
                out.append(f"{check}: ... and {len(texts) - MAX_LISTED} more")
        return tuple(out)


# ============================================================================ class checks
def wording_problems(cls: type[Evaluator[Any]]) -> list[str]:
    """Return the predictive phrases found in the class's templates (none allowed)."""
    problems = []
    for code, template in getattr(cls, "templates", {}).items():
        for part in ("title", "explanation", "mitigation"):
            phrases = predictive_phrases(getattr(template, part))
            if phrases:
                problems.append(f"{code}.{part} predicts: {phrases}")
    return problems


def config_problems(config_cls: type[Config]) -> list[str]:
    """Return the invalid values ``config_cls`` accepts, generated from each ``param()``:
    below ``lo``, above ``hi``, a fraction for a whole number, a value of the wrong type or
    outside the choices, and a misspelt name (which must get a did-you-mean). Each must raise
    a ConfigError naming the field."""
    problems: list[str] = []
    try:
        default = config_cls.from_mapping({})
    except Exception as exc:
        return [f"{config_cls.__name__}() raised {type(exc).__name__}: {exc}"]
    try:
        again = config_cls.from_json(default.to_json())
        if again != default or again.hash != default.hash:
            problems.append(f"{config_cls.__name__}: to_json/from_json does not round-trip")
    except Exception as exc:
        problems.append(f"{config_cls.__name__}: from_json(to_json()) raised "
                        f"{type(exc).__name__}: {exc}")
    fields = dataclasses.fields(config_cls)
    for f in fields:
        values = invalid_values(f)
        if values is None:
            problems.append(f"{f.name}: a {f.type} param with no range or choices (declare "
                            "lo/hi or choices in param())")
            continue
        for why, value in values:
            problem = _refusal_problem(config_cls, f.name, value, why)
            if problem:
                problems.append(problem)
    if fields:
        name = min(f.name for f in fields)
        typo = name[:-1] if name[:-1] not in {f.name for f in fields} else name + "x"
        try:
            config_cls.from_mapping({typo: getattr(default, name)})
            problems.append(f"unknown name {typo!r} accepted")
        except ConfigError as exc:
            if f"did you mean {name!r}" not in str(exc):
                problems.append(f"unknown name {typo!r} refused without "
                                f"\"did you mean {name!r}\": {exc}")
        except Exception as exc:
            problems.append(f"unknown name {typo!r} raised {type(exc).__name__}, not "
                            f"ConfigError: {exc}")
    return problems


def invalid_values(f: dataclasses.Field[Any]) -> list[tuple[str, Any]] | None:
    """Return (why, value) pairs ``f`` must refuse, from its ``param()`` range or choices;
    None when a number or flag declares neither (nothing can be generated)."""
    meta = f.metadata
    kind = (f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            ).replace(" ", "")
    lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices")
    values: list[tuple[str, Any]] = []
    if choices is not None:
        if kind.startswith("tuple"):
            return [("an item outside the choices", ("__not_a_choice__",)),
                    ("not a tuple", "__not_a_tuple__")]
        return [("outside the choices", "__not_a_choice__" if not any(
            isinstance(c, str) for c in choices) else 12345),
                ("outside the choices", "__not_a_choice__")]
    whole = kind in ("int", "int|None")
    if lo is not None:
        values.append((f"below lo={lo:g}", (int(lo) - 1 if whole else lo - 1.0)
                       if not meta.get("lo_open") else (int(lo) if whole else float(lo))))
    if hi is not None:
        values.append((f"above hi={hi:g}", (int(hi) + 1 if whole else hi + 1.0)
                       if not meta.get("hi_open") else (int(hi) if whole else float(hi))))
    if lo is not None or hi is not None:
        values.append(("a string for a number", "__not_a_number__"))
        values.append(("NaN", math.nan))
        if whole:
            inside = float(lo if lo is not None else hi)  # type: ignore[arg-type]
            values.append(("a fraction for a whole number", inside + 0.5 if (
                hi is None or inside + 0.5 <= hi) else inside - 0.5))
        return values
    base = kind.removesuffix("|None")
    if base in ("int", "float", "bool"):
        return None
    return values


def _refusal_problem(config_cls: type[Config], name: str, value: Any, why: str) -> str | None:
    try:
        config_cls.from_mapping({name: value})
    except ConfigError as exc:
        if not any(f == name or f.endswith(f".{name}") for f in exc.fields):
            return (f"{name}={value!r} ({why}) refused, but the error names "
                    f"{list(exc.fields)}, not {name!r}")
        return None
    except Exception as exc:
        return (f"{name}={value!r} ({why}) raised {type(exc).__name__}, not ConfigError: "
                f"{exc}")
    return f"{name}={value!r} ({why}) accepted"


def declaration_problems(cls: type[Evaluator[Any]], result: EvaluationResult, *,
                         label: str) -> list[str]:
    """Return where ``result`` departs from the class's declarations: issue codes, evidence
    names, order, units and thresholds, a numeric fact per issue, mitigation action and facts,
    explain facts."""
    problems = []
    codes = getattr(cls, "codes", None) or {}
    problems += _facts_problems(label, "explain facts", result.explain_facts,
                                getattr(cls, "explain", ()))
    if result.module != cls.name:
        problems.append(f"{label}: result module {result.module!r} != name {cls.name!r}")
    for issue in result.issues:
        where = f"{label} {issue.code}"
        if issue.module != cls.name:
            problems.append(f"{where}: issue module {issue.module!r}")
        spec = codes.get(issue.code)
        if not isinstance(spec, Code):
            if codes:
                problems.append(f"{where}: code not declared in codes")
            continue
        problems += _facts_problems(where, "evidence", issue.evidence, spec.evidence)
        problems += _facts_problems(where, "mitigation facts", issue.mitigation.facts,
                                    spec.action_facts)
        if not any(isinstance(f.value, int | float) and not isinstance(f.value, bool)
                   for f in issue.evidence):
            problems.append(f"{where}: no numeric evidence (every value is a label or null)")
        if issue.mitigation.action != spec.action:
            problems.append(f"{where}: mitigation action {issue.mitigation.action!r} != "
                            f"declared {spec.action!r}")
    return problems


def _facts_problems(where: str, what: str, facts: Sequence[Fact], declared: Sequence[Any]
                    ) -> list[str]:
    names = [f.name for f in facts]
    want = [e.name for e in declared]
    if names != want:
        return [f"{where}: {what} names {names} != declared {want}"]
    problems = []
    for fact, spec in zip(facts, declared, strict=True):
        per_row = PER_ROW_UNITS.get(spec.unit)
        if per_row is not None and not per_row(fact.unit):
            problems.append(f"{where}: {fact.name} unit {fact.unit!r} is not what the per-row "
                            f"unit {spec.unit!r} stands for")
        elif per_row is None and fact.unit != spec.unit:
            problems.append(f"{where}: {fact.name} unit {fact.unit!r} != declared {spec.unit!r}")
        if spec.threshold is not None and fact.threshold is None:
            problems.append(f"{where}: {fact.name} declares threshold {spec.threshold!r} but "
                            "carries none")
    return problems


def _is_currency(unit: str) -> bool:
    return len(unit) == 3 and unit.isalpha() and unit.isupper()


def _is_quantity(unit: str) -> bool:
    return unit in ("shares", "units")


#: Declared units that stand for a unit known only per row, and what each may become: the
#: instrument's or account's currency, an order's quantity unit (shares of a stock, else
#: units). Spelt two ways by the modules today (missing_scanner, risk_reward).
PER_ROW_UNITS: dict[str, Callable[[str], bool]] = {
    "currency": _is_currency, "<money>": _is_currency,
    "quantity": _is_quantity, "<size>": _is_quantity,
}


# ============================================================================ purity guard
_CLOCK_METHODS = frozenset({"now", "utcnow", "today"})
_TIME_FUNCTIONS = frozenset({"time", "time_ns", "localtime", "gmtime", "ctime", "asctime"})


class ForbiddenCall(Exception):
    """Raised in place of I/O or a clock read while an evaluator runs under ``guarded``."""


@contextmanager
def guarded(seen: list[str]) -> Iterator[None]:
    """Run the block with file opens, sockets, subprocesses and clock reads refused: each
    attempt is appended to ``seen`` (and raises ForbiddenCall); everything is restored after.

    Clock reads are caught at the standard library (``datetime.now``/``utcnow``/``today``,
    ``date.today``, ``time.time`` and friends, from Python code) and in pandas'
    ``Timestamp.now``/``today``/``utcnow``; warnings raised inside are recorded, not printed
    (printing one reads the source file).
    """
    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            seen.append(f"{what} called while evaluating")
            raise ForbiddenCall(f"{what} is not allowed in an evaluator")
        return refused

    patches: list[tuple[Any, str, Any]] = [
        (builtins, "open", refuse("open()")), (io, "open", refuse("io.open()")),
        (os, "open", refuse("os.open()")), (os, "system", refuse("os.system()")),
        (os, "popen", refuse("os.popen()")),
        (socket, "socket", refuse("socket.socket()")),
        (socket, "create_connection", refuse("socket.create_connection()")),
        (subprocess, "Popen", refuse("subprocess.Popen()")),
        (pd.Timestamp, "now", classmethod(refuse("pandas.Timestamp.now()"))),
        (pd.Timestamp, "today", classmethod(refuse("pandas.Timestamp.today()"))),
        (pd.Timestamp, "utcnow", classmethod(refuse("pandas.Timestamp.utcnow()"))),
    ]
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None:
        patches.append((duckdb, "connect", refuse("duckdb.connect()")))
    saved = [(owner, name, owner.__dict__[name] if isinstance(owner, type) else
              getattr(owner, name)) for owner, name, _ in patches]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "c_call":
            return
        owner = getattr(arg, "__self__", None)
        name = getattr(arg, "__name__", "")
        if (isinstance(owner, type) and issubclass(owner, date) and name in _CLOCK_METHODS) or (
                owner is time and name in _TIME_FUNCTIONS):
            label = f"{owner.__name__}.{name}()"
            seen.append(f"the clock was read ({label}) while evaluating")

    previous = sys.getprofile()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        sys.setprofile(profile)
        try:
            yield
        finally:
            sys.setprofile(previous)
            for owner, name, original in saved:
                setattr(owner, name, original)


# ============================================================================ comparisons
def result_differences(got: EvaluationResult, want: EvaluationResult, *, rel: float = REL,
                       abs_tol: float = ABS) -> list[str]:
    """Return how ``got`` differs from ``want``: module, status, severity, score, issues
    (codes and severities in order, evidence, mitigation action and facts) and explain facts;
    floats equal within ``rel``/``abs_tol``, everything else exactly (types included)."""
    out = []
    for what in ("module", "status", "severity"):
        if getattr(got, what) != getattr(want, what):
            out.append(f"{what} {getattr(got, what)!r} != {getattr(want, what)!r}")
    if not _same(got.score, want.score, rel, abs_tol):
        out.append(f"score {got.score!r} != {want.score!r}")
    codes = [(i.code, i.severity.value) for i in got.issues]
    wanted = [(i.code, i.severity.value) for i in want.issues]
    if codes != wanted:
        return [*out, f"issues {codes} != {wanted}"]
    for a, b in zip(got.issues, want.issues, strict=True):
        out += _fact_differences(f"{a.code} evidence", a.evidence, b.evidence, rel, abs_tol)
        if a.mitigation.action != b.mitigation.action:
            out.append(f"{a.code} action {a.mitigation.action!r} != {b.mitigation.action!r}")
        out += _fact_differences(f"{a.code} mitigation", a.mitigation.facts,
                                 b.mitigation.facts, rel, abs_tol)
    out += _fact_differences("explain", got.explain_facts, want.explain_facts, rel, abs_tol)
    return out


def _exact_differences(got: EvaluationResult, want: EvaluationResult) -> list[str]:
    return [] if got == want else result_differences(got, want, rel=0.0, abs_tol=0.0) or [
        "results differ"]


def _fact_differences(what: str, got: Sequence[Fact], want: Sequence[Fact], rel: float,
                      abs_tol: float) -> list[str]:
    if [f.name for f in got] != [f.name for f in want]:
        return [f"{what} names {[f.name for f in got]} != {[f.name for f in want]}"]
    out = []
    for a, b in zip(got, want, strict=True):
        if a.unit != b.unit or not _same(a.value, b.value, rel, abs_tol) or not _same(
                a.threshold, b.threshold, rel, abs_tol):
            out.append(f"{what} {a.name}: {a.value!r} {a.unit} (threshold {a.threshold!r}) != "
                       f"{b.value!r} {b.unit} (threshold {b.threshold!r})")
    return out


def _same(got: Any, want: Any, rel: float, abs_tol: float) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        if math.isnan(want) or math.isnan(got):
            return math.isnan(want) and math.isnan(got)
        return math.isclose(got, want, rel_tol=rel, abs_tol=abs_tol)
    return type(got) is type(want) and got == want


# ---------------------------------------------------- batch-of-N vs batches-of-one assertions
def assert_rows_match_batches_of_one(evaluator: Evaluator[Any], cases: Sequence[Case],
                                ctx: BatchContext | None = None) -> BatchResult:
    """Assert a batch of all ``cases`` says, row by row, what a batch of one says for each;
    return the batch result.

    ``ctx``: the BatchContext to run the batch on (default: ``from_packs`` of the cases; the
    engine tests pass one from the fast builder). Catches rows leaking into each other and a
    builder's columns differing from the packs'.
    """
    cases = runnable(evaluator, cases)
    assert cases, f"{evaluator.name}: no case holds its required pieces"
    intents = [i for i, _ in cases]
    single = [evaluator.evaluate(i, p) for i, p in cases]
    batch = evaluator.evaluate_batch(ctx if ctx is not None else from_packs(
        intents, [p for _, p in cases]))
    assert len(batch) == len(cases)
    for row, (intent, expected) in enumerate(zip(intents, single, strict=True)):
        assert_row_matches(batch, row, expected, label=f"{evaluator.name} {intent.intent_id}")
    return batch


def codes_of_batches_of_one(evaluator: Evaluator[Any], cases: Sequence[Case]) -> set[str]:
    """Return the issue codes batches of one emit on ``cases``."""
    return {issue.code for intent, pack in runnable(evaluator, cases)
            for issue in evaluator.evaluate(intent, pack).issues}


def assert_rows_cover_codes(evaluator: Evaluator[Any], cases: Sequence[Case]
                               ) -> BatchResult:
    """Assert ``assert_rows_match_batches_of_one`` and that every code a batch of one emits fired
    in the batch (the cases exercise each code); return the batch result."""
    batch = assert_rows_match_batches_of_one(evaluator, cases)
    assert codes_of_batches_of_one(evaluator, cases) <= set(batch.issues["code"])
    return batch


def assert_row_matches(batch: BatchResult, row: int, expected: EvaluationResult, *,
                       label: str) -> None:
    """Assert row ``row`` of ``batch`` says what ``expected`` says (status, severity, score,
    issues in order with their evidence)."""
    assert batch.module == expected.module, label
    assert batch.status[row] == expected.status.value, label
    assert batch.severity[row] == expected.severity.value, (
        f"{label}: severity {batch.severity[row]} != {expected.severity.value}")
    assert_number(batch.score[row], expected.score, f"{label}: score")
    issues = batch.issues[batch.issues["row"] == row]
    got = list(zip(issues["code"], issues["severity"], strict=True))
    want = [(i.code, i.severity.value) for i in expected.issues]
    assert got == want, f"{label}: issues {got} != {want}"
    for (_, issue), want_issue in zip(issues.iterrows(), expected.issues, strict=True):
        assert_evidence(issue["evidence_json"], issue_evidence_json(want_issue.evidence),
                        f"{label} {want_issue.code}")


def assert_evidence(got_json: str, want_json: str, label: str) -> None:
    """Assert two evidence JSON strings hold the same facts (floats to REL)."""
    got, want = json.loads(got_json), json.loads(want_json)
    assert [f["name"] for f in got] == [f["name"] for f in want], (
        f"{label}: facts {got_json} != {want_json}")
    for g, w in zip(got, want, strict=True):
        assert g["unit"] == w["unit"], f"{label}: {g} != {w}"
        for key in ("value", "threshold"):
            assert_value(g[key], w[key], f"{label} {w['name']}.{key}: {g} != {w}")


def assert_value(got: Any, want: Any, label: str) -> None:
    """Assert one fact value: floats to REL (and still floats), others exactly, type too."""
    if isinstance(want, float) and not isinstance(got, bool):
        # a float that happens to be integral must still be written as a float
        assert isinstance(got, float), f"{label} (type {type(got).__name__})"
        assert math.isclose(got, want, rel_tol=REL, abs_tol=ABS), label
    else:
        assert type(got) is type(want) and got == want, label


def assert_number(got: float, want: float | None, label: str) -> None:
    """Assert a score column value equals a scalar score (None: NaN)."""
    if want is None:
        assert math.isnan(got), f"{label}: {got} != None"
    else:
        assert math.isclose(got, want, rel_tol=REL, abs_tol=ABS), f"{label}: {got} != {want}"


# ============================================================================ real-data cases
#: Series and as-of points of the point-in-time cases: AAPL the day after its 2005-02-28
#: split, AAPL 70 bars into its history (indicators, regime and weekly trend not yet
#: defined), AAPL weekly, EURUSD hourly mid-year and after the thin Christmas session.
POINTS: tuple[tuple[str, str, str], ...] = (
    ("AAPL", "1d", "2005-03-01T21:00Z"),
    ("AAPL", "1d", "2003-04-11T20:00Z"),
    ("AAPL", "1w", "2005-06-03T20:00Z"),
    ("EURUSD", "1h", "2017-06-15T14:00Z"),
    ("EURUSD", "1h", "2017-12-26T03:00Z"),
)
#: An as-of point three weeks after the kit store's last AAPL bar: stale data.
STALE_POINT = ("AAPL", "1d", "2006-01-20T21:00Z")
#: The AAPL history the kit store holds (the rest of the sample is left out: speed).
AAPL_SPAN = ("2003-01-01", "2006-01-01")


def sample_cases() -> list[Case]:
    """Return the default cases (built once per process): three intents (a sound long with
    the trader's exit template, a reckless oversized short, a long with no stop, target or
    horizon) at each point of POINTS, on packs from the real data with every standard piece;
    the same at STALE_POINT; and the EURUSD and post-split AAPL intents on packs holding only
    the market piece."""
    return list(_kit_data()[0])


def point_in_time_cases() -> list[PointInTimeCase]:
    """Return the point-in-time triples (built once per process): each intent of POINTS with
    its pack from the whole history and from a store truncated at its as_of."""
    return list(_kit_data()[1])


@lru_cache(maxsize=1)
def _kit_data() -> tuple[tuple[Case, ...], tuple[PointInTimeCase, ...]]:
    from buddy.api import default_providers
    from buddy.context.builder import ContextPackBuilder
    from buddy.data.sample import load_sample
    from buddy.demo import DEMO_USER, ensure_demo_user
    from buddy.features.ta import FEATURE_SET_VERSION, compute_features
    from buddy.jobs.load import with_derived_timeframes
    from buddy.store import Store
    from buddy.users.provider import account_of

    folder = tempfile.mkdtemp(prefix="buddy-testing-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    sample = load_sample()
    symbols = sorted({s for s, _, _ in POINTS})
    tickers = sample.tickers[sample.tickers["symbol"].isin(symbols)].reset_index(drop=True)
    bars = sample.bars[sample.bars["symbol"].isin(symbols)]
    session = pd.to_datetime(bars["session"])
    bars = bars[(bars["symbol"] != "AAPL") | ((session >= AAPL_SPAN[0])
                                              & (session < AAPL_SPAN[1]))]
    bars = with_derived_timeframes(bars.reset_index(drop=True), tickers)
    actions = sample.corporate_actions[sample.corporate_actions["symbol"].isin(symbols)]
    # features once over each whole series (as the features job computes them): the cut
    # stores hold the rows of bars closed by t, so "after t" is removed, never recomputed
    features = pd.concat([compute_features(series.reset_index(drop=True),
                                           actions[actions["symbol"] == symbol])
                          for (symbol, _), series in bars.groupby(["symbol", "timeframe"])],
                         ignore_index=True)
    features.insert(3, "feature_set_version", FEATURE_SET_VERSION)
    full_store = Store(os.path.join(folder, "full.duckdb"))
    full_store.write_market_data(tickers=tickers, bars=bars.reset_index(drop=True),
                                 corporate_actions=actions.reset_index(drop=True),
                                 features=features)
    ensure_demo_user(full_store)
    providers = default_providers()
    full = ContextPackBuilder(full_store, providers=providers)
    # accounts carry no market history: the cut stores read the one account there is
    cut_providers: dict[str, Any] = {**providers,
                                     "account": lambda r: account_of(full_store, r.user_id)}

    cases: list[Case] = []
    pit: list[PointInTimeCase] = []
    for k, (symbol, tf, as_of) in enumerate(POINTS):
        t = pd.Timestamp(as_of)
        cut_bars = bars[(bars["symbol"] == symbol) & (bars["ts_close"] <= t)]
        kept = features.merge(cut_bars[["symbol", "timeframe", "ts"]],
                              on=["symbol", "timeframe", "ts"])
        cut_store = Store(os.path.join(folder, f"cut{k}.duckdb"))
        cut_store.write_market_data(
            tickers=tickers[tickers["symbol"] == symbol].reset_index(drop=True),
            bars=cut_bars.reset_index(drop=True), features=kept,
            corporate_actions=actions[(actions["symbol"] == symbol) & (
                pd.to_datetime(actions["ex_date"]) <= t.tz_localize(None))
            ].reset_index(drop=True))
        cut = ContextPackBuilder(cut_store, providers=cut_providers)
        with full_store.reading():
            whole = full.build(DEMO_USER, symbol, tf, t.to_pydatetime())
        with cut_store.reading():
            truncated = cut.build(DEMO_USER, symbol, tf, t.to_pydatetime())
        for intent in _intents(whole, k):
            cases.append((intent, whole))
            pit.append(PointInTimeCase(intent, whole, truncated))
        if k in (0, 3):  # market only: every optional piece missing
            bare = without(whole, [p for p in PIECES if p != "market"])
            cases += [(i, bare) for i in _intents(whole, k, tag="bare")]
    symbol, tf, as_of = STALE_POINT
    with full_store.reading():
        stale = full.build(DEMO_USER, symbol, tf, pd.Timestamp(as_of).to_pydatetime())
    cases += [(i, stale) for i in _intents(stale, len(POINTS))]
    return tuple(cases), tuple(pit)


def _intents(pack: ContextPack, k: int, tag: str = "") -> list[TradeIntent]:
    """Return a sound long, a reckless short and a bare long, priced off ``pack``."""
    assert pack.market is not None, pack.missing
    tick = pack.instrument.tick_size

    def on_tick(price: float) -> float:
        return round(round(price / tick) * tick, 10)

    close = on_tick(pack.market.last_close)
    atr = pack.market.latest_features.get("atr_14", math.nan)
    if not math.isfinite(atr) or atr <= 0:
        atr = 0.02 * close
    unit = 10_000.0 if pack.instrument.lot_size > 1 else 100.0
    stamp = f"{pack.symbol}-{pack.timeframe}-{pack.as_of:%Y%m%dT%H%M}"
    base: dict[str, Any] = dict(user_id=pack.user_id, symbol=pack.symbol,
                                timeframe=Timeframe(pack.timeframe), as_of=pack.as_of,
                                proposed_entry=close)
    return [
        TradeIntent(**base, side=Side.LONG, proposed_stop=on_tick(close - 1.5 * atr),
                    proposed_target=on_tick(close + 3.0 * atr), proposed_size=unit,
                    holding_horizon=10, exit_template="swing_2r",
                    intent_id=f"kit{tag}-{k}-sound-{stamp}"),
        TradeIntent(**base, side=Side.SHORT, proposed_stop=on_tick(close + 0.3 * atr),
                    proposed_target=on_tick(close - 0.2 * atr), proposed_size=unit * 1_000,
                    proposed_risk_amount=123.0, holding_horizon=400,
                    order_type=OrderType.MARKET, intent_id=f"kit{tag}-{k}-reckless-{stamp}"),
        TradeIntent(**base, side=Side.LONG, proposed_stop=None, proposed_target=None,
                    proposed_size=unit, order_type=OrderType.MARKET,
                    intent_id=f"kit{tag}-{k}-bare-{stamp}"),
    ]

