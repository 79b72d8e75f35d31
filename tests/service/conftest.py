"""Shared fixtures of the service tests: ONE copy of the demo database per session, served by
``create_app`` through a TestClient (the lifespan runs), with API keys for two users.

The copy is written by the tests (evaluations, intents, reviews, feedback): a test counts
rows of its own user before and after, or makes its own ids, never assumes an empty table.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from buddy.service.app import create_app
from buddy.service.auth import create_key, revoke
from buddy.store import Store

#: The demo trader (trades, fills, an account) and a user with nothing stored.
DEMO = "demo"
OTHER = "other"


@dataclass(frozen=True)
class ServedDemo:
    """The served copy: its file, the app (lifespan started), a client, and keys."""

    db: Path
    store: Store
    app: FastAPI
    client: TestClient
    keys: dict[str, str]  # user -> active key
    revoked_key: str  # a key of DEMO that was revoked

    def headers(self, user: str = DEMO) -> dict[str, str]:
        """Return the X-API-Key header of ``user``."""
        return {"X-API-Key": self.keys[user]}


@pytest.fixture(scope="session")
def served_demo(demo_store: Store, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[ServedDemo]:
    """Serve a copy of the demo database for the session (read by every service test)."""
    folder = tmp_path_factory.mktemp("service")
    path = folder / "buddy.duckdb"
    shutil.copy(demo_store.path, path)
    store = Store(path)
    keys = {user: create_key(store, user, label="tests").key for user in (DEMO, OTHER)}
    old = create_key(store, DEMO, label="revoked")
    revoke(store, old.key_id)
    app = create_app(path, config_ref="default")
    with TestClient(app) as client:
        yield ServedDemo(db=path, store=store, app=app, client=client, keys=keys,
                         revoked_key=old.key)


@pytest.fixture(scope="session")
def aapl_idea() -> dict[str, object]:
    """Return the issue's AAPL long as an inline intent (2012 prices, pre-split)."""
    return {"symbol": "AAPL", "side": "long", "timeframe": "1d", "entry": 555.0,
            "stop": 540.0, "target": 600.0, "size": 100, "as_of": "2012-06-01",
            "horizon": 10}
