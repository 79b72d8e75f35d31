"""A SIGKILLed replay leaves no process behind: its workers, their fork server and the
multiprocessing resource tracker exit with it, and the database file opens for writing again
at once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from buddy.store import Store

#: How long the killed replay's descendants may take to go, in seconds (the workers' watchdog
#: polls every 0.5 s; the kernel's death signal is immediate on Linux).
GONE_WITHIN_S = 5.0
#: How long the replay may take to start both workers (each imports the project), in seconds.
WORKERS_UP_WITHIN_S = 120.0


def _alive(process: psutil.Process) -> bool:
    # a dead orphan may stay a zombie until init reaps it: it runs nothing and holds no file
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(processes: list[psutil.Process]) -> str:
    out = []
    for process in processes:
        try:
            out.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.Error:
            out.append(f"{process.pid} (gone)")
    return "; ".join(out)


def _armed_workers(descendants: list[psutil.Process]) -> list[psutil.Process]:
    # a worker past its initializer runs the parent watchdog thread (one more thread); before
    # that it is still importing, and notices the death only once its initializer runs
    found = []
    for process in descendants:
        try:
            # spawned, or forked by the fork server (whose own threads, numpy's and
            # pyarrow's, are not a watchdog: the server is no worker)
            command = " ".join(process.cmdline())
            parent = process.parent()
            forked = ("forkserver" in command and parent is not None
                      and "forkserver" in " ".join(parent.cmdline()))
            if ("spawn_main" in command or forked) and process.num_threads() >= 2:
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.fixture
def replay_db(sample_store: Store, tmp_path: Path) -> Path:
    path = tmp_path / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    return path


def test_a_sigkilled_replay_leaves_no_process_and_a_writable_file(replay_db: Path,
                                                                  tmp_path: Path) -> None:
    log = (tmp_path / "replay.log").open("w")
    buddy = Path(sys.executable).with_name("buddy")  # the console script a user runs
    # many small chunks: both workers start and stay busy until the kill
    parent = subprocess.Popen(
        [str(buddy), "replay", "--db", str(replay_db), "run", "--source",
         "random", "--symbols", "IBM,AAPL,MSFT", "--start", "2004-01-01", "--end", "2012-12-31",
         "--param", "entry_probability=0.5", "--providers", "none", "--chunk-size", "10",
         "--workers", "2", "--executor", "local", "--no-progress"],
        stdout=log, stderr=subprocess.STDOUT)
    descendants: list[psutil.Process] = []
    try:
        me = psutil.Process(parent.pid)
        deadline = time.monotonic() + WORKERS_UP_WITHIN_S
        while time.monotonic() < deadline:
            assert parent.poll() is None, (tmp_path / "replay.log").read_text()[-2000:]
            descendants = me.children(recursive=True)
            if len(_armed_workers(descendants)) >= 2:
                break
            time.sleep(0.2)
        workers = _armed_workers(descendants)
        assert len(workers) == 2, f"workers never started: {_describe(descendants)}"
        descendants = me.children(recursive=True)  # anything started meanwhile

        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + GONE_WITHIN_S
        left = [p for p in descendants if _alive(p)]
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [p for p in left if _alive(p)]
        assert not left, f"left behind after the kill: {_describe(left)}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for process in descendants:  # a failed run cleans up after itself
            if _alive(process):
                process.kill()
        log.close()

    # nobody holds the file: a writer gets it without waiting out another process's lock
    started = time.monotonic()
    with Store(replay_db, lock_timeout_s=GONE_WITHIN_S).transaction():
        pass
    assert time.monotonic() - started < GONE_WITHIN_S


def test_the_watchdog_alone_ends_a_worker_whose_parent_died(tmp_path: Path) -> None:
    """The portable fallback (no kernel death signal): the worker sees its parent change."""
    grandchild = ("import os, sys, time; from replay.executors import exit_with_parent; "
                  "exit_with_parent(os.getppid(), death_signal=False, poll_s=0.1); "
                  "print(os.getpid(), flush=True); time.sleep(120)")
    middle = ("import subprocess, sys, time; "
              f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE,
                              text=True)
    worker: psutil.Process | None = None
    try:
        worker = psutil.Process(int(parent.stdout.readline()))  # type: ignore[union-attr]
        assert _alive(worker)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + GONE_WITHIN_S
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker), "the worker outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if worker is not None and _alive(worker):
            worker.kill()
        parent.stdout.close()  # type: ignore[union-attr]
