"""The LLM adapter against a real HTTP server on loopback: only a faithful rewording reaches
the trader; an invented number, a prediction, garbage or a timeout fall back to the template."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace

import pytest

from buddy.errors import ConfigError
from buddy.evaluators.base import IssueTemplate
from buddy.explain import (
    SYSTEM_PROMPT,
    LLMExplainer,
    TemplateExplainer,
    answer,
    explainer_from_env,
    explanation_source,
    render_issue,
    render_issues,
)
from tests.guardrails import (
    ISSUES,
    REWARD_RISK_BELOW_MIN,
    STOP_INSIDE_NOISE,
    TEMPLATES,
    completion,
    loopback_llm,
    template_of,
)

FAITHFUL = completion(
    "Your stop sits 0.40 ATR from your entry, which is 1.20 in price, while a typical bar "
    "moves 3.00. The check looks for a stop at least 1.0 ATR away.",
    "You could place the stop near 97.00, or trade a smaller size so the wider stop risks "
    "the same amount.")
INVENTED_NUMBER = completion(
    "Your stop sits 0.40 ATR from entry; most traders use 2.5 ATR here.",
    "Place the stop near 97.00.")
PREDICTION = completion(
    "Your stop is 0.40 ATR from entry, but the stock will rise anyway.",
    "Keep the stop near 97.00; the trade is sure to work out.")

SCRIPT = {"faithful": FAITHFUL, "invented": INVENTED_NUMBER, "prediction": PREDICTION,
          "garbage": "garbage", "timeout": "timeout", "http_500": "http_500"}


@pytest.fixture(scope="module")
def llm():
    with loopback_llm(SCRIPT) as server:
        yield server


def _render_one(llm, model: str, *, timeout_s: float = 2.0):
    explainer = llm.explainer(model, timeout_s=timeout_s)
    (rendered,) = explainer.render((STOP_INSIDE_NOISE,), TEMPLATES)
    return rendered


def test_a_faithful_rephrasing_reaches_the_user(llm) -> None:
    rendered = _render_one(llm, "faithful")
    words = json.loads(FAITHFUL)
    assert rendered.renderer == "llm"
    assert rendered.fallback_reason is None
    assert rendered.explanation == words["explanation"]
    assert rendered.mitigation == words["mitigation"]
    assert rendered.title == template_of(STOP_INSIDE_NOISE).title
    assert explanation_source((rendered,)) == "llm"


@pytest.mark.parametrize(("model", "reason"), [
    ("invented", "number not in the facts: '2.5'"),
    ("prediction", "predictive wording: 'will rise'"),
    ("garbage", "not a chat completion"),
    ("http_500", "HTTP 500"),
])
def test_b_c_d_rejected_replies_fall_back_to_the_template(llm, model: str, reason: str
                                                         ) -> None:
    rendered = _render_one(llm, model)
    assert rendered.renderer == "template"
    assert reason in rendered.fallback_reason
    template_text = render_issue(STOP_INSIDE_NOISE, template_of(STOP_INSIDE_NOISE))
    assert rendered == replace(template_text, fallback_reason=rendered.fallback_reason)


def test_e_timeout_gives_up_quickly_and_skips_the_rest(llm) -> None:
    explainer = llm.explainer("timeout", timeout_s=0.5)
    start = time.monotonic()
    rendered = explainer.render(ISSUES, TEMPLATES)
    elapsed = time.monotonic() - start
    assert elapsed < 4.0  # the server answers only after 5 s: the client did not wait for it
    assert [r.renderer for r in rendered] == ["template"] * len(ISSUES)
    assert "timed out after 0.5 s" in rendered[0].fallback_reason
    assert all(r.fallback_reason.startswith("llm skipped") for r in rendered[1:])
    assert [(r.explanation, r.mitigation) for r in rendered] == [
        (r.explanation, r.mitigation) for r in render_issues(ISSUES, TEMPLATES)]


def test_only_the_faithful_behaviour_reaches_the_user(llm) -> None:
    reached = [model for model in ("faithful", "invented", "prediction", "garbage", "timeout")
               if _render_one(llm, model, timeout_s=0.5).renderer == "llm"]
    assert reached == ["faithful"]


def test_messages_hold_only_the_issue_facts_and_template_text(llm) -> None:
    llm.requests.clear()
    explainer = llm.explainer("faithful", api_key="sk-test")
    answer("will it go up? show me user bob's trades", (REWARD_RISK_BELOW_MIN,), TEMPLATES,
           explainer)
    (request,) = llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["body"]
    assert body["model"] == "faithful" and body["temperature"] == 0
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    finding = json.loads(user["content"])
    base = render_issue(REWARD_RISK_BELOW_MIN, template_of(REWARD_RISK_BELOW_MIN))
    assert finding == {
        "issue_code": "REWARD_RISK_BELOW_MIN", "severity": "medium",
        "title": base.title, "template_explanation": base.explanation,
        "template_mitigation": base.mitigation,
        "facts": [{"name": "reward_risk", "value": "1.20R", "threshold": "1.50R"},
                  {"name": "reward_distance", "value": "2.40"},
                  {"name": "risk_distance", "value": "2.00"},
                  {"name": "target_for_min_rr", "value": "103.00"}]}
    assert "bob" not in user["content"] and "go up" not in user["content"]


def test_a_reply_for_another_issue_is_rejected(llm) -> None:
    explainer = llm.explainer("faithful")
    (rendered,) = explainer.render((REWARD_RISK_BELOW_MIN,), TEMPLATES)
    assert rendered.renderer == "template"
    assert "number not in the facts" in rendered.fallback_reason


def test_fenced_json_is_accepted_and_missing_numbers_are_not() -> None:
    fenced = "```json\n" + FAITHFUL + "\n```"
    vague = completion("Your stop is rather close to your entry.", "Consider a wider stop.")
    script = {"fenced": fenced, "vague": vague,
              "plain": "Your stop is 0.40 ATR from entry.",
              "placeholder": completion("Your stop is {stop_distance_atr} away.", "Widen it.")}
    with loopback_llm(script) as server:
        assert _render_one(server, "fenced").renderer == "llm"
        vague_rendered = _render_one(server, "vague")
        plain = _render_one(server, "plain")
        placeholder = _render_one(server, "placeholder")
    assert vague_rendered.renderer == "template"
    assert "left out the numbers" in vague_rendered.fallback_reason
    assert "not the requested JSON" in plain.fallback_reason
    assert "placeholder" in placeholder.fallback_reason


def test_unreachable_endpoint_falls_back() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    explainer = LLMExplainer(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=0.5)
    rendered = explainer.render(ISSUES[:2], TEMPLATES)
    assert [r.renderer for r in rendered] == ["template", "template"]
    assert "unreachable" in rendered[0].fallback_reason
    assert rendered[1].fallback_reason.startswith("llm skipped")


def test_issue_without_template_is_rendered_from_facts(llm) -> None:
    explainer = llm.explainer("faithful")
    (rendered,) = explainer.render((STOP_INSIDE_NOISE,), {})
    assert rendered.renderer == "facts"
    assert rendered.fallback_reason == "no template for this issue"


def test_template_naming_a_missing_fact_is_rendered_from_facts(llm) -> None:
    broken = {"stop_placement": {"STOP_INSIDE_NOISE": IssueTemplate(
        "Stop", "Your stop is {no_such_fact} away.", "Widen it.")}}
    before = len(llm.requests)
    (rendered,) = llm.explainer("faithful").render((STOP_INSIDE_NOISE,), broken)
    assert rendered.renderer == "facts"
    assert rendered.fallback_reason == "template names a fact the issue lacks"
    assert len(llm.requests) == before  # the endpoint is never asked


def test_explainer_from_env() -> None:
    assert isinstance(explainer_from_env({}), TemplateExplainer)
    assert isinstance(explainer_from_env({"BUDDY_LLM_BASE_URL": "  "}), TemplateExplainer)
    explainer = explainer_from_env({"BUDDY_LLM_BASE_URL": "http://127.0.0.1:9/v1/",
                                    "BUDDY_LLM_MODEL": "tiny", "BUDDY_LLM_API_KEY": "sk-secret",
                                    "BUDDY_LLM_TIMEOUT_S": "0.5"})
    assert isinstance(explainer, LLMExplainer)
    assert (explainer.base_url, explainer.model, explainer.timeout_s) == (
        "http://127.0.0.1:9/v1", "tiny", 0.5)
    assert "sk-secret" not in repr(explainer)


@pytest.mark.parametrize(("env", "field"), [
    ({"BUDDY_LLM_BASE_URL": "http://127.0.0.1:9"}, "BUDDY_LLM_MODEL"),
    ({"BUDDY_LLM_BASE_URL": "ftp://x", "BUDDY_LLM_MODEL": "m"}, "BUDDY_LLM_BASE_URL"),
    ({"BUDDY_LLM_BASE_URL": "http://h", "BUDDY_LLM_MODEL": "m",
      "BUDDY_LLM_TIMEOUT_S": "soon"}, "BUDDY_LLM_TIMEOUT_S"),
    ({"BUDDY_LLM_BASE_URL": "http://h", "BUDDY_LLM_MODEL": "m",
      "BUDDY_LLM_TIMEOUT_S": "-1"}, "BUDDY_LLM_TIMEOUT_S"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        explainer_from_env(env)
    assert field in info.value.fields


def test_template_explainer_is_the_current_renderer() -> None:
    rendered = TemplateExplainer().render(ISSUES, TEMPLATES)
    assert rendered == render_issues(ISSUES, TEMPLATES)
    assert {r.renderer for r in rendered} == {"template"}
    assert explanation_source(rendered) == "template"
