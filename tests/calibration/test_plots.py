"""Calibration charts: what is drawn sits where its label says."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from replay import calibration as cal
from replay import plots
from tests.calibration.synthetic import issues_frame, results_frame


def _flag_table() -> object:
    frame = results_frame(300, seed=4)
    ids = frame["intent_id"]
    losers = frame.loc[frame["realized_r"] < 0, "intent_id"]
    issues = issues_frame([(i, "m", "EVERYWHERE") for i in ids]  # fired 300 / not 0
                          + [(i, "m", "LOSERS") for i in losers]
                          + [(i, "m", "FEW") for i in ids[:12]]
                          + [(i, "m", "HALF") for i in ids[::2]])
    return cal.flag_table(frame, issues, n_boot=50)


def _display_y(ax: Axes, y: float) -> float:
    return float(ax.transData.transform((0.0, y))[1])


def test_flag_plot_puts_each_difference_on_its_own_flags_row() -> None:
    table = _flag_table()
    fig = plots.flag_plot(table)
    fig.canvas.draw()
    ax_m, ax_d = fig.axes[:2]
    assert ax_m.get_ylim() == ax_d.get_ylim()
    ticks = {label.get_text().split(" (")[0]: _display_y(ax_m, label.get_position()[1])
             for label in ax_m.get_yticklabels()}
    assert sorted(ticks) == sorted(table["code"])
    markers = [line for line in ax_d.get_lines() if line.get_marker() == "o"]
    assert len(markers) == len(table)
    for code, line in zip(table["code"], markers, strict=True):
        assert _display_y(ax_d, float(line.get_ydata()[0])) == pytest.approx(ticks[code])
    # the left panel's fired / not-fired markers straddle the same row
    fired = [line for line in ax_m.get_lines() if line.get_marker() == "o"]
    for line in fired:
        rows = np.asarray(line.get_ydata(), dtype=float)
        for code, y in zip(table["code"], rows, strict=True):
            assert abs(_display_y(ax_m, y) - ticks[code]) < abs(
                _display_y(ax_m, 0.0) - _display_y(ax_m, 1.0)) / 2


def _overlaps(fig: Figure, ax: Axes) -> list[tuple[str, str]]:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    shown = [t for t in ax.get_xticklabels() if t.get_text() and t.get_visible()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in shown]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
            if box_a.overlaps(box_b)]


@pytest.mark.parametrize("years", [(2008, 2011), (1999, 2018)])
def test_walk_forward_tick_labels_never_overlap(years: tuple[int, int]) -> None:
    table = cal.walk_forward(results_frame(400, years=years), n_boot=10)
    fig = plots.walk_forward_plot(table)
    fig.canvas.draw()
    for ax in fig.axes[:2]:
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert 2 <= len(labels) <= plots.MAX_X_LABELS
        assert labels[0] == str(years[0] + 1)
        assert _overlaps(fig, ax) == []


def test_severity_plot_is_outcome_by_severity_under_its_own_name() -> None:
    table = cal.severity_reliability(results_frame(200), n_boot=20)
    fig = plots.severity_plot(table)
    assert fig.get_suptitle() == "Outcome by overall severity"
    assert plots.reliability_plot is plots.severity_plot


def test_claim_plot_draws_one_row_per_code_with_a_measure_coloured_by_verdict() -> None:
    import pandas as pd

    table = pd.DataFrame({
        "code": ["A", "B", "C"], "measure": ["stopped_out", None, "realized_r"],
        "unit": ["share", "", "R"], "n_fired": [50, 40, 60], "n_not_fired": [300, 310, 290],
        "diff": [0.1, np.nan, -0.2], "diff_low": [0.05, np.nan, -0.5],
        "diff_high": [0.15, np.nan, 0.1],
        "verdict": ["supported", "cannot judge yet", "cannot judge yet"]})
    fig = plots.claim_plot(table)
    ax = fig.axes[0]
    rows = {t.get_text().split(" ")[0]: t.get_position()[1] for t in ax.get_yticklabels()}
    assert sorted(rows) == ["A", "C"] and rows["A"] > rows["C"]  # table order, top down
    markers = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [float(m.get_xdata()[0]) for m in markers] == [0.1, -0.2]
