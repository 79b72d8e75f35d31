"""The detectors on the demo trader's injected truth and on the clean trader: the scan job,
point-in-time reads, and ``buddy behavior validate`` checked against a plain recount."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from click.testing import CliRunner

from buddy.behavior.detectors import detect, scan, trades_as_intents
from buddy.behavior.history import load_history
from buddy.behavior.params import DEFAULT_ENABLED, DETECTORS, params_for
from buddy.behavior.provider import params_of
from buddy.behavior.settings import NudgeSettings
from buddy.jobs.behavior import BehaviorJobResult, run_behavior_job
from buddy.store import Store
from buddy.store.behavior import read_events
from buddy.store.demo_truth import demo_behavior_truth, demo_trade_truth


@pytest.fixture(scope="module")
def scanned(behavior_store: Store) -> BehaviorJobResult:
    """Return the demo trader's scan with every detector (fatigue too), written to
    behavior_events."""
    return run_behavior_job(behavior_store, "demo", params=params_for(enabled=DETECTORS))


def test_the_job_stores_every_event_linked_and_typed(behavior_store: Store,
                                                     scanned: BehaviorJobResult) -> None:
    stored = read_events(behavior_store, "demo")
    assert len(stored) == len(scanned.events) > 0
    assert stored["event_id"].is_unique
    assert (stored["linked_trade_id_optional"].notna()
            | stored["linked_intent_id_optional"].notna()).all()
    assert (stored["params_hash"] == params_for(enabled=DETECTORS).hash).all()
    assert stored["computed_at"].notna().all() and stored["session_date"].notna().all()
    assert set(stored["event_type"]) <= {"revenge", "overtrading", "fomo", "fatigue",
                                         "rule_drift", "stop_drift", "sizing"}
    # the point-in-time read: nothing after until
    until = stored["ts"].iloc[len(stored) // 2]
    assert (read_events(behavior_store, "demo", until=until)["ts"] <= until).all()


def _trade_of(store: Store, user_id: str) -> dict[str, str]:
    truth = demo_trade_truth(store, user_id)
    return {k: t for k, t in zip(truth["trade_key"], truth["trade_id"], strict=True)
            if isinstance(t, str)}


def _recount(store: Store, events: pd.DataFrame, detector: str, kind: str
             ) -> tuple[int, int, int, int]:
    """Return (true flagged, flagged, found, truth) counted the plain way."""
    truth = demo_behavior_truth(store, "demo")
    truth = truth[truth["kind"] == kind]
    mine = events[(events["event_type"] == detector)
                  & events["linked_trade_id_optional"].notna()]
    if kind == "overtrading_day":
        flagged = {pd.Timestamp(d).date() for d in mine["session_date"]}
        true = {pd.Timestamp(ts).tz_convert("UTC").date() for ts in truth["ts"]}
    else:
        trade_of = _trade_of(store, "demo")
        flagged = set(mine["linked_trade_id_optional"])
        true = {trade_of[k] for k in truth["trade_key"] if k in trade_of}
    hits = 0
    for unit in flagged:
        if unit in true:
            hits += 1
    found = sum(1 for unit in true if unit in flagged)
    return hits, len(flagged), found, len(true)


def test_validate_prints_precision_recall_and_clean_alarms_that_a_recount_confirms(
        behavior_store: Store, scanned: BehaviorJobResult) -> None:
    from buddy.cli import cli

    result = CliRunner().invoke(cli, ["--db", str(behavior_store.path), "behavior",
                                      "validate", "--no-load-clean"])
    assert result.exit_code == 0, result.output
    out = result.output
    line = re.compile(r"^\s+(\w+)\s+vs (\w+)\s+precision\s+\S+ \((\d+)/(\d+),.*recall\s+\S+ "
                      r"\((\d+)/(\d+),", re.M)
    kinds = {m[1]: m[2] for m in line.finditer(out)}
    printed = {m[1]: tuple(map(int, m.groups()[2:])) for m in line.finditer(out)}
    assert set(printed) == {"revenge", "overtrading", "fatigue", "stop_drift"}
    assert re.search(r"^\s+fatigue\s+vs late_session .*\[off by default\]$", out, re.M)
    for detector, figures in printed.items():
        assert figures == _recount(behavior_store, scanned.events, detector, kinds[detector]), \
            detector
    # the aims the issue sets, where this build meets them (fatigue does not: see the report)
    for detector in ("revenge", "stop_drift"):
        k, flagged, found, truth = printed[detector]
        assert k / flagged >= 0.9 and found / truth >= 0.8, detector
    k, flagged, _, _ = printed["overtrading"]
    assert flagged and k == flagged
    clean = re.findall(r"^\s+(\w+)\s+([\d.]+) alerts / 100 trades \((\d+) in (\d+) trades",
                       out, re.M)
    counts = {name: (float(rate), int(k), int(n)) for name, rate, k, n in clean}
    assert counts["all"][1] == sum(k for name, (_, k, _) in counts.items()
                                   if name not in ("all", "default"))
    assert counts["default"][1] == sum(counts[d][1] for d in DEFAULT_ENABLED)
    assert counts["default"][1] < counts["all"][1]  # fatigue's false alarms are left out
    for name, (rate, k, n) in counts.items():
        assert rate == pytest.approx(100 * k / n, abs=0.005), name
    assert counts["revenge"][1] == counts["stop_drift"][1] == counts["overtrading"][1] == 0


def test_detect_reads_nothing_after_t_on_the_demo_trader(behavior_store: Store) -> None:
    full = load_history(behavior_store, "demo")
    rows = trades_as_intents(full)
    truth = demo_behavior_truth(behavior_store, "demo")
    trade_of = _trade_of(behavior_store, "demo")
    revenge = truth[truth["kind"] == "size_up_after_loss"]
    picked = rows[rows["trade_id"].isin([trade_of[k] for k in revenge["trade_key"][:2]])]
    params = params_for()
    for _, row in picked.iterrows():
        one = pd.DataFrame([row]).reset_index(drop=True)
        t = row["as_of"]
        at_t = load_history(behavior_store, "demo", as_of=t)
        assert at_t.trades["open_ts"].max() <= t
        assert not (at_t.trades["close_ts"] > t).any()
        expected = detect(at_t, one, params).hits
        for view in (full, full.truncated(t)):
            got = detect(view, one, params).hits
            pd.testing.assert_frame_equal(got.drop(columns="evidence"),
                                          expected.drop(columns="evidence"))
            assert got["evidence"].tolist() == expected["evidence"].tolist()
        # the demo's entry right after a loss: a revenge hit with the trader's own figures
        hit = expected.set_index("detector").loc["revenge"]
        assert hit["value"] == pytest.approx(2 * hit["baseline"], rel=0.05)
        assert hit["n"] >= params.revenge.min_trades


def test_the_clean_trader_is_the_same_generator_with_nothing_injected(
        behavior_store: Store) -> None:
    assert demo_behavior_truth(behavior_store, "demo-clean").empty
    clean = demo_trade_truth(behavior_store, "demo-clean")
    injected = demo_trade_truth(behavior_store, "demo")
    assert not clean["setup"].eq("impulse").any()
    assert (clean["qty"] == clean["planned_qty"]).all()  # no size-up
    assert not clean["exit_reason"].eq("moved_stop").any()
    same = clean.merge(injected, on=["symbol", "entry_ts", "setup"])
    assert len(same) / len(clean) > 0.9  # the same trades but where a behaviour changed them


def test_a_rescan_replaces_the_users_events(behavior_store: Store) -> None:
    two = ("fomo", "fatigue")  # the detectors that fire on the clean trader at high
    high, low = params_for("high", enabled=two), params_for("low", enabled=two)
    first = run_behavior_job(behavior_store, "demo-clean", params=high)
    assert len(read_events(behavior_store, "demo-clean")) == len(first.events) > 0
    second = run_behavior_job(behavior_store, "demo-clean", params=low)
    stored = read_events(behavior_store, "demo-clean")
    assert len(stored) == len(second.events) < len(first.events)
    assert (stored["params_hash"] == low.hash).all()
    dry = run_behavior_job(behavior_store, "demo-clean", params=high, dry_run=True)
    assert not dry.written and len(read_events(behavior_store, "demo-clean")) == len(stored)


def test_scan_command_prints_strict_json_and_writes_nothing_on_a_dry_run(
        behavior_store: Store) -> None:
    import json

    from buddy.cli import cli

    before = read_events(behavior_store, "demo-clean")
    result = CliRunner().invoke(cli, ["--db", str(behavior_store.path), "behavior", "scan",
                                      "--user", "demo-clean", "--sensitivity", "high",
                                      "--dry-run", "--json"])
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    rows = [json.loads(line, parse_constant=refuse) for line in result.output.splitlines()]
    assert rows and {r["user_id"] for r in rows} == {"demo-clean"}
    pd.testing.assert_frame_equal(read_events(behavior_store, "demo-clean"), before)


def test_the_default_set_clean_figure_is_what_a_default_scan_of_the_clean_trader_finds(
        behavior_store: Store) -> None:
    from buddy.cli import cli

    result = CliRunner().invoke(cli, ["--db", str(behavior_store.path), "behavior",
                                      "validate", "--no-load-clean"])
    assert result.exit_code == 0, result.output
    printed = re.search(r"^\s+default\s+([\d.]+) alerts / 100 trades \((\d+) in (\d+) "
                        r"trades, 95% ([\d.]+)-([\d.]+)\)", result.output, re.M)
    assert printed is not None, result.output
    clean = load_history(behavior_store, "demo-clean")
    events = scan(clean, params_for(), include_intents=False)  # what a trader gets by default
    assert "fatigue" not in set(events["event_type"])
    k, n = len(events), len(clean.trades)
    assert (int(printed[2]), int(printed[3])) == (k, n)
    assert float(printed[1]) == pytest.approx(100 * k / n, abs=0.005)
    assert float(printed[4]) <= 100 * k / n <= float(printed[5])


def test_fatigue_stays_silent_by_default_where_it_fired_and_fires_once_opted_in(
        behavior_store: Store, scanned: BehaviorJobResult) -> None:
    events = scanned.events
    fired = set(events.loc[events["event_type"] == "fatigue", "linked_trade_id_optional"])
    assert fired  # the demo's late-session entries: where it fires with every detector on
    rows = trades_as_intents(load_history(behavior_store, "demo"))
    rows = rows[rows["trade_id"].isin(fired)].reset_index(drop=True)
    full = load_history(behavior_store, "demo")
    default = detect(full, rows, params_of(NudgeSettings()))
    assert default.rows("fatigue").size == 0
    assert set(default.status("fatigue")) == {"not_checked"}
    opted_in = detect(full, rows, params_of(NudgeSettings(opted_in=frozenset({"fatigue"}))))
    assert opted_in.rows("fatigue").size == len(rows) == len(fired)
    # the other detectors' hits do not change with the opt-in
    others = default.hits[default.hits["detector"] != "fatigue"].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        opted_in.hits[opted_in.hits["detector"] != "fatigue"].reset_index(drop=True), others)
