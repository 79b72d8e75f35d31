"""A/B experiments on nudges and warnings, randomised per decision point.

An experiment names the report items it may change (issue codes: a warning's code or a
behaviour nudge's code, any module) and two or more arms, the first the control. At each
decision point (one intent's evaluation) an eligible report, one that holds a targeted item,
is assigned an arm by hashing (experiment, user, intent) (micro-randomised: the same intent
re-evaluated keeps its arm; another intent of the same user draws again). The arm is a pure
function of the hash and the weights: nothing is drawn from a clock or a random state, and
nothing per unit is stored beyond the arm written on the evaluation itself
(``trade_evaluations.experiment_arms_json``).

Arms change what the trader reads, never what the checks found:

- ``show``: the items as the evaluators and the explanation layer made them;
- ``reword``: the same items in another safe wording (``REWORD_STYLES``), checked by the
  guardrails against the item's own facts; a rewording that fails, or a style that does not
  apply to the words, keeps the original words (the item is listed as ``unchanged``; it
  stays a unit's item, analysed as assigned);
- ``hold_back``: the items are not shown (the next ranked items move up into the top). They
  are still logged with the evaluation, so the analysis knows what fired.

The verdict and the score stay as the checks made them in every arm. Items more severe than
the experiment's ``max_severity`` (default medium) are never reworded or held back: they are
shown as they are and listed as ``exempt`` on the arm.

The analysis of an experiment (outcomes with intervals per arm) is
``buddy.behavior.experiment_analysis``; feedback on report items is
``buddy.behavior.feedback``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from buddy.domain import Issue, Severity
from buddy.errors import FieldError, FieldErrors
from buddy.explain import RenderedIssue
from buddy.guardrails import check_text
from buddy.report import BuddyReport, ExperimentArm

if TYPE_CHECKING:
    from buddy.store import Store

__all__ = ["ACTIONS", "REWORD_STYLES", "Arm", "ExperimentError", "NudgeExperiment",
           "active_experiments", "apply_experiments", "assign", "assign_arms",
           "create_experiment", "end_experiment", "load_experiment", "reword", "unit_draws"]

#: What an arm does to the targeted items.
ACTIONS: tuple[str, ...] = ("show", "reword", "hold_back")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")
#: Draws are the first 53 bits of the SHA-256 of the unit key, divided by 2**53: exactly
#: representable in a float64, uniform on [0, 1).
_DRAW_BITS = 53


class ExperimentError(FieldErrors):
    """An experiment definition or command broke a rule; nothing was written."""

    what = "experiment"


# ------------------------------------------------------------------------ rewording
def _first_sentence(text: str) -> str:
    found = re.search(r"(?<=[.!?])\s+(?=[A-Z])", text)
    return text if found is None else text[:found.start()]


#: Verbs a mitigation opens with when it is an instruction ("Check ...", "Consider ...");
#: only those read as a question after "Would it help to".
IMPERATIVES = frozenset({
    "add", "align", "bring", "check", "choose", "close", "compare", "confirm", "consider",
    "count", "cut", "decide", "enter", "exit", "give", "hold", "import", "keep", "limit",
    "load", "look", "lower", "mark", "move", "name", "pause", "place", "plan", "prefer",
    "protect", "raise", "read", "recheck", "reconsider", "record", "reduce", "review", "run",
    "set", "size", "skip", "split", "stop", "take", "tighten", "trade", "treat", "use", "wait",
    "widen", "write"})


def _as_question(text: str) -> str:
    """Return one instruction as a question ("Would it help to check ...?"), or ``text``
    unchanged when it is not one imperative sentence."""
    body = text.strip()
    if body.endswith(".") and not body.endswith(".."):
        body = body[:-1]
    words = body.split(maxsplit=1)
    if (len(words) < 2 or words[0].lower() not in IMPERATIVES
            or re.search(r"[.!?;]\s", body) or body.endswith(("?", "!"))):
        return text
    return f"Would it help to {words[0].lower()} {words[1]}?"


def _question(words: RenderedIssue) -> RenderedIssue:
    return dataclasses.replace(words, mitigation=_as_question(words.mitigation))


def _brief(words: RenderedIssue) -> RenderedIssue:
    return dataclasses.replace(words, explanation=_first_sentence(words.explanation))


#: The rewordings an arm may use: each keeps every number and only rephrases.
#: 'question': a mitigation that is one instruction asked as a question ("Would it help to
#: ...?"); 'brief': the explanation's first sentence only. Words a style leaves unchanged
#: are shown as they are and the item is listed as unchanged on the arm.
REWORD_STYLES: Mapping[str, Callable[[RenderedIssue], RenderedIssue]] = {
    "question": _question, "brief": _brief}


def reword(words: RenderedIssue, issue: Issue, style: str) -> RenderedIssue | None:
    """Return ``words`` in ``style``, or None when the style does not apply to them (the
    words come out unchanged) or the rewording fails the guardrails (predictive wording or a
    number the issue's facts do not hold)."""
    new = REWORD_STYLES[style](words)
    if new == words:
        return None
    facts = (*issue.evidence, *issue.mitigation.facts)
    for before, after in ((words.explanation, new.explanation),
                          (words.mitigation, new.mitigation)):
        # only the wording that changed is checked: the template's own text passed already
        if after != before and not check_text(after, facts, allowed=(before,)).ok:
            return None
    return new


# ------------------------------------------------------------------------ definitions
@dataclass(frozen=True, slots=True, kw_only=True)
class Arm:
    """One arm: its name, what it does (``ACTIONS``), its weight (relative share of units)
    and, for 'reword', the style."""

    name: str
    action: str
    weight: float = 1.0
    style: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the arm as JSON-ready values."""
        return {"name": self.name, "action": self.action, "weight": self.weight,
                "style": self.style}


@dataclass(frozen=True, slots=True, kw_only=True)
class NudgeExperiment:
    """An experiment on report items: the codes it targets, its arms (the first is the
    control), the users it runs for (empty: everyone) and the most severe item it may
    change."""

    experiment_id: str
    codes: tuple[str, ...]
    arms: tuple[Arm, ...]
    users: tuple[str, ...] = ()
    max_severity: Severity = Severity.MEDIUM
    description: str = ""
    status: str = "active"
    created_at: datetime | None = None

    @classmethod
    def create(cls, *, experiment_id: Any, codes: Any, arms: Any, users: Any = (),
               max_severity: Any = "medium", description: Any = "", status: Any = "active",
               created_at: datetime | None = None) -> NudgeExperiment:
        """Return a validated experiment; raise ExperimentError naming every bad field.

        ``arms``: Arm values or mappings with name, action, weight (default 1), style."""
        errors: list[FieldError] = []
        if not isinstance(experiment_id, str) or not _ID.match(experiment_id):
            errors.append(FieldError("experiment_id", "must be 1-64 lower-case letters, "
                                     "digits or _.- starting with a letter or digit",
                                     experiment_id))
        code_list = _strings(codes)
        if not code_list:
            errors.append(FieldError("codes", "must name at least one issue code", codes))
        for code in code_list:
            if not _CODE.match(code):
                errors.append(FieldError("codes", "each must be an issue code in "
                                         "SCREAMING_SNAKE (e.g. STOP_TOO_TIGHT)", code))
        if len(set(code_list)) != len(code_list):
            errors.append(FieldError("codes", "must not repeat a code", codes))
        arm_list = _arms(arms, errors)
        user_list = _strings(users)
        if any(not u.strip() for u in user_list):
            errors.append(FieldError("users", "must be non-empty user ids", users))
        try:
            severity = Severity(max_severity)
        except ValueError:
            errors.append(FieldError("max_severity", "must be one of "
                                     f"{', '.join(s.value for s in Severity)}", max_severity))
            severity = Severity.MEDIUM
        if status not in ("active", "ended"):
            errors.append(FieldError("status", "must be active or ended", status))
        if not isinstance(description, str):
            errors.append(FieldError("description", "must be text", description))
        if errors:
            raise ExperimentError(errors)
        return cls(experiment_id=experiment_id, codes=tuple(code_list), arms=tuple(arm_list),
                   users=tuple(user_list), max_severity=severity, description=description,
                   status=status, created_at=created_at)

    @property
    def control(self) -> Arm:
        """Return the control arm (the first)."""
        return self.arms[0]

    def arm(self, name: str) -> Arm:
        """Return the arm called ``name``."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)

    def runs_for(self, user_id: str) -> bool:
        """Return True when the experiment includes ``user_id``."""
        return self.status == "active" and (not self.users or user_id in self.users)

    def row(self) -> dict[str, Any]:
        """Return the nudge_experiments row (JSON columns as Python lists)."""
        return {"experiment_id": self.experiment_id, "description": self.description,
                "codes": list(self.codes), "arms": [a.as_dict() for a in self.arms],
                "users": list(self.users), "max_severity": self.max_severity.value,
                "status": self.status, "created_at": self.created_at}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Iterable):
        return [str(v) for v in value]
    return []


def _arms(value: Any, errors: list[FieldError]) -> list[Arm]:
    raw = list(value) if isinstance(value, Iterable) and not isinstance(value, str) else []
    if len(raw) < 2:
        errors.append(FieldError("arms", "must hold at least two arms (the first is the "
                                 "control)", value))
        return []
    arms: list[Arm] = []
    for n, item in enumerate(raw):
        spec = item.as_dict() if isinstance(item, Arm) else item
        if not isinstance(spec, Mapping):
            errors.append(FieldError(f"arms[{n}]", "must be an Arm or a mapping", item))
            continue
        name, action = spec.get("name"), spec.get("action")
        weight, style = spec.get("weight", 1.0), spec.get("style")
        ok = True
        if not isinstance(name, str) or not _ID.match(name):
            errors.append(FieldError(f"arms[{n}].name", "must be 1-64 lower-case letters, "
                                     "digits or _.-", name))
            ok = False
        if action not in ACTIONS:
            errors.append(FieldError(f"arms[{n}].action", f"must be one of {', '.join(ACTIONS)}",
                                     action))
            ok = False
        if (isinstance(weight, bool) or not isinstance(weight, int | float)
                or not math.isfinite(weight) or weight <= 0):
            errors.append(FieldError(f"arms[{n}].weight", "must be a finite number > 0",
                                     weight))
            ok = False
        if action == "reword" and style not in REWORD_STYLES:
            errors.append(FieldError(f"arms[{n}].style", "a reword arm needs a style: one of "
                                     f"{', '.join(REWORD_STYLES)}", style))
            ok = False
        if action != "reword" and style is not None:
            errors.append(FieldError(f"arms[{n}].style", "only a reword arm has a style",
                                     style))
            ok = False
        if ok:
            arms.append(Arm(name=str(name), action=str(action), weight=float(weight),
                            style=None if style is None else str(style)))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        errors.append(FieldError("arms", "arm names must be distinct", names))
    return arms


# ------------------------------------------------------------------------ assignment
def unit_draws(experiment_id: str, user_ids: Sequence[str], intent_ids: Sequence[str]
               ) -> np.ndarray:
    """Return each decision point's draw on [0, 1): the SHA-256 of (experiment, user,
    intent), its first 53 bits over 2**53 (the same on every machine and run)."""
    if len(user_ids) != len(intent_ids):
        raise ValueError(f"intent_ids: must be as many as user_ids ({len(user_ids)}), got "
                         f"{len(intent_ids)}")
    out = np.empty(len(user_ids), dtype=np.float64)
    for n, (user, intent) in enumerate(zip(user_ids, intent_ids, strict=True)):
        # a separator no id holds: ('a', 'bc') and ('ab', 'c') are different units
        key = "\x1f".join((experiment_id, str(user), str(intent))).encode()
        word = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
        out[n] = (word >> (64 - _DRAW_BITS)) / float(1 << _DRAW_BITS)
    return out


def assign_arms(experiment: NudgeExperiment, user_ids: Sequence[str],
                intent_ids: Sequence[str]) -> np.ndarray:
    """Return each decision point's arm index in ``experiment.arms``: the draw's place in
    the cumulative weights."""
    weights = np.array([a.weight for a in experiment.arms], dtype=np.float64)
    edges = np.cumsum(weights) / weights.sum()
    index = np.searchsorted(edges, unit_draws(experiment.experiment_id, user_ids, intent_ids),
                            side="right")
    return np.minimum(index, len(experiment.arms) - 1)  # a rounding edge at 1.0


def assign(experiment: NudgeExperiment, user_id: str, intent_id: str) -> Arm:
    """Return the arm of one decision point (a batch of one of ``assign_arms``)."""
    return experiment.arms[int(assign_arms(experiment, [user_id], [intent_id])[0])]


# ------------------------------------------------------------------------ the report hook
def apply_experiments(report: BuddyReport, experiments: Sequence[NudgeExperiment]
                      ) -> BuddyReport:
    """Return ``report`` as the arms of ``experiments`` have it shown, with each arm on
    ``report.experiment_arms``. A report with no targeted item is not a decision point of
    that experiment (no arm recorded); without experiments the report is returned as is."""
    arms: list[ExperimentArm] = []
    user, intent_id = report.intent.user_id, report.intent.intent_id
    for experiment in experiments:
        if not experiment.runs_for(user):
            continue
        ranked = report.ranked_issues or report.top_issues
        targeted = [i for i in ranked if i.code in experiment.codes]
        if not targeted:
            continue
        arm = assign(experiment, user, intent_id)
        open_codes = tuple(dict.fromkeys(i.code for i in targeted
                                         if i.severity.rank <= experiment.max_severity.rank))
        exempt = tuple(dict.fromkeys(i.code for i in targeted if i.code not in open_codes))
        unchanged: tuple[str, ...] = ()
        if arm.action == "hold_back":
            report = _hold_back(report, set(open_codes))
        elif arm.action == "reword":
            assert arm.style is not None  # validated on creation
            report, refused = _reword(report, set(open_codes), arm.style)
            unchanged = tuple(c for c in open_codes if c in refused)
        # the unit's items are the same in every arm (analysed as assigned): an item the
        # rewording left as it was stays in ``codes`` and is listed as unchanged
        arms.append(ExperimentArm(experiment_id=experiment.experiment_id, arm=arm.name,
                                  action=arm.action, codes=open_codes, exempt=exempt,
                                  unchanged=unchanged))
    if not arms:
        return report
    return dataclasses.replace(report, experiment_arms=(*report.experiment_arms, *arms))


def _split_words(report: BuddyReport) -> tuple[tuple[Issue, ...], list[RenderedIssue]]:
    ranked = report.ranked_issues or report.top_issues
    return ranked, [*report.rendered, *report.rendered_more]


def _hold_back(report: BuddyReport, codes: set[str]) -> BuddyReport:
    ranked, words = _split_words(report)
    keep = [n for n, issue in enumerate(ranked) if issue.code not in codes]
    # as many items shown as before: the next ranked ones move up into the top
    n_top = min(len(report.top_issues), len(keep))
    kept = tuple(ranked[n] for n in keep)
    kept_words = [words[n] for n in keep]
    return dataclasses.replace(report, ranked_issues=kept, top_issues=kept[:n_top],
                               rendered=tuple(kept_words[:n_top]),
                               rendered_more=tuple(kept_words[n_top:]))


def _reword(report: BuddyReport, codes: set[str], style: str
            ) -> tuple[BuddyReport, set[str]]:
    ranked, words = _split_words(report)
    refused: set[str] = set()
    new_words = []
    for issue, said in zip(ranked, words, strict=True):
        if issue.code in codes:
            changed = reword(said, issue, style)
            if changed is None:
                refused.add(issue.code)
            else:
                said = changed
        new_words.append(said)
    n_top = len(report.top_issues)
    return dataclasses.replace(report, rendered=tuple(new_words[:n_top]),
                               rendered_more=tuple(new_words[n_top:])), refused


# ------------------------------------------------------------------------ the store
def create_experiment(store: Store, experiment: NudgeExperiment) -> NudgeExperiment:
    """Store ``experiment`` (active); raise ExperimentError when its id exists or when an
    active experiment already targets one of its codes (a unit would get two arms)."""
    from buddy.store.nudge_experiments import insert_experiment

    errors = []
    for other in active_experiments(store):
        shared = sorted(set(other.codes) & set(experiment.codes))
        if shared:
            errors.append(FieldError("codes", f"already targeted by the active experiment "
                                     f"{other.experiment_id!r}", shared))
    if errors:
        raise ExperimentError(errors)
    stamped = dataclasses.replace(experiment, status="active",
                                  created_at=experiment.created_at or datetime.now(UTC))
    if not insert_experiment(store, stamped.row()):
        raise ExperimentError([FieldError("experiment_id", "is taken by an existing "
                                          "experiment", experiment.experiment_id)])
    store.touch_context_stamp()  # a Buddy re-reads the active experiments after this
    return stamped


def end_experiment(store: Store, experiment_id: str, *, at: datetime | None = None) -> None:
    """End an active experiment (its arms stop being assigned); raise ExperimentError when
    no active experiment has that id."""
    from buddy.store.nudge_experiments import end_experiment as end_row

    if not end_row(store, experiment_id, at or datetime.now(UTC)):
        raise ExperimentError([FieldError("experiment_id", "names no active experiment",
                                          experiment_id)])
    store.touch_context_stamp()


def _from_row(row: Mapping[str, Any]) -> NudgeExperiment:
    return NudgeExperiment.create(
        experiment_id=row["experiment_id"], codes=row["codes"], arms=row["arms"],
        users=row["users"], max_severity=row["max_severity"],
        description=row["description"], status=row["status"],
        created_at=row.get("created_at"))


def active_experiments(store: Store, user_id: str | None = None) -> list[NudgeExperiment]:
    """Return the active experiments (those that include ``user_id`` when given)."""
    from buddy.store.nudge_experiments import experiment_rows

    found = [_from_row(r) for r in experiment_rows(store, active_only=True)]
    return [e for e in found if user_id is None or e.runs_for(user_id)]


def load_experiment(store: Store, experiment_id: str) -> NudgeExperiment:
    """Return the stored experiment ``experiment_id`` (active or ended); raise
    ExperimentError when there is none."""
    from buddy.store.nudge_experiments import experiment_rows

    rows = experiment_rows(store, experiment_id=experiment_id)
    if not rows:
        raise ExperimentError([FieldError("experiment_id", "names no stored experiment",
                                          experiment_id)])
    return _from_row(rows[0])
