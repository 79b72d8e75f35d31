"""The explanation layer: turn an issue's facts into plain words, never inventing data.

The default renderer is deterministic: each issue code has a safe-phrasing template (declared
by its evaluator) whose ``{fact}`` placeholders take the issue's own evidence and mitigation
facts, formatted with their units. A code without a template, or a template naming a fact
the issue lacks, falls back to listing the facts themselves.

An optional ``LLMExplainer`` asks an OpenAI-compatible chat endpoint to reword the template
text. The request carries only the issue's facts and its template text; the reply reaches the
trader only when ``buddy.guardrails.check_text`` passes it against those facts. Anything else
(a failed check, garbage, an HTTP error, a timeout) falls back to the template text for that
issue, and ``RenderedIssue.renderer`` / ``fallback_reason`` say which text the trader reads.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

from buddy.domain import Fact, Issue
from buddy.errors import ConfigError, FieldError
from buddy.evaluators.base import IssueTemplate
from buddy.evidence import format_fact_value, format_value
from buddy.guardrails import check_text, safe_reply, unsourced_numbers

__all__ = [
    "Answer",
    "Explainer",
    "LLMExplainer",
    "RenderedIssue",
    "TemplateExplainer",
    "answer",
    "explainer_from_env",
    "explanation_source",
    "fact_label",
    "fact_text",
    "render_issue",
    "render_issues",
]

Templates = Mapping[str, Mapping[str, IssueTemplate]]


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedIssue:
    """What a trader reads for one issue.

    ``renderer`` says who wrote the words: 'template' (the code's safe phrasing), 'llm' (a
    rewording that passed the guardrails) or 'facts' (the bare facts, when there is no usable
    template). ``fallback_reason`` says why the words are not the LLM's when one was asked.
    """

    module: str
    code: str
    severity: str
    title: str
    explanation: str
    mitigation: str
    evidence: tuple[str, ...]
    renderer: str  # 'template', 'llm' or 'facts'
    fallback_reason: str | None = None


#: Name parts a trader does not read as words, and their words.
_WORDS: Mapping[str, str] = {
    "pct": "%", "atr": "ATR", "ema": "EMA", "sma": "SMA", "vwap": "VWAP", "adx": "ADX",
    "hmm": "HMM", "rr": "reward/risk", "r": "R", "ts": "time", "min": "minimum",
    "max": "maximum", "n": "number of", "relvol": "relative volume", "sd": "SD",
    "pctile": "percentile", "vol": "volatility", "avwap": "anchored VWAP", "mtfa":
    "multi-timeframe", "tf": "timeframe", "to": "to", "vs": "vs", "rsi": "RSI",
}
#: Whole names whose words do not follow from their parts.
_LABELS: Mapping[str, str] = {
    "risk_to_budget": "risk / budget", "risk_pct_equity": "risk, % of equity",
    "heat_pct_equity": "heat, % of equity", "vol_z": "volatility z-score",
    "relative_volume": "relative volume", "reach_k": "reach (k ATR)",
}
_ABBREVIATION_WITH_PERIOD = re.compile(r"^(atr|ema|sma|rsi|adx)(\d+)$")
#: Units a trailing name part may repeat (dropped: the value already carries the unit).
_UNIT_PARTS: Mapping[str, str] = {"atr": "ATR", "pct": "%", "r": "R", "bars": "bars",
                                  "days": "days", "z": "z", "pctile": "pctile"}


def fact_label(name: str, unit: str = "") -> str:
    """Return the words a trader reads for the fact called ``name`` with ``unit``
    ('stop_distance_atr', 'ATR' -> 'stop distance'; 'risk_to_budget' -> 'risk / budget';
    'atr_14' -> 'ATR(14)'). The one place evidence names become words."""
    if name in _LABELS:
        return _LABELS[name]
    parts = [p for p in name.split("_") if p]
    if len(parts) > 1 and parts[0] != "n" and _UNIT_PARTS.get(parts[-1]) == unit:
        parts = parts[:-1]
    words: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        period = _ABBREVIATION_WITH_PERIOD.match(part)
        if period:
            words.append(f"{period.group(1).upper()}({period.group(2)})")
        elif part in ("atr", "ema", "sma", "rsi", "adx") and i + 1 < len(parts) and (
                parts[i + 1].isdigit()):
            words.append(f"{part.upper()}({parts[i + 1]})")
            i += 1
        elif part == "pct" and i + 1 < len(parts):
            words.append("% of")
        else:
            words.append(_WORDS.get(part, part))
        i += 1
    return " ".join(words)


def fact_text(fact: Fact) -> str:
    """Return 'words: value unit' with the threshold when there is one (the evidence line a
    trader reads)."""
    text = f"{fact_label(fact.name, fact.unit)}: {format_fact_value(fact)}"
    if fact.threshold is not None:
        text += f" (threshold {format_value(fact.threshold, fact.unit)})"
    return text


class _Facts(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def render_issue(issue: Issue, template: IssueTemplate | None) -> RenderedIssue:
    """Return the plain-language form of ``issue`` using ``template``."""
    facts = issue_facts(issue)
    values = _Facts({f.name: format_fact_value(f) for f in facts})
    evidence = tuple(fact_text(f) for f in issue.evidence)
    if template is not None:
        try:
            return RenderedIssue(
                module=issue.module, code=issue.code, severity=issue.severity.value,
                title=template.title, explanation=template.explanation.format_map(values),
                mitigation=template.mitigation.format_map(values), evidence=evidence,
                renderer="template")
        except (KeyError, IndexError, ValueError):
            pass
    return RenderedIssue(
        module=issue.module, code=issue.code, severity=issue.severity.value,
        title=issue.code.replace("_", " ").capitalize(),
        explanation="; ".join(evidence) or "no evidence recorded",
        mitigation=issue.mitigation.action.replace("_", " ").lower() + (
            ": " + "; ".join(fact_text(f) for f in issue.mitigation.facts)
            if issue.mitigation.facts else ""),
        evidence=evidence, renderer="facts")


def render_issues(issues: tuple[Issue, ...], templates: Templates) -> tuple[RenderedIssue, ...]:
    """Render each issue with its module's template for its code."""
    return tuple(render_issue(i, template_for(i, templates)) for i in issues)


def issue_facts(issue: Issue) -> tuple[Fact, ...]:
    """Return every fact an explanation of ``issue`` may rest on: evidence, then mitigation."""
    return (*issue.evidence, *issue.mitigation.facts)


def template_for(issue: Issue, templates: Templates) -> IssueTemplate | None:
    """Return the template of ``issue``'s module for its code, if there is one."""
    return templates.get(issue.module, {}).get(issue.code)


def explanation_source(rendered: tuple[RenderedIssue, ...]) -> str:
    """Return what the trader is reading: 'llm' when every issue's words passed the guardrails
    as an LLM rewording, 'template' when none did, 'mixed' otherwise."""
    llm = sum(r.renderer == "llm" for r in rendered)
    if llm == 0:
        return "template"
    return "llm" if llm == len(rendered) else "mixed"


# --------------------------------------------------------------------------- explainers
class Explainer(Protocol):
    """Something that turns issues into the words a trader reads."""

    name: ClassVar[str]

    def render(self, issues: tuple[Issue, ...], templates: Templates
               ) -> tuple[RenderedIssue, ...]:
        """Return one RenderedIssue per issue, same order."""
        ...


class TemplateExplainer:
    """The default: deterministic safe-phrasing templates filled with the issue's facts."""

    name: ClassVar[str] = "template"

    def render(self, issues: tuple[Issue, ...], templates: Templates
               ) -> tuple[RenderedIssue, ...]:
        """Return the template rendering of each issue."""
        return render_issues(issues, templates)


SYSTEM_PROMPT = (
    "You reword one finding of a trade-audit tool for a retail trader, in plain, friendly "
    "English. Use only the facts and template text given. Copy every number exactly as it is "
    "written there; never compute, convert or add a number, and never mention a price, date "
    "or amount that is not given. Do not predict prices, moves or outcomes, do not promise or "
    "imply results, do not express certainty about the future, never suggest removing a stop, "
    "and never mention other people or their data. Reply with one JSON object and nothing "
    'else: {"explanation": "...", "mitigation": "..."}, each at most two sentences.')

_MAX_FIELD_CHARS = 600
MAX_RESPONSE_BYTES = 64_000
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
JSON_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def endpoint_errors(base_url: str, model: str) -> list[FieldError]:
    """Return what is wrong with an OpenAI-compatible endpoint's URL and model name."""
    errors = []
    parsed = urllib.parse.urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        errors.append(FieldError("BUDDY_LLM_BASE_URL", "must be an http(s) URL", base_url))
    if not model:
        errors.append(FieldError("BUDDY_LLM_MODEL", "is required with BUDDY_LLM_BASE_URL",
                                 model))
    return errors


@dataclass(frozen=True)
class EndpointSettings:
    """An OpenAI-compatible endpoint as the environment names it (``timeout_s`` in seconds)."""

    base_url: str
    model: str
    api_key: str | None
    timeout_s: float


def endpoint_settings(environ: Mapping[str, str] | None = None) -> EndpointSettings:
    """Read BUDDY_LLM_BASE_URL, BUDDY_LLM_MODEL, BUDDY_LLM_API_KEY (optional) and
    BUDDY_LLM_TIMEOUT_S (optional, seconds, default 10); a timeout that is not a number raises
    ConfigError naming it."""
    env = os.environ if environ is None else environ
    raw_timeout = env.get("BUDDY_LLM_TIMEOUT_S") or "10"
    try:
        timeout_s = float(raw_timeout)
    except ValueError as exc:
        raise ConfigError([FieldError("BUDDY_LLM_TIMEOUT_S", "must be a number of seconds",
                                      raw_timeout)]) from exc
    return EndpointSettings(base_url=env.get("BUDDY_LLM_BASE_URL", "").strip(),
                            model=env.get("BUDDY_LLM_MODEL", ""),
                            api_key=env.get("BUDDY_LLM_API_KEY") or None, timeout_s=timeout_s)


class EndpointDown(Exception):
    """The endpoint could not be reached in time: skip it for the rest of the report."""


class RejectedReply(Exception):
    """The endpoint answered, but not with words the trader may read."""


class LLMExplainer:
    """Reword template text through an OpenAI-compatible chat endpoint, behind the guardrails.

    Each issue is one POST to ``{base_url}/chat/completions`` whose messages hold only the
    issue's code, severity, facts and template text (never the trader's request, id or other
    data). A reply is used only when it parses as the requested JSON and passes
    ``check_text`` against the issue's facts and template wording; otherwise that issue keeps
    its template text and ``fallback_reason`` says why. After a timeout or an unreachable
    endpoint the remaining issues of the same call skip the endpoint. ``timeout_s`` bounds
    each socket operation, in seconds.
    """

    name: ClassVar[str] = "llm"

    def __init__(self, *, base_url: str, model: str, api_key: str | None = None,
                 timeout_s: float = 10.0, max_tokens: int = 300) -> None:
        errors = endpoint_errors(base_url, model)
        if not (isinstance(timeout_s, int | float) and math.isfinite(timeout_s)
                and 0 < timeout_s <= 300):
            errors.append(FieldError("BUDDY_LLM_TIMEOUT_S", "must be in (0, 300] seconds",
                                     timeout_s))
        if errors:
            raise ConfigError(errors)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = float(timeout_s)
        self.max_tokens = max_tokens
        self._api_key = api_key
        loopback = urllib.parse.urlparse(base_url).hostname in LOOPBACK_HOSTS
        handlers = [urllib.request.ProxyHandler({})] if loopback else []
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return (f"LLMExplainer(base_url={self.base_url!r}, model={self.model!r}, "
                f"timeout_s={self.timeout_s})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LLMExplainer:
        """Build from BUDDY_LLM_BASE_URL, BUDDY_LLM_MODEL, BUDDY_LLM_API_KEY (optional) and
        BUDDY_LLM_TIMEOUT_S (optional, seconds, default 10)."""
        found = endpoint_settings(environ)
        return cls(base_url=found.base_url, model=found.model, api_key=found.api_key,
                   timeout_s=found.timeout_s)

    def render(self, issues: tuple[Issue, ...], templates: Templates
               ) -> tuple[RenderedIssue, ...]:
        """Return each issue reworded by the endpoint when the reply passes the guardrails,
        else its template text with the reason."""
        rendered = []
        down: str | None = None
        for issue in issues:
            template = template_for(issue, templates)
            base = render_issue(issue, template)
            if template is None:
                rendered.append(replace(base, fallback_reason="no template for this issue"))
            elif base.renderer != "template":
                rendered.append(replace(base, fallback_reason="template names a fact the "
                                                              "issue lacks"))
            elif down is not None:
                rendered.append(replace(base, fallback_reason=f"llm skipped: {down}"))
            else:
                try:
                    rendered.append(self._reword(issue, template, base))
                except EndpointDown as exc:
                    down = f"endpoint failed earlier ({exc})"
                    rendered.append(replace(base, fallback_reason=f"llm {exc}"))
                except RejectedReply as exc:
                    rendered.append(replace(base, fallback_reason=str(exc)))
        return tuple(rendered)

    def messages(self, issue: Issue, template: IssueTemplate, base: RenderedIssue
                 ) -> list[dict[str, str]]:
        """Return the chat messages for ``issue``: built only from its facts and template."""
        finding = {
            "issue_code": issue.code,
            "severity": issue.severity.value,
            "title": template.title,
            "template_explanation": base.explanation,
            "template_mitigation": base.mitigation,
            "facts": [{"name": f.name, "value": format_value(f.value, f.unit),
                       **({"threshold": format_value(f.threshold, f.unit)}
                          if f.threshold is not None else {})}
                      for f in issue_facts(issue)],
        }
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": json.dumps(finding, ensure_ascii=False)}]

    def _reword(self, issue: Issue, template: IssueTemplate, base: RenderedIssue
                ) -> RenderedIssue:
        content = self._complete(self.messages(issue, template, base))
        explanation, mitigation = _parse_reply(content)
        allowed = (template.title, template.explanation, template.mitigation)
        facts = issue_facts(issue)
        problems: list[str] = []
        for text in (explanation, mitigation):
            problems += check_text(text, facts, allowed=allowed).reasons
        if problems:
            raise RejectedReply("guardrail rejected the llm text: " + "; ".join(problems))
        if (unsourced_numbers(base.explanation, (), allowed=allowed)
                and not unsourced_numbers(explanation, (), allowed=allowed)):
            raise RejectedReply("llm text left out the numbers behind the finding")
        return replace(base, explanation=explanation, mitigation=mitigation, renderer="llm")

    def _complete(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0,
                           "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body,
                                         headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise RejectedReply(f"llm endpoint answered HTTP {exc.code}") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise EndpointDown(f"timed out after {self.timeout_s:g} s") from exc
            raise EndpointDown(f"unreachable ({type(exc.reason).__name__})") from exc
        except TimeoutError as exc:
            raise EndpointDown(f"timed out after {self.timeout_s:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise EndpointDown(f"connection failed ({type(exc).__name__})") from exc
        if len(raw) > MAX_RESPONSE_BYTES:
            raise RejectedReply("llm reply too large")
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise RejectedReply("llm reply is not a chat completion") from exc
        if not isinstance(content, str):
            raise RejectedReply("llm reply is not a chat completion")
        return content


def _parse_reply(content: str) -> tuple[str, str]:
    fenced = JSON_FENCE.match(content)
    try:
        data: Any = json.loads(fenced.group(1) if fenced else content)
    except ValueError as exc:
        raise RejectedReply("llm text is not the requested JSON") from exc
    if not isinstance(data, dict):
        raise RejectedReply("llm text is not the requested JSON")
    fields = []
    for key in ("explanation", "mitigation"):
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise RejectedReply(f"llm text has no {key}")
        value = " ".join(value.split())
        if len(value) > _MAX_FIELD_CHARS:
            raise RejectedReply(f"llm {key} is longer than {_MAX_FIELD_CHARS} characters")
        if CONTROL_CHARS.search(value) or any(c in value for c in "{}<>") or "://" in value:
            raise RejectedReply(f"llm {key} holds markup, a link or a placeholder")
        fields.append(value)
    return fields[0], fields[1]


def explainer_from_env(environ: Mapping[str, str] | None = None) -> Explainer:
    """Return an LLMExplainer when BUDDY_LLM_BASE_URL is set, else the TemplateExplainer."""
    env = os.environ if environ is None else environ
    if env.get("BUDDY_LLM_BASE_URL", "").strip():
        return LLMExplainer.from_env(env)
    return TemplateExplainer()


# --------------------------------------------------------------------------- questions
@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """The reply to a trader's question about a report's issues.

    ``reply`` is the fixed refusal when the question asked for a prediction, certainty,
    dropping the stop or another user's data (None otherwise); ``rendered`` is the issues in
    plain words either way; ``source`` is ``explanation_source(rendered)``.
    """

    reply: str | None
    rendered: tuple[RenderedIssue, ...]
    source: str

    def texts(self) -> tuple[str, ...]:
        """Return every string the trader reads, reply first."""
        words = [t for r in self.rendered for t in (r.title, r.explanation, r.mitigation,
                                                    *r.evidence)]
        return (self.reply, *words) if self.reply is not None else tuple(words)


def answer(request_text: str, issues: tuple[Issue, ...], templates: Templates,
           explainer: Explainer | None = None) -> Answer:
    """Answer ``request_text`` about ``issues``: a fixed reply to what the workbench never
    gives, plus the issues rendered by ``explainer`` (the template one by default).

    The request itself never reaches the explainer: it only selects the fixed reply.
    """
    rendered = (explainer or TemplateExplainer()).render(issues, templates)
    return Answer(reply=safe_reply(request_text), rendered=rendered,
                  source=explanation_source(rendered))
