"""Request and response models of the HTTP service (pydantic v2), with the examples the
OpenAPI document shows.

Prices are in the instrument's quote currency, sizes in units (shares, FX units), horizons in
bars of the timeframe, times ISO 8601 (a bare date YYYY-MM-DD means that exchange session's
close). The user is never a field: it is the owner of the API key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AssistantSessionRequest", "ConfigInfo", "EvaluateRequest", "EvaluationReport",
           "ExposureResponse", "FeedbackRequest", "FeedbackResponse", "FieldProblem",
           "IntentFields", "IntentResponse", "KeyLevelsResponse", "Message", "Problems",
           "RegimeResponse", "ReviewRequest", "ReviewResponse", "StrategyProfileResponse",
           "TradeIntentRequest", "TurnResponse"]

Side = Literal["long", "short"]
TimeframeLabel = Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w"]
OrderTypeLabel = Literal["market", "limit", "stop", "stop_limit"]

AAPL_LONG: dict[str, Any] = {
    "symbol": "AAPL", "side": "long", "timeframe": "1d", "entry": 555.0, "stop": 540.0,
    "target": 600.0, "size": 100, "as_of": "2012-06-01", "horizon": 10,
    "order_type": "limit"}


# ---------------------------------------------------------------------------- errors
class FieldProblem(BaseModel):
    """One broken rule: the field, the rule and the value received."""

    field: str = Field(examples=["stop"])
    rule: str = Field(examples=["must be below entry for a long"])
    value: Any = Field(default=None, examples=[560.0])


class Problems(BaseModel):
    """A 422 answer: every broken rule at once; nothing was written."""

    detail: list[FieldProblem]


class Message(BaseModel):
    """A 401, 404 or 409 answer in words."""

    detail: str = Field(examples=["no intent 'abc' for this user"])


# ---------------------------------------------------------------------------- intents
class IntentFields(BaseModel):
    """A trade idea as the CLI's ``buddy evaluate`` takes it (the user is the key's)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [AAPL_LONG]})

    symbol: str = Field(min_length=1, max_length=32, description="Ticker, e.g. AAPL")
    side: Side
    timeframe: TimeframeLabel = Field(description="Bar length of the idea, e.g. 1d")
    entry: float = Field(description="Proposed entry price, quote currency")
    stop: float | None = Field(default=None, description="Proposed stop price")
    target: float | None = Field(default=None, description="Proposed target price")
    size: float = Field(description="Units (shares, FX units)")
    as_of: str | None = Field(
        default=None, max_length=40,
        description="Decision time: YYYY-MM-DD (that session's close) or ISO with a zone; "
                    "default the last closed bar of the symbol's timeframe in the data")
    horizon: int | None = Field(default=None, description="Holding horizon, bars")
    order_type: OrderTypeLabel = "limit"
    risk_amount: float | None = Field(default=None, description="Planned risk, currency")


class TradeIntentRequest(IntentFields):
    """Create (no ``intent_id``) or update (a draft of yours) a trade intent."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{**AAPL_LONG, "status": "draft"}]})

    intent_id: str | None = Field(default=None, max_length=64,
                                  description="An existing draft of yours to update")
    status: Literal["draft", "submitted"] = "draft"


class IntentResponse(BaseModel):
    """The stored intent (the trade_intents row) and whether it was created or updated."""

    intent_id: str
    action: Literal["created", "updated"]
    intent: dict[str, Any]


class EvaluateRequest(BaseModel):
    """Evaluate a stored intent of yours (``intent_id``) or an inline one (``intent``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"intent": AAPL_LONG}, {"intent_id": "0f3c2a..."}]})

    intent_id: str | None = Field(default=None, max_length=64)
    intent: IntentFields | None = None
    log: bool = Field(default=True, description="Log the evaluation (trade_evaluations)")

    @model_validator(mode="after")
    def _one_source(self) -> EvaluateRequest:
        if (self.intent_id is None) == (self.intent is None):
            raise ValueError("give exactly one of intent_id and intent")
        return self


class ConfigInfo(BaseModel):
    """The scoring config a report was made with, as resolved."""

    name: str
    version: str
    alias: str
    hash: str


class EvaluationReport(BaseModel):
    """The Buddy Report: the same JSON as ``buddy evaluate --json`` (every key of it; the
    main ones typed here), plus ``logging`` (whether its rows reached the database)."""

    model_config = ConfigDict(extra="allow")

    eval_id: str
    intent: dict[str, Any]
    verdict: str
    overall_score: float | None
    overall_severity: str
    issues: list[dict[str, Any]]
    not_checked: list[dict[str, Any]]
    config: ConfigInfo
    config_hash: str
    logging: dict[str, str]


# ---------------------------------------------------------------------------- context reads
class RegimeResponse(BaseModel):
    """The regime of the last bar closed at ``as_of`` and the HMM's transition risk."""

    symbol: str
    timeframe: str
    as_of: str
    snapshot: dict[str, Any] | None
    transition_risk: dict[str, Any] | None = Field(
        description="P(leaving the current state within horizon_bars), None without an HMM")
    not_checked: str | None = Field(default=None, description="why there is no snapshot")


class KeyLevelsResponse(BaseModel):
    """The key levels of the last bar closed at ``as_of`` (your anchors included)."""

    symbol: str
    timeframe: str
    as_of: str
    snapshot: dict[str, Any] | None
    named_levels: dict[str, float]
    not_checked: str | None = None


class StrategyProfileResponse(BaseModel):
    """Your stored strategy profile, playbooks and the account's rules (thresholds)."""

    user_id: str
    profile: dict[str, Any] | None
    playbooks: list[dict[str, Any]]
    rules: dict[str, Any] | None
    not_checked: list[str]


class ExposureResponse(BaseModel):
    """Your portfolio exposure as of ``as_of``: clusters, heat, risk contributions."""

    user_id: str
    as_of: str
    snapshot: dict[str, Any] | None
    not_checked: str | None = None


# ---------------------------------------------------------------------------- reviews, feedback
class ReviewRequest(BaseModel):
    """Generate (or refresh) the post-trade review of one closed trade of yours."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"trade_id": "demo-AAPL-1d-0001"}]})

    trade_id: str = Field(min_length=1, max_length=128)


class ReviewResponse(BaseModel):
    """The stored review (the post_trade_reviews row, JSON columns parsed)."""

    trade_id: str
    review: dict[str, Any]


class FeedbackRequest(BaseModel):
    """Feedback on one item of one of your reports."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"eval_id": "…", "code": "STOP_INSIDE_NOISE", "kind": "helpful"}]})

    eval_id: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=64, description="the item's issue code")
    kind: Literal["dismissed", "helpful", "not_helpful"]


class FeedbackResponse(BaseModel):
    """The item's feedback as stored after this call."""

    feedback: dict[str, Any]


# ---------------------------------------------------------------------------- assistant
class AssistantSessionRequest(BaseModel):
    """One step of a brainstorm session: a turn of text, the one-click evaluate, or saving
    the session as a journal entry. No ``session_id`` starts a new session."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "long AAPL on a pullback to 555, stop under 540, target 600, "
                 "risk half a percent"},
        {"session_id": "…", "action": "evaluate"}]})

    session_id: str | None = Field(default=None, max_length=64)
    text: str | None = Field(default=None, max_length=4000)
    action: Literal["turn", "evaluate", "save_journal"] = "turn"
    note: str | None = Field(default=None, max_length=4000,
                             description="save_journal: your own words to add")

    @model_validator(mode="after")
    def _text_for_turn(self) -> AssistantSessionRequest:
        if self.action == "turn" and not (self.text or "").strip():
            raise ValueError("a turn needs text")
        if self.action != "turn" and self.session_id is None:
            raise ValueError(f"{self.action} needs a session_id")
        return self


class TurnResponse(BaseModel):
    """The assistant's reply: the next question or the report, and the draft so far."""

    model_config = ConfigDict(extra="allow")

    session_id: str
    reply: str
    route: str
    draft: dict[str, Any]
    questions: list[str]
    report: dict[str, Any] | None
    eval_id: str | None
    journal_id: str | None
    renderer: str
