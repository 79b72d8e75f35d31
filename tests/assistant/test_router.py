"""The intent router: measured accuracy (cross-validated on the packaged set, and on a
held-out set it never trains on), named messages from the issue, trade references, the
packaged data's validation, determinism and training time."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import StratifiedKFold

from buddy.assistant.draft import TradeIdeaDraft
from buddy.assistant.router import (
    IntentRouter,
    Route,
    Routing,
    TradeRef,
    load_utterances,
    normalise,
    parse_trade_ref,
    trade_ref_in,
)
from buddy.errors import ConfigError
from buddy.trades.summary import wilson

HOLDOUT = Path(__file__).parent / "data" / "router_holdout.yaml"
# The floor both measured accuracies must reach. Measured at the commit that set it: 5-fold
# cross-validated 0.951 (313/329, Wilson 95% [0.92, 0.97]) and held-out 0.951 (97/102,
# Wilson 95% [0.89, 0.98]). 0.88 sits below both intervals' lower ends, so a refit or new
# lines that keep the router's quality pass, while a router that misroutes one message in
# eight or more (seven points below what was measured) fails.
ACCURACY_FLOOR = 0.88
SYMBOLS = {"AAPL": "Apple Inc.", "MSFT": "Microsoft Corporation", "IBM": "IBM",
           "GOOG": "Alphabet Inc.", "EURUSD": "Euro / US Dollar"}


@pytest.fixture(scope="module")
def utterances() -> tuple[tuple[str, Route], ...]:
    return load_utterances()


@pytest.fixture(scope="module")
def router() -> IntentRouter:
    return IntentRouter.default()


def _report(name: str, truth: list[Route], predicted: list[Route]) -> float:
    hits = sum(t == p for t, p in zip(truth, predicted, strict=True))
    stat = wilson(hits, len(truth))
    confusion = Counter((t.value, p.value) for t, p in zip(truth, predicted, strict=True)
                        if t != p)
    print(f"\nrouter {name}: accuracy {stat.text()} ({hits}/{len(truth)}); "
          f"misroutes (truth, routed): {dict(confusion)}")
    return float(stat.value or 0.0)


def test_the_packaged_set_is_large_varied_and_covers_every_route(utterances) -> None:
    counts = Counter(route for _, route in utterances)
    assert len(utterances) >= 150
    assert set(counts) == set(Route)
    assert min(counts.values()) >= 40


def test_cross_validated_accuracy_reaches_the_floor(utterances) -> None:
    texts = [t for t, _ in utterances]
    labels = [r for _, r in utterances]
    predicted: list[Route | None] = [None] * len(texts)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=20)
    for train, test in folds.split(texts, [r.value for r in labels]):
        fold_router = IntentRouter([utterances[i] for i in train])
        for i, route in zip(test, fold_router.predict([texts[i] for i in test]), strict=True):
            predicted[i] = route
    assert None not in predicted
    accuracy = _report("5-fold cross-validated", labels, [p for p in predicted if p])
    assert accuracy >= ACCURACY_FLOOR


def test_held_out_accuracy_reaches_the_floor(router, utterances) -> None:
    held_out = load_utterances(HOLDOUT.read_text(encoding="utf-8"))
    trained_on = {" ".join(t.lower().split()) for t, _ in utterances}
    assert not [t for t, _ in held_out if " ".join(t.lower().split()) in trained_on]
    truth = [r for _, r in held_out]
    routed = [router.route(t, TradeIdeaDraft()).route for t, _ in held_out]
    accuracy = _report("held-out", truth, routed)
    assert accuracy >= ACCURACY_FLOOR
    # the costly mistake is running checks the trader did not ask for
    assert not [t for (t, r), got in zip(held_out, routed, strict=True)
                if r is Route.BRAINSTORM and got is Route.EVALUATE]


@pytest.mark.parametrize(("text", "route", "trade_ref"), [
    ("long AAPL on a pullback to 555, stop under 540, target 600, risk half a percent",
     Route.BRAINSTORM, None),
    ("review my last AAPL trade", Route.REVIEW, "last AAPL"),
    ("how did trade T-123 go", Route.REVIEW, "T-123"),
    ("how did my last apple trade go", Route.REVIEW, "last AAPL"),
    ("how did my last trade go", Route.REVIEW, "last"),
    ("post mortem on my MSFT short", Route.REVIEW, "last MSFT short"),
    ("evaluate it", Route.EVALUATE, None),
    ("run the checks", Route.EVALUATE, None),
    ("just tell me it will go up", Route.BRAINSTORM, None),
])
def test_the_issue_messages_route_as_expected(router, text: str, route: Route,
                                             trade_ref: str | None) -> None:
    routing = router.route(text, TradeIdeaDraft(), symbols=SYMBOLS)
    assert isinstance(routing, Routing)
    assert (routing.route, routing.trade_ref) == (route, trade_ref)
    assert 0.0 <= routing.confidence <= 1.0


@settings(max_examples=60, deadline=None, derandomize=True)
@given(text=st.text(max_size=200))
def test_any_text_gets_a_route_and_only_a_review_names_a_trade(text: str) -> None:
    routing = IntentRouter.default().route(text, TradeIdeaDraft(), symbols=SYMBOLS)
    assert routing.route in set(Route)
    assert 0.0 <= routing.confidence <= 1.0
    assert routing.trade_ref is None or routing.route is Route.REVIEW
    if routing.trade_ref is not None:
        assert parse_trade_ref(routing.trade_ref).text == routing.trade_ref


def test_only_a_review_carries_a_trade_ref(router) -> None:
    routing = router.route("evaluate my idea on trade T-123's symbol", TradeIdeaDraft())
    assert routing.route is not Route.REVIEW
    assert routing.trade_ref is None


@pytest.mark.parametrize(("text", "symbols", "ref"), [
    ("how did trade T-123 go", None, "T-123"),
    ("review Taa3b6885bc3276240d61 please", None, "Taa3b6885bc3276240d61"),
    ("what happened with trade 42", None, "42"),
    ("review trade #17", None, "17"),
    ("review my last AAPL trade", None, "last AAPL"),
    ("review my last apple trade", None, "last"),        # no catalogue: lower case is a word
    ("review my last apple trade", SYMBOLS, "last AAPL"),
    ("how did my Microsft trade go", SYMBOLS, "last MSFT"),
    ("how did my msft short go", SYMBOLS, "last MSFT short"),
    ("did I get stopped out on my latest long", None, "last long"),
    ("did I apply my rules on my last trade", SYMBOLS, "last"),      # 'apply' is no Apple
    ("did I sell too early on my last AAPL long", SYMBOLS, "last AAPL long"),
    ("how did my euro trade go", SYMBOLS, "last EURUSD"),
    ("how did it go", None, None),
    ("The trade", None, None),
])
def test_trade_refs_are_read_from_the_words(text: str, symbols, ref: str | None) -> None:
    assert trade_ref_in(text, symbols) == ref


@pytest.mark.parametrize("ref", [TradeRef(trade_id="T-123"), TradeRef(), TradeRef(
    symbol="AAPL"), TradeRef(symbol="AAPL", side="short"), TradeRef(side="long")])
def test_a_trade_ref_reads_back(ref: TradeRef) -> None:
    assert parse_trade_ref(ref.text) == ref


@pytest.mark.parametrize("bad", ["", "last AAPL MSFT", "T-1 T-2"])
def test_a_malformed_trade_ref_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match="trade_ref"):
        parse_trade_ref(bad)


def test_numbers_and_trade_ids_are_placeholders_for_the_classifier() -> None:
    assert normalise("Stop 540, entry $12.5 on T-123") == "stop 9 entry 9 on tradeid"
    assert normalise("stop 12.5") == normalise("STOP 540")


def test_an_unsure_router_stays_in_brainstorm(utterances) -> None:
    cautious = IntentRouter(utterances, min_confidence=1.0)
    routing = cautious.route("evaluate it", TradeIdeaDraft())
    assert routing.route is Route.BRAINSTORM and routing.trade_ref is None
    assert routing.confidence < 0.5  # the brainstorm probability, not the evaluate one


def test_training_is_deterministic_and_quick(utterances) -> None:
    probe = ["evaluate it", "review my last AAPL trade", "stop under 540", "hm"]
    cpu = []
    routers = []
    for _ in range(2):
        start = time.process_time()
        routers.append(IntentRouter(utterances))
        cpu.append(time.process_time() - start)
    first, second = ([r.probabilities(t) for t in probe] for r in routers)
    assert first == second
    # CPU seconds, not wall: the machine is shared; measured about 0.13 s
    assert min(cpu) < 0.5


def test_default_is_trained_once_per_process() -> None:
    assert IntentRouter.default() is IntentRouter.default()


@pytest.mark.parametrize(("text", "field"), [
    ("brainstorm: [a]\nevaluate: [b]\nrevue: [c]\n", "utterances"),
    ("brainstorm: [a, '']\nevaluate: [b]\nreview: [c]\n", "utterances.brainstorm[1]"),
    ("brainstorm: [a]\nevaluate: [b, ' A ']\nreview: [c]\n", "utterances.evaluate[1]"),
    ("brainstorm: [a]\nevaluate: b\nreview: [c]\n", "utterances.evaluate"),
    ("brainstorm: [a]\nevaluate: [b]\n", "utterances"),
    ("- a\n- b\n", "utterances"),
])
def test_a_bad_utterance_file_is_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_utterances(text)
    assert field in [e.field for e in caught.value.errors]


def test_bad_settings_are_refused_naming_the_field(utterances) -> None:
    with pytest.raises(ConfigError) as caught:
        IntentRouter(utterances, c=0, min_confidence=1.5)
    assert {e.field for e in caught.value.errors} == {"c", "min_confidence"}
