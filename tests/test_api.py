"""The Python entry point validates against the instrument and the data before anything runs."""

from __future__ import annotations

import shutil

import pytest

from buddy import Buddy
from buddy.errors import IntentValidationError
from buddy.store import Store


@pytest.fixture(scope="module")
def buddy(sample_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Buddy:
    path = tmp_path_factory.mktemp("api") / "buddy.duckdb"
    shutil.copy(sample_store.path, path)
    return Buddy.open(path)


IDEA = dict(user="api", symbol="AAPL", side="long", timeframe="1d", entry=560.99, stop=540.0,
            target=600.0, size=10, as_of="2012-06-01")


def _fields(err: pytest.ExceptionInfo[IntentValidationError]) -> set[str]:
    return set(err.value.fields)


def test_evaluate_returns_a_logged_report(buddy: Buddy) -> None:
    report = buddy.evaluate(**IDEA)
    assert report.intent.as_of.isoformat() == "2012-06-01T20:00:00+00:00"  # the NYSE close
    assert "Buddy Report" in report._repr_html_() and "AAPL" in str(report)
    logged = buddy.store.query("SELECT count(*) FROM trade_evaluations WHERE eval_id = ?",
                               [report.eval_id]).iloc[0, 0]
    assert logged == 1


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"symbol": "ZZZZ"}, "symbol", "not in the tickers table"),
    ({"timeframe": "4h"}, "timeframe", "has no AAPL bars"),
    ({"entry": 560.995}, "proposed_entry", "tick size 0.01"),
    ({"size": 10.5}, "proposed_size", "lot size 1"),
    ({"as_of": "1995-01-03"}, "as_of", "before the first closed"),
    ({"as_of": "2020-01-03"}, "as_of", "after the stored data"),
    ({"as_of": "2012-13-45"}, "as_of", "YYYY-MM-DD"),
])
def test_bad_input_names_field_rule_and_value_and_writes_nothing(buddy: Buddy, change, field,
                                                                 words) -> None:
    before = buddy.store.query("SELECT count(*) FROM trade_intents").iloc[0, 0]
    with pytest.raises(IntentValidationError) as err:
        buddy.evaluate(**{**IDEA, **change})
    assert field in _fields(err) and words in str(err.value)
    assert buddy.store.query("SELECT count(*) FROM trade_intents").iloc[0, 0] == before


def test_same_input_same_report_apart_from_ids(buddy: Buddy) -> None:
    first = buddy.evaluate(**IDEA, log=False).to_dict()
    second = buddy.evaluate(**IDEA, log=False).to_dict()
    for data in (first, second):
        data.pop("eval_id")
        data["intent"].pop("intent_id")
    assert first == second
