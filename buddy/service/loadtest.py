"""A bounded load test of the HTTP service (issue #20): shared by the test and the bench.

A real uvicorn serves ``buddy.service.app.create_app(db)`` in a child process on a free
loopback port (``ServiceProcess``); ``run_load`` sends evaluate requests from 1, 4, 16, ...
concurrent clients (httpx over asyncio, one connection per client) and returns each level's
statuses, latencies and the eval_ids of the answered requests; ``lost_evaluations`` reads the
database after the server stopped and names every answered eval_id without its
trade_evaluations row.

Latencies are wall seconds from the request sent to the response read, on the client's
clock. Each quantile comes with its distribution-free 95% interval from order statistics
(``Quantile``): with 16 requests a p99 is the largest latency and has no upper bound.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from scipy import stats

__all__ = ["EVALUATE_PATH", "LevelResult", "Quantile", "ServiceProcess", "evaluation_bodies",
           "free_port", "lost_evaluations", "quantile", "run_load", "run_load_sync"]

EVALUATE_PATH = "/evaluateTradeIntent"
API_KEY_HEADER = "X-API-Key"

# the child serves the app built by create_app on the named file: no reliance on $BUDDY_DB
# resolution, and uvicorn's own signal handling (SIGTERM runs the lifespan's shutdown). On
# Linux the kernel sends it SIGTERM when the thread that started it dies (PR_SET_PDEATHSIG =
# 1), so a killed test run leaves no server holding the file or the port; a parent gone
# before that call is seen by getppid
_SERVE = ("import ctypes, ctypes.util, os, signal, sys\n"
          "if sys.platform.startswith('linux'):\n"
          "    ctypes.CDLL(ctypes.util.find_library('c') or None).prctl(1, signal.SIGTERM,\n"
          "                                                            0, 0, 0)\n"
          "if os.getppid() != int(sys.argv[5]):\n"
          "    sys.exit(0)\n"
          "import uvicorn\n"
          "from buddy.service.app import create_app\n"
          "app = create_app(sys.argv[1], config_ref=sys.argv[4] or None)\n"
          "uvicorn.run(app, host=sys.argv[2], port=int(sys.argv[3]), log_level='warning',\n"
          "            access_log=False)\n")


@dataclass(frozen=True, slots=True)
class Quantile:
    """A sample quantile (seconds) with its distribution-free confidence interval.

    ``low_s``/``high_s`` are order statistics whose interval covers the true quantile with at
    least ``confidence``; None where the sample is too small to bound that side.
    """

    q: float
    n: int
    value_s: float
    low_s: float | None
    high_s: float | None
    confidence: float = 0.95

    def text(self, label: str) -> str:
        """Return e.g. 'p50 41.2 ms [95%: 38.0, 47.9]' (milliseconds)."""
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v * 1e3:.1f}"
        return (f"{label} {self.value_s * 1e3:.1f} ms [{self.confidence:.0%}: "
                f"{ms(self.low_s)}, {ms(self.high_s)}]")


def quantile(samples: Sequence[float], q: float, confidence: float = 0.95) -> Quantile:
    """Return the ``q`` quantile of ``samples`` (seconds, nearest rank) with the order-statistic
    interval: ranks l < u with P(B < l) <= a/2 and P(B >= u) <= a/2 for B ~ Binomial(n, q)."""
    if not samples:
        raise ValueError("samples: must not be empty (got 0 latencies)")
    if not 0.0 < q < 1.0:
        raise ValueError(f"q: must be in (0, 1), got {q!r}")
    xs = sorted(samples)
    n = len(xs)
    value = xs[max(0, math.ceil(q * n) - 1)]  # nearest rank
    alpha = 1.0 - confidence
    # B counts the samples below the true quantile Q: x_(l) > Q iff B < l, x_(u) < Q iff
    # B >= u; the largest l with P(B <= l - 1) <= a/2 is ppf(a/2) (1-based ranks), the
    # smallest u with P(B <= u - 1) >= 1 - a/2 is ppf(1 - a/2) + 1
    lower = int(stats.binom.ppf(alpha / 2, n, q))
    upper = int(stats.binom.ppf(1 - alpha / 2, n, q)) + 1
    low = xs[lower - 1] if lower >= 1 else None
    high = xs[upper - 1] if upper <= n else None
    return Quantile(q, n, value, low, high, confidence)


@dataclass(frozen=True, slots=True)
class LevelResult:
    """One concurrency level's requests: statuses, latencies (seconds), answered eval_ids."""

    concurrency: int
    wall_s: float
    statuses: tuple[int, ...]
    latencies_s: tuple[float, ...]
    eval_ids: tuple[str, ...]
    errors: tuple[str, ...] = field(default=())
    log_states: tuple[str, ...] = field(default=())  # each 200's report.logging state

    def log_counts(self) -> dict[str, int]:
        """Return how many answered evaluations were logged, queued, ... by the service."""
        return dict(Counter(self.log_states))

    @property
    def n(self) -> int:
        """Return how many requests were sent."""
        return len(self.statuses)

    @property
    def throughput(self) -> float:
        """Return answered requests per second of wall time over the level."""
        return self.n / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def p50(self) -> Quantile:
        """Return the median latency with its interval."""
        return quantile(self.latencies_s, 0.50)

    @property
    def p99(self) -> Quantile:
        """Return the 99th percentile latency with its interval."""
        return quantile(self.latencies_s, 0.99)

    def text(self) -> str:
        """Return the printed line: clients, n, errors, throughput, p50 and p99."""
        rows = ", ".join(f"{state} {n}" for state, n in sorted(self.log_counts().items()))
        return (f"evaluate at {self.concurrency:>2} concurrent clients: n {self.n}, "
                f"errors {len(self.errors)}, {self.throughput:6.2f} req/s, "
                f"{self.p50.text('p50')}, {self.p99.text('p99')}; rows {rows or 'none'}")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """Serve the app on ``db`` with uvicorn in a child process for the ``with`` block.

    Entering waits until GET /openapi.json answers 200 (at most ``startup_timeout_s``); a
    child that exits first, or never answers, raises with the end of its log. Leaving sends
    SIGTERM (uvicorn finishes the requests in flight and runs the lifespan's shutdown), then
    SIGKILL after ``stop_timeout_s``. ``config_ref`` names the scoring config as
    ``create_app`` takes it (None: production).
    """

    def __init__(self, db: str | os.PathLike[str], *, config_ref: str | None = None,
                 host: str = "127.0.0.1", port: int | None = None,
                 log_path: str | os.PathLike[str] | None = None,
                 env: Mapping[str, str] | None = None, startup_timeout_s: float = 120.0,
                 stop_timeout_s: float = 30.0) -> None:
        self.db = Path(db)
        self.config_ref = config_ref
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path is not None else Path(
            f"{self.db}.service-{self.port}.log")
        self.env = {**os.environ, **(env or {})}
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None
        self.killed = False  # True when it did not stop within stop_timeout_s

    @property
    def base_url(self) -> str:
        """Return http://host:port."""
        return f"http://{self.host}:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        """Return the end of the child's stdout and stderr."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> ServiceProcess:
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SERVE, str(self.db), self.host, str(self.port),
                 self.config_ref or "", str(os.getpid())],
                stdout=log, stderr=subprocess.STDOUT, env=self.env)
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        return self

    def _wait_ready(self, started: float) -> None:
        assert self.process is not None
        url = f"{self.base_url}/openapi.json"
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"service exited with code {code} before answering "
                                   f"{url}:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            if time.perf_counter() - started > self.startup_timeout_s:
                raise TimeoutError(f"service did not answer {url} within "
                                   f"{self.startup_timeout_s:g} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> int | None:
        """Stop the child (SIGTERM, then SIGKILL); return its exit code (uvicorn re-raises
        SIGTERM after a graceful shutdown, so that exit reads -15)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _eval_id_of(payload: Any) -> str | None:
    """Return the eval_id of an evaluate response (top level or under 'report')."""
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("eval_id"), str):
        return str(payload["eval_id"])
    report = payload.get("report")
    if isinstance(report, dict) and isinstance(report.get("eval_id"), str):
        return str(report["eval_id"])
    return None


async def _level(client: httpx.AsyncClient, path: str, bodies: Sequence[Mapping[str, Any]],
                 concurrency: int, requests: int, offset: int,
                 eval_id_of: Callable[[Any], str | None]) -> LevelResult:
    """Send ``requests`` POSTs from ``concurrency`` clients, each next body in turn."""
    statuses: list[int] = []
    latencies: list[float] = []
    eval_ids: list[str] = []
    errors: list[str] = []
    log_states: list[str] = []
    queue = iter(range(requests))

    async def client_loop() -> None:
        for i in queue:  # a shared iterator: each request is taken by exactly one client
            body = bodies[(offset + i) % len(bodies)]
            start = time.perf_counter()
            try:
                response = await client.post(path, json=dict(body))
                payload = response.json() if response.content else None
            except (httpx.HTTPError, ValueError) as exc:
                latencies.append(time.perf_counter() - start)
                statuses.append(0)
                errors.append(f"request {i}: {type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - start)
            statuses.append(response.status_code)
            if response.status_code != 200:
                errors.append(f"request {i}: HTTP {response.status_code}: "
                              f"{response.text[:300]}")
                continue
            eval_id = eval_id_of(payload)
            if eval_id is None:
                errors.append(f"request {i}: HTTP 200 without an eval_id: "
                              f"{response.text[:300]}")
            else:
                eval_ids.append(eval_id)
                logging = payload.get("logging") if isinstance(payload, dict) else None
                if isinstance(logging, dict) and isinstance(logging.get("state"), str):
                    log_states.append(logging["state"])

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return LevelResult(concurrency, wall, tuple(statuses), tuple(latencies), tuple(eval_ids),
                       tuple(errors), tuple(log_states))


async def run_load(base_url: str, api_key: str, bodies: Sequence[Mapping[str, Any]], *,
                   levels: Iterable[int] = (1, 4, 16), requests_per_level: int = 16,
                   warmup: int = 2, path: str = EVALUATE_PATH, timeout_s: float = 300.0,
                   eval_id_of: Callable[[Any], str | None] = _eval_id_of
                   ) -> tuple[LevelResult, list[LevelResult]]:
    """Send ``warmup`` requests one at a time, then ``requests_per_level`` (at least one per
    client) at each level of concurrent clients; return the warm-up's result and each
    level's (in order)."""
    if not bodies:
        raise ValueError("bodies: must not be empty (got 0 request bodies)")
    levels = tuple(levels)
    headers = {API_KEY_HEADER: api_key}
    limits = httpx.Limits(max_connections=max((1, *levels)), max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=timeout_s) as client:
        warm = await _level(client, path, bodies, 1, warmup, 0, eval_id_of)
        results = []
        offset = warmup
        for concurrency in levels:
            n = max(requests_per_level, concurrency)  # every client sends at least once
            results.append(await _level(client, path, bodies, concurrency, n, offset,
                                        eval_id_of))
            offset += n
    return warm, results


def run_load_sync(base_url: str, api_key: str, bodies: Sequence[Mapping[str, Any]],
                  **kwargs: Any) -> tuple[LevelResult, list[LevelResult]]:
    """Run ``run_load`` on a fresh event loop (for callers without one)."""
    return asyncio.run(run_load(base_url, api_key, bodies, **kwargs))


def lost_evaluations(db: str | os.PathLike[str], user_id: str, eval_ids: Iterable[str]
                     ) -> set[str]:
    """Return the answered ``eval_ids`` with no trade_evaluations row of ``user_id`` in ``db``.

    Call it after the service stopped: opening the store also moves in any evaluation the
    service queued durably (``<db>.pending/``), which is logged, not lost.
    """
    from buddy.store import Store

    stored = set(Store(db).evaluations(user_id)["eval_id"].astype(str))
    return set(eval_ids) - stored


def evaluation_bodies(db: str | os.PathLike[str], *,
                      symbols: Iterable[str] = ("AAPL", "MSFT", "GOOG", "IBM")
                      ) -> list[dict[str, Any]]:
    """Return inline evaluate request bodies for the demo's daily sample ideas on
    ``symbols``: entry at the last close by the end of the idea's day (UTC), stop and target
    the idea's multiples of ATR(14) away, on the tick grid (``buddy demo``'s placement, read
    from the stored bars and features instead of a context pack)."""
    import pandas as pd

    from buddy.demo import SAMPLE_IDEAS
    from buddy.evidence import round_to_tick
    from buddy.store import Store

    wanted = set(symbols)
    store = Store(db)
    bodies = []
    for idea in SAMPLE_IDEAS:
        if idea.symbol not in wanted or idea.timeframe != "1d":
            continue
        day_end = pd.Timestamp(idea.as_of, tz="UTC") + pd.Timedelta(days=1)
        features = store.features(idea.symbol, idea.timeframe, as_of=day_end)
        bars = store.bars(idea.symbol, idea.timeframe, as_of=day_end)
        instrument = store.instrument(idea.symbol)
        if bars.empty or features.empty or instrument is None:
            raise ValueError(f"symbols: no {idea.timeframe} bars, features or ticker of "
                             f"{idea.symbol} by {idea.as_of} in {db}")
        tick = float(instrument["tick_size"])
        entry = round_to_tick(float(bars["close"].iloc[-1]), tick)
        atr = float(features["atr_14"].iloc[-1])
        sign = 1 if idea.side == "long" else -1
        bodies.append({"intent": {
            "symbol": idea.symbol, "side": idea.side, "timeframe": idea.timeframe,
            "entry": entry, "stop": round_to_tick(entry - sign * idea.stop_atr * atr, tick),
            "target": round_to_tick(entry + sign * idea.target_atr * atr, tick),
            "size": idea.size, "as_of": idea.as_of, "horizon": idea.horizon}})
    return bodies
