"""The replay engine: evaluate past intents point-in-time and store every module's verdict.

For each intent at its decision time t the engine builds the ContextPack as of t (nothing
later is read), runs the orchestrator with the given ScoringConfig, and stores the report's
modules and issues, with the intent's outcome, in the replay tables under one run id.

- **Run id.** Derived from the config hash, the intents' content hash, the run name and how
  packs are built (lookback, piece providers), unless given. Same inputs, same id.
- **Resumable.** Results are written per chunk of intents in ONE transaction (results,
  module results, issues and outcomes together), so a killed run loses at most the chunks in
  flight and never leaves half a chunk. Running again continues with the intents that have
  no result yet; primary keys make a duplicate impossible.
- **Single writer.** Workers open the store read-only, build packs, run the orchestrator and
  return rows; only the calling process writes.
- **Two paths, one answer.** ``mode='intent'`` builds each pack with the ContextPackBuilder
  and runs the orchestrator per intent; ``mode='batch'`` builds a BatchContext per chunk
  (each series read once, every intent's pack as columns: ``buddy.batch``) and runs every
  module's batch form over all of the chunk's intents at once. tests/batch prove each
  module's batch form equal to its scalar form and the builder equal to the pack builder;
  tests/replay_engine prove the two paths' result tables equal.
- **Deterministic.** ``result_table_hash`` is the SHA-256 of the run's result tables in a
  canonical order, without the run id: same inputs, same hash, whatever the executor.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from buddy.batch.builder import build_batch_context
from buddy.batch.context import BatchContext
from buddy.batch.orchestrate import BatchReport, run_batch
from buddy.config import ScoringConfig, canonical_json, identity_changes, stored_identity
from buddy.context.builder import DEFAULT_LOOKBACK_BARS, ContextPackBuilder, PieceProvider
from buddy.domain import OrderType, Side, TradeIntent
from buddy.errors import BuddyError, FieldError, IntentValidationError
from buddy.orchestrator import Orchestrator
from buddy.report import BuddyReport
from buddy.store import Store
from buddy.store.core import LOCK_TIMEOUT_S, insert_frame
from buddy.store.replay import (
    done_intent_ids,
    finish_run,
    latest_finished_run,
    run_intents,
    run_issues,
    run_module_results,
    run_module_scores,
    run_outcomes,
    run_results,
    run_row,
    run_table,
    runs_with_progress,
    set_run_status,
)
from buddy.timeframes import Timeframe
from buddy.validation import check_intent_frame
from replay.executors import Executor, LocalProcessExecutor
from replay.model import INTENT_COLUMNS, OUTCOME_COLUMNS, RESULT_COLUMNS
from replay.outcomes import OutcomeRules

Mode = Literal["intent", "batch"]
MODES: tuple[str, ...] = ("intent", "batch")
#: What a run is for: 'research' runs may be fitted on and are what "the latest run" means;
#: 'gate' runs are the promotion gate's holdout replays and are never picked as latest.
PURPOSES: tuple[str, ...] = ("research", "gate")

#: Intents per chunk (one transaction each): per-intent path, batch path.
DEFAULT_CHUNK_SIZE = 50
DEFAULT_BATCH_CHUNK_SIZE = 20_000
#: How long the writer waits for workers' read-only connections to let go, in seconds.
WRITE_LOCK_TIMEOUT_S = 120.0
SCORE_PREFIX = "score__"

#: The replay tables a run's results live in, with their keys (the canonical row order).
RESULT_TABLES: dict[str, tuple[str, ...]] = {
    "replay_results": ("intent_id",),
    "replay_module_results": ("intent_id", "module"),
    "replay_issues": ("intent_id", "module", "issue_no"),
    "replay_outcomes": ("intent_id",),
}
#: Canonical intent order: chunks are cut from it, so a chunk never spans two series.
INTENT_ORDER = ["symbol", "timeframe", "as_of", "intent_id"]

_RESULT_DTYPES = {"intent_id": "str", "symbol": "str", "timeframe": "str", "side": "str",
                  "overall_score": "float64", "overall_severity": "str", "n_issues": "int32"}
_MODULE_DTYPES = {"intent_id": "str", "module": "str", "version": "str", "status": "str",
                  "score": "float64", "severity": "str", "n_issues": "int32"}
_ISSUE_DTYPES = {"intent_id": "str", "module": "str", "issue_no": "int32", "code": "str",
                 "severity": "str", "evidence_json": "str"}


class ReplayError(BuddyError):
    """A replay cannot start or continue (a changed input under an existing run id, ...)."""


# ---------------------------------------------------------------------------- values
@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayRun:
    """What a replay call did: the run, its status, and how much work this call did."""

    run_id: str
    name: str
    config_hash: str
    status: str  # 'running' | 'done' | 'failed'
    n_intents: int
    n_evaluated: int  # intents evaluated by this call
    n_skipped: int  # intents that already had a result (resumed)
    elapsed_s: float
    mode: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkCommitted:
    """Passed to ``on_chunk`` after a chunk's transaction committed."""

    run_id: str
    chunk_no: int
    n_intents: int
    n_done: int  # intents with a result in the run so far
    n_total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkTask:
    """One chunk of intents for a worker: everything it needs, picklable, no connection."""

    chunk_no: int
    db_path: str
    mode: str
    config_json: str
    lookback_bars: int
    providers: tuple[tuple[str, PieceProvider], ...]
    intents: pd.DataFrame  # INTENT_COLUMNS, in canonical order


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkRows:
    """What a worker returns: the rows of the chunk's result tables (without run_id)."""

    chunk_no: int
    results: pd.DataFrame
    module_results: pd.DataFrame
    issues: pd.DataFrame
    elapsed_s: float = 0.0


# ---------------------------------------------------------------------------- intents
def normalize_intents(intents: pd.DataFrame) -> pd.DataFrame:
    """Return ``intents`` with exactly INTENT_COLUMNS, typed, in canonical order.

    Raises IntentValidationError when columns are missing, intent ids repeat or an as_of has
    no time zone.
    """
    missing = [c for c in INTENT_COLUMNS if c not in intents.columns]
    if missing:
        raise IntentValidationError([FieldError("intents", f"lacks column(s) {missing}",
                                                sorted(map(str, intents.columns)))])
    frame = intents.loc[:, list(INTENT_COLUMNS)].copy()
    for column in ("intent_id", "user_id", "symbol", "side", "timeframe", "order_type",
                   "source"):
        frame[column] = frame[column].astype(str)
    duplicated = frame["intent_id"][frame["intent_id"].duplicated()]
    if len(duplicated):
        raise IntentValidationError([FieldError("intent_id", "must be unique within a run",
                                                sorted(set(duplicated))[:5])])
    as_of = frame["as_of"]
    if not isinstance(as_of.dtype, pd.DatetimeTZDtype):
        parsed = pd.to_datetime(as_of, utc=False, format="ISO8601") if len(as_of) else as_of
        if len(as_of) and not isinstance(parsed.dtype, pd.DatetimeTZDtype):
            raise IntentValidationError([FieldError(
                "as_of", "must carry a time zone (e.g. 2012-06-01T20:00:00+00:00)",
                str(as_of.iloc[0]))])
        as_of = parsed
    frame["as_of"] = pd.to_datetime(as_of, utc=True).astype("datetime64[us, UTC]")
    for column in ("proposed_entry", "proposed_stop", "proposed_target", "proposed_size"):
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    frame["holding_horizon"] = pd.to_numeric(frame["holding_horizon"]).astype("int64")
    frame["linked_trade_id"] = pd.Series(
        [None if _blank(v) else str(v) for v in frame["linked_trade_id"]], dtype=object)
    return frame.sort_values(INTENT_ORDER, kind="stable").reset_index(drop=True)


def _blank(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value)) or (
        value is pd.NA or value is pd.NaT)


#: The version of ``intents_hash``'s byte layout (part of what is hashed): 2 is column-wise.
INTENTS_HASH_VERSION = 2


def intents_hash(intents: pd.DataFrame) -> str:
    """Return the SHA-256 of a normalized intents frame (``normalize_intents``), column by
    column: each column's name and its values as bytes (floats as IEEE-754 little-endian with
    one NaN, times as UTC microseconds, integers as int64, text length-prefixed UTF-8 with
    missing values marked), in INTENT_COLUMNS order. Equal frames give equal hashes whatever
    their index; any changed value, row order or column changes it. At a million intents this
    is a few numpy passes, where the canonical CSV it replaces formatted every cell."""
    digest = hashlib.sha256(f"intents v{INTENTS_HASH_VERSION} n={len(intents)}\n".encode())
    for column in INTENT_COLUMNS:
        values = intents[column]
        digest.update(f"{column}\n".encode())
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            micros = values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
            digest.update(micros.to_numpy(dtype="datetime64[us]").astype("<i8").tobytes())
        elif pd.api.types.is_float_dtype(values.dtype):
            floats = values.to_numpy(dtype="<f8").copy()
            floats[np.isnan(floats)] = np.nan  # one NaN bit pattern
            digest.update(floats.tobytes())
        elif pd.api.types.is_integer_dtype(values.dtype):
            digest.update(values.to_numpy(dtype="<i8").tobytes())
        else:
            digest.update(_text_bytes(values))
    return digest.hexdigest()


def _text_bytes(values: pd.Series) -> bytes:
    """Return text values as one byte string, column-wise through Arrow: the missing mask
    (None and NaN), the end offsets and the UTF-8 data."""
    import pyarrow as pa

    array = pa.array(values.to_numpy(dtype=object), type=pa.large_string(), from_pandas=True)
    _, offsets, data = array.buffers()
    ends = np.frombuffer(offsets, dtype="<i8", count=len(array) + 1)
    missing = array.is_null().to_numpy(zero_copy_only=False).astype(np.uint8)
    text = b"" if data is None else data.to_pybytes()[: int(ends[-1])]
    return missing.tobytes() + ends.tobytes() + text


def intent_from_row(row: Mapping[str, Any]) -> TradeIntent:
    """Return the TradeIntent of one INTENT_COLUMNS row (a NaN stop or target means none)."""
    stop, target = row["proposed_stop"], row["proposed_target"]
    return TradeIntent(
        intent_id=str(row["intent_id"]), user_id=str(row["user_id"]), symbol=str(row["symbol"]),
        side=Side(row["side"]), timeframe=Timeframe.parse(row["timeframe"]),
        proposed_entry=float(row["proposed_entry"]),
        proposed_stop=None if pd.isna(stop) else float(stop),
        proposed_target=None if pd.isna(target) else float(target),
        proposed_size=float(row["proposed_size"]), as_of=pd.Timestamp(row["as_of"]
                                                                      ).to_pydatetime(),
        holding_horizon=int(row["holding_horizon"]), order_type=OrderType(row["order_type"]))


def validate_intents(store: Store, intents: pd.DataFrame, config: ScoringConfig) -> None:
    """Check every intent as Buddy.evaluate does (intrinsic, instrument and data rules), all
    at once with ``buddy.validation``'s rule table. Raises one IntentValidationError naming
    each bad intent; nothing is written then.
    """
    from buddy.api import Buddy

    check_intent_frame(intents, Buddy(store, config).catalogue())


# ---------------------------------------------------------------------------- run ids
def provider_path(provider: PieceProvider) -> str:
    """Return 'module:name' of a piece provider (how a run records and reloads it): a
    function's qualname, or the module-level name a provider instance is bound to."""
    module = provider.__module__
    name = getattr(provider, "__qualname__", None)
    if name is None:  # an instance (AccountProvider(), ...): the name it is reachable by
        found = [key for key, value in vars(importlib.import_module(module)).items()
                 if value is provider]
        if not found:
            raise ValueError(f"provider {provider!r} is bound to no name of module {module}: "
                             "a replay records providers by import path")
        name = found[0]
    return f"{module}:{name}"


def load_provider(path: str) -> PieceProvider:
    """Return the provider named 'module:qualname'."""
    module, _, qualname = path.partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


#: The piece providers a replay installs by default from the command line, by import path.
STANDARD_PROVIDERS: dict[str, str] = {
    "account": "buddy.users.provider:account_provider",
    "levels": "buddy.levels.provider:levels_provider",
    "mtfa": "buddy.mtfa.provider:mtfa_provider",
    "regime": "buddy.regime.provider:regime_provider",
    "schedule": "buddy.events.provider:schedule_provider",
}


def standard_providers() -> dict[str, PieceProvider]:
    """Return the STANDARD_PROVIDERS that this installation has (a run records which)."""
    found = {}
    for piece, path in STANDARD_PROVIDERS.items():
        try:
            found[piece] = load_provider(path)
        except (ImportError, AttributeError):
            continue
    return found


def context_spec(lookback_bars: int, providers: Mapping[str, PieceProvider],
                 outcome_rules: OutcomeRules | None = None) -> dict[str, Any]:
    """Return how packs are built and outcomes labelled (fill window, gap rule; default
    ``OutcomeRules()``), as stored in replay_runs.context_json."""
    return {"lookback_bars": int(lookback_bars),
            "providers": {piece: provider_path(p) for piece, p in sorted(providers.items())},
            "outcome_rules": (outcome_rules or OutcomeRules()).as_dict()}


def replay_run_id(config_hash: str, intents_digest: str, name: str,
                  context: Mapping[str, Any]) -> str:
    """Return the deterministic run id of (config, intents, name, context spec)."""
    key = canonical_json({"config_hash": config_hash, "intents_hash": intents_digest,
                          "name": name, "context": context})
    return "rp_" + hashlib.sha256(key.encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------- the engine
def run_replay(store: Store, intents: pd.DataFrame, *, config: ScoringConfig, name: str,
               executor: Executor | None = None, chunk_size: int | None = None,
               progress: bool = True, run_id: str | None = None, mode: Mode = "intent",
               outcomes: pd.DataFrame | None = None, label: bool = True,
               trades: pd.DataFrame | None = None,
               providers: Mapping[str, PieceProvider] | None = None,
               lookback_bars: int = DEFAULT_LOOKBACK_BARS,
               on_chunk: Callable[[ChunkCommitted], None] | None = None,
               purpose: str = "research",
               outcome_rules: OutcomeRules | None = None) -> ReplayRun:
    """Replay ``intents`` (INTENT_COLUMNS) under ``config`` and store the results.

    A run with the same id that is not done is resumed: intents that already have a result
    are skipped. A done run is returned as is. Outcomes are ``outcomes`` (OUTCOME_COLUMNS)
    when given, else labelled from the stored bars by ``replay.outcomes.label_outcomes``,
    the real result replacing the simulated one where an intent links to a closed trade of
    ``trades`` (TRADE_COLUMNS; default: the store's trades table), under ``outcome_rules``
    (default ``OutcomeRules()``; part of the run's identity); ``label=False``: no
    outcomes. ``executor`` defaults to two local processes (closed here);
    a given executor stays open. ``on_chunk`` is called after each chunk commits.
    ``purpose`` (PURPOSES) is stored with the run: 'gate' runs are never "the latest run"
    (``latest_run_id``), so nothing defaults to fitting on a holdout.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)} (got {purpose!r})")
    if chunk_size is None:
        chunk_size = DEFAULT_BATCH_CHUNK_SIZE if mode == "batch" else DEFAULT_CHUNK_SIZE
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (got {chunk_size})")
    started = time.perf_counter()
    providers = dict(providers or {})
    frame = normalize_intents(intents)
    digest = intents_hash(frame)
    outcome_rules = outcome_rules or OutcomeRules()
    context = context_spec(lookback_bars, providers, outcome_rules)
    config_json = config.to_json()
    if ScoringConfig.from_json(config_json).hash != config.hash:
        raise ReplayError(f"config {config.name} does not survive its JSON form unchanged")
    run_id = run_id or replay_run_id(config.hash, digest, name, context)
    # workers hold read-only connections between our writes: wait longer than a reader would
    writer = Store(store.path, migrate=False,
                   lock_timeout_s=max(store.lock_timeout_s, WRITE_LOCK_TIMEOUT_S))

    existing = run_row(store, run_id)
    if existing is None:
        validate_intents(store, frame, config)
        _create_run(writer, run_id=run_id, name=name, config=config, config_json=config_json,
                    intents=frame, digest=digest, context=context, purpose=purpose)
    else:
        _check_resumable(store, existing, config=config, digest=digest, context=context)
        if existing["purpose"] != purpose:
            raise ReplayError(f"run {run_id} is a {existing['purpose']!r} run, not "
                              f"{purpose!r}: use another name or run id")
        if existing["status"] == "done":
            return ReplayRun(run_id=run_id, name=existing["name"], config_hash=config.hash,
                             status="done", n_intents=int(existing["n_intents"]),
                             n_evaluated=0, n_skipped=int(existing["n_intents"]),
                             elapsed_s=time.perf_counter() - started, mode=mode)
        _set_status(writer, run_id, "running")

    done_ids = done_intent_ids(store, run_id)
    pending = frame[~frame["intent_id"].isin(done_ids)].reset_index(drop=True)
    chunks = list(_chunks(pending, chunk_size, by_series=mode == "intent"))
    tasks = (ChunkTask(chunk_no=n, db_path=str(store.path), mode=mode,
                       config_json=config_json, lookback_bars=lookback_bars,
                       providers=tuple(sorted(providers.items())), intents=chunk)
             for n, chunk in enumerate(chunks))
    outcome_source = _OutcomeSource(store, frame, outcomes, trades, outcome_rules) if (
        outcomes is not None or label) else None

    own_executor = executor is None
    executor = executor or LocalProcessExecutor(workers=2)
    n_done = len(done_ids)
    try:
        with tqdm(total=len(frame), initial=n_done, disable=not progress, unit="intent",
                  desc=f"replay {name}") as bar:
            for index, rows in executor.map(evaluate_chunk, tasks):
                chunk = chunks[index]
                labelled = outcome_source.label(chunk) if outcome_source else None
                write_chunk(writer, run_id, rows, labelled)
                n_done += len(chunk)
                bar.update(len(chunk))
                if on_chunk is not None:
                    on_chunk(ChunkCommitted(run_id=run_id, chunk_no=index,
                                            n_intents=len(chunk), n_done=n_done,
                                            n_total=len(frame)))
    except BaseException:
        _set_status(writer, run_id, "failed", quiet=True)
        raise
    finally:
        if own_executor:
            executor.close()
    _finish(writer, run_id)
    return ReplayRun(run_id=run_id, name=name, config_hash=config.hash, status="done",
                     n_intents=len(frame), n_evaluated=len(pending), n_skipped=len(done_ids),
                     elapsed_s=time.perf_counter() - started, mode=mode)


def resume_replay(store: Store, run_id: str, **options: Any) -> ReplayRun:
    """Continue the stored run ``run_id`` with its own intents, config and context.

    ``options`` are run_replay's (executor, chunk_size, mode, progress, outcomes, ...).
    """
    row = run_row(store, run_id)
    if row is None:
        raise ReplayError(f"no replay run {run_id!r} in {store.path}")
    intents = run_intents(store, run_id)
    context = json.loads(row["context_json"])
    providers = {piece: load_provider(path) for piece, path in context["providers"].items()}
    config = ScoringConfig.from_json(row["config_json"])
    return run_replay(store, intents, config=config, name=row["name"], run_id=run_id,
                      providers=providers, lookback_bars=int(context["lookback_bars"]),
                      purpose=str(row["purpose"]),
                      outcome_rules=OutcomeRules.from_mapping(context.get("outcome_rules")),
                      **options)


def _chunks(pending: pd.DataFrame, chunk_size: int, *, by_series: bool
            ) -> Iterator[pd.DataFrame]:
    """Cut ``pending`` (canonical order) into chunks; per series on the per-intent path (its
    pack cache works per series), across series on the batch path (it reads each series in
    a chunk once)."""
    if not by_series:
        for start in range(0, len(pending), chunk_size):
            yield pending.iloc[start:start + chunk_size].reset_index(drop=True)
        return
    for _, series in pending.groupby(["symbol", "timeframe"], sort=True):
        for start in range(0, len(series), chunk_size):
            yield series.iloc[start:start + chunk_size].reset_index(drop=True)


# ---------------------------------------------------------------------------- workers
#: Per worker process: orchestrators by config JSON.
_ORCHESTRATORS: OrderedDict[str, Orchestrator] = OrderedDict()
_CACHE_SIZE = 4


def _cached(cache: OrderedDict[Any, Any], key: Any, make: Callable[[], Any]) -> Any:
    value = cache.get(key)
    if value is None:
        value = make()
        cache[key] = value
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return value


def evaluate_chunk(task: ChunkTask) -> ChunkRows:
    """Evaluate one chunk read-only and return its rows (runs in a worker)."""
    started = time.perf_counter()
    orchestrator = _cached(_ORCHESTRATORS, task.config_json,
                           lambda: Orchestrator(ScoringConfig.from_json(task.config_json)))
    store: Store = ReadOnlyStore(task.db_path)
    if task.mode == "batch":
        ctx = build_batch_context(store, task.intents, lookback_bars=task.lookback_bars,
                                  providers=dict(task.providers))
        return batch_rows(task.chunk_no, ctx, run_batch(orchestrator, ctx),
                          elapsed_s=time.perf_counter() - started)
    stamp = store.context_stamp()
    builder = ContextPackBuilder(store, lookback_bars=task.lookback_bars,
                                 providers=dict(task.providers))
    reports = []
    for row in task.intents.to_dict("records"):
        intent = intent_from_row(row)
        pack = builder.build(intent.user_id, intent.symbol, intent.timeframe, intent.as_of,
                             stamp=stamp)
        reports.append(orchestrator.run(intent, pack, eval_id=intent.intent_id))
    return report_rows(task.chunk_no, reports, task.intents["as_of"],
                       elapsed_s=time.perf_counter() - started)


def report_rows(chunk_no: int, reports: Sequence[BuddyReport], as_of: pd.Series, *,
                elapsed_s: float = 0.0) -> ChunkRows:
    """Return the replay rows of ``reports`` (``as_of``: the intents' as_of, same order)."""
    results, modules, issues = [], [], []
    for report in reports:
        intent = report.intent
        results.append({"intent_id": intent.intent_id, "symbol": intent.symbol,
                        "timeframe": intent.timeframe.value, "side": intent.side.value,
                        "overall_score": _score(report.overall_score),
                        "overall_severity": report.overall_severity.value,
                        "n_issues": len(report.all_issues)})
        for result in report.modules:
            modules.append({"intent_id": intent.intent_id, "module": result.module,
                            "version": result.version, "status": result.status.value,
                            "score": _score(result.score), "severity": result.severity.value,
                            "n_issues": len(result.issues)})
            for n, issue in enumerate(result.issues):
                evidence = json.dumps([f.as_dict() for f in issue.evidence], sort_keys=True,
                                      default=str)
                issues.append({"intent_id": intent.intent_id, "module": result.module,
                               "issue_no": n, "code": issue.code,
                               "severity": issue.severity.value, "evidence_json": evidence})
    result_frame = _typed(results, _RESULT_DTYPES)
    result_frame.insert(4, "as_of", as_of.reset_index(drop=True).astype("datetime64[us, UTC]"))
    return ChunkRows(chunk_no=chunk_no, results=result_frame,
                     module_results=_typed(modules, _MODULE_DTYPES),
                     issues=_typed(issues, _ISSUE_DTYPES), elapsed_s=elapsed_s)


def _score(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _typed(rows: list[dict[str, Any]], dtypes: Mapping[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(dtypes))
    return frame.astype(dict(dtypes))


# ---------------------------------------------------------------------------- batch path
def batch_rows(chunk_no: int, ctx: BatchContext, report: BatchReport, *,
               elapsed_s: float = 0.0) -> ChunkRows:
    """Return the replay rows of a batch report (what ``report_rows`` gives per intent)."""
    intents = ctx.intents
    ids = intents["intent_id"].to_numpy(dtype=object)
    overall = report.overall
    results = pd.DataFrame({
        "intent_id": ids, "symbol": intents["symbol"].to_numpy(dtype=object),
        "timeframe": intents["timeframe"].to_numpy(dtype=object),
        "side": intents["side"].to_numpy(dtype=object),
        "overall_score": overall["overall_score"].to_numpy(np.float64),
        "overall_severity": overall["overall_severity"].to_numpy(dtype=object),
        "n_issues": overall["n_issues"].to_numpy(np.int32)}).astype(_RESULT_DTYPES)
    results.insert(4, "as_of", intents["as_of"].reset_index(drop=True).astype(
        "datetime64[us, UTC]"))
    modules = report.modules
    module_rows = pd.DataFrame({
        "intent_id": ids[modules["row"].to_numpy(np.int64)], "module": modules["module"],
        "version": modules["version"], "status": modules["status"],
        "score": modules["score"].to_numpy(np.float64), "severity": modules["severity"],
        "n_issues": modules["n_issues"].to_numpy(np.int32)}).astype(_MODULE_DTYPES)
    issues = report.issues
    issue_rows = pd.DataFrame({
        "intent_id": ids[issues["row"].to_numpy(np.int64)], "module": issues["module"],
        "issue_no": issues["issue_no"].to_numpy(np.int32), "code": issues["code"],
        "severity": issues["severity"], "evidence_json": issues["evidence_json"]}
    ).astype(_ISSUE_DTYPES)
    return ChunkRows(chunk_no=chunk_no, results=results, module_results=module_rows,
                     issues=issue_rows, elapsed_s=elapsed_s)


class ReadOnlyStore(Store):
    """A Store that refuses to write: what replay workers (and piece providers) get."""

    def __init__(self, path: str | Path, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        super().__init__(path, lock_timeout_s=lock_timeout_s, migrate=False)

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Any]:
        """Yield a read-only connection; refuse a read-write one."""
        if not read_only:
            raise ReplayError("a replay worker may not write to the store (the run's own "
                              "process is its only writer)")
        with super().connect(read_only=True) as con:
            yield con


# ---------------------------------------------------------------------------- outcomes
class _OutcomeSource:
    """Outcomes for a chunk: from a given frame, or labelled from the stored bars (with the
    real result of any linked closed trade replacing the simulated one)."""

    def __init__(self, store: Store, intents: pd.DataFrame, given: pd.DataFrame | None,
                 trades: pd.DataFrame | None, rules: OutcomeRules) -> None:
        self.store = store
        self.rules = rules
        self.intents = intents
        self.given = None if given is None else given.set_index("intent_id", drop=False)
        self.trades = trades
        self._inputs: tuple[dict[tuple[str, str], pd.DataFrame], pd.DataFrame] | None = None

    def label(self, chunk: pd.DataFrame) -> pd.DataFrame:
        if self.given is not None:
            rows = self.given.loc[self.given.index.intersection(chunk["intent_id"])]
            return rows.reset_index(drop=True).loc[:, list(OUTCOME_COLUMNS)]
        from replay.intents import database_trades, load_outcome_inputs
        from replay.outcomes import label_outcomes, label_with_trades

        if self._inputs is None:
            # the whole run's series from its first as_of: the same bars on every resume
            self._inputs = load_outcome_inputs(self.store, self.intents)
            if self.trades is None:
                self.trades = database_trades(self.store)
        labelled = label_outcomes(chunk, *self._inputs, rules=self.rules)
        if self.trades is not None and len(self.trades):
            labelled = label_with_trades(labelled, self.trades, chunk)
        return labelled.loc[:, list(OUTCOME_COLUMNS)]


# ---------------------------------------------------------------------------- writes
def _create_run(store: Store, *, run_id: str, name: str, config: ScoringConfig,
                config_json: str, intents: pd.DataFrame, digest: str,
                context: Mapping[str, Any], purpose: str) -> None:
    sources = ",".join(sorted(intents["source"].unique())) or "none"
    run = pd.DataFrame([{
        "run_id": run_id, "name": name, "config_name": config.name,
        "config_version": config.version, "config_hash": config.hash,
        "config_json": config_json, "intent_source": sources, "intents_hash": digest,
        "context_json": canonical_json(context),
        "market_data_version": store.market_data_version(),
        "data_start": intents["as_of"].min() if len(intents) else pd.NaT,
        "data_end": intents["as_of"].max() if len(intents) else pd.NaT,
        "n_intents": len(intents), "status": "running",
        "created_at": pd.Timestamp.now(tz="UTC"), "finished_at": pd.NaT,
        "purpose": purpose}])
    rows = intents.copy()
    rows.insert(0, "run_id", run_id)
    with store.transaction() as con:
        insert_frame(con, "replay_runs", run)
        if len(rows):
            insert_frame(con, "replay_intents", rows)


def _check_resumable(store: Store, row: Mapping[str, Any], *, config: ScoringConfig,
                     digest: str, context: Mapping[str, Any]) -> None:
    run_id = row["run_id"]
    if row["config_hash"] != config.hash:
        raise ReplayError(identity_refusal(run_id, row, config))
    if row["intents_hash"] != digest:
        raise ReplayError(f"run {run_id} was started with other intents; use another name "
                          "or run id")
    if json.loads(row["context_json"]) != json.loads(canonical_json(context)):
        raise ReplayError(f"run {run_id} built packs with {row['context_json']}, not "
                          f"{canonical_json(context)}")
    version = store.market_data_version()
    if row["status"] != "done" and int(row["market_data_version"]) != version:
        raise ReplayError(f"market data changed since run {run_id} started (version "
                          f"{row['market_data_version']} -> {version}); resuming would mix "
                          "two data versions: start a new run")


def identity_refusal(run_id: str, row: Mapping[str, Any], config: ScoringConfig) -> str:
    """Return why run ``run_id`` (its replay_runs ``row``) cannot go on under ``config``:
    which module, param or version changed since the run started (``config.identity()``
    against the identity stored in the run's config_json)."""
    stored = stored_identity(json.loads(row["config_json"]))
    if stored is None:
        changed = "the run predates resolved config identities"
    else:
        changed = "; ".join(identity_changes(stored, config.identity())) or (
            "the resolved config differs")
    return (f"run {run_id} was started with config #{row['config_hash']}, but this code and "
            f"config resolve to #{config.hash} ({changed}); resuming would mix two configs: "
            "start a new run (another name or run id)")


def write_chunk(store: Store, run_id: str, rows: ChunkRows,
                outcomes: pd.DataFrame | None) -> None:
    """Write one chunk's rows and outcomes under ``run_id`` in ONE transaction (``store``:
    the run's single writer): a killed run never leaves half a chunk."""
    tables = [("replay_results", rows.results), ("replay_module_results", rows.module_results),
              ("replay_issues", rows.issues), ("replay_outcomes", outcomes)]
    with store.transaction() as con:
        for table, frame in tables:
            if frame is None or not len(frame):
                continue
            frame = frame.copy()
            frame.insert(0, "run_id", run_id)
            insert_frame(con, table, frame)


def _set_status(store: Store, run_id: str, status: str, *, quiet: bool = False) -> None:
    try:
        set_run_status(store, run_id, status)
    except Exception:
        if not quiet:
            raise


def _finish(store: Store, run_id: str) -> None:
    finish_run(store, run_id)


# ---------------------------------------------------------------------------- reads
def list_runs(store: Store) -> pd.DataFrame:
    """Return every replay run with its progress, newest first."""
    return runs_with_progress(store)


def latest_run_id(store: Store, purpose: str = "research") -> str:
    """Return the newest finished run made for ``purpose`` (PURPOSES); raise ValueError
    when there is none. 'research' (the default) never picks a gate's holdout replay."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)} (got {purpose!r})")
    found = latest_finished_run(store, purpose)
    if found is None:
        raise ValueError(f"no finished replay run with purpose {purpose!r} in {store.path}; "
                         "run a replay first")
    return found


def run_info(store: Store, run_id: str) -> dict[str, Any]:
    """Return one run's replay_runs row plus its progress; raise ReplayError when unknown."""
    runs = list_runs(store)
    match = runs[runs["run_id"] == run_id]
    if match.empty:
        raise ReplayError(f"no replay run {run_id!r} in {store.path}")
    info = match.iloc[0].to_dict()
    row = run_row(store, run_id) or {}
    info["config"] = json.loads(row["config_json"])
    info["context"] = json.loads(row["context_json"])
    info["intents_hash"] = row["intents_hash"]
    info["market_data_version"] = int(row["market_data_version"])
    return info


def results_frame(store: Store, run_id: str) -> pd.DataFrame:
    """Return RESULT_COLUMNS + one score__<module> per configured module (by module name; NaN
    when skipped or errored) + the outcome columns (NaN/None without an outcome): one row per
    evaluated intent, by symbol, timeframe, as_of and intent id."""
    row = run_row(store, run_id)
    if row is None:
        raise ReplayError(f"no replay run {run_id!r} in {store.path}")
    modules = [m["name"] for m in json.loads(row["config_json"])["modules"]]
    results = run_results(store, run_id)
    results = results.loc[:, list(RESULT_COLUMNS)]
    scores = run_module_scores(store, run_id)
    wide = scores.pivot(index="intent_id", columns="module", values="score")
    for module in modules:
        column = wide[module] if module in wide.columns else pd.Series(dtype="float64")
        results[f"{SCORE_PREFIX}{module}"] = column.reindex(results["intent_id"]).to_numpy(
            dtype="float64")
    outcomes = run_outcomes(store, run_id).set_index("intent_id")
    for column in OUTCOME_COLUMNS[1:]:
        results[column] = outcomes[column].reindex(results["intent_id"]).to_numpy()
    return results


def module_results_frame(store: Store, run_id: str) -> pd.DataFrame:
    """Return every module result of a run (one row per intent and module)."""
    return run_module_results(store, run_id)


def issues_frame(store: Store, run_id: str) -> pd.DataFrame:
    """Return ISSUE_COLUMNS + issue_no + evidence_json: every issue every module raised."""
    return run_issues(store, run_id)


def result_table_hash(store: Store, run_id: str) -> str:
    """Return the SHA-256 of the run's result tables in canonical order, run id excluded."""
    digest = hashlib.sha256()
    for table, key in RESULT_TABLES.items():
        frame = run_table(store, table, key, run_id)
        digest.update(f"{table}\n".encode())
        digest.update(_canonical_csv(frame).encode())
    return digest.hexdigest()


def _canonical_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.17g", lineterminator="\n",
                        date_format="%Y-%m-%dT%H:%M:%S.%f%z")
