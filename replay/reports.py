"""The replay reports: what the replay notebooks read, and running them into ``reports/``.

``notebooks/10_replay.ipynb`` replays an intent source and prints the run id;
``notebooks/20_calibration.ipynb`` calibrates one or more runs. ``run_replay_reports``
executes both with papermill (the second on the first's run id) and writes each executed
notebook and its HTML. ``python -m replay.reports`` is ``make replay``: it builds the store
from the bundled real data first when it is empty.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from buddy.config import ScoringConfig, default_scoring_config
from buddy.demo import DEMO_USER
from buddy.store import Store
from replay.engine import issues_frame, latest_run_id, results_frame, run_info
from replay.intents import (
    corpus_intents,
    database_intents,
    generate_intents,
    import_trades_csv,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
REPLAY_NOTEBOOK = "10_replay.ipynb"
CALIBRATION_NOTEBOOK = "20_calibration.ipynb"
#: The line 10_replay.ipynb ends with; the run id is read back from it.
RUN_ID_LINE = re.compile(r"^run_id: (\S+)$", re.M)


# --- notebook inputs -----------------------------------------------------------------------

def load_intents(store: Store, intent_source: str, *, symbols: Sequence[str] | None = None,
                 timeframe: str | None = "1d", start: datetime | str | None = None,
                 end: datetime | str | None = None, seed: int = 0
                 ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Return (intents, trades or None) from an intent source.

    ``intent_source``: ``corpus`` (every generator over every symbol and timeframe with bars:
    ``replay.intents.corpus_intents``; ``timeframe`` None or 'all' keeps every timeframe),
    ``generator:<name>`` (a ``replay.intents`` generator over the store's history),
    ``database`` or ``database:<user_id>`` (logged trade intents, outcomes from linked trades
    where there are any) or ``import:<path to a trades CSV>``. Intents outside ``symbols``,
    ``timeframe`` (None: any) or [``start``, ``end``] (as_of, UTC) are left out. A ``start``
    or ``end`` without a timezone is UTC; a date alone means the whole day.
    """
    start = None if start is None else _utc(start)
    end = None if end is None else _utc(end, end_of_day=True)
    kind, _, arg = intent_source.partition(":")
    trades = None
    if intent_source == "corpus":
        # every generator over every series with bars: ``timeframe`` narrows it only when
        # given, so the default is the whole corpus
        corpus = corpus_intents(store, symbols=symbols, seed=seed, user_id=DEMO_USER)
        return _within(corpus, None if timeframe == "all" else timeframe, None, start,
                       end), None
    if kind == "generator" and arg:
        # generated ideas belong to the demo trader (USD 100,000 equity, 1% risk per trade,
        # created by buddy.demo.prepare_store), so the risk and exit checks have an account
        return generate_intents(store, arg, symbols=symbols, timeframe=timeframe or "1d",
                                start=start, end=end, seed=seed, user_id=DEMO_USER), None
    if kind == "database":
        intents = database_intents(store, arg or None)
    elif kind == "import" and arg:
        intents, trades = import_trades_csv(arg)
    else:
        raise ValueError(f"intent_source must be 'corpus', 'generator:<name>', "
                         f"'database[:<user>]' or 'import:<csv path>' (got {intent_source!r})")
    return _within(intents, timeframe, symbols, start, end), trades


def _within(intents: pd.DataFrame, timeframe: str | None, symbols: Sequence[str] | None,
            start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """Return the intents at ``timeframe`` (None: any), of ``symbols`` (None: any), with
    as_of in [start, end] (None: open)."""
    keep = pd.Series(True, index=intents.index)
    if timeframe is not None:
        keep &= intents["timeframe"].astype(str) == str(timeframe)
    if symbols is not None:
        keep &= intents["symbol"].isin(list(symbols))
    as_of = pd.to_datetime(intents["as_of"], utc=True)
    if start is not None:
        keep &= as_of >= start
    if end is not None:
        keep &= as_of <= end
    return intents[keep.to_numpy()].reset_index(drop=True)


def _utc(value: datetime | str, *, end_of_day: bool = False) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        if end_of_day and stamp == stamp.normalize():
            stamp += pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
        stamp = stamp.tz_localize("UTC")
    return stamp.tz_convert("UTC")


def scoring_config(config_ref: str) -> ScoringConfig:
    """Return the scoring configuration ``config_ref`` names: 'default' or a JSON file path."""
    if config_ref == "default":
        return default_scoring_config()
    path = Path(config_ref)
    if path.suffix == ".json" and path.is_file():
        return ScoringConfig.from_json(path.read_text())
    raise ValueError(f"config_ref must be 'default' or the path of a scoring config JSON file "
                     f"(got {config_ref!r})")


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationInput:
    """The replay runs to calibrate: their results and issues pooled, and their config."""

    run_ids: tuple[str, ...]
    results: pd.DataFrame
    issues: pd.DataFrame
    config: ScoringConfig


def load_runs(store: Store, run_ids: Sequence[str] = ()) -> CalibrationInput:
    """Return the results and issues of ``run_ids`` (empty: the latest finished research
    run; a promotion gate's holdout replay is never picked).

    Runs are pooled only when they share one scoring configuration: the overall score of
    different configurations is not the same measurement.
    """
    if not run_ids:
        run_ids = [latest_run_id(store)]
    infos = [run_info(store, run_id) for run_id in run_ids]
    hashes = sorted({str(info["config_hash"]) for info in infos})
    if len(hashes) > 1:
        raise ValueError(f"runs {list(run_ids)} use different scoring configs {hashes}; "
                         "calibrate them one at a time")
    config = ScoringConfig.from_mapping(infos[0]["config"])
    results = pd.concat([results_frame(store, run_id) for run_id in run_ids],
                        ignore_index=True)
    issues = pd.concat([issues_frame(store, run_id) for run_id in run_ids], ignore_index=True)
    return CalibrationInput(run_ids=tuple(run_ids), results=results, issues=issues,
                            config=config)


def run_summary(results: pd.DataFrame) -> pd.DataFrame:
    """Return intents, resolved outcomes and exit reasons per symbol and timeframe."""
    grouped = results.groupby(["symbol", "timeframe"], sort=True)
    summary = grouped.agg(intents=("intent_id", "size"),
                          first_as_of=("as_of", "min"), last_as_of=("as_of", "max"),
                          resolved=("realized_r", lambda r: int(r.notna().sum())),
                          scored=("overall_score", lambda s: int(s.notna().sum())))
    reasons = results.pivot_table(index=["symbol", "timeframe"], columns="exit_reason",
                                  values="intent_id", aggfunc="size", fill_value=0)
    return summary.join(reasons.add_prefix("exit_")).reset_index()


# --- running the notebooks -----------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReports:
    """What ``run_replay_reports`` wrote."""

    run_id: str
    notebooks: tuple[Path, ...]
    html: tuple[Path, ...]


def run_id_of(notebook_path: str | os.PathLike[str]) -> str:
    """Return the run id an executed 10_replay notebook printed last."""
    import nbformat

    nb = nbformat.read(str(notebook_path), as_version=4)
    text = "\n".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code"
                     for out in cell.get("outputs", []) if out.get("output_type") == "stream")
    found = RUN_ID_LINE.findall(text)
    if not found:
        raise ValueError(f"{notebook_path} printed no 'run_id: ...' line")
    return found[-1]


def execute_notebook(name: str, out_dir: Path, parameters: Mapping[str, Any]) -> Path:
    """Execute ``notebooks/<name>`` with ``parameters`` into ``out_dir`` (kernel python3)."""
    import papermill as pm

    out = out_dir / name
    pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=dict(parameters),
                        cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=False)
    return out


def write_html(notebook_path: Path) -> Path:
    """Write the HTML form of an executed notebook beside it and return its path."""
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_filename(str(notebook_path))
    html = notebook_path.with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


def run_replay_reports(db_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] = "reports",
                       *, replay_parameters: Mapping[str, Any] | None = None,
                       calibration_parameters: Mapping[str, Any] | None = None
                       ) -> ReplayReports:
    """Execute 10_replay then 20_calibration (on the replay's run id) into ``out_dir``.

    Parameters not given keep the notebooks' defaults; ``db_path`` is passed to both as an
    absolute path. Writes ``<out_dir>/10_replay.ipynb``, ``20_calibration.ipynb`` and their
    ``.html``. A failing notebook raises papermill's PapermillExecutionError after writing
    its executed copy.
    """
    db = str(Path(db_path).resolve())
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    replay_nb = execute_notebook(REPLAY_NOTEBOOK, out,
                                 {**(replay_parameters or {}), "db_path": db})
    run_id = run_id_of(replay_nb)
    calibration_nb = execute_notebook(CALIBRATION_NOTEBOOK, out,
                                      {**(calibration_parameters or {}), "db_path": db,
                                       "run_ids": [run_id]})
    notebooks = (replay_nb, calibration_nb)
    return ReplayReports(run_id=run_id, notebooks=notebooks,
                         html=tuple(write_html(nb) for nb in notebooks))


def main(argv: Sequence[str] | None = None) -> int:
    """Build the store if it is empty, then replay the all-data corpus (or ``--symbols``) and
    run both replay notebooks into the reports folder."""
    from buddy.demo import prepare_store

    parser = argparse.ArgumentParser(prog="python -m replay.reports", description=main.__doc__)
    parser.add_argument("--db", default=os.environ.get("BUDDY_DB", "data/buddy.duckdb"),
                        help="DuckDB file (default: $BUDDY_DB or data/buddy.duckdb)")
    parser.add_argument("--out", default="reports", help="output folder (default: reports)")
    parser.add_argument("--symbols", default="",
                        help="comma-separated symbols to replay (default: the whole corpus)")
    args = parser.parse_args(argv)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    store = Store(args.db)
    prepare_store(store, progress=True)
    # Snapshot tables first, so the replay reads regimes and levels instead of fitting an HMM
    # per intent (both jobs are incremental: a second run only adds new bars).
    from buddy.jobs.levels import run_levels_job
    from buddy.jobs.regime import run_regime_job

    run_regime_job(store, progress=True)
    run_levels_job(store, progress=True)
    reports = run_replay_reports(args.db, args.out,
                                 replay_parameters={"symbols": symbols} if symbols else None)
    print(f"replay run {reports.run_id}")
    for path in (*reports.notebooks, *reports.html):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
