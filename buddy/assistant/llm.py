"""The optional LLM of brainstorm mode: it rewords the assistant's template reply, nothing more.

The assistant's replies are written by templates from the draft and the evidence. When an
OpenAI-compatible chat endpoint is configured (the same environment as the explanation layer:
``BUDDY_LLM_BASE_URL``, ``BUDDY_LLM_MODEL``, optional ``BUDDY_LLM_API_KEY`` and
``BUDDY_LLM_TIMEOUT_S``), ``AssistantLLM.rephrase`` asks it to reword the template reply. The
request carries the template reply alone: never the trader's words (a prompt injection in
them cannot reach the model), ids or other data.

The rewording reaches the trader only when it keeps every number of the template, adds none
that the template or ``numbers_from`` (the draft's values, the evidence lines) do not hold,
says nothing predictive, gives no advice the workbench never gives, and keeps the question
when the template asks one. Anything else (a failed check, garbage, an HTTP error, a
timeout) returns the template reply with ``renderer='template'`` and the reason. After a
timeout or an unreachable endpoint the endpoint is skipped for ``cooldown_s`` seconds, so a
dead endpoint does not add its timeout to every turn.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from buddy.errors import ConfigError, FieldError
from buddy.explain import (
    CONTROL_CHARS,
    JSON_FENCE,
    LOOPBACK_HOSTS,
    MAX_RESPONSE_BYTES,
    EndpointDown,
    RejectedReply,
    endpoint_errors,
    endpoint_settings,
)
from buddy.guardrails import check_text, unsourced_numbers

__all__ = ["SYSTEM_PROMPT", "AssistantLLM", "Reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """What the trader reads: the text, who wrote it ('llm' or 'template') and, when the
    template's words are shown although an LLM is configured, why."""

    text: str
    renderer: str  # 'llm' | 'template'
    fallback_reason: str | None = None


SYSTEM_PROMPT = (
    "You reword one reply of a trade-planning assistant for a retail trader, in plain, "
    "friendly English, at most three sentences. Keep its meaning and keep any question it "
    "asks. Copy every number exactly as written; never compute, convert or add a number, "
    "price, date or amount. Do not predict prices, moves or outcomes, do not promise results, "
    "do not say whether to take the trade, never suggest removing a stop, and never mention "
    "other people or their data. Reply with one JSON object and nothing else: "
    '{"reply": "..."}')

_MAX_REPLY_CHARS = 800


class AssistantLLM:
    """Reword the assistant's template replies through an OpenAI-compatible chat endpoint.

    One POST to ``{base_url}/chat/completions`` per reply; ``timeout_s`` (seconds) bounds
    each network operation (connect, send, each read); ``cooldown_s`` (seconds) is how long
    the endpoint is skipped after it timed out or could not be reached. Safe to share between
    threads.
    """

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None,
                 timeout_s: float = 10.0, cooldown_s: float = 60.0, max_tokens: int = 300,
                 clock: Callable[[], float] = time.monotonic) -> None:
        errors = endpoint_errors(base_url, model)
        for name, value in (("BUDDY_LLM_TIMEOUT_S", timeout_s), ("cooldown_s", cooldown_s)):
            if not (isinstance(value, int | float) and math.isfinite(value)
                    and 0 <= value <= 300 and (value > 0 or name == "cooldown_s")):
                rule = "must be in (0, 300] seconds" if name != "cooldown_s" else (
                    "must be in [0, 300] seconds")
                errors.append(FieldError(name, rule, value))
        if errors:
            raise ConfigError(errors)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = float(timeout_s)
        self.cooldown_s = float(cooldown_s)
        self.max_tokens = max_tokens
        self._clock = clock
        self._down_until = -math.inf
        self._down_reason = ""
        self._lock = threading.Lock()
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # a proxy from the environment must not see loopback traffic (nor the key)
        self._client = httpx.Client(timeout=self.timeout_s, headers=headers,
                                    trust_env=urllib.parse.urlparse(base_url).hostname
                                    not in LOOPBACK_HOSTS)

    def __repr__(self) -> str:
        return (f"AssistantLLM(base_url={self.base_url!r}, model={self.model!r}, "
                f"timeout_s={self.timeout_s})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AssistantLLM | None:
        """Build from BUDDY_LLM_BASE_URL, BUDDY_LLM_MODEL, BUDDY_LLM_API_KEY (optional) and
        BUDDY_LLM_TIMEOUT_S (optional, seconds, default 10); None when no base URL is set."""
        found = endpoint_settings(environ)
        if not found.base_url:
            return None
        return cls(base_url=found.base_url, model=found.model, api_key=found.api_key,
                   timeout_s=found.timeout_s)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def messages(self, template_reply: str) -> list[dict[str, str]]:
        """Return the chat messages for ``template_reply``: built from it alone."""
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps({"template_reply": template_reply},
                                                       ensure_ascii=False)}]

    def rephrase(self, template_reply: str, *, numbers_from: Iterable[str] = ()) -> Reply:
        """Return the endpoint's rewording of ``template_reply`` when it passes the checks,
        else the template reply with the reason.

        ``numbers_from`` holds the texts whose numbers the rewording may also use (the
        draft's values, the evidence lines); a number found in neither them nor the template
        rejects it.
        """
        sources = (template_reply, *numbers_from)
        with self._lock:
            now = self._clock()
            if now < self._down_until:
                since = now - (self._down_until - self.cooldown_s)
                return Reply(template_reply, "template",
                             f"llm skipped: it {self._down_reason} {since:.0f} s ago (asked "
                             f"again {self.cooldown_s:g} s after)")
        try:
            text = _parse_reply(self._complete(self.messages(template_reply)))
            _check(text, template_reply, sources)
        except EndpointDown as exc:
            with self._lock:
                self._down_until = self._clock() + self.cooldown_s
                self._down_reason = str(exc)
            return Reply(template_reply, "template", f"llm {exc}")
        except RejectedReply as exc:
            return Reply(template_reply, "template", str(exc))
        return Reply(text, "llm")

    def _complete(self, messages: list[dict[str, str]]) -> str:
        body = {"model": self.model, "messages": messages, "temperature": 0,
                "max_tokens": self.max_tokens}
        try:
            response = self._client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise EndpointDown(f"timed out after {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise EndpointDown(f"was unreachable ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise RejectedReply(f"llm endpoint answered HTTP {response.status_code}")
        raw = response.content
        if len(raw) > MAX_RESPONSE_BYTES:
            raise RejectedReply("llm reply too large")
        try:
            content: Any = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RejectedReply("llm reply is not a chat completion") from exc
        if not isinstance(content, str):
            raise RejectedReply("llm reply is not a chat completion")
        return content


def _parse_reply(content: str) -> str:
    fenced = JSON_FENCE.match(content)
    try:
        data: Any = json.loads(fenced.group(1) if fenced else content)
    except ValueError as exc:
        raise RejectedReply("llm text is not the requested JSON") from exc
    value = data.get("reply") if isinstance(data, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise RejectedReply("llm text has no reply")
    value = " ".join(value.split())
    if len(value) > _MAX_REPLY_CHARS:
        raise RejectedReply(f"llm reply is longer than {_MAX_REPLY_CHARS} characters")
    if CONTROL_CHARS.search(value) or any(c in value for c in "{}<>") or "://" in value:
        raise RejectedReply("llm reply holds markup, a link or a placeholder")
    return value


def _check(text: str, template_reply: str, sources: tuple[str, ...]) -> None:
    verdict = check_text(text, (), allowed=sources)
    if not verdict.ok:
        raise RejectedReply("guardrail rejected the llm text: " + "; ".join(verdict.reasons))
    # the trader must not lose a number the template gave (a price, the size, a date)
    dropped = unsourced_numbers(template_reply, (), allowed=(text,))
    if dropped:
        raise RejectedReply("llm text left out numbers of the template: " + ", ".join(
            repr(n) for n in dropped))
    if "?" in template_reply and "?" not in text:
        raise RejectedReply("llm text dropped the template's question")
