"""Shared builders of the guardrail suite: issues with their safe-phrasing templates, and a
real OpenAI-compatible chat endpoint on loopback that answers what a test scripts for it.

Issues are built directly from domain values (no evaluator modules), with consistent numbers:
entry 100.00, ATR 3.00, and so on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from buddy.domain import Fact, Issue, Mitigation, Severity
from buddy.evaluators.base import IssueTemplate
from buddy.explain import LLMExplainer


def _issue(module: str, code: str, severity: Severity, evidence: tuple[Fact, ...],
           action: str, action_facts: tuple[Fact, ...] = ()) -> Issue:
    return Issue(module=module, code=code, severity=severity, evidence=evidence,
                 mitigation=Mitigation(action=action, facts=action_facts))


STOP_INSIDE_NOISE = _issue(
    "stop_placement", "STOP_INSIDE_NOISE", Severity.HIGH,
    (Fact(name="stop_distance_atr", value=0.4, unit="ATR", threshold=1.0),
     Fact(name="stop_distance", value=1.2, unit="price"),
     Fact(name="atr_14", value=3.0, unit="price")),
    "WIDEN_STOP", (Fact(name="suggested_stop", value=97.0, unit="price"),))

REWARD_RISK_BELOW_MIN = _issue(
    "reward_risk", "REWARD_RISK_BELOW_MIN", Severity.MEDIUM,
    (Fact(name="reward_risk", value=1.2, unit="R", threshold=1.5),
     Fact(name="reward_distance", value=2.4, unit="price"),
     Fact(name="risk_distance", value=2.0, unit="price")),
    "MOVE_TARGET_OR_SKIP", (Fact(name="target_for_min_rr", value=103.0, unit="price"),))

RISK_ABOVE_BUDGET = _issue(
    "position_risk", "RISK_ABOVE_BUDGET", Severity.CRITICAL,
    (Fact(name="risk_amount", value=1250.0, unit="USD", threshold=500.0),
     Fact(name="risk_pct_equity", value=2.5, unit="%", threshold=1.0),
     Fact(name="proposed_size", value=100, unit="shares")),
    "REDUCE_SIZE", (Fact(name="max_size", value=40, unit="shares"),))

STALE_DATA = _issue(
    "data_quality", "STALE_DATA", Severity.MEDIUM,
    (Fact(name="sessions_since_last_bar", value=3, unit="sessions", threshold=1),
     Fact(name="last_bar_ts", value="2012-05-29T20:00:00+00:00"),
     Fact(name="timeframe", value="1d")),
    "LOAD_RECENT_BARS")

LOSING_STREAK = _issue(
    "behaviour", "LOSING_STREAK", Severity.HIGH,
    (Fact(name="losses_in_row", value=4, unit="trades", threshold=3),
     Fact(name="streak_pnl", value=-1840.5, unit="USD")),
    "PAUSE_OR_REDUCE_SIZE", (Fact(name="reduced_risk", value=250.0, unit="USD"),))

VOLATILITY_HIGH = _issue(
    "volatility", "VOLATILITY_HIGH", Severity.LOW,
    (Fact(name="atr_pctile", value=92.0, unit="pctile", threshold=80.0),
     Fact(name="atr_z", value=1.85, unit="z"),
     Fact(name="window_bars", value=250, unit="bars")),
    "REDUCE_SIZE")

TEMPLATES: Mapping[str, Mapping[str, IssueTemplate]] = {
    "stop_placement": {"STOP_INSIDE_NOISE": IssueTemplate(
        "Stop inside normal noise",
        "Your stop is {stop_distance_atr} from entry ({stop_distance} in price), while a "
        "typical bar moves {atr_14}; this check looks for at least 1.0 ATR.",
        "Consider a stop near {suggested_stop}, or a smaller size so the wider stop risks "
        "the same amount.")},
    "reward_risk": {"REWARD_RISK_BELOW_MIN": IssueTemplate(
        "Reward small for the risk",
        "The target is {reward_distance} away and the stop {risk_distance}: a reward to risk "
        "of {reward_risk}, below your minimum of 1.5R.",
        "A target at {target_for_min_rr} would meet your minimum; otherwise consider skipping "
        "the trade.")},
    "position_risk": {"RISK_ABOVE_BUDGET": IssueTemplate(
        "Risk above your budget",
        "At {proposed_size} the loss at the stop would be {risk_amount}, which is "
        "{risk_pct_equity} of equity; your rules allow 1.00%.",
        "Cut the size to {max_size} to stay within your budget.")},
    "data_quality": {"STALE_DATA": IssueTemplate(
        "Stale market data",
        "{sessions_since_last_bar} closed after the last {timeframe} bar ({last_bar_ts}) and "
        "before the evaluation time.",
        "Load bars up to the evaluation time before relying on this report.")},
    "behaviour": {"LOSING_STREAK": IssueTemplate(
        "After a losing streak",
        "This follows {losses_in_row} losing trades in a row, {streak_pnl} in total.",
        "Consider a pause, or risk at most {reduced_risk} on the next trade.")},
    "volatility": {"VOLATILITY_HIGH": IssueTemplate(
        "Volatility unusually high",
        "ATR is at the {atr_pctile} of the last {window_bars} ({atr_z}).",
        "A smaller size keeps the same stop within your risk budget.")},
}

ISSUES: tuple[Issue, ...] = (STOP_INSIDE_NOISE, REWARD_RISK_BELOW_MIN, RISK_ABOVE_BUDGET,
                             STALE_DATA, LOSING_STREAK, VOLATILITY_HIGH)


def template_of(issue: Issue) -> IssueTemplate:
    """Return the test template of ``issue``."""
    return TEMPLATES[issue.module][issue.code]


def completion(explanation: str, mitigation: str) -> str:
    """Return the JSON content a well-behaved model sends back."""
    return json.dumps({"explanation": explanation, "mitigation": mitigation})


# --------------------------------------------------------------------------- the endpoint
@dataclass
class LoopbackLLM:
    """A real HTTP chat endpoint on 127.0.0.1 whose answer depends on the model name.

    ``script[model]`` is the completion content to send, or one of the behaviours
    'garbage' (a 200 whose body is not a chat completion), 'http_500', 'timeout' (answers
    only after ``hang_s`` seconds, or when the server stops). Every request is recorded.
    """

    script: dict[str, str] = field(default_factory=dict)
    hang_s: float = 5.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)

    def explainer(self, model: str, *, timeout_s: float = 2.0,
                  api_key: str | None = None) -> LLMExplainer:
        """Return an LLMExplainer pointed at this endpoint, asking for ``model``."""
        return LLMExplainer(base_url=self.base_url, model=model, api_key=api_key,
                            timeout_s=timeout_s)

    def respond(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        body = json.loads(handler.rfile.read(length))
        self.requests.append({"path": handler.path, "headers": dict(handler.headers),
                              "body": body})
        behaviour = self.script.get(body.get("model"), "garbage")
        if behaviour == "timeout":
            self._stop.wait(self.hang_s)
            payload, status = b"{}", 200
        elif behaviour == "http_500":
            payload, status = b'{"error": "boom"}', 500
        elif behaviour == "garbage":
            payload, status = b"\x00\xffnot json at all <html>", 200
        else:
            payload = json.dumps({"id": "cmpl-1", "object": "chat.completion",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant",
                                                           "content": behaviour}}]}).encode()
            status = 200
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:  # the client gave up (the timeout case)
            pass


@contextmanager
def loopback_llm(script: Mapping[str, str] | None = None, *, hang_s: float = 5.0
                 ) -> Iterator[LoopbackLLM]:
    """Serve a LoopbackLLM on 127.0.0.1 (a free port) for the duration of the block."""
    llm = LoopbackLLM(script=dict(script or {}), hang_s=hang_s)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/").endswith("/chat/completions"):
                llm.respond(self)
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    llm.base_url = f"http://{host}:{port}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        llm._stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
