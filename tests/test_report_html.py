"""The HTML Buddy Report comes from a packaged jinja2 template: escaped, complete, shipped."""

from __future__ import annotations

import dataclasses
import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from buddy import Buddy
from buddy.demo import ensure_demo_user
from buddy.explain import RenderedIssue
from buddy.report import DISCLAIMER, BuddyReport
from buddy.store import Store
from buddy.templates import render

ROOT = Path(__file__).resolve().parents[1]
AAPL = dict(symbol="AAPL", side="long", timeframe="1d", entry=560.99, stop=537.68,
            target=607.62, size=100, as_of="2012-06-01")


@pytest.fixture(scope="module")
def report(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> BuddyReport:
    path = tmp_path_factory.mktemp("report_html") / "buddy.duckdb"
    path.write_bytes(Path(sample_store.path).read_bytes())
    ensure_demo_user(Store(path))
    return Buddy.open(path).evaluate(user="demo", **AAPL, log=False)


def _issue(title: str, n: int) -> RenderedIssue:
    return RenderedIssue(module="risk", code=f"CODE_{n}", severity="high", title=title,
                         explanation="explained <here>", mitigation="do & check",
                         evidence=("a = 1 <2>", "b = 3"), renderer="template")


def test_the_html_holds_the_verdict_the_issues_and_the_config(report: BuddyReport) -> None:
    page = report.html()
    assert page == report._repr_html_()
    assert page.startswith("<div><h4>Buddy Report: AAPL long 1d as of 2012-06-01")
    assert f"Verdict <b>{report.verdict.value}</b>" in page
    assert f"score <b>{report.overall_score:.0f}</b>/100" in page
    for rendered in report.rendered:
        assert f"<code>{rendered.code}</code>" in page
    assert report.config_label() in page
    assert DISCLAIMER in page
    assert page.count("<li>") == len(report.rendered) + len(report.rendered_more)


def test_every_text_is_escaped_and_the_others_sit_behind_an_expander(
        report: BuddyReport) -> None:
    shown = (_issue("<script>alert(1)</script>", 1),)
    more = (_issue("second", 2), _issue("third", 3))
    page = dataclasses.replace(report, rendered=shown, rendered_more=more).html()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "explained &lt;here&gt;" in page and "<i>do &amp; check</i>" in page
    # evidence lines, each escaped, one per line
    assert "<summary>evidence</summary>a = 1 &lt;2&gt;<br>b = 3</details>" in page
    assert "<details><summary>2 more issue(s)</summary><ol start='2'>" in page
    assert page.count("<li>") == 3
    none_more = dataclasses.replace(report, rendered=shown, rendered_more=()).html()
    assert "more issue(s)" not in none_more


def test_an_unknown_template_value_is_an_error_not_an_empty_string() -> None:
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render("report.html.j2")


def test_the_templates_ship_with_the_package() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["buddy"]
    templates = [p.relative_to(ROOT / "buddy").as_posix()
                 for p in (ROOT / "buddy" / "templates").iterdir() if p.suffix != ".py"
                 and p.is_file()]
    assert templates
    for name in templates:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in globs), (name, globs)


def test_the_command_line_does_not_import_jinja2() -> None:
    code = "import sys, buddy.report, buddy.api; print('jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
