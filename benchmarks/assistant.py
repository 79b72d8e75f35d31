"""Brainstorm turn latency (issue #20): `python -m benchmarks --only assistant`.

A turn is ``Brainstorm.turn`` end to end: guardrails, the router, the parser, the reply and
the turn's transaction in DuckDB (both messages and the draft). The conversations fill the
issue's idea a slot at a time ("long AAPL on a pullback to 555", "stop under 540", ...), on
the bundled real data, each in its own session; the first conversation is a warm-up (it
trains the router and reads the catalogue) and is not timed.

- Without the LLM: p50 of a turn, goal <= 50 ms. Each turn's transaction opens the file
  (ATTACH) and, being the last connection, closes it (DETACH, which checkpoints): a reference
  line times the same turns while the file stays attached, which is most of the difference.
- With an LLM on loopback: a real HTTP endpoint in this process that takes ``LLM_DELAY_S``
  to answer (standing in for a model) and sends the template reply back as its rewording.
  Its own latency is the p50 of the same requests sent to it directly; goal: a turn's p50
  <= that + 50 ms. The line also says how many turns' words came from the LLM.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.suites import Line, Timer
from buddy.api import Buddy
from buddy.assistant.llm import AssistantLLM
from buddy.assistant.session import Brainstorm
from buddy.jobs.features import run_features_job
from buddy.jobs.load import load_sample_into
from buddy.store import Store

TURNS = ("long AAPL on a pullback to 555", "stop under 540", "target 600",
         "risk half a percent", "hold it for 10 days", "as of June 1 2012")
CONVERSATIONS = 8
GOAL_TURN_S = 0.050
GOAL_OVERHEAD_S = 0.050
LLM_DELAY_S = 0.020


def assistant_suite(workdir: Path, timer: Timer) -> Iterator[Line]:
    """Yield the p50/p99 of a brainstorm turn without and with a loopback LLM."""
    del timer  # each turn is timed on its own: the distribution is the result
    store = Store(workdir / "assistant.duckdb")
    load_sample_into(store)
    run_features_job(store, progress=False)
    buddy = Buddy(store)

    engine = Brainstorm(buddy)
    plain, cpu = _turn_times(engine, "plain")
    p50, p99 = _percentiles(plain)
    plain_p50 = p50
    met = p50 <= GOAL_TURN_S
    # CPU beside wall time: on a shared machine the CPU a turn uses says what waiting hides
    yield Line(f"{'brainstorm turn, no LLM':<40} p50 {p50 * 1e3:7.1f} ms  p99 "
               f"{p99 * 1e3:7.1f} ms  (n={len(plain)}; CPU {cpu / len(plain) * 1e3:.1f} ms "
               f"a turn)  goal p50 <= {GOAL_TURN_S * 1e3:.0f} ms  {'PASS' if met else 'MISS'}",
               met)
    with store.connect():  # the file stays attached: no ATTACH/DETACH (checkpoint) a turn
        held, _ = _turn_times(engine, "held")
    h50, h99 = _percentiles(held)
    yield Line(f"{'  (for reference) file kept attached':<40} p50 {h50 * 1e3:7.1f} ms  p99 "
               f"{h99 * 1e3:7.1f} ms  (n={len(held)}; what a process holding the file "
               "open for its lifetime would see)", True)
    routes = []
    for text in TURNS * CONVERSATIONS:
        start = time.perf_counter()
        engine.router.route(text)
        routes.append(time.perf_counter() - start)
    r50, r99 = _percentiles(routes)
    yield Line(f"{'  (for reference) the router alone':<40} p50 {r50 * 1e3:7.1f} ms  p99 "
               f"{r99 * 1e3:7.1f} ms  (n={len(routes)})", True)

    with _loopback_llm(LLM_DELAY_S) as base_url:
        llm = AssistantLLM(base_url=base_url, model="echo", timeout_s=5.0)
        own = _endpoint_times(base_url, len(plain))
        engine = Brainstorm(buddy, llm=llm)
        renderers: list[str] = []
        with_llm, _ = _turn_times(engine, "llm", renderers)
        llm.close()
    own_p50, _ = _percentiles(own)
    p50, p99 = _percentiles(with_llm)
    met = p50 <= own_p50 + GOAL_OVERHEAD_S
    used = sum(r == "llm" for r in renderers)
    yield Line(f"{'brainstorm turn, loopback LLM':<40} p50 {p50 * 1e3:7.1f} ms  p99 "
               f"{p99 * 1e3:7.1f} ms  (n={len(with_llm)}; LLM's own p50 "
               f"{own_p50 * 1e3:.1f} ms, n={len(own)}; adds {(p50 - plain_p50) * 1e3:.1f} ms "
               f"to a turn's p50; LLM words in {used}/{len(renderers)} turns)  goal p50 <= "
               f"LLM + {GOAL_OVERHEAD_S * 1e3:.0f} ms  {'PASS' if met else 'MISS'}", met)


def _turn_times(engine: Brainstorm, tag: str, renderers: list[str] | None = None
                ) -> tuple[list[float], float]:
    """Return each timed turn's wall seconds and the process CPU seconds they used."""
    times: list[float] = []
    cpu = 0.0
    for conversation in range(CONVERSATIONS + 1):
        user = f"bench-{tag}-{conversation}"
        session_id: str | None = None
        for text in TURNS:
            start, start_cpu = time.perf_counter(), time.process_time()
            turn = engine.turn(user, session_id, text)
            elapsed = time.perf_counter() - start
            session_id = turn.session_id
            if conversation:  # the first conversation warms the caches
                times.append(elapsed)
                cpu += time.process_time() - start_cpu
                if renderers is not None:
                    renderers.append(turn.renderer)
    return times, cpu


def _endpoint_times(base_url: str, n: int) -> list[float]:
    body = {"model": "echo", "temperature": 0, "max_tokens": 300, "messages": [
        {"role": "user", "content": json.dumps({"template_reply": "Which stop? " * 8})}]}
    times = []
    with httpx.Client(trust_env=False) as client:
        client.post(f"{base_url}/chat/completions", json=body)
        for _ in range(n):
            start = time.perf_counter()
            client.post(f"{base_url}/chat/completions", json=body).raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def _percentiles(times: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(times), [50, 99])
    return float(p50), float(p99)


@contextmanager
def _loopback_llm(delay_s: float) -> Iterator[str]:
    """Serve an OpenAI-compatible endpoint on 127.0.0.1 that answers after ``delay_s`` with
    the template reply it was sent, as the JSON the assistant asks for; yield its base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint would
        # one write per response with no Nagle delay: headers and body sent apart would wait
        # for the client's delayed ACK (~40 ms), which is not the model's time
        wbufsize = -1
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body: Any = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            template = json.loads(body["messages"][-1]["content"])["template_reply"]
            time.sleep(delay_s)
            content = json.dumps({"reply": template})
            payload = json.dumps({"object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
