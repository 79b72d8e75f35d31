"""``buddy portfolio`` prints heat, clusters, contributions, betas and VaR as of a time;
``buddy jobs portfolio`` writes the snapshots; a user without positions is "not checked"."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import CliRunner

from buddy.cli import cli
from buddy.store import Store
from buddy.store.portfolio import read_snapshots, record_equity
from tests.portfolio.conftest import DEMO_EQUITY_FROM


def test_the_portfolio_command(portfolio_demo: Store) -> None:
    runner = CliRunner()
    db = ["--db", str(portfolio_demo.path)]
    text = runner.invoke(cli, [*db, "portfolio", "--user", "demo", "--as-of",
                               "2013-02-20T21:30:00+00:00"])
    assert text.exit_code == 0, text.output
    for words in ("heat: ", "against a limit of 6%", "cluster 1: GOOG", "volatility: ",
                  "VaR 95%: parametric", "n = 251 days", "2 years of weekly log returns"):
        assert words in text.output
    as_json = runner.invoke(cli, [*db, "portfolio", "--user", "demo", "--as-of",
                                  "2013-02-20T21:30:00+00:00", "--json", "--blume"])
    assert as_json.exit_code == 0, as_json.output
    snap = json.loads(as_json.output)
    assert snap["beta_blume"] is True and [p["symbol"] for p in snap["positions"]] == [
        "GOOG", "IBM"]
    assert sum(p["contribution_pct"] for p in snap["positions"]) == pytest.approx(
        snap["vol_pct"])
    nobody = runner.invoke(cli, [*db, "portfolio", "--user", "nobody"])
    assert nobody.exit_code == 1 and "not checked" in nobody.output
    bad = runner.invoke(cli, [*db, "portfolio", "--user", "demo", "--as-of", "soon"])
    assert bad.exit_code == 2 and "--as-of" in bad.output


def test_the_job_command(demo_store_copy: Callable[[], Store]) -> None:
    store = demo_store_copy()
    record_equity(store, "demo", DEMO_EQUITY_FROM.to_pydatetime(), 100_000.0, "USD", "test")
    out = CliRunner().invoke(cli, ["--db", str(store.path), "jobs", "portfolio", "--user",
                                   "demo", "--start", "2013-02-18", "--end", "2013-02-21"])
    assert out.exit_code == 0, out.output
    written = read_snapshots(store, "demo")
    assert f"{len(written)} exposure snapshots" in out.output and len(written) >= 3
