"""`buddy service serve` as the README runs it: a real uvicorn in a child process answers
with the key `buddy service keys create` printed, refuses without it, and stops cleanly on
SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from buddy.service.cli import service
from buddy.service.loadtest import free_port

#: The command group run as a program (the lead registers it as `buddy service`).
PROGRAM = "from buddy.service.cli import service; service()"


class _Root:
    def __init__(self, db: str) -> None:
        self.db = db


def test_serve_answers_with_a_created_key_and_stops_cleanly(sample_db: Path,
                                                             tmp_path: Path) -> None:
    made = CliRunner().invoke(service, ["keys", "create", "--user", "alice"],
                              obj=_Root(str(sample_db)))
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-c", PROGRAM, "serve", "--port", str(port), "--config",
             "default", "--log-level", "info"],
            env={**os.environ, "BUDDY_DB": str(sample_db)}, stdout=out,
            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert child.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert httpx.get(f"{base}/strategyProfile", timeout=30).status_code == 401
        answer = httpx.get(f"{base}/regimeSnapshot", params={"symbol": "MSFT",
                                                             "as_of": "2010-03-01"},
                           headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["symbol"] == "MSFT"
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            code = child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
    # uvicorn finishes, runs the lifespan's shutdown, then re-raises the signal it caught
    assert code in (0, -signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()


def test_serve_refuses_a_missing_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(service, ["serve", "--port", "1"],
                                obj=_Root(str(tmp_path / "none.duckdb")))
    assert result.exit_code == 2
    assert "--db" in result.output
