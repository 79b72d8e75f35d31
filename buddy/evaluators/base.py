"""The evaluator contract: Evaluator(TradeIntent, ContextPack) -> EvaluationResult.

An evaluator is one module ``buddy/evaluators/<name>.py`` holding a ``<Name>Config`` (a frozen
``ModuleConfig``: every threshold named, defaulted, ranged, with its unit) and a
``<Name>Evaluator`` whose identity lives in class attributes:

- ``name``: snake_case id used in configs and logs; ``version``: bumped when results change;
- ``requires``: the ContextPack pieces it needs (it is skipped, with the reason, when one is
  missing); ``optional``: pieces it reads when present and reports as unchecked otherwise;
  ``config_cls``: its config class;
- ``templates``: for every issue code it can emit, the safe phrasing the explanation layer uses.

``evaluate`` is pure: same intent and pack, same result; no I/O, no clock, no randomness.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from buddy.config import ModuleConfig
from buddy.context.pack import PIECES, ContextPack
from buddy.domain import EvaluationResult, Fact, Issue, Mitigation, Severity, TradeIntent

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext
    from buddy.batch.result import BatchResult

#: Score points a module loses per issue of each severity (floored at 0).
SEVERITY_PENALTY = {Severity.INFO: 0.0, Severity.LOW: 5.0, Severity.MEDIUM: 15.0,
                    Severity.HIGH: 30.0, Severity.CRITICAL: 60.0}

CODE_PATTERN = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class IssueTemplate:
    """Safe phrasing for one issue code; ``{fact_name}`` placeholders take evidence values.

    ``title`` is a few words; ``explanation`` says what was found, with its numbers;
    ``mitigation`` says what the trader could do. None of them may predict prices or outcomes.
    """

    title: str
    explanation: str
    mitigation: str


class Evaluator(ABC):
    """Base class of every evaluator module."""

    name: ClassVar[str]
    version: ClassVar[str]
    requires: ClassVar[frozenset[str]] = frozenset()
    #: Pieces read when present; their absence is reported by the module itself, not a skip.
    optional: ClassVar[frozenset[str]] = frozenset()
    config_cls: ClassVar[type[ModuleConfig]]
    templates: ClassVar[Mapping[str, IssueTemplate]]

    def __init__(self, config: ModuleConfig | Mapping[str, Any] | None = None) -> None:
        if config is None or isinstance(config, Mapping):
            config = self.config_cls.from_mapping(config)
        elif not isinstance(config, self.config_cls):
            raise TypeError(f"{self.name}: config must be {self.config_cls.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    @abstractmethod
    def evaluate(self, intent: TradeIntent, ctx: ContextPack) -> EvaluationResult:
        """Audit ``intent`` against ``ctx``; return the module's result."""

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Audit every row of ``ctx`` (a BatchContext whose rows all hold this module's
        ``requires``); return what ``evaluate`` returns per row, column-wise.

        This default runs ``evaluate`` row by row on rebuilt packs. A module with a batch
        form overrides it with array operations; ``tests/batch`` proves the two equal.
        """
        from buddy.batch.result import BatchResult

        return BatchResult.from_results(
            self.name, self.version,
            [self.evaluate(ctx.intent(i), ctx.pack(i)) for i in range(ctx.n)])

    # -------------------------------------------------------------- helpers for subclasses
    def issue(self, code: str, severity: Severity, evidence: Iterable[Fact], action: str,
              action_facts: Iterable[Fact] = ()) -> Issue:
        """Return an Issue of this module (the code must have a template)."""
        if code not in self.templates:
            raise KeyError(f"{self.name}: issue code {code} has no template")
        return Issue(module=self.name, code=code, severity=severity, evidence=tuple(evidence),
                     mitigation=Mitigation(action=action, facts=tuple(action_facts)))

    def result(self, issues: Iterable[Issue], explain_facts: Iterable[Fact] = (),
               score: float | None = None) -> EvaluationResult:
        """Return an OK result; the score defaults to 100 minus severity penalties."""
        issues = tuple(issues)
        if score is None:
            score = max(0.0, 100.0 - sum(SEVERITY_PENALTY[i.severity] for i in issues))
        return EvaluationResult(
            module=self.name, version=self.version, score=float(score),
            severity=Severity.highest(i.severity for i in issues), issues=issues,
            recommendations=tuple(i.mitigation for i in issues),
            explain_facts=tuple(explain_facts))


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
    templates = getattr(cls, "templates", None)
    if not isinstance(templates, Mapping) or not templates:
        problems.append("templates must map each issue code to an IssueTemplate")
    else:
        for code, template in templates.items():
            if not CODE_PATTERN.match(code):
                problems.append(f"issue code {code!r} must be SCREAMING_SNAKE")
            if not isinstance(template, IssueTemplate):
                problems.append(f"template of {code} must be an IssueTemplate")
    if getattr(cls.evaluate, "__isabstractmethod__", False):
        problems.append("evaluate() is not implemented")
    return problems
