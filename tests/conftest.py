"""Shared fixtures: real DuckDB files in temporary folders, built from the bundled real data."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from buddy.store import Store


@pytest.hookimpl(wrapper=True)  # after every other hook has added its marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]
                                  ) -> Iterator[None]:
    """Send the tests of a module that use one of its module-scoped fixtures to one worker,
    and make ``--dist loadgroup`` honour every xdist_group mark.

    loadgroup deals ungrouped tests out one by one, so the tests of one module landed on both
    workers and each worker built the module's fixtures (a regime job, a real replay) again;
    a test already in a group keeps its group. xdist 3.8 passes a test's group to the
    scheduler as a suffix of its node id, written to ``item._nodeid``, which pytest 9.2 no
    longer reads (pytest-dev/pytest-xdist#1386, fix pending in #1388): no group took effect.
    Until a release fixes it, the suffix goes into the structured id here, as #1388 does.
    """
    yield
    for item in items:
        if any(item.iter_markers("xdist_group")):
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is not None and any(defs and defs[-1].scope == "module"
                                    for defs in info.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    if not getattr(config.option, "loadgroup", False):
        return  # not a worker of an xdist loadgroup run
    from _pytest.nodeid import coerce_node_id

    scopes: dict[str, list[pytest.Item]] = {}
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        # a pytest that still reads _nodeid has had the suffix from xdist already
        if names and hasattr(item, "_id") and "@" not in item.nodeid.rsplit("]", 1)[-1]:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(names)}")
        scopes.setdefault("_".join(names) or item.nodeid, []).append(item)
    # the Makefile runs with --no-loadscope-reorder, so units are dealt in this order: the
    # longest known units first (xdist's own reorder puts a one-test unit such as the
    # two-minute shared-file run last, where the other worker idles while it runs), then
    # the rest by size, as xdist's reorder would
    ranked = sorted(scopes.items(), key=lambda kv: (
        LONG_UNITS.index(kv[0]) if kv[0] in LONG_UNITS else len(LONG_UNITS), -len(kv[1])))
    items[:] = [item for _, unit in ranked for item in unit]


#: The xdist groups that take longest (seconds of one worker in a full run), dealt first.
LONG_UNITS = ("sharing", "batch_cases", "noise", "evaluator_kit")


@pytest.fixture(scope="session", autouse=True)
def _isolated_experiment_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Point MLflow at an empty store for the session: a developer's own promotions in the
    repo's mlruns/ must never change what the tests evaluate with."""
    import os

    path = tmp_path_factory.mktemp("mlruns") / "mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{path}"
    os.environ.pop("BUDDY_SCORING_MODEL", None)


@pytest.fixture(scope="session", autouse=True)
def _session_calendar_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the exchange-calendar cache inside this run's temporary folder, shared by its
    xdist workers and the processes they start: the tests never write to the user's
    ~/.cache, and never read a calendar an earlier run left there."""
    import os

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    os.environ["BUDDY_CACHE_DIR"] = str(base / "calendar-cache")


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a store holding the bundled real data and its features (built once, read-only
    by convention: tests that write use their own store)."""
    from buddy.jobs.features import run_features_job
    from buddy.jobs.load import load_sample_into

    store = Store(tmp_path_factory.mktemp("sample") / "buddy.duckdb")
    load_sample_into(store)
    run_features_job(store, progress=False)
    return store


@pytest.fixture(scope="session")
def truncated_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory
                    ) -> Callable[[str, datetime], Store]:
    """Return a factory of stores holding only one symbol's bars closed by t, with features
    computed from that truncated history alone."""
    from buddy.jobs.features import run_features_job

    cache: dict[tuple[str, datetime], Store] = {}

    def make(symbol: str, as_of: datetime) -> Store:
        key = (symbol, pd.Timestamp(as_of))
        if key not in cache:
            path = tmp_path_factory.mktemp("truncated") / "buddy.duckdb"
            store = Store(path)
            tickers = sample_store.query("SELECT * FROM tickers WHERE symbol = ?", [symbol])
            bars = sample_store.query("SELECT * FROM bars WHERE symbol = ? AND ts_close <= ?",
                                      [symbol, as_of])
            actions = sample_store.query("SELECT * FROM corporate_actions WHERE symbol = ? "
                                         "AND ex_date <= CAST(? AS DATE)", [symbol, as_of])
            store.write_market_data(tickers=tickers, bars=bars, corporate_actions=actions)
            run_features_job(store, progress=False)
            cache[key] = store
        return cache[key]

    return make


@pytest.fixture
def sample_db(sample_store: Store, tmp_path: Path) -> Path:
    """Return the path of a private, writable copy of ``sample_store``'s file."""
    path = tmp_path / "sample-copy" / "buddy.duckdb"
    path.parent.mkdir()
    shutil.copy(sample_store.path, path)
    return path


@pytest.fixture
def empty_store(tmp_path: Path) -> Store:
    """Return a freshly migrated, empty store."""
    return Store(tmp_path / "buddy.duckdb")


# ---------------------------------------------------------------- the demo trader
# ``demo_store`` is a copy of ``sample_store`` with the demo trader's whole history (every
# DEMO_SERIES, 881 trades) loaded through the broker import and its entry facts refreshed
# (about 6 s once per session and worker). Read-only by convention: a test that writes copies
# it first (``demo_store_copy``).
@pytest.fixture(scope="session")
def demo_store(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Return a store holding the bundled real data, the demo trader's history over every
    demo series and its entry facts (built once; read-only by convention)."""
    from buddy.jobs.strategy import refresh_entry_facts
    from buddy.trades.demo_history import load_demo_history

    folder = tmp_path_factory.mktemp("demo")
    path = folder / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    store = Store(path)
    load_demo_history(store, user_id="demo", folder=folder / "files")
    refresh_entry_facts(store, "demo")
    return store


@pytest.fixture(scope="session")
def demo_facts(demo_store: Store) -> pd.DataFrame:
    """Return the demo trader's stored entry facts (read_entry_facts, every trade)."""
    from buddy.store.strategy import read_entry_facts

    return read_entry_facts(demo_store, "demo")


@pytest.fixture
def demo_store_copy(demo_store: Store, tmp_path: Path) -> Callable[[], Store]:
    """Return a factory of writable copies of ``demo_store`` (one file per call)."""
    made = 0

    def copy() -> Store:
        nonlocal made
        made += 1
        path = tmp_path / f"demo_copy_{made}.duckdb"
        shutil.copy(demo_store.path, path)
        return Store(path)

    return copy
