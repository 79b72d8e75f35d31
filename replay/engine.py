"""The replay engine: evaluate past intents point-in-time and store every module's verdict.

For each intent at its decision time t the engine builds the ContextPack as of t (nothing
later is read), runs the orchestrator with the given ScoringConfig, and stores the report's
modules and issues, with the intent's outcome, in the replay tables under one run id.

- **Run id.** Derived from the config hash, the intents' content hash, the run name and how
  packs are built (lookback, piece providers), unless given. Same inputs, same id.
- **Compact tables** (migration 0015). A run has an integer ``run_key``, each intent its
  ``intent_no`` (position in INTENT_ORDER), each configured module a ``module_no`` and each
  code the modules may raise a ``code_no`` (``config_codes``: deterministic from the
  config). One WIDE ``replay_results`` row per intent holds the overall verdict, the
  per-module lists and the outcome; ``replay_issues`` one row per issue, integer keys,
  pointing at its typed facts in ``replay_facts``, where a chunk writes each distinct fact
  set once (migration 0022: most issues repeat a set of their chunk).
- **Resumable.** Results are written per chunk of intents in ONE transaction (one bulk
  insert of the wide rows with their outcomes, one of the issues and one of the chunk's
  distinct fact sets, numbered past the run's stored ones), so a killed run loses
  at most the chunks in flight and never leaves half a chunk. Running again continues with
  the intents that have no result yet; the results' primary key makes a duplicate
  impossible.
- **Single writer.** Workers open the store read-only, build packs, run the orchestrator,
  label their chunk's outcomes (``label_chunk``: each intent's from its own series' bars
  after its as_of, so the cut does not matter) and return Arrow tables with integer keys;
  only the calling process writes. A new run is validated first, then its chunks go to the
  workers, and the run (its row, intents, modules and codes, one transaction) is written
  when the first chunk comes back, while the workers evaluate the next ones; a failure
  before that still stores the whole run, as failed (resumable).
- **Two paths, one answer.** ``mode='intent'`` builds each pack with the ContextPackBuilder
  and runs the orchestrator per intent; ``mode='batch'`` builds a BatchContext per chunk
  (each series read once, every intent's pack as columns: ``buddy.batch``) and runs every
  module's batch form over all of the chunk's intents at once. tests/batch prove each
  module's batch form equal to its scalar form and the builder equal to the pack builder;
  tests/replay_engine prove the two paths' result tables equal.
- **Deterministic.** ``result_table_hash`` is the SHA-256 of the run's result tables in a
  canonical order, without the run key: same inputs, same hash, whatever the executor.
- **Same frames.** ``results_frame``, ``module_results_frame`` and ``issues_frame`` decode
  the compact tables into the frames the four old tables gave.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
from tqdm.auto import tqdm

from buddy.batch.builder import build_batch_context, whole_queries
from buddy.batch.columns import factorize_objects
from buddy.batch.context import BatchContext
from buddy.batch.orchestrate import MODULE_STATUS_TEXT, BatchReport, run_batch
from buddy.batch.result import FACTS_SCHEMA, SEVERITY_BY_RANK, facts_from_json
from buddy.config import ScoringConfig, canonical_json, identity_changes, stored_identity
from buddy.context.builder import DEFAULT_LOOKBACK_BARS, ContextPackBuilder, PieceProvider
from buddy.domain import OrderType, Side, TradeIntent
from buddy.errors import BuddyError, FieldError, IntentValidationError
from buddy.orchestrator import Orchestrator
from buddy.report import BuddyReport
from buddy.store import Store
from buddy.store.core import LOCK_TIMEOUT_S, threads_limit, threads_limited, vacuum_deferred
from buddy.store.replay import (
    RESULT_TABLE_ORDER,
    STORED_RESULT_TABLES,
    create_run,
    done_intent_nos,
    finish_run,
    issue_evidence,
    latest_finished_run,
    run_intents,
    run_issues,
    run_module_results,
    run_modules,
    run_result_tables,
    run_results,
    run_row,
    runs_with_progress,
    set_run_status,
    write_results,
)
from buddy.store.tables import (
    WholeQuery,
    process_reads_directory,
    reads_shared,
    share_ahead,
    share_reads,
)
from buddy.timeframes import Timeframe
from buddy.validation import check_intent_frame
from replay.evidence import chunk_fact_sets, declared_facts, render_evidence
from replay.executors import Executor, LocalProcessExecutor, SerialExecutor
from replay.model import (
    EXIT_REASONS,
    INTENT_COLUMNS,
    ISSUE_COLUMNS,
    MODULE_STATUSES,
    OUTCOME_COLUMNS,
    OUTCOME_SOURCES,
    SEVERITIES,
)
from replay.outcomes import OutcomeRules

Mode = Literal["intent", "batch"]
MODES: tuple[str, ...] = ("intent", "batch")
#: What a run is for: 'research' runs may be fitted on and are what "the latest run" means;
#: 'gate' runs are the promotion gate's holdout replays and are never picked as latest.
PURPOSES: tuple[str, ...] = ("research", "gate")

#: Intents per chunk (one transaction each): per-intent path, batch path. The batch path's
#: is one DuckDB row group of results (122,880 rows, one per intent): a million of the
#: bench's intents on two workers spend 22.3 CPU s of the parent in write_chunk in chunks of
#: 20,000 (most of it re-checkpointing part-filled row groups at each commit), 7.4 in chunks
#: of 100,000 and 5.2 in row groups (``batch_chunk_sizes``: 5.3). Results do not depend on
#: it (tests/replay_engine/test_chunk_invariance.py).
DEFAULT_CHUNK_SIZE = 50
DEFAULT_BATCH_CHUNK_SIZE = 122_880
#: The smallest batch chunk a run is cut into so that every worker has one (below it a
#: chunk's own work, per series and per transaction, outweighs a second core).
MIN_BATCH_CHUNK_SIZE = 2_000
#: Intents a worker evaluates at once on the batch path: a written chunk (a row group) is
#: evaluated in parts of at most this many and handed on whole. The evaluation's working set
#: grows with the batch (~2 GB for a row group of the bench's intents) and a worker's first
#: chunk faults all of it in: at half a row group the bench's first chunk takes 144k page
#: faults instead of 211k and three chunks' CPU falls from 9.2 to 8.4 s on an idle machine,
#: a cost per intent that smaller parts no longer lower (8.4 s at a quarter).
EVALUATION_BATCH_SIZE = 61_440
#: How long the writer waits for workers' read-only connections to let go, in seconds.
WRITE_LOCK_TIMEOUT_S = 120.0
SCORE_PREFIX = "score__"

#: The compact tables a run's results are read as (run_key excluded; replay_issues with its
#: facts joined in), with their keys: the canonical row order ``result_table_hash`` reads.
RESULT_TABLES: dict[str, tuple[str, ...]] = dict(RESULT_TABLE_ORDER)
#: The tables a run's results are stored in (what run creation and the chunks write).
STORED_TABLES: tuple[str, ...] = STORED_RESULT_TABLES
#: Canonical intent order: chunks are cut from it, so a chunk never spans two series; an
#: intent's intent_no is its position in it.
INTENT_ORDER = ["symbol", "timeframe", "as_of", "intent_id"]
#: The orchestrator's own item codes: numbered first in each module's block of codes.
ORCHESTRATOR_CODES: tuple[str, ...] = ("CONTEXT_MISSING", "MODULE_ERROR")

#: A worker's wide result rows (replay_results without run_key and the outcome columns).
RESULT_SCHEMA = pa.schema([
    ("intent_no", pa.int32()), ("overall_score", pa.float64()), ("verdict", pa.uint8()),
    ("n_issues", pa.int16()), ("module_scores", pa.list_(pa.float64())),
    ("module_status", pa.list_(pa.uint8())), ("module_severity", pa.list_(pa.uint8())),
    ("module_n_issues", pa.list_(pa.int16()))])
#: A worker's issue rows (replay_issues without run_key): integer keys and the number of
#: the issue's fact set among the chunk's (FACT_SET_SCHEMA), ready for one bulk insert.
ISSUE_SCHEMA = pa.schema([
    ("intent_no", pa.int32()), ("module_no", pa.uint8()), ("issue_no", pa.uint16()),
    ("code_no", pa.uint16()), ("severity", pa.uint8()), ("facts_no", pa.int32())])
#: A worker's distinct fact sets (replay_facts without run_key), numbered from 0 in the
#: chunk (the writer shifts them past the run's stored ones): the typed facts as stored
#: (``replay.evidence.stored_facts``), each distinct set once
#: (``replay.evidence.chunk_fact_sets``).
FACT_SET_SCHEMA = pa.schema([("facts_no", pa.int32()), *FACTS_SCHEMA])
#: The outcome columns of the wide row, as stored (exit_reason and outcome_source coded).
_OUTCOME_TYPES: dict[str, pa.DataType] = {
    "exit_reason": pa.uint8(), "entry_ts": pa.timestamp("us", tz="UTC"),
    "exit_ts": pa.timestamp("us", tz="UTC"), "exit_price": pa.float64(),
    "realized_r": pa.float64(), "mae_r": pa.float64(), "mfe_r": pa.float64(),
    "mae_price": pa.float64(), "mfe_price": pa.float64(), "bars_held": pa.int32(),
    "win": pa.bool_(), "outcome_source": pa.uint8(), "filled": pa.bool_(),
    "fill_ts": pa.timestamp("us", tz="UTC"), "fill_price": pa.float64()}


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
    intents: pd.DataFrame  # INTENT_COLUMNS + intent_no, in canonical order
    #: where the run's workers share their whole-table reads (``buddy.store.tables``)
    shared_tables: str | None = None
    #: label the chunk's outcomes from the stored bars under these rules (``label_chunk``);
    #: None: the writer merges given outcomes, or there are none
    outcome_rules: OutcomeRules | None = None
    #: the closed trades whose real results replace simulated ones (TRADE_COLUMNS; None:
    #: none), read once by the run's process
    trades: pd.DataFrame | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkRows:
    """What a worker returns: the chunk's wide result rows (RESULT_SCHEMA, then the outcome
    columns as stored when the worker labelled them), issue rows (ISSUE_SCHEMA) and their
    distinct fact sets (FACT_SET_SCHEMA) as Arrow tables with integer keys, without run_key.
    ``facts`` None: the issues carry their evidence as evidence_json instead of facts_no
    (typed when written, a set each)."""

    chunk_no: int
    results: pa.Table
    issues: pa.Table
    facts: pa.Table | None = None
    elapsed_s: float = 0.0

    def spilled(self, directory: str | Path) -> ChunkFiles:
        """Return these rows as Arrow IPC files written in ``directory`` (a worker's hand-off
        to the writer: the writer maps them, nothing is pickled or copied through a pipe)."""
        stem = Path(directory) / f"chunk-{os.getpid()}-{self.chunk_no}-{uuid.uuid4().hex}"
        paths: list[str | None] = []
        for name in ("results", "issues", "facts"):
            table = getattr(self, name)
            if table is None:
                paths.append(None)
                continue
            path = f"{stem}.{name}.arrow"
            with pa.OSFile(path, "wb") as sink, ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            paths.append(path)
        return ChunkFiles(chunk_no=self.chunk_no, paths=tuple(paths), elapsed_s=self.elapsed_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkFiles:
    """A chunk's rows as its worker wrote them (``ChunkRows.spilled``): the paths of its
    results, issues and facts (None: no facts) as Arrow IPC files."""

    chunk_no: int
    paths: tuple[str | None, ...]
    elapsed_s: float = 0.0

    def load(self) -> ChunkRows:
        """Return the rows, memory-mapped (no copy), and remove the files (the mappings
        outlive the names)."""
        tables: list[pa.Table | None] = []
        for path in self.paths:
            if path is None:
                tables.append(None)
                continue
            tables.append(ipc.open_file(pa.memory_map(path)).read_all())
            os.unlink(path)
        results, issues, facts = tables
        assert results is not None and issues is not None
        return ChunkRows(chunk_no=self.chunk_no, results=results, issues=issues, facts=facts,
                         elapsed_s=self.elapsed_s)


@dataclass(frozen=True, slots=True)
class Numbering:
    """A config's integer numbering: module_no is the position in ``modules`` (every
    configured module, enabled or not), code_no the position in ``codes``."""

    modules: tuple[str, ...]
    versions: tuple[str, ...]
    codes: tuple[tuple[str, str], ...]  # (module, code)
    #: by code_no: the fact names and units the code declares (None: module unknown here)
    declared: tuple[tuple[list[str], list[str]] | None, ...] = ()

    def module_nos(self) -> dict[str, int]:
        """Return module -> module_no."""
        return {module: n for n, module in enumerate(self.modules)}

    def code_nos(self) -> dict[tuple[str, str], int]:
        """Return (module, code) -> code_no."""
        return {key: n for n, key in enumerate(self.codes)}


def config_numbering(config: ScoringConfig) -> Numbering:
    """Return the integer numbering of ``config``: its modules in the order of its stored
    JSON (``config.to_json()``), and
    every code each may raise, module by module: the orchestrator's ORCHESTRATOR_CODES
    first, then the module's declared codes in declaration order. The same config always
    numbers the same way (runs store it in replay_modules and replay_codes)."""
    from buddy.evaluators import registry

    modules, versions, codes = [], [], []
    # the stored JSON's order (what replay_runs.config_json and results_frame list): a
    # config object and its JSON round trip may hold their modules in different orders
    for spec in json.loads(config.to_json())["modules"]:
        name = str(spec["name"])
        cls = registry.get(name)
        modules.append(name)
        versions.append(str(cls.version))
        for code in (*ORCHESTRATOR_CODES, *(c for c in cls.codes
                                             if c not in ORCHESTRATOR_CODES)):
            codes.append((name, code))
    if len(modules) > 255 or len(codes) > 65535:
        raise ReplayError(f"config {config.name}: {len(modules)} modules and {len(codes)} "
                          "codes; the result tables hold at most 255 and 65535")
    return Numbering(tuple(modules), tuple(versions), tuple(codes),
                     tuple(declared_facts(module, code) for module, code in codes))


def config_codes(config: ScoringConfig) -> pa.Table:
    """Return the code numbering of ``config`` (``config_numbering``): code_no, module,
    code, and the fact names and units each code declares (``replay.evidence
    .declared_facts``; NULL for a module not registered here), by code_no."""
    numbering = config_numbering(config)
    codes, declared = numbering.codes, numbering.declared
    return pa.table({
        "code_no": pa.array(np.arange(len(codes), dtype=np.uint16)),
        "module": pa.array([m for m, _ in codes], pa.string()),
        "code": pa.array([c for _, c in codes], pa.string()),
        "fact_names": pa.array([d and d[0] for d in declared], pa.list_(pa.string())),
        "fact_units": pa.array([d and d[1] for d in declared], pa.list_(pa.string()))})


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
    frame = intents.loc[:, list(INTENT_COLUMNS)]  # a new frame (copy on write)
    for column in ("intent_id", "user_id", "symbol", "side", "timeframe", "order_type",
                   "source"):
        frame[column] = frame[column].astype(str)
    if not frame["intent_id"].is_unique:
        duplicated = frame["intent_id"][frame["intent_id"].duplicated()]
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
    frame["linked_trade_id"] = _optional_text(frame["linked_trade_id"])
    # intent ids are unique, so the order is total: Arrow's multi-key sort gives what a stable
    # sort would (text by code point, as pandas; a NaT as_of last). Symbol and timeframe, a
    # few hundred distinct texts, are sorted as their ranks: ties alone compare intent ids.
    keys = pa.table({column: pa.array(frame[column].dt.tz_convert(None).to_numpy(),
                                      from_pandas=True) if column == "as_of"
                     else _text_ranks(frame[column]) if column in ("symbol", "timeframe")
                     else pa.array(frame[column].array, from_pandas=True)
                     for column in INTENT_ORDER})
    order = pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in INTENT_ORDER])
    return frame.take(order.to_numpy()).reset_index(drop=True)


def _text_ranks(values: pd.Series) -> pa.Array:
    """Return each text's rank among the column's distinct texts in code point order (a
    missing text after them all), as a sort key that orders as the texts do."""
    text = pa.array(values.array, from_pandas=True)  # an Arrow-backed column: chunked
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    encoded = pc.dictionary_encode(text)
    distinct = np.array(encoded.dictionary.to_pylist(), dtype=object)
    ranks = np.empty(len(distinct) + 1, dtype=np.int64)
    ranks[np.argsort(distinct, kind="stable")] = np.arange(len(distinct))
    ranks[-1] = len(distinct)  # a missing text (-1) sorts last, as Arrow places a null
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    return pa.array(ranks[codes])


def _optional_text(values: pd.Series) -> pd.Series:
    """Return ``values`` as an object column of str, None where blank (``_blank``): as
    column operations when the values are text and None (the usual), else value by value."""
    objects = values.to_numpy(dtype=object)
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        blank = values.isna().to_numpy(bool, copy=True)  # a string column's missing: NaN
    elif {type(v) for v in objects} <= {str, type(None)}:
        blank = np.array(pd.isna(objects), dtype=bool)
    else:
        return pd.Series([None if _blank(v) else str(v) for v in objects], dtype=object,
                         index=values.index)
    blank[~blank] = objects[~blank] == ""
    out = objects.copy()
    out[blank] = None
    return pd.Series(out, dtype=object, index=values.index)


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
    array = None
    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        column = pa.chunked_array(pa.array(values)).cast(pa.large_string())
        # an Arrow string column as it is; a null's slot may hold bytes: lay those out afresh
        array = None if column.null_count else column.combine_chunks()
    if array is None:
        array = pa.array(values.to_numpy(dtype=object), type=pa.large_string(),
                         from_pandas=True)
    _, offsets, data = array.buffers()
    ends = np.frombuffer(offsets, dtype="<i8", count=array.offset + len(array) + 1)
    ends = ends[array.offset:] - ends[array.offset]
    start = int(np.frombuffer(offsets, dtype="<i8", count=array.offset + 1)[-1])
    missing = array.is_null().to_numpy(zero_copy_only=False).astype(np.uint8)
    text = b"" if data is None else memoryview(data)[start: start + int(ends[-1])]
    return missing.tobytes() + ends.tobytes() + bytes(text)


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
    (``latest_run_id``), so nothing defaults to fitting on a holdout. No intents:
    ReplayError, nothing stored.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {', '.join(PURPOSES)} (got {purpose!r})")
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (got {chunk_size})")
    if len(intents) == 0:  # a "done" run of nothing would read as a result
        raise ReplayError(f"nothing to replay: run {name!r} was given 0 intents (no run "
                          "was stored)")
    started = time.perf_counter()
    providers = dict(providers or {})
    own_executor = executor is None
    executor = executor or LocalProcessExecutor(workers=2)
    if chunk_size is None and mode == "intent":
        chunk_size = DEFAULT_CHUNK_SIZE  # (batch: batch_chunk_sizes of what is pending)
    # the run's processes (and this process's later runs) read each whole table once
    # between them, as memory-mapped files (in this process alone: its own tables suffice)
    shared = None if isinstance(executor, SerialExecutor) else process_reads_directory()
    # beside workers that fill the cores, this process's reads and writes run on one
    # DuckDB thread (as the workers' do): more only add their scheduling to the machine's
    threads = 1 if shared is not None else threads_limit()
    # a batch run's commits (a row group of results each) leave their part-filled row
    # groups as they are: merged at each chunk's close, or by the checkpoint of the run's
    # last write (its status: ~1 s at 1M, after the workers are done), they are read and
    # compressed again. The per-intent path's chunks of a few dozen intents are merged.
    deferred = vacuum_deferred() if mode == "batch" else nullcontext()
    try:
        with reads_shared(shared), threads_limited(threads), deferred:
            return _run(store, intents, config=config, name=name, executor=executor,
                        chunk_size=chunk_size, progress=progress, run_id=run_id, mode=mode,
                        outcomes=outcomes, label=label, trades=trades, providers=providers,
                        lookback_bars=lookback_bars, on_chunk=on_chunk, purpose=purpose,
                        outcome_rules=outcome_rules, started=started, shared_tables=shared)
    finally:
        if own_executor:
            executor.close()


def batch_chunk_sizes(n_intents: int, executor: Executor) -> list[int]:
    """Return the batch path's chunks for ``n_intents`` (their sizes, in order): one DuckDB
    row group of results each (DEFAULT_BATCH_CHUNK_SIZE intents: what the writer commits
    cheapest) while more than a row group per worker remains; then the rest shared evenly
    among the executor's ``workers`` (one when it does not say), in chunks of at least
    MIN_BATCH_CHUNK_SIZE, so that no worker waits while another computes a last chunk
    (workers take the next chunk as they finish one). A million intents on two workers: seven
    row groups and two chunks of 69,920; 10,000: two of 5,000; one process: row groups and
    the rest. Results do not depend on it."""
    workers = max(1, int(getattr(executor, "workers", 1) or 1))
    sizes: list[int] = []
    rest = n_intents
    while rest > workers * DEFAULT_BATCH_CHUNK_SIZE:
        sizes.append(DEFAULT_BATCH_CHUNK_SIZE)
        rest -= DEFAULT_BATCH_CHUNK_SIZE
    if workers == 1 or rest <= 0:
        return [*sizes, rest] if rest > 0 else sizes
    parts = max(1, min(workers, rest // MIN_BATCH_CHUNK_SIZE))
    size, extra = divmod(rest, parts)
    return sizes + [size + 1] * extra + [size] * (parts - extra)


#: Modules a worker imports on its first chunk that importing this one does not: the
#: exchange calendars' rules (imported when first asked, for a fast CLI start), their disk
#: cache, and modules this one imports where it uses them.
WORKER_IMPORTS = ("buddy.data.calendar_cache", "buddy.store.trades", "buddy.store.users",
                  "exchange_calendars", "replay.intents")


def worker_modules(providers: Mapping[str, PieceProvider]) -> tuple[str, ...]:
    """Return the modules a replay worker imports to evaluate a chunk with ``providers``
    (what a local pool's fork server imports once for all its workers)."""
    return tuple(sorted({__name__, *WORKER_IMPORTS,
                         *(str(p.__module__) for p in providers.values())}))


def _run(store: Store, intents: pd.DataFrame, *, config: ScoringConfig, name: str,
         executor: Executor, chunk_size: int | None, progress: bool, run_id: str | None, mode: Mode,
         outcomes: pd.DataFrame | None, label: bool, trades: pd.DataFrame | None,
         providers: dict[str, PieceProvider], lookback_bars: int,
         on_chunk: Callable[[ChunkCommitted], None] | None, purpose: str,
         outcome_rules: OutcomeRules | None, started: float, shared_tables: Path | None
         ) -> ReplayRun:
    start = getattr(executor, "start", None)
    if callable(start):  # workers start (and import) while this process sets the run up
        start(worker_modules(providers))
    # meanwhile the whole tables are read once, for the workers' first chunk to map
    ahead = _SharedAhead(store, whole_queries(providers) if (
        shared_tables is not None and mode == "batch") else ())
    try:
        return _run_body(store, intents, config=config, name=name, executor=executor,
                           chunk_size=chunk_size, progress=progress, run_id=run_id,
                           mode=mode, outcomes=outcomes, label=label, trades=trades,
                           providers=providers, lookback_bars=lookback_bars,
                           on_chunk=on_chunk, purpose=purpose, outcome_rules=outcome_rules,
                           started=started, shared_tables=shared_tables,
                           reads_done=ahead.join)
    finally:
        ahead.join()


class _SharedAhead:
    """Whole tables read into the run's shared directory by a thread of this process
    (``buddy.store.tables.share_ahead``) while it sets the run up and its workers start;
    ``join`` waits for it (before this process writes: it holds the file read-only
    meanwhile). No queries: no thread. A failed read is left to the workers, which read what
    is not shared and report their own errors."""

    def __init__(self, store: Store, queries: Sequence[WholeQuery]) -> None:
        self._thread: threading.Thread | None = None
        if queries:
            self._thread = threading.Thread(target=self._read, args=(store, queries),
                                            name="replay-share-ahead", daemon=True)
            self._thread.start()

    @staticmethod
    def _read(store: Store, queries: Sequence[WholeQuery]) -> None:
        with suppress(Exception):  # the workers read (and fail) on their own
            share_ahead(store, queries)

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()


def _run_body(store: Store, intents: pd.DataFrame, *, config: ScoringConfig, name: str,
              executor: Executor, chunk_size: int | None, progress: bool, run_id: str | None,
              mode: Mode, outcomes: pd.DataFrame | None, label: bool,
              trades: pd.DataFrame | None, providers: dict[str, PieceProvider],
              lookback_bars: int, on_chunk: Callable[[ChunkCommitted], None] | None,
              purpose: str, outcome_rules: OutcomeRules | None, started: float,
              shared_tables: Path | None, reads_done: Callable[[], None]) -> ReplayRun:
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

    frame["intent_no"] = np.arange(len(frame), dtype=np.int32)
    existing = run_row(store, run_id)
    run_key: int | None = None
    create: Callable[..., int] | None = None
    if existing is None:
        validate_intents(store, frame, config)
        # written with the first chunk's rows, while the workers evaluate the next chunks
        create = partial(_create_run, writer, run_id=run_id, name=name, config=config,
                         config_json=config_json, intents=frame, digest=digest,
                         context=context, purpose=purpose)
        done_nos: set[int] = set()
    else:
        run_key = int(existing["run_key"])
        _check_resumable(store, existing, config=config, digest=digest, context=context)
        reads_done()  # (this process writes now)
        if existing["purpose"] != purpose:
            raise ReplayError(f"run {run_id} is a {existing['purpose']!r} run, not "
                              f"{purpose!r}: use another name or run id")
        if existing["status"] == "done":
            return ReplayRun(run_id=run_id, name=existing["name"], config_hash=config.hash,
                             status="done", n_intents=int(existing["n_intents"]),
                             n_evaluated=0, n_skipped=int(existing["n_intents"]),
                             elapsed_s=time.perf_counter() - started, mode=mode)
        _set_status(writer, run_id, "running")
        done_nos = done_intent_nos(store, run_key)

    pending = frame[~frame["intent_no"].isin(done_nos)].reset_index(drop=True)
    sizes = batch_chunk_sizes(len(pending), executor) if chunk_size is None else chunk_size
    chunks = list(_chunks(pending, sizes, by_series=mode == "intent"))
    # the workers label outcomes from the bars they read anyway; given outcomes are merged
    # by the writer
    given = None if outcomes is None else outcomes.set_index("intent_id", drop=False)
    rules = outcome_rules if given is None and label else None
    linked = None
    if rules is not None:
        from replay.intents import database_trades

        linked = database_trades(store) if trades is None else trades
        linked = linked if len(linked) else None
    tasks = (ChunkTask(chunk_no=n, db_path=str(store.path), mode=mode,
                       config_json=config_json, lookback_bars=lookback_bars,
                       providers=tuple(sorted(providers.items())), intents=chunk,
                       shared_tables=None if shared_tables is None else str(shared_tables),
                       outcome_rules=rules, trades=linked)
             for n, chunk in enumerate(chunks))

    n_done = len(done_nos)
    try:
        with tqdm(total=len(frame), initial=n_done, disable=not progress, unit="intent",
                  desc=f"replay {name}") as bar:
            for index, handed in executor.map(evaluate_chunk, tasks):
                rows = handed.load() if isinstance(handed, ChunkFiles) else handed
                reads_done()  # (this process writes now)
                if run_key is None and create is not None:
                    make, create = create, None
                    run_key = make(status="running")
                assert run_key is not None
                chunk = chunks[index]
                write_chunk(writer, run_key, rows,
                            None if given is None else _given_outcomes(given, chunk))
                n_done += len(chunk)
                bar.update(len(chunk))
                if on_chunk is not None:
                    on_chunk(ChunkCommitted(run_id=run_id, chunk_no=index,
                                            n_intents=len(chunk), n_done=n_done,
                                            n_total=len(frame)))
    except BaseException:
        reads_done()
        if create is not None:  # validated, never written: the run is stored as failed
            with suppress(Exception):
                create(status="failed")
        elif run_key is not None:  # (not when writing the run failed: maybe another's)
            _set_status(writer, run_id, "failed", quiet=True)
        raise
    reads_done()
    if create is not None:  # nothing was pending (no chunk): the run is written now
        create(status="running")
    _finish(writer, run_id)
    return ReplayRun(run_id=run_id, name=name, config_hash=config.hash, status="done",
                     n_intents=len(frame), n_evaluated=len(pending), n_skipped=len(done_nos),
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


def _chunks(pending: pd.DataFrame, chunk_size: int | Sequence[int], *, by_series: bool
            ) -> Iterator[pd.DataFrame]:
    """Cut ``pending`` (canonical order) into chunks of ``chunk_size`` (or of these sizes, in
    order: the batch path's default); per series on the per-intent path (its pack cache
    works per series), across series on the batch path (it reads each series in a chunk
    once)."""
    if not by_series:
        sizes = (chunk_size if not isinstance(chunk_size, int) else
                 [chunk_size] * -(-len(pending) // chunk_size))
        bounds = np.cumsum([0, *sizes])
        for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            if start < len(pending):
                yield pending.iloc[start:stop].reset_index(drop=True)
        return
    step = chunk_size if isinstance(chunk_size, int) else max(chunk_size, default=1)
    for _, series in pending.groupby(["symbol", "timeframe"], sort=True):
        for start in range(0, len(series), step):
            yield series.iloc[start:start + step].reset_index(drop=True)


# ---------------------------------------------------------------------------- workers
#: Per worker process: orchestrators and numberings by config JSON.
_ORCHESTRATORS: OrderedDict[str, Orchestrator] = OrderedDict()
_NUMBERINGS: OrderedDict[str, Numbering] = OrderedDict()
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


def evaluate_chunk(task: ChunkTask) -> ChunkRows | ChunkFiles:
    """Evaluate one chunk read-only and return its rows (runs in a worker): as files in
    the run's shared directory when it has one here (``ChunkRows.spilled``)."""
    started = time.perf_counter()
    orchestrator = _cached(_ORCHESTRATORS, task.config_json,
                           lambda: Orchestrator(ScoringConfig.from_json(task.config_json)))
    numbering = _cached(_NUMBERINGS, task.config_json, lambda: config_numbering(
        ScoringConfig.from_json(task.config_json)))
    store: Store = ReadOnlyStore(task.db_path)
    share_reads(task.shared_tables)
    intents = task.intents.loc[:, list(INTENT_COLUMNS)]
    intent_nos = task.intents["intent_no"].to_numpy(dtype=np.int32)
    if task.mode == "batch":
        parts = []
        for start in range(0, len(intents), EVALUATION_BATCH_SIZE):
            part = slice(start, start + EVALUATION_BATCH_SIZE)
            ctx = build_batch_context(store, intents.iloc[part].reset_index(drop=True),
                                      lookback_bars=task.lookback_bars,
                                      providers=dict(task.providers))
            parts.append(batch_rows(task.chunk_no, ctx, run_batch(orchestrator, ctx),
                                    intent_nos[part], numbering))
            del ctx  # (its working set is the next part's)
        rows = joined_rows(parts)
    else:
        stamp = store.context_stamp()
        builder = ContextPackBuilder(store, lookback_bars=task.lookback_bars,
                                     providers=dict(task.providers))
        reports = []
        for row in intents.to_dict("records"):
            intent = intent_from_row(row)
            pack = builder.build(intent.user_id, intent.symbol, intent.timeframe,
                                 intent.as_of, stamp=stamp)
            reports.append(orchestrator.run(intent, pack, eval_id=intent.intent_id))
        rows = report_rows(task.chunk_no, reports, intent_nos, numbering)
    results = rows.results
    if task.outcome_rules is not None:
        # the outcomes in the chunk's own order: merged without a gather
        outcomes = label_chunk(store, intents, task.outcome_rules, task.trades)
        outcomes["intent_no"] = intent_nos
        results = _with_outcomes(results, outcomes)
    rows = replace(rows, results=results, elapsed_s=time.perf_counter() - started)
    # handed over as files where the writer's directory is this machine's too (a worker of
    # a cluster elsewhere does not have it: its rows go back pickled)
    if task.shared_tables is not None and Path(task.shared_tables).is_dir():
        return rows.spilled(task.shared_tables)
    return rows


def report_rows(chunk_no: int, reports: Sequence[BuddyReport], intent_nos: np.ndarray,
                numbering: Numbering, *, elapsed_s: float = 0.0) -> ChunkRows:
    """Return the replay rows of ``reports`` (``intent_nos``: their intents' intent_no, same
    order) under ``numbering`` (the run's config's)."""
    overall_score, verdict, n_issues = [], [], []
    module_cols: dict[str, list[Any]] = {k: [] for k in ("row", "module", "status", "score",
                                                         "severity", "n_issues")}
    issue_cols: dict[str, list[Any]] = {k: [] for k in ("row", "module", "issue_no", "code",
                                                        "severity", "evidence_json")}
    for row, report in enumerate(reports):
        overall_score.append(_score(report.overall_score))
        verdict.append(report.overall_severity.value)
        n_issues.append(len(report.all_issues))
        for result in report.modules:
            for key, value in (("row", row), ("module", result.module),
                               ("status", result.status.value), ("score", _score(result.score)),
                               ("severity", result.severity.value),
                               ("n_issues", len(result.issues))):
                module_cols[key].append(value)
            for n, issue in enumerate(result.issues):
                evidence = json.dumps([f.as_dict() for f in issue.evidence], sort_keys=True,
                                      default=str)
                for key, value in (("row", row), ("module", result.module), ("issue_no", n),
                                   ("code", issue.code), ("severity", issue.severity.value),
                                   ("evidence_json", evidence)):
                    issue_cols[key].append(value)
    return _chunk_rows(chunk_no, intent_nos, numbering, overall_score=overall_score,
                       verdict=verdict, n_issues=n_issues, modules=module_cols,
                       issues=issue_cols, elapsed_s=elapsed_s)


def _score(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _encode(values: Any, vocabulary: Sequence[str], field: str) -> np.ndarray:
    """Return each value's position in ``vocabulary``; raise ReplayError naming the field
    and the first value outside it. Text coded already (a pandas Categorical, or a Series
    of one) is looked up once per category."""
    seen, distinct = _factorized(values)
    lookup = np.append(pd.Index(list(vocabulary), dtype=object).get_indexer(distinct), -1)
    codes = lookup[seen]  # a missing value (-1) reads lookup's last entry: -1
    if (codes < 0).any():
        bad = np.asarray(values, dtype=object)[codes < 0][0]
        raise ReplayError(f"{field}: {bad!r} is not one of {', '.join(vocabulary)}")
    return codes.astype(np.int64)


def _factorized(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return each value's number among the distinct values (-1: missing) and those values:
    a Categorical's own codes and categories, else a factorize (a few distinct values over
    many rows: 3x faster than a get_indexer of every row)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.array
    if isinstance(values, pd.Categorical):
        return (np.asarray(values.codes, dtype=np.int64),
                np.asarray(values.categories, dtype=object))
    if isinstance(values, pd.Series) and pd.api.types.is_string_dtype(values.dtype) and (
            values.dtype != object):  # text pandas holds as Arrow: factorized as it is held
        seen, distinct = pd.factorize(values)
        return seen.astype(np.int64), np.asarray(distinct, dtype=object)
    seen, distinct = factorize_objects(np.asarray(values, dtype=object))
    return seen, np.asarray(distinct, dtype=object)


def _list_column(n: int, width: int, flat: np.ndarray, values: np.ndarray,
                 type_: pa.DataType) -> pa.ListArray:
    """Return n lists of ``width`` elements each, element ``flat[k]`` = ``values[k]`` and
    every other element NULL (the module did not run on that intent)."""
    data = np.zeros(n * width, dtype=values.dtype)
    mask = np.ones(n * width, dtype=bool)
    data[flat] = values
    mask[flat] = False
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width, pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(data, type=type_, mask=mask))


def _chunk_rows(chunk_no: int, intent_nos: np.ndarray, numbering: Numbering, *,
                overall_score: Any, verdict: Any, n_issues: Any,
                modules: Mapping[str, Any], issues: Mapping[str, Any],
                elapsed_s: float) -> ChunkRows:
    """Return the chunk's Arrow tables from column-wise report rows (both paths end here):
    ``modules`` long form (row, module, status, score, severity, n_issues), ``issues`` long
    form (row, module, issue_no, code, severity, and the facts typed as ``facts`` or as
    ``evidence_json``); rows index ``intent_nos``."""
    n, width = len(intent_nos), len(numbering.modules)
    intent_nos = np.asarray(intent_nos, dtype=np.int32)
    m_rows = np.asarray(modules["row"], dtype=np.int64)
    m_no = _encode(modules["module"], numbering.modules, "module")
    flat = m_rows * width + m_no
    results = pa.table({
        "intent_no": pa.array(intent_nos, pa.int32()),
        "overall_score": pa.array(np.asarray(overall_score, dtype=np.float64), pa.float64()),
        "verdict": pa.array(_encode(verdict, SEVERITIES, "overall_severity"), pa.uint8()),
        "n_issues": pa.array(np.asarray(n_issues, dtype=np.int16), pa.int16()),
        "module_scores": _list_column(n, width, flat, np.asarray(modules["score"],
                                                                 dtype=np.float64),
                                      pa.float64()),
        "module_status": _list_column(n, width, flat, _encode(
            modules["status"], MODULE_STATUSES, "module status").astype(np.uint8), pa.uint8()),
        "module_severity": _list_column(n, width, flat, _encode(
            modules["severity"], SEVERITIES, "module severity").astype(np.uint8), pa.uint8()),
        "module_n_issues": _list_column(n, width, flat, np.asarray(
            modules["n_issues"], dtype=np.int16), pa.int16())}, schema=RESULT_SCHEMA)
    i_module_no = _encode(issues["module"], numbering.modules, "issue module")
    # column-wise: a (module_no, distinct code) -> code_no table, then one gather (a
    # million issues are a million dict look-ups otherwise)
    seen, distinct = _factorized(issues["code"])
    numbers = numbering.code_nos()
    table = np.array([[numbers.get((module, code), -1) for code in distinct]
                      for module in numbering.modules], dtype=np.int64).reshape(
        width, len(distinct))
    code_nos = (np.where(seen < 0, -1, table[i_module_no, seen]) if len(seen)
                else np.zeros(0, dtype=np.int64))
    if (code_nos < 0).any():
        at = int(np.flatnonzero(code_nos < 0)[0])
        raise ReplayError(f"issue code {np.asarray(issues['code'], dtype=object)[at]!r} of "
                          f"module {numbering.modules[i_module_no[at]]!r} is not declared in "
                          "the module's codes (config_numbering)")
    i_rows = np.asarray(issues["row"], dtype=np.int64)
    facts = issues["facts"] if "facts" in issues else facts_from_json(
        np.asarray(issues["evidence_json"], dtype=object))
    facts, facts_no = chunk_fact_sets(facts, code_nos, numbering.declared)
    issue_table = pa.table({
        "intent_no": pa.array(intent_nos[i_rows], pa.int32()),
        "module_no": pa.array(i_module_no.astype(np.uint8), pa.uint8()),
        "issue_no": pa.array(np.asarray(issues["issue_no"], dtype=np.uint16), pa.uint16()),
        "code_no": pa.array(code_nos.astype(np.uint16), pa.uint16()),
        "severity": pa.array(_encode(issues["severity"], SEVERITIES, "issue severity"
                                     ).astype(np.uint8), pa.uint8()),
        "facts_no": pa.array(facts_no, pa.int32())}, schema=ISSUE_SCHEMA)
    fact_table = facts.select(FACTS_SCHEMA.names).add_column(
        0, "facts_no", pa.array(np.arange(facts.num_rows, dtype=np.int32), pa.int32()))
    return ChunkRows(chunk_no=chunk_no, results=results, issues=issue_table,
                     facts=fact_table.cast(FACT_SET_SCHEMA), elapsed_s=elapsed_s)


# ---------------------------------------------------------------------------- batch path
def joined_rows(parts: Sequence[ChunkRows]) -> ChunkRows:
    """Return one chunk's rows from the rows of its parts, in order (the same chunk_no): each
    part's fact numbers shifted past the parts' before it, as the writer shifts a chunk's
    past the run's stored ones. One part: itself."""
    if len(parts) == 1:
        return parts[0]
    if any(part.facts is None for part in parts):
        raise ReplayError("rows of a chunk's parts join only with their fact sets")
    issues, facts, start = [], [], 0
    for part in parts:
        assert part.facts is not None
        shift = pa.scalar(start, pa.int32())
        issues.append(part.issues.set_column(
            part.issues.schema.get_field_index("facts_no"), "facts_no",
            pc.add(part.issues.column("facts_no"), shift)))
        facts.append(part.facts.set_column(0, "facts_no", pc.add(part.facts.column(0), shift)))
        start += part.facts.num_rows
    return ChunkRows(chunk_no=parts[0].chunk_no,
                     results=pa.concat_tables([part.results for part in parts]),
                     issues=pa.concat_tables(issues), facts=pa.concat_tables(facts),
                     elapsed_s=sum(part.elapsed_s for part in parts))


def batch_rows(chunk_no: int, ctx: BatchContext, report: BatchReport, intent_nos: np.ndarray,
               numbering: Numbering, *, elapsed_s: float = 0.0) -> ChunkRows:
    """Return the replay rows of a batch report (what ``report_rows`` gives per intent;
    the text run_batch held as numbers (``report.encoded``) is passed as Categoricals, which
    ``_chunk_rows`` encodes by their categories)."""
    overall, modules, issues = report.overall, report.modules, report.issue_data
    module_text: np.ndarray | pd.Categorical = modules["module"].to_numpy(dtype=object)
    coded = report.encoded
    status: np.ndarray | pd.Categorical
    severity: np.ndarray | pd.Categorical
    if "module_status_no" in coded:  # numbered by run_batch (unless a module's text was odd)
        status = pd.Categorical.from_codes(coded["module_status_no"],
                                           categories=list(MODULE_STATUS_TEXT))
        severity = pd.Categorical.from_codes(coded["module_severity_rank"],
                                             categories=list(SEVERITY_BY_RANK))
    else:
        status = modules["status"].to_numpy(dtype=object)
        severity = modules["severity"].to_numpy(dtype=object)
    if "issue_code_no" in coded:  # the numbers run_batch held the text as
        names = list(coded["module_names"])
        module_text = pd.Categorical.from_codes(coded["module_order"], categories=names)
        issues = {**issues,
                  "module": pd.Categorical.from_codes(coded["issue_module_order"],
                                                      categories=names),
                  "code": pd.Categorical.from_codes(coded["issue_code_no"],
                                                    categories=list(coded["code_names"])),
                  "severity": pd.Categorical.from_codes(coded["issue_severity_rank"],
                                                        categories=list(SEVERITY_BY_RANK))}
    return _chunk_rows(
        chunk_no, intent_nos, numbering,
        overall_score=overall["overall_score"].to_numpy(np.float64),
        verdict=overall["overall_severity"],
        n_issues=overall["n_issues"].to_numpy(np.int64),
        modules={"row": modules["row"].to_numpy(np.int64),
                 "module": module_text, "status": status,
                 "score": modules["score"].to_numpy(np.float64), "severity": severity,
                 "n_issues": modules["n_issues"].to_numpy(np.int64)},
        issues=issues, elapsed_s=elapsed_s)


class ReadOnlyStore(Store):
    """A Store that refuses to write: what replay workers (and piece providers) get."""

    def __init__(self, path: str | Path, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        super().__init__(path, lock_timeout_s=lock_timeout_s, migrate=False)

    @contextmanager
    def connect(self, *, read_only: bool = False, lock_timeout_s: float | None = None
                ) -> Iterator[Any]:
        """Yield a read-only connection; refuse a read-write one."""
        if not read_only:
            raise ReplayError("a replay worker may not write to the store (the run's own "
                              "process is its only writer)")
        with super().connect(read_only=True, lock_timeout_s=lock_timeout_s) as con:
            yield con


# ---------------------------------------------------------------------------- outcomes
def label_chunk(store: Store, intents: pd.DataFrame, rules: OutcomeRules,
                trades: pd.DataFrame | None = None) -> pd.DataFrame:
    """Return the outcomes of ``intents`` (INTENT_COLUMNS) as OUTCOME_COLUMNS, in their
    order: simulated from the stored bars after each as_of under ``rules``
    (``replay.outcomes.label_outcomes``), the real result of a closed trade of ``trades``
    replacing it where an intent links to one (``label_with_trades``). What a worker does
    for its chunk: each intent's outcome reads only its own series' bars after its as_of,
    so it does not depend on which intents share the chunk."""
    from replay.intents import load_outcome_inputs
    from replay.outcomes import label_outcomes, label_with_trades

    bars, actions = load_outcome_inputs(store, intents)
    labelled = label_outcomes(intents, bars, actions, rules=rules)
    if trades is not None and len(trades):
        labelled = label_with_trades(labelled, trades, intents)
    return labelled.loc[:, list(OUTCOME_COLUMNS)]


def _given_outcomes(given: pd.DataFrame, chunk: pd.DataFrame) -> pd.DataFrame:
    """Return the rows of ``given`` (OUTCOME_COLUMNS, indexed by intent_id) of the chunk's
    intents, with their intent_no."""
    rows = given.loc[given.index.intersection(chunk["intent_id"])]
    rows = rows.reset_index(drop=True).loc[:, list(OUTCOME_COLUMNS)]
    rows["intent_no"] = chunk.set_index("intent_id")["intent_no"].reindex(
        rows["intent_id"]).to_numpy()
    return rows


# ---------------------------------------------------------------------------- writes
def _create_run(store: Store, *, run_id: str, name: str, config: ScoringConfig,
                config_json: str, intents: pd.DataFrame, digest: str,
                context: Mapping[str, Any], purpose: str, status: str = "running") -> int:
    """Write the run (with ``status``), its intents (with intent_no), modules and codes in
    one transaction; return its run_key."""
    sources = ",".join(sorted(intents["source"].unique())) or "none"
    run = pd.DataFrame([{
        "run_id": run_id, "name": name, "config_name": config.name,
        "config_version": config.version, "config_hash": config.hash,
        "config_json": config_json, "intent_source": sources, "intents_hash": digest,
        "context_json": canonical_json(context),
        "market_data_version": store.market_data_version(),
        "data_start": intents["as_of"].min() if len(intents) else pd.NaT,
        "data_end": intents["as_of"].max() if len(intents) else pd.NaT,
        "n_intents": len(intents), "status": status,
        "created_at": pd.Timestamp.now(tz="UTC"), "finished_at": pd.NaT,
        "purpose": purpose}])
    rows = pa.table({"run_id": pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(len(intents), dtype=np.int32)), pa.array([run_id])),
        **{column: _arrow_column(intents[column]) for column in intents.columns}})
    numbering = config_numbering(config)
    modules = pd.DataFrame({"module_no": np.arange(len(numbering.modules), dtype=np.uint8),
                            "module": list(numbering.modules),
                            "version": list(numbering.versions)})
    return create_run(store, run, rows, modules, config_codes(config))


def _arrow_column(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """Return a column as Arrow for the store (which reads Arrow text without a Python
    object per value): times as UTC microseconds, missing values as nulls."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        micros = values.dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
        return pa.array(micros, type=pa.timestamp("us", tz="UTC"), from_pandas=True)
    if isinstance(values.dtype, np.dtype):
        return pa.array(values.to_numpy(), from_pandas=True)
    return pa.array(values.array, from_pandas=True)


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


def write_chunk(store: Store, run_key: int, rows: ChunkRows,
                outcomes: pd.DataFrame | None) -> None:
    """Write one chunk under ``run_key`` in ONE transaction (``store``: the run's single
    writer): the wide result rows with the outcome columns merged in by intent_no, the
    issue rows and their fact sets, one bulk insert each. ``outcomes``: OUTCOME_COLUMNS +
    intent_no (None: no outcomes; an intent without a row gets NULL outcome columns). A
    killed run never leaves half a chunk; an intent written twice is refused whole by the
    results' key. Rows whose results carry their outcomes already (labelled by the worker)
    take no ``outcomes``."""
    results = rows.results
    if outcomes is not None and len(outcomes):
        if "exit_reason" in results.column_names:
            raise ReplayError(f"chunk {rows.chunk_no}: its rows carry their outcomes; "
                              "given outcomes would label them twice")
        results = _with_outcomes(results, outcomes)
    write_results(store, _keyed(results, run_key), _keyed(rows.issues, run_key),
                  None if rows.facts is None else _keyed(rows.facts, run_key))


def _keyed(table: pa.Table, run_key: int) -> pa.Table:
    """Return ``table`` with the run_key column first."""
    return table.add_column(0, "run_key", pa.array(
        np.full(table.num_rows, run_key, dtype=np.int32), pa.int32()))


def _with_outcomes(results: pa.Table, outcomes: pd.DataFrame) -> pa.Table:
    """Return ``results`` with the outcome columns (coded, typed as stored) of each row's
    intent_no appended (outcomes in the results' own order, the labeller's, are not
    gathered again)."""
    at = pd.Index(outcomes["intent_no"].to_numpy(dtype=np.int64)).get_indexer(
        results.column("intent_no").to_numpy().astype(np.int64))
    take = None if len(at) == len(outcomes) and np.array_equal(at, np.arange(len(at))) else (
        pa.array(at, pa.int64(), mask=at < 0))
    for column, type_ in _OUTCOME_TYPES.items():
        values = outcomes[column]
        if column == "exit_reason":
            array = pa.array(_encode(values, EXIT_REASONS, "exit_reason"))
        elif column == "outcome_source":
            array = pa.array(_encode(values, OUTCOME_SOURCES, "outcome_source"))
        elif pa.types.is_timestamp(type_):  # as UTC microseconds (finer units truncated)
            if not isinstance(values.dtype, pd.DatetimeTZDtype):
                values = pd.to_datetime(values, utc=True)
            array = pa.array(values.dt.tz_convert("UTC"), from_pandas=True).cast(
                type_, safe=False)
        else:
            array = pa.array(values, from_pandas=True)
        array = array.cast(type_)
        results = results.append_column(column, array if take is None else array.take(take))
    return results


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


def _run_key(store: Store, run_id: str) -> tuple[int, dict[str, Any]]:
    row = run_row(store, run_id)
    if row is None:
        raise ReplayError(f"no replay run {run_id!r} in {store.path}")
    return int(row["run_key"]), row


def results_frame(store: Store, run_id: str) -> pd.DataFrame:
    """Return RESULT_COLUMNS + one score__<module> per configured module (by module name; NaN
    when skipped or errored) + the outcome columns (NaN/None without an outcome): one row per
    evaluated intent, by symbol, timeframe, as_of and intent id."""
    run_key, row = _run_key(store, run_id)
    modules = [m["name"] for m in json.loads(row["config_json"])["modules"]]
    numbers = dict(zip(*(run_modules(store, run_key)[c] for c in ("module", "module_no")),
                       strict=True))
    return run_results(store, run_id, run_key,
                       score_columns=[(f"{SCORE_PREFIX}{m}", numbers.get(m)) for m in modules],
                       severities=SEVERITIES, exit_reasons=EXIT_REASONS,
                       outcome_sources=OUTCOME_SOURCES)


def module_results_frame(store: Store, run_id: str) -> pd.DataFrame:
    """Return every module result of a run (one row per intent and module that ran: run_id,
    intent_id, module, version, status, score, severity, n_issues), by intent and module."""
    run_key, _ = _run_key(store, run_id)
    return run_module_results(store, run_id, run_key, statuses=MODULE_STATUSES,
                              severities=SEVERITIES)


def issues_frame(store: Store, run_id: str, evidence: bool = False) -> pd.DataFrame:
    """Return ISSUE_COLUMNS + issue_no: every issue every module raised, by intent, module
    and issue number; ``evidence``: + evidence_json (the issue's facts as a JSON list)."""
    run_key, _ = _run_key(store, run_id)
    issues = run_issues(store, run_id, run_key, severities=SEVERITIES)
    columns = [*ISSUE_COLUMNS, "issue_no"]
    if evidence:
        keys = ["intent_no", "module_no", "issue_no"]
        facts = issue_evidence(store, run_key)
        found = facts.loc[:, keys].assign(evidence_json=render_evidence(facts))
        issues = issues.merge(found, on=keys, how="left", validate="one_to_one")
        columns.append("evidence_json")
    return issues.loc[:, columns]


def result_table_hash(store: Store, run_id: str) -> str:
    """Return the SHA-256 of the run's result tables (replay_modules, replay_codes,
    replay_results, replay_issues) in canonical order, run key excluded, column by column
    (each column's name, its missing mask and its values as bytes)."""
    run_key, _ = _run_key(store, run_id)
    digest = hashlib.sha256(b"replay results v2\n")
    for table, frame in run_result_tables(store, run_key).items():
        digest.update(f"{table} n={frame.num_rows}\n".encode())
        for name in frame.column_names:
            digest.update(f"{name}\n".encode())
            digest.update(_array_bytes(frame.column(name).combine_chunks()))
    return digest.hexdigest()


def _array_bytes(array: pa.Array) -> bytes:
    """Return an Arrow array's values as bytes: the missing mask, then lists as lengths +
    their flattened elements, floats as little-endian IEEE-754 with one NaN, text through
    ``_text_bytes``, everything else as int64."""
    import pyarrow.compute as pc

    missing = array.is_null().to_numpy(zero_copy_only=False).astype(np.uint8).tobytes()
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
        return missing + lengths.astype("<i8").tobytes() + _array_bytes(array.flatten())
    if pa.types.is_floating(array.type):
        floats = array.to_numpy(zero_copy_only=False).astype("<f8")
        floats[np.isnan(floats)] = np.nan  # one NaN bit pattern (and NULLs read as NaN)
        return missing + floats.tobytes()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return missing + _text_bytes(pd.Series(array.to_pylist(), dtype=object))
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        array = array.cast(pa.int64())
    elif pa.types.is_boolean(array.type):
        array = array.cast(pa.uint8())
    values = pc.fill_null(array, 0).to_numpy(zero_copy_only=False).astype("<i8")
    return missing + values.tobytes()
