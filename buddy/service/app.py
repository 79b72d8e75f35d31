"""The HTTP service: the seed's API contracts over ``buddy.api.Buddy`` (FastAPI, uvicorn).

``create_app(db, config_ref=...)`` returns the application; its lifespan opens the store
(migrating it) and one ``Buddy`` with the resolved scoring config. Every request names an
API key (``X-API-Key`` or ``Authorization: Bearer``; ``buddy.service.auth``) and sees only
its user's rows: another user's intent, trade, evaluation or session answers 404, as an
unknown one does. Bad input answers 422 with every broken rule as {field, rule, value};
nothing is written then.

The service is the file's single writer while it runs. Work on the store is serialised by
one lock per application: DuckDB's file is opened per operation and Buddy's caches are not
meant for concurrent use, and on this machine's two cores the evaluations would only
contend for the GIL (the load test in tests/service measures the result).
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from buddy.api import Buddy
from buddy.config_sources import PRODUCTION, resolve_scoring_config
from buddy.domain import TradeIntent
from buddy.errors import FieldError, FieldErrors, IntentValidationError, StoreLockedError
from buddy.service.auth import user_for_key
from buddy.service.models import (
    AssistantSessionRequest,
    EvaluateRequest,
    EvaluationReport,
    ExposureResponse,
    FeedbackRequest,
    FeedbackResponse,
    IntentFields,
    IntentResponse,
    KeyLevelsResponse,
    Message,
    Problems,
    RegimeResponse,
    ReviewRequest,
    ReviewResponse,
    StrategyProfileResponse,
    TradeIntentRequest,
    TurnResponse,
)
from buddy.store import Store

__all__ = ["INTENT_FIELD_NAMES", "Service", "create_app", "jsonable"]

T = TypeVar("T")

#: The domain's field names as the API names them (errors name the API's field).
INTENT_FIELD_NAMES = {"proposed_entry": "entry", "proposed_stop": "stop",
                      "proposed_target": "target", "proposed_size": "size",
                      "holding_horizon": "horizon", "proposed_risk_amount": "risk_amount",
                      "user_id": "user"}

#: The span of decision times a read accepts (UTC): outside it no data exists, and time
#: arithmetic past it overflows.
AS_OF_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))

#: Default horizon of the regime's transition risk, bars.
DEFAULT_RISK_HORIZON = 10


@dataclasses.dataclass
class Service:
    """What the lifespan opens: the store, one Buddy over it, the lock serialising them."""

    store: Store
    buddy: Buddy
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    brainstorm: Any = None  # buddy.assistant.session.Brainstorm, made at its first use

    @contextmanager
    def using(self) -> Iterator[Buddy]:
        """Hold the store for one request's work."""
        with self.lock:
            yield self.buddy


class NotFound(LookupError):
    """A row the user does not have (unknown, or another user's: the same answer)."""


class Conflict(Exception):
    """The request is valid but the row's state refuses it."""


# ---------------------------------------------------------------------------- errors
def _plain(value: Any) -> Any:
    """Return ``value`` as JSON-ready data (repr when it has no JSON form; NaN as None)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    try:
        return jsonable_encoder(value)
    except (TypeError, ValueError):
        return repr(value)


def _field_problems(errors: Sequence[FieldError], prefix: str = "") -> list[dict[str, Any]]:
    return [{"field": prefix + INTENT_FIELD_NAMES.get(e.field, e.field), "rule": e.rule,
             "value": _plain(e.value)} for e in errors]


def _pydantic_problems(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Return pydantic's errors as {field, rule, value}: the field is the location past
    'body'/'query'/'header', the rule pydantic's message, the value the input received
    (None for a missing field)."""
    out = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        if error.get("type") == "json_invalid":  # loc is ('body', character position)
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            out.append({"field": "body", "rule": f"must be valid JSON ("
                        f"{error.get('ctx', {}).get('error', 'cannot parse')}{at})",
                        "value": None})
            continue
        where = loc[1:] if loc and loc[0] in ("body", "query", "header", "path") else loc
        field = ".".join(where) or (loc[0] if loc else "body")
        value = None if error.get("type") == "missing" else error.get("input")
        out.append({"field": field, "rule": str(error.get("msg", "is invalid")),
                    "value": _plain(value)})
    return out


def _problems(problems: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": problems})


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Message, "description": "No API key, or an unknown or revoked one"},
    404: {"model": Message, "description": "No such row for this user"},
    422: {"model": Problems, "description": "Bad input: field, rule and value; nothing written"},
    503: {"model": Message, "description": "Another process held the database too long; "
                                           "retry after Retry-After seconds"},
}


# ---------------------------------------------------------------------------- auth
_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                           description="Your API key (`buddy service keys create`)")
_BEARER = HTTPBearer(auto_error=False, description="The same key as a bearer token")


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def current_user(request: Request,
                 key: Annotated[str | None, Security(_KEY_HEADER)] = None,
                 bearer: Annotated[HTTPAuthorizationCredentials | None,
                                   Security(_BEARER)] = None) -> str:
    """Return the user the request's API key belongs to; 401 without a valid one."""
    presented = key or (bearer.credentials if bearer is not None else None)
    service = _service(request)
    with service.lock:
        user = user_for_key(service.store, presented)
    if user is None:
        raise HTTPException(status_code=401,
                            detail="missing or invalid API key" if presented else
                            "missing API key: send X-API-Key or Authorization: Bearer",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


User = Annotated[str, Depends(current_user)]
ServiceDep = Annotated[Service, Depends(_service)]


# ---------------------------------------------------------------------------- helpers
def _run(service: Service, work: Callable[[Buddy], T]) -> T:
    """Run ``work`` with the store held."""
    with service.using() as buddy:
        return work(buddy)


def _as_of_default(buddy: Buddy, symbol: str, timeframe: str) -> str:
    """Return the close of the last bar of (symbol, timeframe) in the data, ISO; raise a
    FieldError naming the timeframe when there are no such bars."""
    span = buddy.catalogue().coverage.get((symbol, timeframe))
    if span is None:
        raise IntentValidationError([FieldError(
            "timeframe", f"has no bars of {symbol} in the data (as_of has no default)",
            timeframe)])
    return pd.Timestamp(span[1]).isoformat()


def _symbol(buddy: Buddy, symbol: str) -> str:
    """Return ``symbol`` upper-cased; raise naming it when it is not in the tickers table."""
    upper = symbol.strip().upper()
    buddy.instrument(upper)
    return upper


def _resolve_as_of(buddy: Buddy, symbol: str, timeframe: str, as_of: str | None
                   ) -> datetime:
    """Return ``as_of`` as UTC (a date: that session's close), default the last close."""
    from buddy.api import resolve_as_of

    inst = buddy.instrument(symbol)
    value = as_of if as_of is not None else _as_of_default(buddy, symbol, timeframe)
    return _in_range(resolve_as_of(value, inst.timezone, calendar=inst.trading_calendar),
                     value)


def _in_range(at: datetime, sent: Any) -> datetime:
    """Return ``at``; raise naming as_of when it lies outside AS_OF_RANGE."""
    low, high = AS_OF_RANGE
    if not low <= at < high:
        raise IntentValidationError([FieldError(
            "as_of", f"must be from {low:%Y-%m-%d} and before {high:%Y-%m-%d}", sent)])
    return at


def _make_intent(buddy: Buddy, user: str, fields: IntentFields, *,
                 status: str = "draft", intent_id: str | None = None) -> TradeIntent:
    """Validate ``fields`` into a TradeIntent of ``user`` (every broken rule at once)."""
    symbol = _symbol(buddy, fields.symbol)
    as_of = fields.as_of if fields.as_of is not None else _as_of_default(
        buddy, symbol, fields.timeframe)
    intent = buddy.make_intent(user=user, symbol=symbol, side=fields.side,
                               timeframe=fields.timeframe, entry=fields.entry,
                               stop=fields.stop, target=fields.target, size=fields.size,
                               as_of=as_of, horizon=fields.horizon,
                               order_type=fields.order_type, risk_amount=fields.risk_amount)
    changes: dict[str, Any] = {"status": status}
    if intent_id is not None:
        changes["intent_id"] = intent_id
    return dataclasses.replace(intent, **changes)


def _stored_intent(buddy: Buddy, user: str, intent_id: str) -> TradeIntent:
    """Return the user's stored intent ``intent_id``; NotFound otherwise."""
    from buddy.store.trades import read_intents

    rows = read_intents(buddy.store, user, [intent_id])
    if rows.empty:
        raise NotFound(f"no intent {intent_id!r} for this user")
    row = {k: (None if _missing(v) else v) for k, v in rows.iloc[0].to_dict().items()}
    row.pop("created_at", None)
    return TradeIntent.create(**row)


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _report(buddy: Buddy, intent: TradeIntent, log: bool) -> dict[str, Any]:
    report = buddy.evaluate_intent(intent, log=log)
    out: dict[str, Any] = jsonable(report.to_dict())
    out["logging"] = {"state": report.logging.state, "detail": report.logging.detail}
    return out


def jsonable(value: Any) -> Any:
    """Return a snapshot dataclass or row as JSON-ready data (NaN as None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).isoformat()
    if _missing(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    if hasattr(value, "tolist"):  # numpy arrays
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ---------------------------------------------------------------------------- the app
def create_app(db: str | Path | None = None, *, config_ref: str | None = None) -> FastAPI:
    """Return the service over the DuckDB file ``db`` (default $BUDDY_DB, else
    data/buddy.duckdb) evaluating with the config ``config_ref`` names (default
    'production': the registry's production config, else the packaged default)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(db)
        config = resolve_scoring_config(config_ref or PRODUCTION)
        app.state.service = Service(store=store, buddy=Buddy(store, config))
        yield
        # evaluations queued while another process held the file go in before we stop
        store.flush_pending(quiet=True)

    app = FastAPI(
        title="Trading Buddy", version="1",
        description="An honest second opinion on a trade, point-in-time. Every call needs "
                    "an API key (`X-API-Key` or `Authorization: Bearer`); a user sees only "
                    "their own rows. No predictions: the report audits the plan.",
        lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError
                               ) -> JSONResponse:
        return _problems(_pydantic_problems(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers a body it cannot decode (not UTF-8, say) with a bare 400; to the
        # client it is bad input like any other: 422 naming the body
        if exc.status_code == 400:
            return _problems([{"field": "body", "rule": f"must be JSON text in UTF-8 "
                               f"({exc.detail})", "value": None}])
        return await http_exception_handler(request, exc)

    @app.exception_handler(FieldErrors)
    async def _invalid_fields(_request: Request, exc: FieldErrors) -> JSONResponse:
        return _problems(_field_problems(exc.errors))

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(StoreLockedError)
    async def _busy(_request: Request, exc: StoreLockedError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": str(exc)},
                            headers={"Retry-After": "2"})

    _routes(app)
    return app


def _routes(app: FastAPI) -> None:
    @app.post("/tradeIntents", response_model=IntentResponse, tags=["intents"],
              responses={**ERRORS, 409: {"model": Message,
                                         "description": "The intent can no longer change"}})
    def trade_intents(body: TradeIntentRequest, user: User, service: ServiceDep
                      ) -> IntentResponse:
        """Create a trade intent (draft or submitted) or update a draft of yours that has
        no evaluation yet; validated like `buddy evaluate` (422 names each broken rule)."""
        from buddy.store.intents import IntentLocked, save_intent

        def work(buddy: Buddy) -> IntentResponse:
            intent = _make_intent(buddy, user, body, status=body.status,
                                  intent_id=body.intent_id)
            try:
                action = save_intent(buddy.store, intent.as_row(),
                                     created_at=datetime.now(UTC))
            except KeyError as exc:
                raise NotFound(str(exc.args[0])) from None
            except IntentLocked as exc:
                raise Conflict(str(exc)) from None
            return IntentResponse(intent_id=intent.intent_id, action=action,
                                  intent=jsonable(intent.as_dict()))

        return _run(service, work)

    @app.post("/evaluateTradeIntent", response_model=EvaluationReport, tags=["evaluate"],
              responses=ERRORS)
    def evaluate_trade_intent(body: EvaluateRequest, user: User, service: ServiceDep
                              ) -> dict[str, Any]:
        """Run the orchestrator on a stored intent of yours or an inline one and log it;
        return the Buddy Report (the JSON of `buddy evaluate --json`: verdict, score, issues
        with evidence and mitigations, what was not checked, the config's name, alias,
        version and hash) with where its log went."""

        def work(buddy: Buddy) -> dict[str, Any]:
            if body.intent is not None:
                try:
                    intent = _make_intent(buddy, user, body.intent)
                except FieldErrors as exc:
                    raise IntentValidationError([dataclasses.replace(
                        e, field="intent." + INTENT_FIELD_NAMES.get(e.field, e.field))
                        for e in exc.errors]) from None
            else:
                assert body.intent_id is not None
                intent = _stored_intent(buddy, user, body.intent_id)
            return _report(buddy, intent, body.log)

        return _run(service, work)

    @app.get("/regimeSnapshot", response_model=RegimeResponse, tags=["context"],
             responses=ERRORS)
    def regime_snapshot(user: User, service: ServiceDep,
                        symbol: Annotated[str, Query(min_length=1, max_length=32)],
                        tf: Annotated[str, Query(pattern="^(1m|5m|15m|30m|1h|4h|1d|1w)$")] = "1d",
                        as_of: Annotated[str | None, Query(max_length=40)] = None,
                        horizon: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_RISK_HORIZON,
                        ) -> RegimeResponse:
        """Return the regime of the last `tf` bar of `symbol` closed at `as_of` (default:
        the last close in the data) and the risk of leaving its state within `horizon`
        bars (from the HMM's filtered probabilities and transition matrix)."""
        from buddy.regime.provider import regime_at

        def work(buddy: Buddy) -> RegimeResponse:
            sym = _symbol(buddy, symbol)
            at = _resolve_as_of(buddy, sym, tf, as_of)
            snapshot, reason = regime_at(buddy.store, sym, tf, at)
            risk = None
            if snapshot is not None and snapshot.transition_risk(horizon) is not None:
                risk = {"horizon_bars": horizon, "state": snapshot.hmm_state_label,
                        "p_leave": snapshot.transition_risk(horizon)}
            return RegimeResponse(symbol=sym, timeframe=tf, as_of=at.isoformat(),
                                  snapshot=jsonable(snapshot) if snapshot else None,
                                  transition_risk=risk, not_checked=reason)

        return _run(service, work)

    @app.get("/keyLevels", response_model=KeyLevelsResponse, tags=["context"],
             responses=ERRORS)
    def key_levels(user: User, service: ServiceDep,
                   symbol: Annotated[str, Query(min_length=1, max_length=32)],
                   tf: Annotated[str, Query(pattern="^(1m|5m|15m|30m|1h|4h|1d|1w)$")] = "1d",
                   as_of: Annotated[str | None, Query(max_length=40)] = None,
                   ) -> KeyLevelsResponse:
        """Return the key levels of the last `tf` bar of `symbol` closed at `as_of`
        (default: the last close in the data), with your own anchored VWAPs."""
        from buddy.levels.provider import key_levels_at

        def work(buddy: Buddy) -> KeyLevelsResponse:
            sym = _symbol(buddy, symbol)
            at = _resolve_as_of(buddy, sym, tf, as_of)
            snapshot = key_levels_at(buddy.store, sym, tf, at, user_id=user)
            if snapshot is None:
                return KeyLevelsResponse(
                    symbol=sym, timeframe=tf, as_of=at.isoformat(), snapshot=None,
                    named_levels={}, not_checked=f"no {tf} bars of {sym} closed at or "
                                                 f"before {at.isoformat()}")
            named = {k: float(v) for k, v in snapshot.named_levels().items()
                     if v is not None and math.isfinite(v)}
            return KeyLevelsResponse(symbol=sym, timeframe=tf, as_of=at.isoformat(),
                                     snapshot=jsonable(snapshot), named_levels=named)

        return _run(service, work)

    @app.get("/strategyProfile", response_model=StrategyProfileResponse, tags=["you"],
             responses={401: ERRORS[401], 503: ERRORS[503]})
    def strategy_profile(user: User, service: ServiceDep) -> StrategyProfileResponse:
        """Return your stored strategy profile, your playbooks and your account's rules
        (the thresholds your ideas are checked against); what is missing is listed in
        `not_checked` (`buddy jobs profiles` / `buddy playbooks fit` build them)."""
        from buddy.store.strategy import read_playbooks, read_profile
        from buddy.users.store import get_user

        def work(buddy: Buddy) -> StrategyProfileResponse:
            missing = []
            profile = read_profile(buddy.store, user)
            if profile is None:
                missing.append("no strategy profile stored for you")
            books, _members = read_playbooks(buddy.store, user)
            if books.empty:
                missing.append("no playbooks stored for you")
            state = get_user(buddy.store, user)
            rules = None
            if state is None:
                missing.append("no account: no rules")
            else:
                rules = {"version": state.rules_version,
                         **jsonable(state.rules.as_dict())}
            return StrategyProfileResponse(
                user_id=user, profile=jsonable(profile),
                playbooks=jsonable(books.drop(columns=["centroid_vector"], errors="ignore"
                                               ).to_dict("records")),
                rules=rules, not_checked=missing)

        return _run(service, work)

    @app.get("/portfolioExposure", response_model=ExposureResponse, tags=["you"],
             responses=ERRORS)
    def portfolio_exposure(user: User, service: ServiceDep,
                           as_of: Annotated[str | None, Query(max_length=40)] = None
                           ) -> ExposureResponse:
        """Return your portfolio's exposure as of `as_of` (an ISO time with a zone or a
        date, that day's end in UTC; default the last daily close in the data): gross and
        net, correlation clusters, heat against your limit, betas, risk contributions and
        VaR, each with its n and interval."""
        from buddy.domain import as_utc
        from buddy.portfolio.snapshot import exposure_snapshot

        def work(buddy: Buddy) -> ExposureResponse:
            if as_of is None:
                closes = [span[1] for (_s, tf), span in buddy.catalogue().coverage.items()
                          if tf == "1d"]
                if not closes:
                    return ExposureResponse(user_id=user, as_of="", snapshot=None,
                                            not_checked="no daily bars in the data")
                at = pd.Timestamp(max(closes)).to_pydatetime()
            elif len(as_of.strip()) == 10:
                at = _in_range(as_utc(f"{as_of.strip()}T23:59:59+00:00"), as_of)
            else:
                at = _in_range(as_utc(as_of), as_of)
            snapshot, reason = exposure_snapshot(buddy.store, user, at)
            return ExposureResponse(user_id=user, as_of=at.isoformat(),
                                    snapshot=None if snapshot is None
                                    else jsonable(snapshot.as_dict()),
                                    not_checked=reason)

        return _run(service, work)

    @app.post("/postTradeReview", response_model=ReviewResponse, tags=["you"],
              responses={**ERRORS, 409: {"model": Message,
                                         "description": "The trade is still open"}})
    def post_trade_review(body: ReviewRequest, user: User, service: ServiceDep
                          ) -> ReviewResponse:
        """Generate (or refresh) the post-trade review of one closed trade of yours and
        return it: MAE/MFE, exit efficiency, process grade and lessons."""
        from buddy.jobs.reviews import review_trade_ids
        from buddy.store.trades import read_trades

        def work(buddy: Buddy) -> ReviewResponse:
            trades = read_trades(buddy.store, user, trade_ids=[body.trade_id])
            if trades.empty:
                raise NotFound(f"no trade {body.trade_id!r} for this user")
            if trades.iloc[0]["status"] != "closed":
                raise Conflict(f"trade {body.trade_id!r} is {trades.iloc[0]['status']}: "
                               "a review needs a closed trade")
            reviews = review_trade_ids(buddy.store, user, [body.trade_id])
            row = {k: json.loads(v) if k.endswith("_json") and isinstance(v, str) else v
                   for k, v in jsonable(reviews.iloc[0].to_dict()).items()}
            return ReviewResponse(trade_id=body.trade_id, review=row)

        return _run(service, work)

    @app.post("/feedback", response_model=FeedbackResponse, tags=["evaluate"],
              responses=ERRORS)
    def feedback(body: FeedbackRequest, user: User, service: ServiceDep
                 ) -> FeedbackResponse:
        """Record feedback (dismissed, helpful, not_helpful) on one item of one of your
        reports (the nudge and warning experiments read it)."""
        from buddy.behavior.feedback import record_feedback
        from buddy.store.nudge_experiments import evaluation_item

        def work(buddy: Buddy) -> FeedbackResponse:
            owner = evaluation_item(buddy.store, body.eval_id, body.code.strip().upper())
            if owner is None or owner["user_id"] != user:
                raise NotFound(f"no evaluation {body.eval_id!r} for this user")
            found = record_feedback(buddy.store, eval_id=body.eval_id, code=body.code,
                                    kind=body.kind, user_id=user, source="api")
            return FeedbackResponse(feedback=jsonable(dataclasses.asdict(found)))

        return _run(service, work)

    @app.post("/assistantSession", response_model=TurnResponse, tags=["assistant"],
              responses=ERRORS)
    def assistant_session(body: AssistantSessionRequest, user: User, service: ServiceDep
                          ) -> dict[str, Any]:
        """Start or continue a brainstorm session: a turn of text fills the trade idea's
        draft and answers with the next question (or the report when you ask to evaluate a
        complete draft); `evaluate` runs the one-click evaluation; `save_journal` saves the
        session as a journal entry."""

        def work(buddy: Buddy) -> dict[str, Any]:
            engine = _brainstorm(service)
            try:
                if body.action == "turn":
                    turn = engine.turn(user, body.session_id, body.text or "")
                elif body.action == "evaluate":
                    turn = engine.evaluate(user, body.session_id)
                else:
                    turn = engine.save_journal(user, body.session_id, body.note)
            except KeyError as exc:
                raise NotFound(str(exc.args[0]) if exc.args else "no such session") from None
            out: dict[str, Any] = turn.to_dict()
            return out

        return _run(service, work)


def _brainstorm(service: Service) -> Any:
    """Return the service's brainstorm engine, made at its first use."""
    if service.brainstorm is None:
        from buddy.assistant.llm import AssistantLLM
        from buddy.assistant.session import Brainstorm

        service.brainstorm = Brainstorm(service.buddy, llm=AssistantLLM.from_env())
    return service.brainstorm
