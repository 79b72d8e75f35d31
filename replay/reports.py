"""The replay reports: what the replay notebooks read, and running them into ``reports/``.

``notebooks/10_replay.ipynb`` replays an intent source and prints the run id;
``notebooks/20_calibration.ipynb`` calibrates one or more runs. ``run_replay_reports``
executes both with papermill (the second on the first's run id) and writes each executed
notebook and its reader's HTML (outputs only, no absolute paths). The ``report`` command
(``buddy replay report``, ``python -m replay.reports``, ``make replay``) checks its inputs,
builds the project database and its snapshots when they are missing, then runs both.
``load_intents`` and ``scoring_config`` read one vocabulary for the notebook, the command
line and the promotion gate: ``corpus``, a generator name, ``database[:USER]``, ``csv:PATH``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pandas as pd

from buddy.config import ScoringConfig
from buddy.demo import DEMO_USER
from buddy.errors import BuddyError, FieldError, FieldErrors
from buddy.store import Store
from buddy.timeframes import Timeframe
from replay.engine import issues_frame, latest_run_id, results_frame, run_info
from replay.intents import (
    GENERATORS,
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


# --- notebook and command-line inputs --------------------------------------------------------

#: The intent sources, in the words the notebook, ``buddy replay`` and the README use.
SOURCE_FORMS = ("corpus", "<generator name>", "generator:<name>", "database",
                "database:<user>", "csv:<path>")


def source_rule() -> str:
    """Return the rule an intent source follows, naming the generators."""
    names = ", ".join(GENERATORS)
    return (f"must be 'corpus', a generator name ({names}; or generator:NAME), 'database', "
            "'database:USER' or 'csv:PATH'")


def load_intents(store: Store, intent_source: str, *, symbols: Sequence[str] | None = None,
                 timeframe: str | None = None, start: datetime | str | None = None,
                 end: datetime | str | None = None, seed: int = 0,
                 params: Mapping[str, Any] | None = None, user: str | None = None,
                 tz: str | None = None, field: str = "intent_source"
                 ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Return (intents, real trades or None) from an intent source: one vocabulary for the
    notebook, ``buddy replay run`` and the promotion gate.

    ``intent_source``: ``corpus`` (every generator over every symbol and timeframe with bars:
    ``replay.intents.corpus_intents``), a generator name (``ma_cross``, ``random``, ...; or
    ``generator:<name>``) run over the store's history with ``params``, ``database`` or
    ``database:<user>`` (logged trade intents; ``user`` filters too) or ``csv:<path>`` (a file
    with the intent columns, or a trades file: entry_time, entry_price, side, size, stop,
    symbol, timeframe; naive times in zone ``tz``). Generated intents belong to ``user``,
    else the demo trader (an account, so the risk and exit checks run).

    ``symbols`` (None or empty: any), ``timeframe`` (None, '' or 'all': generators' 1d, any
    for the other sources), ``start`` and ``end`` (as_of, UTC: a date alone is the whole day;
    a time needs its zone; None or '': open) narrow the intents. Bad values raise FieldErrors
    naming ``field`` (or start/end), the rule and the value.
    """
    from replay.model import INTENT_COLUMNS

    symbols = symbol_list(symbols) or None
    timeframe = None if timeframe in (None, "", "all") else str(timeframe)
    # a command's options are named as typed (--start), a notebook's parameters bare
    dashes = "--" if field.startswith("--") else ""
    start_ts = as_of_bound(start, "start", field=f"{dashes}start")
    end_ts = as_of_bound(end, "end", field=f"{dashes}end")
    check_source(intent_source, field=field)
    source = str(intent_source).strip()
    kind, _, arg = source.partition(":")
    trades = None
    if source == "corpus":
        frame = corpus_intents(store, symbols=symbols, seed=seed, user_id=user or DEMO_USER)
    elif kind == "database" and (arg or source == "database"):
        frame = database_intents(store, arg or user or None)
    elif kind == "csv":
        path = Path(arg).expanduser()
        header = set(pd.read_csv(path, nrows=0).columns)
        if set(INTENT_COLUMNS) <= header:
            frame = pd.read_csv(path, dtype={"intent_id": str, "user_id": str,
                                             "linked_trade_id": str})
        else:
            frame, trades = import_trades_csv(path, tz=tz)
    else:
        # generated ideas belong to the demo trader (USD 100,000 equity, 1% risk per trade,
        # created by buddy.demo.prepare_store), so the risk and exit checks have an account
        return generate_intents(store, source.removeprefix("generator:"), symbols=symbols,
                                timeframe=timeframe or "1d", start=start_ts, end=end_ts,
                                seed=seed, user_id=user or DEMO_USER, **dict(params or {})
                                ), None
    return _within(frame, timeframe, symbols, start_ts, end_ts), trades


def symbol_list(symbols: Sequence[str] | str | None) -> list[str]:
    """Return ``symbols`` as a list of upper-case names: a list, or one comma-separated
    string (what ``papermill -p symbols AAPL,MSFT`` passes); None or empty: []."""
    if symbols is None:
        return []
    items = symbols.split(",") if isinstance(symbols, str) else symbols
    return [str(s).strip().upper() for s in items if str(s).strip()]


def as_of_bound(value: datetime | str | None, which: str, *, field: str | None = None
                ) -> pd.Timestamp | None:
    """Return a ``start`` or ``end`` bound (``which``) in UTC (None or '': open): a date alone
    is the whole UTC day (its first or last moment), a time must carry its zone. Bad values
    raise FieldErrors naming ``field`` (default ``which``)."""
    field = field or which
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = value.strip() if isinstance(value, str) else None
    if text is not None and len(text) == 10:  # YYYY-MM-DD: the whole UTC day
        try:
            day = datetime.strptime(text, "%Y-%m-%d")
        except ValueError as exc:
            raise FieldErrors([FieldError(field, "must be YYYY-MM-DD or an ISO time with a "
                                                 "zone", value)]) from exc
        stamp = pd.Timestamp(day, tz="UTC")
        return stamp if which == "start" else stamp + pd.Timedelta(days=1) - pd.Timedelta(
            microseconds=1)
    try:
        stamp = pd.Timestamp(value)
    except ValueError as exc:
        raise FieldErrors([FieldError(field, "must be YYYY-MM-DD or an ISO time with a zone",
                                      value)]) from exc
    if stamp.tzinfo is None:
        raise FieldErrors([FieldError(field, "must be YYYY-MM-DD or carry a time zone",
                                      value)])
    return stamp.tz_convert("UTC")


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


def scoring_config(config_ref: str, *, field: str = "config_ref") -> ScoringConfig:
    """Return the scoring configuration ``config_ref`` names: 'default', 'production',
    models:/NAME@ALIAS (from an installed config source) or a scoring config JSON file."""
    from buddy.config_sources import resolve_scoring_config

    ref = str(config_ref).strip()
    # registered configs come from a config source (the experiments package declares one):
    # replay sits below experiments and does not import it
    if ref in ("default", "production") or ref.startswith("models:/"):
        return resolve_scoring_config(ref)
    path = Path(ref).expanduser()
    if not path.is_file():
        raise FieldErrors([FieldError(field, "must be 'default', 'production', "
                                             "models:/NAME@ALIAS or a JSON file", config_ref)])
    return config_from_file(field, path)


def config_from_file(option: str, path: Path) -> ScoringConfig:
    """Return the ScoringConfig in the JSON file ``path`` given as ``option``; a file that is
    not one raises FieldErrors naming the option, the rule and the file."""
    from buddy.errors import ConfigError

    rule = "must be a scoring config JSON file"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise FieldErrors([FieldError(option, f"{rule}; it cannot be read as UTF-8 text "
                                              f"({exc})", str(path))]) from exc
    except json.JSONDecodeError as exc:
        raise FieldErrors([FieldError(option, f"{rule}; it is not JSON ({exc.msg} at line "
                                              f"{exc.lineno} column {exc.colno})", str(path))]
                          ) from exc
    if not isinstance(data, dict):
        raise FieldErrors([FieldError(option, f"{rule} holding one JSON object; it holds a "
                                              f"JSON {type(data).__name__}", str(path))])
    try:
        return ScoringConfig.from_mapping(data)
    except ConfigError as exc:  # the settings' own errors, each under the option's name
        raise ConfigError([FieldError(f"{option} {path}: {e.field}", e.rule, e.value)
                           for e in exc.errors]) from exc
    except (TypeError, ValueError, AttributeError) as exc:  # a structure from_mapping cannot walk
        raise FieldErrors([FieldError(option, f"{rule} in the scoring config's shape ({exc})",
                                      str(path))]) from exc


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


def execute_notebook(name: str, out_dir: Path, parameters: Mapping[str, Any], *,
                     progress: bool = False) -> Path:
    """Execute ``notebooks/<name>`` with ``parameters`` into ``out_dir`` (kernel python3,
    started in notebooks/ as JupyterLab starts it; ``progress``: papermill's cell bar)."""
    import papermill as pm

    out = out_dir / name
    pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=dict(parameters),
                        cwd=str(NOTEBOOKS), kernel_name="python3", progress_bar=progress)
    return out


def write_html(notebook_path: Path, *, hide: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Write a reader's HTML of an executed notebook beside it and return its path: outputs
    only (no code cells or prompts), and no absolute path of this machine (``hide``, the
    project root, the home folder and the Python installation read as short names)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_filename(str(notebook_path))
    html = notebook_path.with_suffix(".html")
    html.write_text(without_local_paths(body, hide), encoding="utf-8")
    return html


def without_local_paths(text: str, hide: Sequence[str | os.PathLike[str]] = ()) -> str:
    """Return ``text`` with this machine's absolute paths shortened: each of ``hide`` to its
    file name, the project root to '.', the Python installation to '<python>' and the home
    folder to '~' (longest first, so a file under the root keeps its relative path)."""
    import sys

    from buddy.paths import project_root

    names = {str(Path(p)): Path(p).name for p in hide}
    for prefix, short in ((str(project_root()), "."), (sys.prefix, "<python>"),
                          (sys.base_prefix, "<python>"), (str(Path.home()), "~")):
        if len(prefix) > 1:
            names.setdefault(prefix, short)
    for path in sorted(names, key=len, reverse=True):
        text = text.replace(path, names[path])
    return text


def run_replay_reports(db_path: str | os.PathLike[str], out_dir: str | os.PathLike[str] = "reports",
                       *, replay_parameters: Mapping[str, Any] | None = None,
                       calibration_parameters: Mapping[str, Any] | None = None,
                       progress: bool = False) -> ReplayReports:
    """Execute 10_replay then 20_calibration (on the replay's run id) into ``out_dir``.

    Parameters not given keep the notebooks' defaults; ``db_path`` is passed to both as an
    absolute path. Writes ``<out_dir>/10_replay.ipynb``, ``20_calibration.ipynb`` and their
    ``.html`` (outputs only, no absolute paths). A failing notebook raises papermill's
    PapermillExecutionError after writing its executed copy.
    """
    db = str(Path(db_path).resolve())
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    replay_nb = execute_notebook(REPLAY_NOTEBOOK, out,
                                 {**(replay_parameters or {}), "db_path": db},
                                 progress=progress)
    run_id = run_id_of(replay_nb)
    calibration_nb = execute_notebook(CALIBRATION_NOTEBOOK, out,
                                      {**(calibration_parameters or {}), "db_path": db,
                                       "run_ids": [run_id]}, progress=progress)
    notebooks = (replay_nb, calibration_nb)
    return ReplayReports(run_id=run_id, notebooks=notebooks,
                         html=tuple(write_html(nb, hide=[db, out]) for nb in notebooks))


SOURCE_HELP = ("Where intents come from: 'corpus' (every generator over every symbol and "
               "timeframe with bars), a generator name (" + ", ".join(GENERATORS) + "; or "
               "generator:NAME), 'database' or 'database:USER' (the trade_intents table) or "
               "csv:PATH (a file with the intent columns, or a trades file: entry_time, "
               "entry_price, side, size, stop, symbol, timeframe, ...).")


@click.command("report", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", default=None, metavar="PATH",
              help="DuckDB file (default: the main --db, $BUDDY_DB, else the project's "
                   "data/buddy.duckdb, built from the bundled data when missing).")
@click.option("--source", default="corpus", show_default=True, help=SOURCE_HELP)
@click.option("--symbols", default="", help="Comma-separated symbols (default: all).")
@click.option("--timeframe", "--tf", "timeframe", default=None,
              type=click.Choice([t.value for t in Timeframe]),
              help="Bar timeframe: generated intents' (default 1d); a filter for the others "
                   "(default: all).")
@click.option("--start", default="", help="First as_of: YYYY-MM-DD (UTC) or ISO with zone.")
@click.option("--end", default="", help="Last as_of: YYYY-MM-DD (whole UTC day) or ISO.")
@click.option("--config", "config_ref", default="default", show_default=True,
              help="Scoring config: 'default', 'production', a JSON file or models:/NAME@ALIAS.")
@click.option("--name", "run_name", default="report", show_default=True, help="Run name.")
@click.option("--executor", type=click.Choice(["local", "serial"]), default="local",
              show_default=True, help="local: two worker processes; serial: this one.")
@click.option("--n-boot", type=click.IntRange(min=100), default=2000, show_default=True,
              help="Bootstrap resamples of every interval.")
@click.option("--out", default=None, metavar="DIR",
              help="Output folder (default: the project's reports/).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.pass_context
def report(ctx: click.Context, db: str | None, source: str, symbols: str, timeframe: str | None,
           start: str, end: str, config_ref: str, run_name: str, executor: str, n_boot: int,
           out: str | None, no_progress: bool) -> None:
    """Replay an intent source and calibrate it: run 10_replay and 20_calibration with these
    parameters into the reports folder (notebooks and HTML), building the project database
    and its snapshots first when they are missing."""
    from buddy.demo import prepare_store
    from buddy.jobs.levels import run_levels_job
    from buddy.paths import database_for, project_root
    from replay.engine import run_replay, standard_providers
    from replay.executors import make_executor

    progress = not no_progress
    chosen = symbol_list(symbols)
    try:
        # every input is checked here, before minutes of work, not inside the notebook
        path = database_for(db or getattr(ctx.obj, "db", None), field="--db", build=True)
        check_source(source, field="--source")
        for value, which in ((start, "start"), (end, "end")):
            as_of_bound(value, which, field=f"--{which}")
        scoring_config(config_ref, field="--config")
    except (FieldErrors, BuddyError, ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    if not path.exists():
        click.echo(f"building the project database {path} from the bundled data")
    store = Store(path)
    prepare_store(store, progress=progress, echo=click.echo)
    # level snapshots too, so the replay reads levels instead of computing them per intent
    # (the job is incremental: a second run only adds new bars)
    run_levels_job(store, symbols=chosen or None, progress=progress)
    # the replay itself runs here, with its bar on the terminal (a notebook's bars are
    # widgets, which papermill does not show); 10_replay, given the same inputs, finds the
    # finished run by its id and reports on it
    intents, trades = load_intents(store, source, symbols=chosen, timeframe=timeframe,
                                   start=start, end=end, field="--source")
    if intents.empty:
        click.echo(f"error: nothing to replay: --source {source!r} gave 0 intents for these "
                   "symbols, timeframe and dates (no run was stored)", err=True)
        ctx.exit(2)
    with make_executor(executor) as pool:
        run_replay(store, intents, config=scoring_config(config_ref, field="--config"),
                   name=run_name, mode="batch", trades=trades, executor=pool,
                   providers=standard_providers(), progress=progress)
    folder = Path(out) if out else project_root() / "reports"
    reports = run_replay_reports(
        path, folder, progress=progress,
        replay_parameters={"intent_source": source, "symbols": chosen, "timeframe": timeframe or "",
                           "start": start, "end": end, "config_ref": config_ref,
                           "run_name": run_name, "mode": "batch", "executor": executor,
                           "n_boot": n_boot, "progress": progress},
        calibration_parameters={"n_boot": n_boot})
    click.echo(f"replay run {reports.run_id}")
    for written in (*reports.notebooks, *reports.html):
        click.echo(f"wrote {written}")


def check_source(intent_source: str, *, field: str = "intent_source") -> None:
    """Raise FieldErrors (naming ``field``) unless ``intent_source`` is one of the intent
    source forms ``load_intents`` reads; a csv:PATH must name an existing file."""
    source = str(intent_source).strip()
    kind, _, arg = source.partition(":")
    if source in ("corpus", "database") or (kind == "database" and arg):
        return
    if kind == "csv" and arg:
        if not Path(arg).expanduser().is_file():
            raise FieldErrors([FieldError(field, "csv:PATH must name an existing CSV file",
                                          arg)])
        return
    if source.removeprefix("generator:") in GENERATORS and (kind == "generator" or not arg):
        return
    raise FieldErrors([FieldError(field, source_rule(), intent_source)])


if __name__ == "__main__":
    report(prog_name="python -m replay.reports")
