"""Fixtures of the widget tests: one Voila server for every browser test of a session.

Starting Voila (a Jupyter server in its own process) costs seconds of CPU; each page a
browser opens still gets a kernel of its own that runs the notebook afresh, so the browser
tests share the server, not the page. Each test works as a user of its own on the one
database: what one test writes (an evaluation logged, a journal entry) belongs to its user
and is not what the other reads.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from buddy.store import Store
from buddy.store.portfolio import record_equity
from buddy.users.store import set_user

REPO = Path(__file__).resolve().parents[2]
SERVER_START_S = 180  # Voila answering HTTP
#: The user of the workbench page's test (an account, so the risk checks run).
USER = "browser-user"
#: The user of the chat panel's test: equity known from 2000 ("risk half a percent" sizes
#: from it as of 2012).
CHAT_USER = "chat-user"
CHAT_EQUITY = 100_000.0  # USD


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/voila/static/")
        connection.getresponse().read()
        return True  # any HTTP answer, even a 404, means the server is up
    except OSError:
        return False
    finally:
        connection.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop Voila and its kernels (their own process group, started by the fixture)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def served(sample_store: Store, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, Path]]:
    """Serve the app on a free port over a copy of the sample database holding both browser
    users' accounts; yield the URL and Voila's log file (the browser tests are one xdist
    group, so one worker starts the server once)."""
    folder = tmp_path_factory.mktemp("served")
    db = folder / "buddy.duckdb"
    shutil.copy(sample_store.path, db)
    store = Store(db)
    set_user(store, USER, equity=100_000.0)
    set_user(store, CHAT_USER, equity=CHAT_EQUITY)
    record_equity(store, CHAT_USER, pd.Timestamp("2000-01-01T00:00Z").to_pydatetime(),
                  CHAT_EQUITY, "USD", "test")
    port = _free_port()
    log = folder / "voila.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "buddy.widgets.serve", "--port", str(port), "--db", str(db),
             "--no-prepare"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _answers(port):
            if process.poll() is not None:
                pytest.fail(f"voila exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"voila did not answer within {SERVER_START_S} s:\n"
                            f"{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        _stop(process)
