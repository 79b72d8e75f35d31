"""Fixtures of the replay engine tests: a writable copy of the sample store with a replay
user, real generated intents over three series, and reference runs made once."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from buddy.config import ScoringConfig, default_scoring_config
from buddy.store import Store
from buddy.store.core import migrations
from buddy.users.provider import account_provider
from buddy.users.store import set_user
from replay.engine import result_table_hash, run_replay
from replay.executors import LocalProcessExecutor, SerialExecutor
from replay.intents import generate_intents

USER = "replay"
#: The account piece lets risk_reward and exit_plan run (they require it).
ACCOUNT = {"account": account_provider}


def same_values(a: object, b: object) -> bool:
    """Equal values, NaN equal to NaN (Python's == says a NaN differs from itself)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def copy_store(store: Store, folder: Path) -> Store:
    """Return a copy of ``store``'s file in ``folder`` (the WAL too, when there is one)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "buddy.duckdb"
    shutil.copy(store.path, target)
    wal = store.path.with_name(store.path.name + ".wal")
    if wal.exists():
        shutil.copy(wal, target.with_name(target.name + ".wal"))
    return Store(target)


def with_replay_user(store: Store) -> Store:
    """Give ``store`` the account the generated intents' user trades from."""
    set_user(store, USER, equity=100_000.0, base_currency="USD")
    return store


def mirrored(intents: pd.DataFrame) -> pd.DataFrame:
    """Return each intent plus its mirror (the other side, same risk and reward distances,
    same bar): two questions about one ContextPack."""
    mirror = intents.copy()
    long = mirror["side"] == "long"
    mirror["side"] = mirror["side"].where(~long, "short").where(long, "long")
    entry = mirror["proposed_entry"]
    mirror["proposed_stop"] = 2 * entry - intents["proposed_stop"]
    mirror["proposed_target"] = 2 * entry - intents["proposed_target"]
    mirror["intent_id"] = mirror["intent_id"] + "-mirror"
    keep = mirror["proposed_target"].isna() | (mirror["proposed_target"] > 0)
    return pd.concat([intents, mirror[keep]], ignore_index=True)


@dataclass(frozen=True)
class Reference:
    """A run made once per session, to compare other runs with."""

    store: Store
    run_id: str
    hash: str
    intents: pd.DataFrame
    elapsed_s: float


@pytest.fixture(scope="session")
def config() -> ScoringConfig:
    return default_scoring_config()


@pytest.fixture(scope="session")
def replay_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    return with_replay_user(copy_store(sample_store, tmp_path_factory.mktemp("replay")))


@pytest.fixture(scope="session")
def intents(replay_store: Store) -> pd.DataFrame:
    """About 220 real intents: AAPL daily across its 2005 split, MSFT daily, EURUSD hourly."""
    parts = [
        generate_intents(replay_store, "random", symbols=["AAPL"], timeframe="1d",
                         start="2004-09-01T00:00Z", end="2005-12-31T00:00Z", seed=3,
                         entry_probability=0.15),
        # every bar around AAPL's 2:1 split of 2005-02-28
        generate_intents(replay_store, "random", symbols=["AAPL"], timeframe="1d",
                         start="2005-02-22T00:00Z", end="2005-03-08T00:00Z", seed=4,
                         entry_probability=1.0),
        generate_intents(replay_store, "random", symbols=["MSFT"], timeframe="1d",
                         start="2003-01-01T00:00Z", end="2003-12-31T00:00Z", seed=3,
                         entry_probability=0.08),
        generate_intents(replay_store, "random", symbols=["EURUSD"], timeframe="1h",
                         start="2017-03-01T00:00Z", end="2017-04-15T00:00Z", seed=3,
                         entry_probability=0.04),
    ]
    frame = pd.concat(parts, ignore_index=True).drop_duplicates("intent_id")
    return mirrored(frame.reset_index(drop=True))


@pytest.fixture(scope="session")
def subset(intents: pd.DataFrame) -> pd.DataFrame:
    """About 40 of the intents, every series represented."""
    return intents.iloc[::6].reset_index(drop=True)


@pytest.fixture(scope="session")
def reference(replay_store: Store, intents: pd.DataFrame, config: ScoringConfig) -> Reference:
    """The batch path over every intent, with the account piece, in this process."""
    warm_up = intents.groupby(["symbol", "timeframe"]).head(1)  # calendars, imports
    run_replay(replay_store, warm_up, config=config, name="warm-up", mode="batch",
               executor=SerialExecutor(), providers=ACCOUNT, progress=False, label=False)
    run = run_replay(replay_store, intents, config=config, name="reference", mode="batch",
                     executor=SerialExecutor(), providers=ACCOUNT, progress=False)
    return Reference(replay_store, run.run_id, result_table_hash(replay_store, run.run_id),
                     intents, run.elapsed_s)


@pytest.fixture(scope="session")
def subset_reference(replay_store: Store, subset: pd.DataFrame, config: ScoringConfig
                     ) -> Reference:
    """The batch path over the subset, with the account piece, in this process."""
    run = run_replay(replay_store, subset, config=config, name="subset-reference",
                     mode="batch", executor=SerialExecutor(), providers=ACCOUNT,
                     progress=False)
    return Reference(replay_store, run.run_id, result_table_hash(replay_store, run.run_id),
                     subset, run.elapsed_s)


@pytest.fixture(scope="session")
def local_executor() -> Iterator[LocalProcessExecutor]:
    """Two worker processes, spawned once for every test that needs them."""
    with LocalProcessExecutor(workers=2) as executor:
        yield executor


def file_at_version(path: Path, version: int) -> duckdb.DuckDBPyConnection:
    """Return an open connection to a new file at ``path`` holding the schema as migrations
    1..``version`` left it (and recorded them), the way an older release wrote it; the caller
    fills it and closes it."""
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR "
                "NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
    for number, name, sql in migrations():
        if number <= version:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [number, name])
    return con
