"""run_batch's plumbing: module runs and issues placed by row, configured order and issue
number whatever rows each module skips or is switched off on; each row what its report of one
gives; distinct issue keys per row counted as a plain loop counts them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from buddy.batch import orchestrate
from buddy.batch.context import from_packs
from buddy.batch.orchestrate import run_batch
from buddy.batch.result import SEVERITY_BY_RANK, issue_evidence_json
from buddy.config import ModuleConfig, ModuleSpec, ScoringConfig
from buddy.domain import Severity
from buddy.evaluators import registry
from buddy.evaluators.base import Code, Evaluator, Evidence
from buddy.orchestrator import Orchestrator
from tests import factories


@dataclass(frozen=True, slots=True, kw_only=True)
class _Config(ModuleConfig):
    config_name = "plumbing"


def _code(kind: str = "issue") -> Code:
    return Code("Found", "Found {size}.", "Do less.", evidence=(Evidence("size", "shares"),),
                action="DO_LESS", kind=kind, harm="" if kind == "not_checked" else "a harm",
                measure=None)


class _Often(Evaluator[_Config]):
    """Two issues on rows whose size is even and a multiple of 3, one on others of those;
    the typed form (many rows) and the JSON form (a few) in one module."""

    name = "often"
    version = "3"
    requires = frozenset({"market"})
    config_cls = _Config
    codes: ClassVar = {"EVEN_SIZE": _code(), "THIRD_SIZE": _code("not_checked")}

    def evaluate_batch(self, ctx):
        size = ctx.intents["proposed_size"].to_numpy(dtype=np.int64)
        blocks = []
        for code, divisor, severity in (("EVEN_SIZE", 2, Severity.MEDIUM),
                                        ("THIRD_SIZE", 3, Severity.LOW)):
            rows = np.flatnonzero(size % divisor == 0)
            blocks.append(self.fire(code, rows, severity, size=size[rows]))
        return self.result(ctx.n, blocks)


class _Needy(_Often):
    """Needs regime and schedule: skipped, with one CONTEXT_MISSING per missing piece."""

    name = "needy"
    version = "1"
    requires = frozenset({"market", "regime", "schedule"})
    codes: ClassVar = {"EVEN_SIZE": _code(), "THIRD_SIZE": _code()}


@pytest.fixture(autouse=True)
def _registered() -> Iterator[None]:
    for cls in (_Often, _Needy):
        registry.register(cls)
    yield
    for cls in (_Often, _Needy):
        registry.unregister(cls.name)


def _batch(n: int) -> tuple[list, list]:
    """Return n intents and packs: sizes 1..n; regime present on every 4th row, schedule
    missing on every 5th, and the needy module switched off on every 7th."""
    intents, packs = [], []
    for row in range(n):
        pieces: dict = {"missing": {}}
        if row % 4 == 0:
            pieces["regime"] = factories.regime()
        else:
            pieces["missing"]["regime"] = "not computed in tests"
        if row % 5 == 0:
            pieces["schedule"] = None
            if row % 10:  # else no reason given: 'not provided'
                pieces["missing"]["schedule"] = "no calendar"
        if row % 7 == 0:
            pieces["account"] = factories.account(disabled_modules=("needy",))
        intents.append(factories.intent(proposed_size=row + 1))
        packs.append(factories.pack(**pieces))
    return intents, packs


def test_each_row_holds_what_its_report_of_one_holds_in_the_same_order() -> None:
    orch = Orchestrator(ScoringConfig(modules=(ModuleSpec(name="needy"),
                                               ModuleSpec(name="often", weight=2.0))))
    intents, packs = _batch(90)
    report = run_batch(orch, from_packs(intents, packs))
    modules, issues = report.modules, report.issues
    assert list(modules.columns) == ["row", "module", "version", "status", "score",
                                     "severity", "n_issues"]
    assert modules["row"].is_monotonic_increasing and issues["row"].is_monotonic_increasing
    skipped = 0
    for row, (intent, pack) in enumerate(zip(intents, packs, strict=True)):
        one = orch.run(intent, pack)
        got = modules[modules["row"] == row]
        assert got["module"].tolist() == [r.module for r in one.modules]
        assert got["version"].tolist() == [r.version for r in one.modules]
        assert got["status"].tolist() == [r.status.value for r in one.modules]
        assert got["severity"].tolist() == [r.severity.value for r in one.modules]
        assert got["n_issues"].tolist() == [len(r.issues) for r in one.modules]
        assert np.array_equal(got["score"].to_numpy(), np.array(
            [np.nan if r.score is None else r.score for r in one.modules]), equal_nan=True)
        expected = [(r.module, k, i.code, i.severity.value,
                     issue_evidence_json(i.evidence))
                    for r in one.modules for k, i in enumerate(r.issues)]
        rows = issues[issues["row"] == row]
        assert list(zip(rows["module"], rows["issue_no"], rows["code"], rows["severity"],
                        rows["evidence_json"], strict=True)) == expected
        overall = report.overall.iloc[row]
        assert overall["n_issues"] == len(one.all_issues)
        assert overall["n_ranked"] == len(one.ranked_issues)
        assert overall["overall_score"] == one.overall_score
        skipped += sum(code == "CONTEXT_MISSING" for _, _, code, *_ in expected)
    assert skipped > 60  # the case holds skipped rows, two pieces on some, and opt-outs
    assert (modules.groupby("row").size() == 1).sum() == len(range(0, 90, 7))
    # the numbers run_batch hands replay say what the text says
    encoded = report.encoded
    names = np.array(encoded["module_names"], dtype=object)
    assert names[encoded["module_order"]].tolist() == modules["module"].tolist()
    assert names[encoded["issue_module_order"]].tolist() == issues["module"].tolist()
    assert np.array(encoded["code_names"], dtype=object)[encoded["issue_code_no"]].tolist() == (
        issues["code"].tolist())
    assert SEVERITY_BY_RANK[encoded["issue_severity_rank"]].tolist() == (
        issues["severity"].tolist())
    assert orchestrate.MODULE_STATUS_TEXT[encoded["module_status_no"]].tolist() == (
        modules["status"].tolist())
    assert SEVERITY_BY_RANK[encoded["module_severity_rank"]].tolist() == (
        modules["severity"].tolist())
    assert set(modules["status"]) == {"ok", "skipped"}  # both kinds numbered


def _distinct_loop(n: int, rows: np.ndarray, key: np.ndarray) -> list[int]:
    seen: list[set[int]] = [set() for _ in range(n)]
    for row, k in zip(rows.tolist(), key.tolist(), strict=True):
        seen[row].add(k)
    return [len(s) for s in seen]


@pytest.mark.parametrize("cells", [orchestrate._TABLE_CELLS, 0])  # the table; the sort
def test_distinct_keys_per_row_are_what_a_loop_counts(monkeypatch, cells) -> None:
    monkeypatch.setattr(orchestrate, "_TABLE_CELLS", cells)
    rng = np.random.default_rng(7)
    n, keys = 50, 9
    rows = np.sort(rng.integers(0, n - 5, 400))  # the last rows hold no issue
    key = rng.integers(0, keys, 400)
    assert orchestrate._distinct_per_row(n, rows, key, keys).tolist() == _distinct_loop(
        n, rows, key)
    assert orchestrate._distinct_per_row(n, rows[:0], key[:0], keys).tolist() == [0] * n


def test_a_module_status_outside_the_known_ones_is_kept_as_its_text() -> None:
    # run_batch numbers statuses and severities only when every module gave known ones; a
    # module's own text is kept otherwise (replay then refuses it by name)
    from buddy.batch.result import BatchResult

    def part(order: int, status: list[str]) -> orchestrate._Ran:
        n = len(status)
        return orchestrate._Ran(order, np.arange(n), BatchResult(
            module=f"m{order}", version="1", score=np.full(n, 50.0),
            severity=np.array(["low"] * n, dtype=object),
            status=np.array(status, dtype=object),
            issue_data={"row": np.zeros(0, dtype=np.int64)}))

    evaluators = [(registry.get(name)(), 1.0) for name in ("risk_reward", "exit_plan")]
    runs, counts = np.ones((3, 2), dtype=bool), np.zeros((3, 2), dtype=np.int64)
    known = [part(0, ["ok", "skipped", "ok"]), part(1, ["ok", "ok", "ok"])]
    frame, _, coded = orchestrate._module_frame(evaluators, runs, counts, known)
    assert frame["status"].tolist() == ["ok", "ok", "skipped", "ok", "ok", "ok"]
    assert orchestrate.MODULE_STATUS_TEXT[coded["module_status_no"]].tolist() == (
        frame["status"].tolist())
    odd = [part(0, ["ok", "lost", "ok"]), part(1, ["ok", "ok", "ok"])]
    frame, _, coded = orchestrate._module_frame(evaluators, runs, counts, odd)
    assert coded == {}
    assert frame["status"].tolist() == ["ok", "ok", "lost", "ok", "ok", "ok"]
