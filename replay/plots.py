"""Calibration charts: each takes a table from ``replay.calibration`` and returns a Figure.

Figures are built on the Agg canvas without pyplot, so nothing here touches global state or
needs a display; a notebook shows one with ``display(fig)``. Every estimate is drawn with its
interval and labelled with its n; bins without enough samples are drawn hollow and say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from buddy.strategy.validation import PlaybookValidation

_SOLID = "#2b6cb0"
_HOLLOW = "#a0aec0"
_BAD = "#c05621"
_IN_SAMPLE = "#718096"


#: Most x tick labels a walk-forward panel shows; more splits show every k-th label.
MAX_X_LABELS = 10
_VERDICT_COLOURS = {"supported": "#2f855a", "contradicted": "#c53030",
                    "cannot judge yet": _HOLLOW}


def _figure(width: float, height: float, ncols: int = 1, *, sharey: bool = False
            ) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False, sharey=sharey)[0].tolist()
    return fig, axes


def _errors(table: pd.DataFrame, col: str) -> np.ndarray:
    est = table[col].to_numpy(dtype=float)
    low = table[f"{col}_low"].to_numpy(dtype=float)
    high = table[f"{col}_high"].to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([est - low, high - est]), nan=0.0).clip(min=0)


def _bars(ax: Axes, labels: list[str], table: pd.DataFrame, col: str, enough: np.ndarray) -> None:
    x = np.arange(len(labels))
    values = np.nan_to_num(table[col].to_numpy(dtype=float))
    ax.bar(x, values, color=[_SOLID if ok else "white" for ok in enough],
           edgecolor=[_SOLID if ok else _HOLLOW for ok in enough])
    ax.errorbar(x, values, yerr=_errors(table, col), fmt="none", ecolor="black", capsize=3,
                linewidth=1)
    ticks = [f"{label}\nn={n}" + ("" if ok else "\ntoo few")
             for label, n, ok in zip(labels, table["n"], enough, strict=True)]
    ax.set_xticks(x, ticks, fontsize=8)
    for tick, ok in zip(ax.get_xticklabels(), enough, strict=True):
        tick.set_color("black" if ok else _BAD)


def decile_plot(table: pd.DataFrame, title: str = "Outcome by score decile") -> Figure:
    """Return bars of mean R and win rate per score decile with their 95% intervals."""
    fig, (ax_r, ax_w) = _figure(11, 4, ncols=2)
    if table.empty:
        ax_r.text(0.5, 0.5, "no resolved outcomes", ha="center", transform=ax_r.transAxes)
        fig.suptitle(title)
        return fig
    labels = [f"{int(d)}\n{lo:.0f}-{hi:.0f}" for d, lo, hi in
              zip(table["decile"], table["score_low"], table["score_high"], strict=True)]
    enough = table["enough"].to_numpy(dtype=bool)
    _bars(ax_r, labels, table, "mean_r", enough)
    ax_r.axhline(0, color="black", linewidth=0.8)
    ax_r.set_ylabel("mean realized R (95% bootstrap CI)")
    ax_r.set_xlabel("score decile (score range)")
    _bars(ax_w, labels, table, "win_rate", enough)
    ax_w.set_ylim(0, 1)
    ax_w.set_ylabel("win rate (95% Wilson CI)")
    ax_w.set_xlabel("score decile (score range)")
    fig.suptitle(title)
    return fig


def severity_plot(table: pd.DataFrame, title: str = "Outcome by overall severity") -> Figure:
    """Return mean R and win rate per severity level with 95% intervals (mildest left).

    This is outcome by severity, not a calibration curve: severities are not probabilities.
    """
    fig, (ax_r, ax_w) = _figure(10, 4, ncols=2)
    labels = table["severity"].astype(str).tolist()
    enough = table["enough"].to_numpy(dtype=bool)
    _bars(ax_r, labels, table, "mean_r", enough)
    ax_r.axhline(0, color="black", linewidth=0.8)
    ax_r.set_ylabel("mean realized R (95% bootstrap CI)")
    ax_r.set_xlabel("highest severity raised")
    _bars(ax_w, labels, table, "win_rate", enough)
    ax_w.set_ylim(0, 1)
    ax_w.set_ylabel("win rate (95% Wilson CI)")
    ax_w.set_xlabel("highest severity raised")
    fig.suptitle(title)
    return fig


#: The former name of ``severity_plot`` (experiments.replay_tracking imports it).
reliability_plot = severity_plot


def _interval_rows(ax: Axes, labels: list[str], table: pd.DataFrame, col: str,
                   enough: np.ndarray, xlabel: str, reference: float = 0.0) -> None:
    y = np.arange(len(labels))[::-1]
    values = table[col].to_numpy(dtype=float)
    for yi, v, err, ok in zip(y, values, _errors(table, col).T, enough, strict=True):
        colour = _SOLID if ok else _HOLLOW
        ax.errorbar([v], [yi], xerr=err[:, None], fmt="o", color=colour,
                    markerfacecolor=colour if ok else "white", capsize=3)
    ax.axvline(reference, color="black", linewidth=0.8)
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel)


def ablation_plot(table: pd.DataFrame, title: str = "Ablation: change when a module is dropped"
                  ) -> Figure:
    """Return the change in AUC, Spearman rho and decile spread per dropped module (95% CI).

    A change below zero means separation gets worse without the module: it was helping.
    """
    fig, axes = _figure(12, 1.2 + 0.5 * max(len(table), 1), ncols=3)
    if table.empty:
        axes[0].text(0.5, 0.5, "no modules", ha="center", transform=axes[0].transAxes)
        fig.suptitle(title)
        return fig
    labels = [f"{m} (w={w:g}, n={n})" for m, w, n in
              zip(table["module"], table["weight"], table["n"], strict=True)]
    enough = table["enough"].to_numpy(dtype=bool)
    for ax, col, xlabel in zip(axes, ["auc_change", "spearman_change", "decile_spread_r_change"],
                               ["AUC change", "Spearman rho change", "decile spread change (R)"],
                               strict=True):
        _interval_rows(ax, labels, table, col, enough, xlabel)
    for ax in axes[1:]:
        ax.tick_params(labelleft=False)
    fig.suptitle(title)
    return fig


def flag_plot(table: pd.DataFrame, title: str = "Mean R when each flag fired vs not") -> Figure:
    """Return mean R with and without each issue code, and their difference, with 95% CIs.

    Both panels share one y-axis, so each code's difference sits on its own row.
    """
    fig, (ax_m, ax_d) = _figure(12, 1.2 + 0.45 * max(len(table), 1), ncols=2, sharey=True)
    if table.empty:
        ax_m.text(0.5, 0.5, "no issues fired", ha="center", transform=ax_m.transAxes)
        fig.suptitle(title)
        return fig
    labels = [f"{c} ({nf} / {nn})" for c, nf, nn in
              zip(table["code"], table["n_fired"], table["n_not_fired"], strict=True)]
    enough = table["enough"].to_numpy(dtype=bool)
    y = np.arange(len(labels))[::-1]
    for col, colour, offset, name in (("mean_r_fired", _BAD, 0.15, "fired"),
                                      ("mean_r_not_fired", _SOLID, -0.15, "not fired")):
        ax_m.errorbar(table[col].to_numpy(dtype=float), y + offset,
                      xerr=_errors(table, col), fmt="o", color=colour, capsize=3, label=name)
    ax_m.axvline(0, color="black", linewidth=0.8)
    ax_m.set_yticks(y, labels)
    ax_m.set_xlabel("mean realized R (95% CI); label: code (n fired / n not)")
    ax_m.legend(loc="best", fontsize=8)
    _interval_rows(ax_d, labels, table, "diff_r", enough, "fired minus not fired (R)")
    ax_d.tick_params(labelleft=False)
    fig.suptitle(title)
    return fig


def walk_forward_plot(table: pd.DataFrame, title: str = "Walk-forward: AUC in and out of sample"
                      ) -> Figure:
    """Return AUC and decile spread per split, in-sample beside out-of-sample, with 95% CIs.

    Hollow markers have too few samples to read.
    """
    fig, (ax_a, ax_s) = _figure(11, 4, ncols=2)
    if table.empty:
        ax_a.text(0.5, 0.5, "no splits", ha="center", transform=ax_a.transAxes)
        fig.suptitle(title)
        return fig
    splits = sorted(table["split"].unique())
    x = np.arange(len(splits))
    for sample, offset, colour in (("in-sample", -0.15, _IN_SAMPLE),
                                   ("out-of-sample", 0.15, _SOLID)):
        part = table[table["sample"] == sample].set_index("split").reindex(splits)
        part = part.reset_index()
        enough = part["enough"].fillna(False).to_numpy(dtype=bool)
        for ax, col in ((ax_a, "auc"), (ax_s, "decile_spread_r")):
            values, errors = part[col].to_numpy(dtype=float), _errors(part, col)
            for filled in (True, False):
                pick = enough == filled
                if not pick.any():
                    continue
                ax.errorbar(x[pick] + offset, values[pick], yerr=errors[:, pick], fmt="o",
                            color=colour, markerfacecolor=colour if filled else "white",
                            capsize=3, label=sample if filled else f"{sample}, too few")
    ax_a.axhline(0.5, color="black", linewidth=0.8)
    ax_s.axhline(0, color="black", linewidth=0.8)
    for ax, ylabel in ((ax_a, "AUC of score vs win (95% CI)"),
                       (ax_s, "top minus bottom decile mean R (95% CI)")):
        _sparse_xticks(ax, x, [str(s) for s in splits])
        ax.set_ylabel(ylabel)
        ax.set_xlabel("first year out of sample")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(title)
    return fig


def _sparse_xticks(ax: Axes, x: np.ndarray, labels: list[str]) -> None:
    """Label every k-th tick so at most MAX_X_LABELS short labels show: neighbours never meet
    (every split keeps its point; only its label is skipped)."""
    step = max(1, int(np.ceil(len(labels) / MAX_X_LABELS)))
    shown = np.arange(0, len(labels), step)
    ax.set_xticks(x[shown], [labels[i] for i in shown], fontsize=8)
    ax.set_xticks(x, minor=True)


def claim_plot(table: pd.DataFrame,
               title: str = "Each warning against its own measure: fired minus not fired"
               ) -> Figure:
    """Return each code's difference (fired minus not fired) in its measure with its 95%
    interval, coloured by verdict, one row per code with a measure.

    The measures differ in unit (share, R, % equity), so each row reads against its own zero;
    the label gives the measure, its unit, the n on each side and the verdict.
    """
    rows = table[table["measure"].notna() & (table["n_fired"] > 0)].reset_index(drop=True)
    fig, (ax,) = _figure(11, 1.2 + 0.4 * max(len(rows), 1))
    if rows.empty:
        ax.text(0.5, 0.5, "no code with a measure fired", ha="center", transform=ax.transAxes)
        fig.suptitle(title)
        return fig
    y = np.arange(len(rows))[::-1]
    errors = _errors(rows.rename(columns={"diff": "d", "diff_low": "d_low",
                                          "diff_high": "d_high"}), "d")
    for yi, value, err, verdict in zip(y, rows["diff"].to_numpy(float), errors.T,
                                       rows["verdict"], strict=True):
        colour = _VERDICT_COLOURS.get(str(verdict), _HOLLOW)
        ax.errorbar([value], [yi], xerr=err[:, None], fmt="o", color=colour, capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    labels = [f"{c} — {m} ({u}); n={nf} / {nn}; {v}" for c, m, u, nf, nn, v in
              zip(rows["code"], rows["measure"], rows["unit"], rows["n_fired"],
                  rows["n_not_fired"], rows["verdict"], strict=True)]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("fired minus not fired, in the measure's unit (95% cluster bootstrap CI)")
    fig.suptitle(title)
    return fig


def playbook_validation_plot(validation: PlaybookValidation,
                             title: str = "Playbooks against the injected setups") -> Figure:
    """Plot the playbook validation figures with their intervals against their aims (ARI at
    least 0.8, false out-of-pattern rate at most 5%), and where each setup's fitted trades
    fell (the share in the setup's playbook)."""
    fig, (left, right) = _figure(10.0, 3.4, ncols=2)
    rows = [("ARI", validation.ari, 0.8), ("ARI, in a playbook", validation.ari_placed, 0.8),
            ("later: in its playbook", validation.matched, None),
            ("later: false OOD", validation.false_ood, 0.05),
            ("later, one split: in its playbook", validation.matched_single, None),
            ("later, one split: false OOD", validation.false_ood_single, 0.05)]
    y = np.arange(len(rows))[::-1]
    for yi, (_, stat, aim) in zip(y, rows, strict=True):
        if stat.value is None:
            continue
        low = stat.value if stat.low is None else stat.low
        high = stat.value if stat.high is None else stat.high
        left.errorbar([stat.value], [yi], xerr=[[stat.value - low], [high - stat.value]],
                      fmt="o", color=_SOLID, capsize=3)
        if aim is not None:
            left.plot([aim], [yi], marker="|", markersize=14, color="#c53030")
    left.set_yticks(y, [f"{label} (n={stat.n})" for label, stat, _ in rows])
    left.set_xlim(0.0, 1.02)
    left.set_xlabel("share / index (red tick: the aim)")
    setups = [s for s in validation.setups if s.n_fitted]
    left_labels = [f"{s.setup} -> " + ("none" if s.playbook_number is None else
                                         f"#{s.playbook_number}") for s in setups]
    right.barh(np.arange(len(setups))[::-1], [s.share_in_playbook for s in setups],
               color=_SOLID)
    right.set_yticks(np.arange(len(setups))[::-1], left_labels)
    right.set_xlim(0.0, 1.0)
    right.set_xlabel("share of the setup's fitted trades in its playbook")
    fig.suptitle(title)
    return fig
