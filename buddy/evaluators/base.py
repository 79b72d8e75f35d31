"""The evaluator contract: one form, over columns.

An evaluator is one module ``buddy/evaluators/<name>.py`` holding a ``<Name>Config`` (a frozen
``ModuleConfig``: every threshold named, defaulted, ranged, with its unit) and a
``<Name>Evaluator(Evaluator[<Name>Config])`` whose identity lives in class attributes:

- ``name``: snake_case id used in configs and logs; ``version``: bumped when results change;
- ``requires``: the ContextPack pieces it needs (it is skipped, with the reason, when one is
  missing); ``optional``: pieces it reads when present and reports as unchecked otherwise;
  ``config_cls``: its config class;
- ``codes``: for every issue code it can emit, a ``Code``: the safe phrasing (title,
  explanation, mitigation), the evidence it carries (``Evidence``: name, unit, digits,
  threshold), the mitigation's action and the facts that action rests on. The evidence, the
  template placeholders and the mitigations all come from this one declaration;
- ``explain``: the per-intent facts the module reports besides its issues.

The rules are written ONCE, in ``evaluate_batch(ctx: BatchContext) -> BatchResult``, over
columns (row i of ``ctx`` is intent i's ContextPack). Each rule reads like a rule table: which
rows fire (``rows``), at which severity, with which evidence values (``self.fire``).
``evaluate(intent, pack)`` is a batch of one through the same code, provided here.

``evaluate_batch`` is pure: same context, same result; no I/O, no clock, no randomness.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

from buddy.batch.columns import choose
from buddy.batch.result import BatchResult, FactColumn, IssueBlock, evidence_json, fact_refs
from buddy.config import ModuleConfig
from buddy.context.pack import PIECES, ContextPack
from buddy.domain import EvaluationResult, Severity, TradeIntent
from buddy.evaluators.measures import KINDS, MEASURES

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

#: Score points a module loses per issue of each severity (floored at 0).
SEVERITY_PENALTY = {Severity.INFO: 0.0, Severity.LOW: 5.0, Severity.MEDIUM: 15.0,
                    Severity.HIGH: 30.0, Severity.CRITICAL: 60.0}

CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
PLACEHOLDER = re.compile(r"{([a-z_][a-z0-9_]*)}")

C = TypeVar("C", bound=ModuleConfig)


@dataclass(frozen=True, slots=True)
class IssueTemplate:
    """Safe phrasing for one issue code; ``{fact_name}`` placeholders take evidence values.

    ``title`` is a few words; ``explanation`` says what was found, with its numbers;
    ``mitigation`` says what the trader could do. None of them may predict prices or outcomes.
    """

    title: str
    explanation: str
    mitigation: str


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact a code carries: its name, unit, the digits floats are rounded to (None: as
    computed) and ``threshold``: the config field whose value the fact was compared against
    (None: no threshold, or one given per row when the code fires)."""

    name: str
    unit: str = ""
    digits: int | None = None
    threshold: str | None = None


@dataclass(frozen=True, slots=True)
class Code:
    """One issue code: its phrasing, its evidence, the mitigation's action and facts, and
    what it claims.

    ``kind``: 'issue' (ranked in the report, scored) or 'not_checked' (an input that could not
    be checked: listed in the report's "not checked" line, never ranked, never scored as
    good). ``harm``: the harm the warning is about, in words ("stopped out by ordinary
    noise"). ``measure``: the outcome measure that shows that harm (a key of
    ``buddy.evaluators.measures.MEASURES``), or None when no outcome can judge it (say why in
    ``harm``); replay calibration tests each code against its own measure.
    """

    title: str
    explanation: str
    mitigation: str
    evidence: tuple[Evidence, ...]
    action: str
    action_facts: tuple[Evidence, ...] = ()
    kind: str = "issue"
    harm: str = ""
    measure: str | None = None
    template: IssueTemplate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "template",
                           IssueTemplate(self.title, self.explanation, self.mitigation))

    @property
    def names(self) -> tuple[str, ...]:
        """The value names ``fire`` takes: the evidence's, then the action facts'."""
        return tuple(e.name for e in (*self.evidence, *self.action_facts))


def severity_where(where: np.ndarray, then: Severity, otherwise: Severity) -> np.ndarray:
    """Return ``then`` where ``where`` else ``otherwise``, per row (severity values)."""
    return choose(where, then.value, otherwise.value)


class Evaluator(ABC, Generic[C]):
    """Base class of every evaluator module; see the module docstring."""

    name: ClassVar[str]
    version: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()
    #: Pieces read when present; their absence is reported by the module itself, not a skip.
    optional: ClassVar[frozenset[str]] = frozenset()
    config_cls: ClassVar[type[ModuleConfig]]
    codes: ClassVar[Mapping[str, Code]]
    explain: ClassVar[tuple[Evidence, ...]] = ()
    #: True for a module that checks the trade's risk (size against budget, the stop): while
    #: it could not run, the report's verdict is at best "review".
    guards_risk: ClassVar[bool] = False
    #: Derived from ``codes``: the phrasing the explanation layer renders.
    templates: ClassVar[Mapping[str, IssueTemplate]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        codes = cls.__dict__.get("codes")
        if isinstance(codes, Mapping):
            cls.templates = {code: spec.template for code, spec in codes.items()
                             if isinstance(spec, Code)}

    def __init__(self, config: C | Mapping[str, Any] | None = None) -> None:
        if config is None or isinstance(config, Mapping):
            config = self.config_cls.from_mapping(config)  # type: ignore[assignment]
        elif not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name}: config must be {self.config_cls.__name__}, "
                            f"got {type(config).__name__}")
        self.config: C = config  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    @abstractmethod
    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Audit every row of ``ctx`` (each holds this module's ``requires``); return the
        module's verdicts column-wise (``self.result(ctx.n, blocks, explain=...)``)."""

    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Audit ``intent`` against ``ctx``: ``evaluate_batch`` on a batch of one."""
        from buddy.batch.context import from_pack

        return self.evaluate_batch(from_pack(intent, ctx)).row(0)

    # -------------------------------------------------------------- helpers for subclasses
    def fire(self, code: str, rows: np.ndarray, severity: Severity | np.ndarray, *,
             thresholds: Mapping[str, Any] | None = None, action: str | np.ndarray | None = None,
             units: Mapping[str, Any] | None = None, **values: Any) -> IssueBlock:
        """Return the issues of ``code`` on ``rows`` (sorted row numbers).

        ``values`` gives every evidence and action fact the code declares, by name: a scalar
        (the same on every row) or an array aligned with ``rows``. Floats are rounded to the
        declared digits; each fact's threshold is the declared config field's value, or
        ``thresholds[name]`` (scalar or per row). ``severity``: one, or one per row.
        ``units``: what a declared unit placeholder (e.g. ``<money>``) is on each row (the
        instrument's currency, say): a scalar or an array aligned with ``rows``.
        """
        spec = self.codes.get(code)
        if spec is None:
            raise KeyError(f"{self.name}: issue code {code} is not declared in codes")
        if set(values) != set(spec.names):
            missing = sorted(set(spec.names) - set(values))
            extra = sorted(set(values) - set(spec.names))
            raise TypeError(f"{self.name}.{code}: evidence values must be exactly the declared "
                            f"names; missing {missing}, undeclared {extra}")
        rows = np.asarray(rows, dtype=np.int64)
        thresholds, units = thresholds or {}, units or {}
        facts = [self._column(e, values[e.name], thresholds, units) for e in spec.evidence]
        acts = [self._column(e, values[e.name], thresholds, units) for e in spec.action_facts]
        n = len(rows)
        # many rows: typed columns, which replay stores as they are (no JSON text per
        # issue); a few rows (an interactive evaluation): the JSON its report reads, which
        # costs less than building Arrow columns. Both say the same (tests/batch).
        encode = fact_refs if n > TYPED_FROM_ROWS else evidence_json
        return IssueBlock(code, rows,
                          severity.value if isinstance(severity, Severity) else severity,
                          encode(facts, n), action=spec.action if action is None else action,
                          action_json=encode(acts, n))

    def _column(self, spec: Evidence, value: Any, thresholds: Mapping[str, Any],
                units: Mapping[str, Any]) -> FactColumn:
        if spec.name in thresholds:
            threshold = thresholds[spec.name]
        elif spec.threshold is not None:
            threshold = getattr(self.config, spec.threshold)
        else:
            threshold = None
        return FactColumn(spec.name, rounded(value, spec.digits), units.get(spec.unit, spec.unit),
                          rounded(threshold, spec.digits))

    def result(self, n: int, blocks: list[IssueBlock], *, explain: Mapping[str, Any] | None = None,
               score: np.ndarray | None = None, units: Mapping[str, Any] | None = None
               ) -> BatchResult:
        """Return the module's result on ``n`` rows: the issues of ``blocks`` (in the order
        the codes are emitted within a row), the declared explain facts (``explain``: values
        by name, scalar or one per row; ``units``: each unit placeholder's value, scalar or
        one per row) and the score (default: 100 minus the severity penalties, floored at
        0)."""
        explain, units = explain or {}, units or {}
        if set(explain) != {e.name for e in self.explain}:
            raise TypeError(f"{self.name}: explain values must be exactly the declared names "
                            f"{[e.name for e in self.explain]}, got {sorted(explain)}")
        columns = tuple(FactColumn(e.name, rounded(explain[e.name], e.digits),
                                   units.get(e.unit, e.unit)) for e in self.explain)
        return BatchResult.of_blocks(self.name, self.version, n, blocks, score=score,
                                     explain=columns, unscored=self.unscored_codes())

    @classmethod
    def unscored_codes(cls) -> frozenset[str]:
        """Return the codes that cost no score points: the not_checked ones."""
        return frozenset(c for c, spec in cls.codes.items() if spec.kind == "not_checked")



#: From how many fired rows ``Evaluator.fire`` hands its facts typed rather than as JSON.
TYPED_FROM_ROWS = 32


def rounded(value: Any, digits: int | None) -> Any:
    """Return ``value`` with floats rounded to ``digits`` (arrays element-wise; ints, strings
    and None unchanged)."""
    if digits is None or value is None:
        return value
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, np.ndarray | list | tuple):
        array = np.asarray(value)
        if array.dtype.kind == "f":
            return np.round(array, digits)
    return value


def check_evaluator_class(cls: type) -> list[str]:
    """Return what is wrong with ``cls`` as an evaluator (empty when it is valid)."""
    problems = []
    if not (isinstance(cls, type) and issubclass(cls, Evaluator)):
        return [f"{cls!r} is not a subclass of buddy.evaluators.Evaluator"]
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.append(f"name must be snake_case, got {name!r}")
    if not isinstance(getattr(cls, "version", None), str) or not cls.version:
        problems.append("version must be a non-empty string")
    requires = getattr(cls, "requires", None)
    if not isinstance(requires, frozenset) or not requires <= set(PIECES):
        problems.append(f"requires must be a frozenset of {PIECES}, got {requires!r}")
    optional = getattr(cls, "optional", None)
    if not isinstance(optional, frozenset) or not optional <= set(PIECES) or (
        optional & (requires or frozenset())
    ):
        problems.append(f"optional must be a frozenset of pieces not in requires, got "
                        f"{optional!r}")
    config_cls = getattr(cls, "config_cls", None)
    if not (isinstance(config_cls, type) and issubclass(config_cls, ModuleConfig)):
        problems.append("config_cls must be a ModuleConfig subclass")
    codes = getattr(cls, "codes", None)
    if not isinstance(codes, Mapping) or not codes:
        problems.append("codes must map each issue code to a Code")
    else:
        for code, spec in codes.items():
            if not CODE_PATTERN.match(code):
                problems.append(f"issue code {code!r} must be SCREAMING_SNAKE")
            if not isinstance(spec, Code):
                problems.append(f"codes[{code!r}] must be a Code")
                continue
            problems += _code_problems(cls, code, spec)
    if getattr(cls.evaluate_batch, "__isabstractmethod__", False):
        problems.append("evaluate_batch() is not implemented")
    return problems


def _code_problems(cls: type[Evaluator[Any]], code: str, spec: Code) -> list[str]:
    problems = []
    names = spec.names
    if len(set(names)) != len(names):
        problems.append(f"{code}: an evidence or action fact name repeats: {names}")
    if not spec.evidence:
        problems.append(f"{code}: declares no evidence")
    if not CODE_PATTERN.match(spec.action):
        problems.append(f"{code}: action {spec.action!r} must be SCREAMING_SNAKE")
    if spec.kind not in KINDS:
        problems.append(f"{code}: kind must be one of {KINDS}, got {spec.kind!r}")
    if spec.measure is not None and spec.measure not in MEASURES:
        problems.append(f"{code}: measure must be one of {sorted(MEASURES)} or None, got "
                        f"{spec.measure!r}")
    if spec.kind == "issue" and not spec.harm.strip():
        problems.append(f"{code}: an issue code must say the harm it warns of (harm=...), and "
                        f"the outcome measure that shows it (measure=..., None: say why in harm)")
    if spec.kind == "not_checked" and spec.measure is not None:
        problems.append(f"{code}: a not_checked code claims no harm an outcome could show; "
                        f"measure must be None, got {spec.measure!r}")
    fields = set(getattr(cls.config_cls, "__dataclass_fields__", {}))
    for e in (*spec.evidence, *spec.action_facts):
        if e.threshold is not None and e.threshold not in fields:
            problems.append(f"{code}: threshold of {e.name} names {e.threshold!r}, which is "
                            f"not a field of {cls.config_cls.__name__}")
    for text in (spec.title, spec.explanation, spec.mitigation):
        unknown = set(PLACEHOLDER.findall(text)) - set(names)
        if unknown:
            problems.append(f"{code}: template placeholders {sorted(unknown)} are not "
                            f"declared evidence or action facts")
    return problems
