"""The intent router: does a brainstorm message fill the idea, ask for its evaluation, or ask
for the review of a past trade?

A small text classifier decides (TF-IDF over character 2-5-grams and word 1-2-grams, then a
multinomial logistic regression), trained once per process on the labelled utterances shipped
in ``buddy/assistant/data/utterances.yaml``. Training is deterministic (lbfgs, no random
state involved) and takes a fraction of a second. Numbers and trade ids are replaced by
placeholders before the words are counted, so "stop 540" and "stop 12.5" read alike.

A review names its trade in ``Routing.trade_ref``: the id as written ('T-123',
'Taa3b6885b'), or 'last' optionally followed by a ticker and a side ('last AAPL',
'last AAPL short', 'last short') for "my last AAPL short". ``parse_trade_ref`` reads it back.
The router never looks a trade up: the session engine resolves the reference in the store.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml  # type: ignore[import-untyped]  # no stubs pinned (types-PyYAML)
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from threadpoolctl import threadpool_limits

from buddy.errors import ConfigError, FieldError

if TYPE_CHECKING:
    from buddy.assistant.draft import TradeIdeaDraft

__all__ = [
    "UTTERANCES_RESOURCE",
    "IntentRouter",
    "Route",
    "Routing",
    "TradeRef",
    "load_utterances",
    "parse_trade_ref",
    "trade_ref_in",
]

UTTERANCES_RESOURCE = "data/utterances.yaml"


class Route(StrEnum):
    """What the trader's message asks the assistant to do."""

    BRAINSTORM = "brainstorm"  # fill or change the idea, talk it through
    EVALUATE = "evaluate"      # run the checks on the idea as drafted
    REVIEW = "review"          # the post-trade review of a past trade


@dataclass(frozen=True, slots=True)
class Routing:
    """The router's decision: the route, the classifier's probability for it (0-1), and for a
    review the trade the message names (None when it names none)."""

    route: Route
    confidence: float
    trade_ref: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TradeRef:
    """A trade named in plain words: by id, or the latest one (optionally of one ticker and
    side)."""

    trade_id: str | None = None
    symbol: str | None = None
    side: str | None = None  # 'long' | 'short'

    @property
    def text(self) -> str:
        """Return the string form carried by ``Routing.trade_ref``."""
        if self.trade_id is not None:
            return self.trade_id
        return " ".join(p for p in ("last", self.symbol, self.side) if p)


def parse_trade_ref(ref: str) -> TradeRef:
    """Read a ``Routing.trade_ref`` back: 'last [TICKER] [long|short]' or a trade id."""
    parts = ref.split()
    if not parts:
        raise ValueError(f"trade_ref: must not be empty, got {ref!r}")
    if parts[0] != "last":
        if len(parts) != 1:
            raise ValueError(f"trade_ref: a trade id is one word, got {ref!r}")
        return TradeRef(trade_id=ref)
    side = parts[-1] if len(parts) > 1 and parts[-1] in ("long", "short") else None
    rest = parts[1:-1] if side else parts[1:]
    if len(rest) > 1:
        raise ValueError(f"trade_ref: 'last [TICKER] [long|short]' expected, got {ref!r}")
    return TradeRef(symbol=rest[0] if rest else None, side=side)


# --------------------------------------------------------------------------- trade refs
# A trade id as a trader types it: 'T-123', 'T123', 'Taa3b6885b' (the store's ids are 'T' and
# 20 hex digits); it must hold a digit so that words starting with T never match.
_TRADE_ID = re.compile(r"\b(T-?(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{2,24})\b")
_TRADE_NUMBER = re.compile(
    r"\btrade\s+(?:id\s+|number\s+|no\.?\s*)?#?\s*(\d{1,12})\b|#\s?(\d{1,12})\b", re.IGNORECASE)
_LAST = re.compile(r"\b(?:last|latest|most\s+recent|previous|recent|prior|final|yesterday's|"
                   r"last\s+week's|today's)\b", re.IGNORECASE)
# Only these name a trade's side in a review: "sold"/"bought" there are usually its exit or
# entry ("did I sell too early on my AAPL long"), not its direction.
_SIDE = re.compile(r"\b(long|short|shorted)\b", re.IGNORECASE)
_SIDE_WORDS = {"long": "long", "short": "short", "shorted": "short"}
_TICKER = re.compile(r"\b([A-Z]{1,5}(?:\.[A-Z])?)(?:'s)?\b")
# Upper-case words a trader writes that are not tickers.
_NOT_TICKERS = frozenset({
    "I", "A", "R", "OK", "ATR", "EOD", "USD", "EUR", "RR", "PNL", "P", "L", "PL", "ID", "AM",
    "PM", "UTC", "ET", "VWAP", "EMA", "SMA", "RSI", "MACD", "ADX", "IPO", "CEO", "FOMC", "CPI",
    "NFP", "FX", "ETF", "LONG", "SHORT", "BUY", "SELL", "STOP", "T", "TP", "SL", "PT", "DD",
    "MY", "THE", "HOW", "WHY", "WHAT", "DID", "GO", "IT", "IS", "ON", "IN", "TO", "OF", "AND",
    "PLEASE", "REVIEW", "TRADE", "NOW", "YES", "NO",
})


def trade_ref_in(text: str, symbols: Mapping[str, str] | None = None) -> str | None:
    """Return the trade ``text`` names, as a ``Routing.trade_ref`` string, or None.

    ``symbols`` (ticker -> company name) lets a company name or a lower-case ticker name the
    symbol, read as the brainstorm parser reads it ('my last apple trade' -> 'last AAPL');
    without it only upper-case tickers do. A symbol or side (long/short) without an id means
    the latest such trade.
    """
    found = _TRADE_ID.search(text)
    if found:
        return found.group(1)
    number = _TRADE_NUMBER.search(text)
    if number:
        return number.group(1) or number.group(2)
    symbol = _symbol_in(text, symbols)
    side_match = _SIDE.search(text)
    side = _SIDE_WORDS[side_match.group(1).lower()] if side_match else None
    if symbol is None and side is None and not _LAST.search(text):
        return None
    return TradeRef(symbol=symbol, side=side).text


def _symbol_in(text: str, symbols: Mapping[str, str] | None) -> str | None:
    if symbols:
        # the brainstorm parser's reading of tickers and company names, typos included
        from buddy.assistant.draft import TradeIdeaDraft
        from buddy.assistant.parse import parse_utterance

        found = [u.value for u in parse_utterance(text, TradeIdeaDraft(), symbols)
                 if u.slot == "symbol"]
        return str(found[0]) if found else None
    for word in _TICKER.findall(text):
        if word not in _NOT_TICKERS:
            return word
    return None


# --------------------------------------------------------------------------- the data
def load_utterances(text: str | None = None) -> tuple[tuple[str, Route], ...]:
    """Return the labelled utterances as (text, route) pairs, in file order.

    Reads the packaged ``utterances.yaml`` (a mapping route -> list of lines) unless ``text``
    holds such YAML. Raises ConfigError naming the route or line for an unknown route, a
    line that is not a non-empty string, or a line listed twice.
    """
    if text is None:
        text = resources.files("buddy.assistant").joinpath(UTTERANCES_RESOURCE).read_text(
            encoding="utf-8")
    data: Any = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError([FieldError("utterances", "must be a mapping route -> lines",
                                      type(data).__name__)])
    errors: list[FieldError] = []
    pairs: list[tuple[str, Route]] = []
    seen: dict[str, str] = {}
    for label, lines in data.items():
        try:
            route = Route(label)
        except ValueError:
            errors.append(FieldError("utterances", "route must be one of "
                                     + ", ".join(r.value for r in Route), label))
            continue
        if not isinstance(lines, list):
            errors.append(FieldError(f"utterances.{label}", "must be a list of lines",
                                     type(lines).__name__))
            continue
        for i, line in enumerate(lines):
            if not isinstance(line, str) or not line.strip():
                errors.append(FieldError(f"utterances.{label}[{i}]",
                                         "must be a non-empty string", line))
                continue
            key = " ".join(line.lower().split())
            if key in seen:
                errors.append(FieldError(f"utterances.{label}[{i}]",
                                         f"already listed under {seen[key]}", line))
                continue
            seen[key] = label
            pairs.append((line, route))
    if errors:
        raise ConfigError(errors)
    missing = [r.value for r in Route if r not in {route for _, route in pairs}]
    if missing:
        raise ConfigError([FieldError("utterances", "needs lines for every route",
                                      ", ".join(missing))])
    return tuple(pairs)


# --------------------------------------------------------------------------- the classifier
_NUMBER = re.compile(r"(?<![A-Za-z])[-+]?\$?\d[\d,]*(?:\.\d+)?%?")


def normalise(text: str) -> str:
    """Return ``text`` as the classifier reads it: lower case, trade ids as 'tradeid',
    numbers as '9' (so 'stop 540' and 'stop 12.5' read alike)."""
    text = _TRADE_ID.sub(" tradeid ", text)
    text = _NUMBER.sub(" 9 ", text)
    return " ".join(text.lower().split())


def _pipeline(c: float) -> Pipeline:
    features = FeatureUnion([
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                  min_df=1)),
        ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                  token_pattern=r"(?u)\b\w+\b")),
    ])
    return Pipeline([("features", features),
                     ("model", LogisticRegression(C=c, max_iter=2000))])


class IntentRouter:
    """Route a brainstorm message to brainstorm, evaluate or review.

    ``c`` is the logistic regression's inverse regularisation (no unit); ``min_confidence``
    (probability, 0-1) is the least a decision to evaluate or review needs: below it the
    message routes to brainstorm, the route that only fills the idea and asks, so an unsure
    router never runs an evaluation or opens a review the trader did not ask for.
    """

    _default: IntentRouter | None = None
    _default_lock = threading.Lock()

    def __init__(self, utterances: Sequence[tuple[str, Route]], *, c: float = 10.0,
                 min_confidence: float = 0.45) -> None:
        errors = []
        if not 0.0 <= min_confidence <= 1.0:
            errors.append(FieldError("min_confidence", "must be in [0, 1]", min_confidence))
        if not c > 0:
            errors.append(FieldError("c", "must be > 0", c))
        if len({route for _, route in utterances}) < 2:
            errors.append(FieldError("utterances", "need at least two routes",
                                     len(utterances)))
        if errors:
            raise ConfigError(errors)
        self.min_confidence = float(min_confidence)
        self._pipeline = _pipeline(c)
        # one BLAS thread: a few hundred short lines gain nothing from more, and a busy
        # machine (the service, the test workers) loses a lot to oversubscription
        with threadpool_limits(limits=1):
            self._pipeline.fit([normalise(t) for t, _ in utterances],
                               [r.value for _, r in utterances])
        self._routes = tuple(Route(str(label)) for label in self._pipeline.classes_)
        # the fitted steps, called directly per message: the pipeline's own dispatch (joblib,
        # output wrapping) costs about as much as the vectorising of one short line
        self._vectorizers = [v for _, v in self._pipeline.named_steps["features"].transformer_list]
        self._model = self._pipeline.named_steps["model"]
        self.n_utterances = len(utterances)

    @classmethod
    def default(cls) -> IntentRouter:
        """Return the router trained on the packaged utterances (trained once per process)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls(load_utterances())
            return cls._default

    def probabilities(self, text: str) -> dict[Route, float]:
        """Return the classifier's probability of each route for ``text`` (they sum to 1)."""
        proba = self._proba([text])[0]
        return {route: float(p) for route, p in zip(self._routes, proba, strict=True)}

    def predict(self, texts: Sequence[str]) -> list[Route]:
        """Return the classifier's route for each text (no confidence floor applied)."""
        return [self._routes[i] for i in np.argmax(self._proba(texts), axis=1)]

    def _proba(self, texts: Sequence[str]) -> np.ndarray:
        lines = [normalise(t) for t in texts]
        features = sparse.hstack([v.transform(lines) for v in self._vectorizers], format="csr")
        return np.asarray(self._model.predict_proba(features))

    def route(self, text: str, draft: TradeIdeaDraft | None = None, *,
              symbols: Mapping[str, str] | None = None) -> Routing:
        """Route ``text``; for a review, name the trade it refers to (``trade_ref``).

        ``draft`` is the conversation's idea so far: the route depends on the words alone
        (an evaluate route on an incomplete draft is the engine's to answer with questions),
        so it is accepted for the contract and not read. ``symbols`` (ticker -> company
        name) lets a review name its symbol in words ('my last apple trade').
        """
        del draft  # the words alone decide; see the docstring
        probabilities = self.probabilities(text)
        route, confidence = max(probabilities.items(), key=lambda kv: kv[1])
        if route is not Route.BRAINSTORM and confidence < self.min_confidence:
            return Routing(Route.BRAINSTORM, probabilities[Route.BRAINSTORM])
        trade_ref = trade_ref_in(text, symbols) if route is Route.REVIEW else None
        return Routing(route, confidence, trade_ref)
