"""The contract kit catches broken evaluators and passes a sound third-party one.

Each broken evaluator below is the sound example with one defect a plug-in author could
write; the kit must name it under the right check. The example is what ARCHITECTURE.md shows.
"""

from __future__ import annotations

import builtins
import dataclasses
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from buddy.batch.result import BatchResult
from buddy.config import ModuleConfig, param
from buddy.domain import Severity
from buddy.evaluators.base import Code, Evaluator, Evidence, check_evaluator_class, severity_where
from buddy.testing import KitReport, check_evaluator, evaluator_problems, guarded

if TYPE_CHECKING:
    from buddy.batch.context import BatchContext

# one worker builds the kit's real-data store once for this file and the contract test
pytestmark = pytest.mark.xdist_group("evaluator_kit")


# ------------------------------------------------------------------ a third-party evaluator
@dataclass(frozen=True, slots=True, kw_only=True)
class StopRoomConfig(ModuleConfig):
    """Thresholds of the stop-room check."""

    config_name = "stop_room"

    min_stop_atr: float = param(1.0, lo=0.0, hi=10.0, unit="ATR",
                                doc="a stop closer than this to the entry is flagged")


class StopRoomEvaluator(Evaluator[StopRoomConfig]):
    """Flag a stop closer to the entry than ``min_stop_atr`` ATR."""

    name = "stop_room"
    version = "1.0.0"
    requires = frozenset({"market"})
    config_cls = StopRoomConfig
    codes: ClassVar = {"STOP_TOO_TIGHT": Code(
        "Stop close to the entry",
        "The stop is {stop_distance_atr} from the entry (at least {min_stop_atr} asked).",
        "Place the stop at least {min_stop_atr} from the entry, or trade a smaller size.",
        evidence=(Evidence("stop_distance_atr", "ATR", digits=2, threshold="min_stop_atr"),
                  Evidence("min_stop_atr", "ATR")),
        action="WIDEN_STOP", harm="stopped out by ordinary noise", measure="stopped_early")}
    explain = (Evidence("stop_distance_atr", "ATR", digits=2),)

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        """Flag rows whose stop lies within ``min_stop_atr`` ATR of the entry."""
        distance = self.stop_distance_atr(ctx)
        rows = np.flatnonzero(distance < self.config.min_stop_atr)
        blocks = [self.fire("STOP_TOO_TIGHT", rows, self.severity(ctx, distance, rows),
                            stop_distance_atr=distance[rows],
                            min_stop_atr=self.config.min_stop_atr)] if len(rows) else []
        return self.result(ctx.n, blocks, explain={"stop_distance_atr": distance})

    def stop_distance_atr(self, ctx: BatchContext) -> np.ndarray:
        atr = ctx.latest["atr_14"].to_numpy(np.float64)
        return ctx.intents["stop_distance"].to_numpy(np.float64) / atr

    def severity(self, ctx: BatchContext, distance: np.ndarray, rows: np.ndarray
                 ) -> np.ndarray:
        return severity_where(distance[rows] < 0.5 * self.config.min_stop_atr, Severity.HIGH,
                              Severity.MEDIUM)


def test_a_sound_third_party_evaluator_passes_on_the_default_real_data() -> None:
    report = check_evaluator(StopRoomEvaluator)
    assert isinstance(report, KitReport) and report.problems == ()
    # not vacuous: real rows ran, the code fired, and the point-in-time pairs were compared
    assert report.rows >= 20 and report.issues["STOP_TOO_TIGHT"] >= 5
    assert report.point_in_time_rows >= 15


# ------------------------------------------------------------------ broken evaluators
class ReadsTheClock(StopRoomEvaluator):
    def severity(self, ctx: BatchContext, distance: np.ndarray, rows: np.ndarray
                 ) -> np.ndarray:
        weekend = datetime.now(UTC).weekday() >= 5  # the wall clock, not ctx's as_of
        return np.full(len(rows), (Severity.LOW if weekend else Severity.MEDIUM).value,
                       dtype=object)


class ReadsPandasClock(StopRoomEvaluator):
    def severity(self, ctx: BatchContext, distance: np.ndarray, rows: np.ndarray
                 ) -> np.ndarray:
        late = pd.Timestamp.now(tz="UTC").hour >= 20
        return np.full(len(rows), (Severity.LOW if late else Severity.MEDIUM).value,
                       dtype=object)


class OpensAFile(StopRoomEvaluator):
    def stop_distance_atr(self, ctx: BatchContext) -> np.ndarray:
        with open(__file__) as fh:  # e.g. thresholds read from disk on every call
            fh.readline()
        return super().stop_distance_atr(ctx)


class PlaceholderNotInEvidence(StopRoomEvaluator):
    codes: ClassVar = {"STOP_TOO_TIGHT": dataclasses.replace(
        StopRoomEvaluator.codes["STOP_TOO_TIGHT"],
        explanation="The stop is {stop_distance_pct} from the entry.")}


@dataclass(frozen=True, slots=True, kw_only=True)
class LaxConfig(StopRoomConfig):
    def __post_init__(self) -> None:
        pass  # the author skipped the base class's validation


class AcceptsOutOfRange(StopRoomEvaluator):
    config_cls = LaxConfig


class LeaksRows(StopRoomEvaluator):
    def stop_distance_atr(self, ctx: BatchContext) -> np.ndarray:
        # the batch's median ATR instead of each row's own: a row's verdict depends on the
        # other rows it was evaluated with
        atr = np.nanmedian(ctx.latest["atr_14"].to_numpy(np.float64))
        return ctx.intents["stop_distance"].to_numpy(np.float64) / atr


class ReadsUndeclaredPiece(StopRoomEvaluator):
    def severity(self, ctx: BatchContext, distance: np.ndarray, rows: np.ndarray
                 ) -> np.ndarray:
        # 'levels' is neither required nor optional, yet it changes the severity
        near_level = ctx.present("levels")[rows]
        return severity_where(near_level, Severity.HIGH, Severity.MEDIUM)


class WrongEvidence(StopRoomEvaluator):
    codes: ClassVar = {"STOP_TOO_TIGHT": dataclasses.replace(
        StopRoomEvaluator.codes["STOP_TOO_TIGHT"], action="TIGHTEN_STOP")}

    def evaluate_batch(self, ctx: BatchContext) -> BatchResult:
        result = super().evaluate_batch(ctx)
        issues = result.issues.copy()
        issues["evidence_json"] = issues["evidence_json"].str.replace('"ATR"', '"price"')
        issues["action"] = "WIDEN_STOP"
        return dataclasses.replace(result, issue_data=issues)


@cache
def problems_of(cls: type[Evaluator[Any]]) -> tuple[str, ...]:
    """Return the kit's problems with ``cls`` (once per class: parametrized tests share)."""
    return evaluator_problems(cls).problems


def only_in(problems: tuple[str, ...], check: str) -> list[str]:
    return [p for p in problems if p.startswith(f"{check}: ")]


@pytest.mark.parametrize(("cls", "check", "fragment"), [
    (ReadsTheClock, "purity", "the clock was read (datetime.now())"),
    (ReadsPandasClock, "purity", "pandas.Timestamp.now() called while evaluating"),
    (OpensAFile, "purity", "open() called while evaluating"),
    (PlaceholderNotInEvidence, "class",
     "STOP_TOO_TIGHT: template placeholders ['stop_distance_pct'] are not declared"),
    (AcceptsOutOfRange, "config", "min_stop_atr=-1.0 (below lo=0) accepted"),
    (AcceptsOutOfRange, "config", "min_stop_atr=11.0 (above hi=10) accepted"),
    (AcceptsOutOfRange, "config", "min_stop_atr='__not_a_number__' (a string for a number) "
                                  "accepted"),
    (LeaksRows, "rows", "alone vs row"),
    (ReadsUndeclaredPiece, "pieces", "reads an undeclared piece: without state, mtfa, "
                                     "regime, levels"),
    (WrongEvidence, "evidence", "stop_distance_atr unit 'price' != declared 'ATR'"),
    (WrongEvidence, "evidence", "mitigation action 'WIDEN_STOP' != declared 'TIGHTEN_STOP'"),
])
def test_the_kit_names_each_defect(cls: type[Evaluator[Any]], check: str, fragment: str
                                   ) -> None:
    problems = problems_of(cls)
    assert any(fragment in p for p in only_in(problems, check)), problems


def test_check_evaluator_raises_one_error_listing_every_problem() -> None:
    with pytest.raises(AssertionError) as err:
        check_evaluator(WrongEvidence)
    text = str(err.value)
    found = len(problems_of(WrongEvidence))
    assert text.startswith(f"check_evaluator(WrongEvidence) found {found} problem(s)")
    assert all(p in text for p in problems_of(WrongEvidence))


def test_a_leak_between_rows_is_only_a_row_problem() -> None:
    # the defect is caught where it is, not smeared over every check
    problems = problems_of(LeaksRows)
    assert {p.split(":")[0] for p in problems} <= {"rows", "point-in-time"}, problems


def test_the_guard_restores_what_it_patched() -> None:
    open_, profile, now = builtins.open, sys.getprofile(), pd.Timestamp.now
    seen: list[str] = []
    with pytest.raises(Exception, match="not allowed"), guarded(seen), open(__file__):
        pass
    assert seen == ["open() called while evaluating"]
    assert builtins.open is open_ and sys.getprofile() is profile
    assert pd.Timestamp.now == now and pd.Timestamp.now(tz="UTC").year >= 2024


def test_custom_cases_replace_the_defaults() -> None:
    from buddy.testing import sample_cases

    cases = sample_cases()[:3]
    report = check_evaluator(StopRoomEvaluator, cases=cases, point_in_time=())
    assert report.cases == 3 and report.point_in_time_rows == 0


def test_cases_that_trip_nothing_are_reported() -> None:
    from buddy.testing import sample_cases

    relaxed = StopRoomConfig(min_stop_atr=0.0)  # nothing is ever closer than 0 ATR
    problems = evaluator_problems(StopRoomEvaluator, config=relaxed, point_in_time=(),
                                  cases=sample_cases()).problems
    assert any("no issue fired" in p for p in only_in(problems, "cases")), problems



def test_the_architecture_example_keeps_the_contract() -> None:
    # the example ARCHITECTURE.md shows under "Writing an evaluator" runs and passes the kit
    from pathlib import Path

    text = (Path(__file__).parents[1] / "ARCHITECTURE.md").read_text()
    section = text[text.index("## Writing an evaluator"):]
    code = section[section.index("```python\n") + 10:section.index("```\n", 10)]
    namespace: dict[str, Any] = {
        "dataclass": dataclass, "ClassVar": ClassVar, "ModuleConfig": ModuleConfig,
        "param": param, "Evaluator": Evaluator, "Code": Code, "Evidence": Evidence,
        "Severity": Severity, "np": np, "BatchResult": BatchResult, "BatchContext": Any,
        "register": lambda cls: cls,  # not registered: the registry is the process's
    }
    exec(compile(code, "ARCHITECTURE.md", "exec"), namespace)
    report = check_evaluator(namespace["StopRoomEvaluator"])
    assert report.issues["STOP_TOO_TIGHT"] > 0


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"harm": ""}, "must say the harm it warns of"),
    ({"measure": "mean_r"}, "measure must be one of"),
    ({"kind": "maybe"}, "kind must be one of"),
    ({"kind": "not_checked"}, "a not_checked code claims no harm"),
])
def test_each_code_declares_what_it_claims(changes: dict[str, str], fragment: str) -> None:
    spec = dataclasses.replace(StopRoomEvaluator.codes["STOP_TOO_TIGHT"], **changes)
    claimless = type("Claimless", (StopRoomEvaluator,), {"codes": {"STOP_TOO_TIGHT": spec}})
    assert any(fragment in p for p in check_evaluator_class(claimless))
