"""Fixtures of the batch tests: real intents on the sample data with every standard piece,
and the contract cases, as (intent, pack) pairs built by the ContextPackBuilder."""

from __future__ import annotations

import copyreg
import os
import pickle
from pathlib import Path
from types import MappingProxyType

import pandas as pd
import pytest

from buddy.context.builder import ContextPackBuilder
from buddy.context.pack import ContextPack
from buddy.domain import TradeIntent
from buddy.jobs.levels import run_levels_job
from buddy.jobs.regime import run_regime_job
from buddy.store import Store
from replay.engine import intent_from_row, normalize_intents, standard_providers
from replay.intents import generate_intents
from tests.evaluator_cases import contract_cases
from tests.replay_engine.conftest import copy_store, mirrored, with_replay_user

Case = tuple[TradeIntent, ContextPack]
SERIES = (("AAPL", "1d"), ("MSFT", "1d"), ("EURUSD", "1h"))
#: The session fixtures below cost about a minute of CPU per worker that builds them (the
#: regime and levels jobs, then ~220 packs built one by one).
SHARED = frozenset({"batch_store", "batch_intents", "real_cases", "all_cases"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test that uses the shared batch fixtures in the xdist group "batch_cases",
    so one worker builds them (a file without the group mark had the other worker build
    them all again)."""
    for item in items:
        if SHARED.isdisjoint(getattr(item, "fixturenames", ())):
            continue
        if not any(item.iter_markers("xdist_group")):
            item.add_marker(pytest.mark.xdist_group("batch_cases"))


@pytest.fixture(scope="session")
def batch_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The sample store with the replay user and regime and key-level snapshots."""
    store = with_replay_user(copy_store(sample_store, Path(tmp_path_factory.mktemp("batch"))))
    symbols = sorted({s for s, _ in SERIES})
    timeframes = sorted({t for _, t in SERIES})
    run_regime_job(store, symbols, timeframes, workers=1, progress=False)
    run_levels_job(store, symbols, timeframes, workers=1, progress=False)
    return store


@pytest.fixture(scope="module")
def gapped(batch_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The batch store without AAPL's daily bars of 10-14 January 2005 (missing sessions)."""
    store = copy_store(batch_store, Path(tmp_path_factory.mktemp("gapped")))
    with store.transaction() as con:
        con.execute("DELETE FROM bars WHERE symbol = 'AAPL' AND timeframe = '1d' AND "
                    "ts >= '2005-01-10' AND ts < '2005-01-15'")
    return store


@pytest.fixture(scope="session")
def batch_intents(batch_store: Store) -> pd.DataFrame:
    """About 350 real intents from every generator: AAPL daily across its 2005 split (every
    bar around it), MSFT daily, EURUSD hourly; each with its mirror on the other side."""
    parts = [
        generate_intents(batch_store, "random", symbols=["AAPL"], timeframe="1d",
                         start="2004-09-01T00:00Z", end="2005-12-31T00:00Z", seed=5,
                         entry_probability=0.08),
        generate_intents(batch_store, "random", symbols=["AAPL"], timeframe="1d",
                         start="2005-02-22T00:00Z", end="2005-03-08T00:00Z", seed=6,
                         entry_probability=1.0),
        generate_intents(batch_store, "ma_cross", symbols=["MSFT"], timeframe="1d",
                         start="2005-01-01T00:00Z", end="2009-12-31T00:00Z"),
        generate_intents(batch_store, "prior_high_breakout", symbols=["MSFT"],
                         timeframe="1d", start="2008-01-01T00:00Z", end="2008-12-31T00:00Z"),
        generate_intents(batch_store, "vwap_pullback", symbols=["EURUSD"], timeframe="1h",
                         start="2017-03-01T00:00Z", end="2017-04-15T00:00Z"),
        generate_intents(batch_store, "random", symbols=["EURUSD"], timeframe="1h",
                         start="2017-03-01T00:00Z", end="2017-04-15T00:00Z", seed=7,
                         entry_probability=0.03),
    ]
    frame = pd.concat(parts, ignore_index=True).drop_duplicates("intent_id")
    return normalize_intents(mirrored(frame.reset_index(drop=True)))


@pytest.fixture(scope="session")
def real_cases(batch_store: Store, batch_intents: pd.DataFrame) -> list[Case]:
    """(intent, pack) of every batch intent, packs from the builder with every standard
    provider: what the per-intent replay path evaluates.

    Development aid: with $BUDDY_BATCH_CASES naming a file, the cases are read from it when it
    exists and written to it otherwise (CI never sets it: the cases are built fresh there).
    """
    cache = os.environ.get("BUDDY_BATCH_CASES")
    if cache and Path(cache).exists():
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    builder = ContextPackBuilder(batch_store, providers=standard_providers())
    cases = []
    # One read-only connection for every pack (each build opened its own: about a tenth of
    # the time); the packs are the same, nothing writes to the store meanwhile.
    with batch_store.reading():
        for row in batch_intents.to_dict("records"):
            intent = intent_from_row(row)
            cases.append((intent, builder.build(intent.user_id, intent.symbol,
                                                intent.timeframe, intent.as_of)))
    if cache:
        copyreg.pickle(MappingProxyType, lambda m: (mapping_proxy, (dict(m),)))
        partial = Path(cache + ".partial")
        with open(partial, "wb") as fh:
            pickle.dump(cases, fh)
        partial.replace(cache)
    return cases


def mapping_proxy(values: dict) -> MappingProxyType:
    """Rebuild a MappingProxyType (MarketData.latest_features) from the development cache."""
    return MappingProxyType(values)


@pytest.fixture(scope="session")
def all_cases(real_cases: list[Case]) -> list[Case]:
    """The real cases and the contract cases (factories: edge cases real data lacks)."""
    return [*real_cases, *contract_cases()]
