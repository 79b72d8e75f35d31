"""``buddy replay``: run, resume, list and show historical replays from the command line.

Attached to the main CLI as a group; also runs on its own as ``python -m replay.cli``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import pandas as pd

from buddy.cli import accept_db, open_store
from buddy.errors import BuddyError, FieldError, FieldErrors
from buddy.timeframes import Timeframe
from replay.reports import SOURCE_HELP, report

# experiments.cli reads --challenger files with the same rules as --config
from replay.reports import config_from_file as config_from_file


class _ReplayObj:
    def __init__(self, db: str | None) -> None:
        self.db = db

    def store(self) -> Any:
        # every command here reads the file: a --db naming none is refused, not created
        return open_store(self.db)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group("replay", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", default=None, metavar="PATH",
              help="DuckDB file (default: the main --db, $BUDDY_DB, data/buddy.duckdb).")
@click.pass_context
def replay(ctx: click.Context, db: str | None) -> None:
    """Replay past intents point-in-time and store every module's verdict with the outcome."""
    ctx.obj = _ReplayObj(db or getattr(ctx.obj, "db", None))


# ---------------------------------------------------------------------------- run
@replay.command("run")
@click.option("--source", "--generator", "source", default=None, help=SOURCE_HELP)
@click.option("--symbols", default=None, help="Comma-separated symbols (default: all).")
@click.option("--timeframe", "--tf", "timeframe", default=None,
              type=click.Choice([t.value for t in Timeframe]),
              help="Bar timeframe: generated intents' (default 1d); a filter for the others.")
@click.option("--start", default=None, help="First as_of: YYYY-MM-DD (UTC) or ISO with zone.")
@click.option("--end", default=None, help="Last as_of: YYYY-MM-DD (whole UTC day) or ISO.")
@click.option("--seed", type=int, default=0, show_default=True, help="Generator seed.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A generator setting (repeatable); VALUE is read as JSON when it parses.")
@click.option("--user", default=None,
              help="User id of generated intents (default 'replay'); filter for 'database'.")
@click.option("--tz", default=None, help="Zone of naive times in a trades CSV.")
@click.option("--config", "config_ref", default="default", show_default=True,
              help="Scoring config: 'default', a JSON file, or models:/NAME@ALIAS.")
@click.option("--name", default=None, help="Run name (default: the source and timeframe).")
@click.option("--mode", type=click.Choice(["batch", "intent"]), default="batch",
              show_default=True, help="batch: one read per series; intent: one per intent.")
@click.option("--executor", "executor_kind", type=click.Choice(["local", "serial", "dask"]),
              default="local", show_default=True)
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address (implies --executor dask).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Intents per committed chunk (a kill loses at most the chunks in flight); "
                   "default 20,000 in batch mode, 50 per intent.")
@click.option("--providers", "providers_spec", default="standard", show_default=True,
              help="Context pieces beyond market data: 'standard' (account, mtfa, regime, "
                   "schedule), 'none', or a comma-separated list of those pieces. Without "
                   "stored regime snapshots the regime piece is computed per intent (slow).")
@click.option("--resume-run", "resume_run", default=None, metavar="RUN_ID",
              help="Continue a stored run with its own intents, config and context.")
@click.option("--no-outcomes", is_flag=True, help="Do not label outcomes.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--n-boot", type=click.IntRange(min=100), default=1000, show_default=True,
              help="Bootstrap resamples of the printed figures' intervals.")
@click.pass_obj
def run_cmd(obj: _ReplayObj, source: str | None, symbols: str | None, timeframe: str | None,
            start: str | None, end: str | None, seed: int, params: tuple[str, ...],
            user: str | None, tz: str | None, config_ref: str, name: str | None, mode: str,
            executor_kind: str, scheduler: str | None, workers: int, chunk_size: int | None,
            providers_spec: str, resume_run: str | None, no_outcomes: bool,
            no_progress: bool, n_boot: int) -> None:
    """Run (or resume) a replay and print its run id and figures."""
    from replay.engine import ReplayError, resume_replay, run_replay
    from replay.executors import make_executor

    if scheduler is not None:
        executor_kind = "dask"
    try:
        store = obj.store()
        executor = make_executor(executor_kind, workers=workers, scheduler=scheduler)
        # run_replay's keyword arguments (resume_replay passes them through)
        options: dict[str, Any] = dict(executor=executor, chunk_size=chunk_size, mode=mode,
                                       progress=not no_progress, label=not no_outcomes)
        try:
            if resume_run:
                run = resume_replay(store, resume_run, **options)
            else:
                if source is None:
                    raise click.UsageError("give --source (or --resume-run RUN_ID)")
                intents, trades = load_intents(store, source, symbols=_split(symbols),
                                               timeframe=timeframe, start=start, end=end,
                                               seed=seed, params=_params(params), user=user,
                                               tz=tz)
                if intents.empty:
                    raise ReplayError(_nothing_to_replay(
                        source, user=user, symbols=symbols, timeframe=timeframe, start=start,
                        end=end))
                config = load_config(config_ref)
                providers = load_providers(providers_spec)
                run = run_replay(store, intents, config=config,
                                 name=name or f"{source}-{timeframe or 'all'}",
                                 providers=providers,
                                 trades=trades, **options)
        finally:
            executor.close()
    except (FieldErrors, BuddyError, ValueError, OSError) as exc:
        _fail(exc)
    click.echo(f"run {run.run_id}  {run.name}  {run.status}: {run.n_intents} intents "
               f"({run.n_evaluated} evaluated now, {run.n_skipped} already done) in "
               f"{run.elapsed_s:.1f} s, config #{run.config_hash}, mode {run.mode}")
    from replay.engine import results_frame

    for line in run_figures(results_frame(store, run.run_id), n_boot=n_boot):
        click.echo(f"  {line}")


def run_figures(results: pd.DataFrame, *, n_boot: int = 1000) -> list[str]:
    """Return the figures of a run's results, each with its n and 95% interval: severities,
    the mean overall score, the outcomes left out of R statistics, mean realized R (cluster
    bootstrap over symbol-months) and the win rate (Wilson)."""
    from replay import calibration

    if results.empty:
        return ["no evaluated intents"]
    clusters = calibration.cluster_ids(results)
    verdicts = results["overall_severity"].fillna("none").value_counts()
    lines = [f"overall severity (n={len(results)}): "
             + ", ".join(f"{name} {count}" for name, count in verdicts.items()),
             "mean overall score: " + str(calibration.mean_statistic(
                 pd.to_numeric(results["overall_score"], errors="coerce"), n_boot=n_boot,
                 clusters=clusters, stream="score"))]
    if results["exit_reason"].isna().all():
        return [*lines, "outcomes: not labelled (--no-outcomes)"]
    resolved = calibration.resolved_outcomes(results, score_col=None)
    left_out = ", ".join(f"{k} {v}" for k, v in calibration.excluded_counts(results).items())
    lines.append(f"outcomes: {len(resolved)} of {len(results)} resolved; left out of R "
                 f"statistics: {left_out}")
    lines.append("mean realized R: " + str(calibration.mean_statistic(
        resolved["realized_r"], n_boot=n_boot, clusters=calibration.cluster_ids(resolved),
        stream="r")) + ", 95% cluster bootstrap by symbol-month")
    lines.append("win rate: " + str(calibration.win_rate_statistic(resolved["win"]))
                 + ", 95% Wilson")
    return lines


def _nothing_to_replay(source: str, **given: str | None) -> str:
    # name the source and every filter that was given: one of them is the cause
    filters = ", ".join(f"--{key} {value!r}" for key, value in given.items() if value)
    return (f"nothing to replay: --source {source!r} gave 0 intents"
            + (f" for {filters}" if filters else "")
            + " (no run was stored)")


def load_providers(spec: str) -> dict[str, Any]:
    """Return the piece providers named by --providers: standard, none, or piece names."""
    from replay.engine import STANDARD_PROVIDERS, load_provider, standard_providers

    if spec == "standard":
        return standard_providers()
    if spec == "none":
        return {}
    pieces = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in pieces if p not in STANDARD_PROVIDERS]
    if unknown:
        raise FieldErrors([FieldError("--providers", "must be standard, none or pieces of "
                                      + ", ".join(STANDARD_PROVIDERS), ",".join(unknown))])
    return {piece: load_provider(STANDARD_PROVIDERS[piece]) for piece in pieces}


def load_intents(store: Any, source: str, *, symbols: list[str] | None, timeframe: str | None,
                 start: str | None, end: str | None, seed: int = 0,
                 params: dict[str, Any] | None = None, user: str | None = None,
                 tz: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Return (intents as INTENT_COLUMNS, real trades or None) from a --source value
    (``replay.reports.load_intents``: the notebook's vocabulary; generated intents belong
    to ``user``, else 'replay')."""
    from replay.reports import load_intents as read_source

    generated = not (source == "database" or source.startswith(("database:", "csv:")))
    return read_source(store, source, symbols=symbols, timeframe=timeframe, start=start,
                       end=end, seed=seed, params=params,
                       user=(user or "replay") if generated else user, tz=tz,
                       field="--source")


def load_config(ref: str) -> Any:
    """Return the ScoringConfig named by --config: 'default', 'production', a JSON file or
    models:/NAME@ALIAS (``replay.reports.scoring_config``)."""
    from replay.reports import scoring_config

    return scoring_config(ref, field="--config")


def _split(text: str | None) -> list[str] | None:
    return [t.strip().upper() for t in text.split(",") if t.strip()] if text else None


def _params(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    return values


# ---------------------------------------------------------------------------- list / show
@replay.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_cmd(obj: _ReplayObj, as_json: bool) -> None:
    """List the stored replay runs, newest first."""
    from replay.engine import list_runs

    runs = list_runs(obj.store())
    if as_json:
        click.echo(runs.to_json(orient="records", date_format="iso"))
    elif runs.empty:
        click.echo("no replay runs")
    else:
        shown = runs[["run_id", "name", "status", "n_done", "n_intents", "config_name",
                      "config_hash", "data_start", "data_end", "created_at"]]
        click.echo(shown.to_string(index=False))


@replay.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show_cmd(obj: _ReplayObj, run_id: str, as_json: bool) -> None:
    """Show one run: its config, context, progress and a summary of its results."""
    from replay.engine import ReplayError, result_table_hash, results_frame, run_info

    store = obj.store()
    try:
        info = run_info(store, run_id)
    except ReplayError as exc:
        _fail(exc)
    results = results_frame(store, run_id)
    summary = _summary(results)
    if info["status"] == "done":
        summary["result_table_hash"] = result_table_hash(store, run_id)
    if as_json:
        click.echo(json.dumps({**info, "summary": summary}, indent=2, default=str))
        return
    click.echo(f"run {info['run_id']}  {info['name']}  {info['status']}  "
               f"{info['n_done']}/{info['n_intents']} intents")
    click.echo(f"  config {info['config_name']}@{info['config_version']} "
               f"#{info['config_hash']}   intents from {info['intent_source']}")
    click.echo(f"  data {info['data_start']} .. {info['data_end']}   market data "
               f"v{info['market_data_version']}   lookback {info['context']['lookback_bars']}"
               f" bars   pieces: {', '.join(info['context']['providers']) or 'market only'}")
    click.echo(f"  created {info['created_at']}   finished {info['finished_at']}")
    for key, value in summary.items():
        click.echo(f"  {key}: {value}")


@replay.command("flags")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per code).")
@click.pass_obj
def flags_cmd(obj: _ReplayObj, run_id: str, as_json: bool) -> None:
    """Print each issue code's firing rate over a run, with its n and 95% Wilson interval,
    its module and kind (issue / not_checked), highest rate first."""
    from replay.engine import ReplayError, issues_frame, run_info
    from replay.flags import declared_codes, flag_rates

    store = obj.store()
    try:
        info = run_info(store, run_id)
    except ReplayError as exc:
        _fail(exc)
    n_done = int(info["n_done"])
    if n_done == 0:
        _fail(ValueError(f"run {run_id} has no evaluated intents yet"))
    modules = [m["name"] for m in info["config"]["modules"]]
    table = flag_rates(issues_frame(store, run_id), n_done, declared_codes(modules))
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "n_intents": n_done,
                               "codes": table.to_dict(orient="records")}, indent=2))
        return
    click.echo(f"run {run_id}: {n_done} intents; rate = share of intents a code fired on, "
               "95% Wilson interval")
    shown = table.assign(**{"rate %": (100 * table["rate"]).round(1),
                            "95% CI %": [f"{100 * lo:.1f}-{100 * hi:.1f}" for lo, hi in
                                         zip(table["ci_low"], table["ci_high"], strict=True)]})
    columns = ["code", "module", "kind", "fired", "n", "rate %", "95% CI %"]
    # ranked warnings first; inputs that could not be checked are one line of the report,
    # never ranked, so their rate says how often an input was missing, not a warning's noise
    for title, part in (("issues (ranked in reports)", shown[shown["kind"] != "not_checked"]),
                        ("not checked (inputs missing: the report's 'not checked' line, "
                         "never ranked)", shown[shown["kind"] == "not_checked"])):
        if len(part):
            click.echo(f"\n{title}")
            click.echo(part[columns].to_string(index=False))


@replay.command("explain")
@click.argument("run_id")
@click.argument("intent_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def explain_cmd(obj: _ReplayObj, run_id: str, intent_id: str, as_json: bool) -> None:
    """Show one replayed intent: its verdict, scores and outcome, and every issue with its
    evidence, rendered from the facts the run stored."""
    from replay.engine import ReplayError
    from replay.evidence import explain_intent

    try:
        shown = explain_intent(obj.store(), run_id, intent_id)
    except ReplayError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(shown, indent=2, default=str))
        return
    intent = shown["intent"]
    click.echo(f"{intent_id}: {intent['side']} {intent['symbol']} {intent['timeframe']} as of "
               f"{intent['as_of']}   verdict {shown['verdict']}   score "
               f"{shown['overall_score']}")
    click.echo("  modules: " + ", ".join(f"{m} {s if s is not None else 'not scored'}"
                                        for m, s in shown["module_scores"].items()))
    outcome = shown["outcome"]
    if outcome["exit_reason"] is not None:
        click.echo(f"  outcome: {outcome['exit_reason']}, realized R {outcome['realized_r']}")
    for issue in shown["issues"]:
        click.echo(f"  [{issue['severity']}] {issue['module']} {issue['code']}: "
                   f"{issue['explanation']}")
        for line in issue["evidence"]:
            click.echo(f"      {line}")


def _summary(results: pd.DataFrame) -> dict[str, Any]:
    from replay.model import UNRESOLVED_EXIT_REASONS

    if results.empty:
        return {"evaluated": 0}
    out: dict[str, Any] = {"evaluated": len(results),
                           "mean_overall_score": _round(results["overall_score"].mean()),
                           "severity": results["overall_severity"].value_counts().to_dict()}
    for column in [c for c in results.columns if str(c).startswith("score__")]:
        out[f"mean_{column}"] = _round(results[column].mean())
    labelled = results[results["exit_reason"].notna()]
    if len(labelled):
        out["exit_reason"] = labelled["exit_reason"].value_counts().to_dict()
        # open trades and entries that never filled have no realized R
        closed = labelled[~labelled["exit_reason"].isin(UNRESOLVED_EXIT_REASONS)]
        out["mean_realized_r"] = _round(closed["realized_r"].mean())
        out["win_rate"] = _round(closed["win"].astype(float).mean())
    return out


def _round(value: float) -> float | None:
    return None if pd.isna(value) else round(float(value), 3)


replay.add_command(report)  # `buddy replay report`: the replay and calibration notebooks
accept_db(replay)  # `replay run --db PATH` as well as `replay --db PATH run`

if __name__ == "__main__":
    replay(prog_name="python -m replay.cli")
