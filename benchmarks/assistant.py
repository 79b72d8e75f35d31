"""Brainstorm turn latency (issue #20): `python -m benchmarks --only assistant`.

A turn is ``Brainstorm.turn`` end to end: guardrails, the router, the parser, the reply and
the turn's transaction in DuckDB (both messages and the draft). The conversations fill the
issue's idea a slot at a time ("long AAPL on a pullback to 555", "stop under 540", ...), on
the bundled real data, each in its own session; the first conversation is a warm-up (it
trains the router and reads the catalogue) and is not timed. The turn without the LLM, the
turn with it and a bare request to the endpoint run step by step in turn, so that a busy
(shared) machine weighs on each alike.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
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

    with _loopback_llm(LLM_DELAY_S) as base_url:
        llm = AssistantLLM(base_url=base_url, model="echo", timeout_s=5.0)
        plain_engine, llm_engine = Brainstorm(buddy), Brainstorm(buddy, llm=llm)
        with httpx.Client(trust_env=False) as bare:
            # the three step by step, so that a busy machine weighs on each alike
            runs = _interleaved({
                "plain": lambda user, sid, text: plain_engine.turn(user, sid, text),
                "llm": lambda user, sid, text: llm_engine.turn(user, sid, text),
                "endpoint": lambda user, sid, text: _ask(bare, base_url, text)})
        llm.close()
    plain, llm_run, own = runs["plain"], runs["llm"], runs["endpoint"]
    p50, p99 = _percentiles(plain.times)
    met = p50 <= GOAL_TURN_S
    # CPU beside wall time: on a shared machine the CPU a turn uses says what waiting hides
    yield Line(f"{'brainstorm turn, no LLM':<40} p50 {p50 * 1e3:7.1f} ms  p99 "
               f"{p99 * 1e3:7.1f} ms  (n={len(plain.times)}; CPU "
               f"{plain.cpu / len(plain.times) * 1e3:.1f} ms a turn)  goal p50 <= "
               f"{GOAL_TURN_S * 1e3:.0f} ms  {'PASS' if met else 'MISS'}", met)

    own_p50, _ = _percentiles(own.times)
    l50, l99 = _percentiles(llm_run.times)
    met = l50 <= own_p50 + GOAL_OVERHEAD_S
    used = sum(r == "llm" for r in llm_run.renderers)
    yield Line(f"{'brainstorm turn, loopback LLM':<40} p50 {l50 * 1e3:7.1f} ms  p99 "
               f"{l99 * 1e3:7.1f} ms  (n={len(llm_run.times)}; LLM's own p50 "
               f"{own_p50 * 1e3:.1f} ms; adds {(l50 - p50) * 1e3:.1f} ms to a turn's p50; "
               f"LLM words in {used}/{len(llm_run.renderers)} turns)  goal p50 <= LLM + "
               f"{GOAL_OVERHEAD_S * 1e3:.0f} ms  {'PASS' if met else 'MISS'}", met)

    with store.connect():  # the file stays attached: no ATTACH/DETACH (checkpoint) a turn
        held = _interleaved({"held": lambda user, sid, text: plain_engine.turn(user, sid,
                                                                               text)})["held"]
    h50, h99 = _percentiles(held.times)
    yield Line(f"{'  (for reference) file kept attached':<40} p50 {h50 * 1e3:7.1f} ms  p99 "
               f"{h99 * 1e3:7.1f} ms  (n={len(held.times)}; what a process holding the file "
               "open for its lifetime would see)", True)
    routes = []
    for text in TURNS * CONVERSATIONS:
        start = time.perf_counter()
        plain_engine.router.route(text)
        routes.append(time.perf_counter() - start)
    r50, r99 = _percentiles(routes)
    yield Line(f"{'  (for reference) the router alone':<40} p50 {r50 * 1e3:7.1f} ms  p99 "
               f"{r99 * 1e3:7.1f} ms  (n={len(routes)})", True)


@dataclass
class _Run:
    times: list[float] = field(default_factory=list)  # wall seconds of each timed turn
    cpu: float = 0.0                                  # process CPU seconds they used
    renderers: list[str] = field(default_factory=list)


def _interleaved(steps: Mapping[str, Callable[[str, str | None, str], Any]]
                 ) -> dict[str, _Run]:
    """Run the conversations once per named step function, step by step in turn; the first
    conversation warms the caches and is not timed."""
    runs = {name: _Run() for name in steps}
    for conversation in range(CONVERSATIONS + 1):
        sessions: dict[str, str | None] = dict.fromkeys(steps)
        for text in TURNS:
            for name, step in steps.items():
                user = f"bench-{name}-{conversation}"
                start, start_cpu = time.perf_counter(), time.process_time()
                turn = step(user, sessions[name], text)
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - start_cpu
                sessions[name] = getattr(turn, "session_id", None)
                if conversation:
                    runs[name].times.append(elapsed)
                    runs[name].cpu += cpu
                    runs[name].renderers.append(str(getattr(turn, "renderer", "")))
    return runs


def _ask(client: httpx.Client, base_url: str, text: str) -> None:
    """Send the endpoint a request like the assistant's, straight."""
    body = {"model": "echo", "temperature": 0, "max_tokens": 300, "messages": [
        {"role": "user", "content": json.dumps({"template_reply": f"{text}? " * 4})}]}
    client.post(f"{base_url}/chat/completions", json=body).raise_for_status()


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
