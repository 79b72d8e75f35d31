"""The batch forms of the standard piece providers equal the scalar providers row by row.

Each ``provider.batch`` is run on the real batch intents (and on the same rows repeated) and
compared with the pieces and reasons the scalar providers gave the ContextPackBuilder, then
with the scalar provider called directly; edge rows (before the data, during warm-up, on
bars without a stored snapshot, with user anchors, without an account, around unscheduled
exchange closures, with imported events, on an unknown calendar) run on an edited copy of
the store. Rows at the same snapshot must share one piece object.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from buddy.batch.context import INSTRUMENT_FIELDS, BatchContext, from_packs
from buddy.batch.pieces import BatchPieceRequest, provide
from buddy.context.pack import Instrument
from buddy.events.store import import_events
from buddy.levels.anchors import save_level_anchor
from buddy.store import Store
from buddy.users.store import set_user
from replay.engine import standard_providers
from tests.replay_engine.conftest import USER, copy_store

PROVIDERS = standard_providers()
NAMES = ("account", "levels", "mtfa", "regime", "schedule")
#: Pieces of the rows at one (symbol, timeframe, as_of) are one object.
PER_SNAPSHOT = ("levels", "mtfa", "regime", "schedule")

Row = tuple[str, str, str, str]  # user_id, symbol, timeframe, as_of (ISO, UTC)


# ---------------------------------------------------------------------------- helpers
def same(a: Any, b: Any) -> bool:
    """Return a == b, dataclasses field by field, with NaN equal to NaN."""
    if a is b or (type(a) is type(b) and a == b):
        return True
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, tuple | list):
        return (type(a) is type(b) and len(a) == len(b)
                and all(same(x, y) for x, y in zip(a, b, strict=True)))
    if isinstance(a, dict):
        return (isinstance(b, dict) and a.keys() == b.keys()
                and all(same(a[k], b[k]) for k in a))
    return bool(a == b)


def request_of(store: Store, ctx: BatchContext) -> BatchPieceRequest:
    """Return the BatchPieceRequest of a BatchContext's rows."""
    return BatchPieceRequest(store=store, intents=ctx.intents, instrument=ctx.instrument,
                             market=ctx.market, market_data=ctx.market_data)


def synthetic_request(store: Store, rows: Sequence[Row],
                      calendars: dict[int, str] | None = None) -> BatchPieceRequest:
    """Return a request of ``rows`` without market pieces (the scalar providers then read
    the last bar themselves); ``calendars`` overrides row i's trading calendar."""
    intents = pd.DataFrame(list(rows), columns=["user_id", "symbol", "timeframe", "as_of"])
    intents["as_of"] = pd.to_datetime(intents["as_of"], utc=True, format="ISO8601")
    instruments = []
    for i, symbol in enumerate(intents["symbol"]):
        fields = dataclasses.asdict(Instrument.from_row(store.instrument(symbol)))
        if calendars and i in calendars:
            fields["trading_calendar"] = calendars[i]
        instruments.append(fields)
    return BatchPieceRequest(
        store=store, intents=intents,
        instrument=pd.DataFrame(instruments, columns=list(INSTRUMENT_FIELDS)),
        market=pd.DataFrame(index=range(len(intents))), market_data=lambda i: None)


def assert_matches_scalar(name: str, request: BatchPieceRequest,
                          rows: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``name``'s batch form on ``request`` and compare ``rows`` (default: all) with
    the scalar provider called on each row's request; return the batch output."""
    provider = PROVIDERS[name]
    pieces, reasons = provider.batch(request)
    assert len(pieces) == len(reasons) == len(request)
    for i in range(len(request)) if rows is None else rows:
        piece, reason = provider(request.request(i))
        assert same(pieces[i], piece), f"{name} row {i}: {pieces[i]!r} != {piece!r}"
        assert reasons[i] == reason, f"{name} row {i}: {reasons[i]!r} != {reason!r}"
        assert (pieces[i] is None) != (reasons[i] is None)
    return pieces, reasons


def assert_shared(pieces: np.ndarray, keys: pd.DataFrame) -> None:
    """Every group of rows with equal ``keys`` holds one piece object (or None)."""
    for _, group in keys.groupby(list(keys.columns), sort=False).indices.items():
        assert len({id(pieces[i]) for i in group}) == 1, keys.iloc[group[0]].to_dict()


# ---------------------------------------------------------------------------- real rows
@pytest.fixture(scope="module")
def real_context(real_cases: list) -> BatchContext:
    return from_packs([i for i, _ in real_cases], [p for _, p in real_cases])


@pytest.fixture(scope="module")
def real_request(batch_store: Store, real_context: BatchContext) -> BatchPieceRequest:
    return request_of(batch_store, real_context)


def test_every_standard_provider_has_a_batch_form() -> None:
    assert set(PROVIDERS) == set(NAMES)
    for name in NAMES:
        assert callable(getattr(PROVIDERS[name], "batch", None)), name


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_the_builders_pieces_on_every_real_row(
        name: str, real_request: BatchPieceRequest, real_cases: list) -> None:
    pieces, reasons = PROVIDERS[name].batch(real_request)
    assert len(pieces) == len(real_cases) == len(real_request.intents)
    for i, (_, pack) in enumerate(real_cases):
        assert same(pieces[i], pack.piece(name)), f"{name} row {i}"
        expected = pack.missing.get(name) if pack.piece(name) is None else None
        assert reasons[i] == expected, f"{name} row {i}"
    # provide() takes the batch form (a failing one would go row by row: no shared pieces)
    provided, why = provide(name, PROVIDERS[name], real_request)
    assert all(same(p, q) for p, q in zip(provided, pieces, strict=True))
    assert list(why) == list(reasons)
    assert len({id(p) for p in provided}) == len({id(p) for p in pieces})


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_the_scalar_provider_on_sampled_real_rows(
        name: str, real_request: BatchPieceRequest, real_cases: list) -> None:
    missing = [i for i, (_, pack) in enumerate(real_cases) if pack.piece(name) is None]
    rows = sorted({*range(0, len(real_cases), 25), *missing[:6]})
    assert_matches_scalar(name, real_request, rows)


def test_real_rows_at_one_snapshot_share_one_piece(real_request: BatchPieceRequest) -> None:
    intents = real_request.intents
    keys = pd.DataFrame({"symbol": intents["symbol"], "timeframe": intents["timeframe"],
                         "as_of": intents["as_of"]})
    for name in PER_SNAPSHOT:
        pieces, _ = PROVIDERS[name].batch(real_request)
        assert_shared(pieces, keys)
        # the mirrored intents make every snapshot serve at least two rows
        assert len({id(p) for p in pieces}) <= len(pieces) // 2, name
    accounts, _ = PROVIDERS["account"].batch(real_request)
    assert accounts[0] is not None and all(a is accounts[0] for a in accounts)


def test_repeated_rows_give_the_same_pieces(batch_store: Store,
                                            real_context: BatchContext) -> None:
    small = request_of(batch_store, real_context)
    tiled = np.resize(np.arange(real_context.n), 5_000)
    big = request_of(batch_store, real_context.take(tiled))
    for name in NAMES:
        provider = PROVIDERS[name]
        pieces, reasons = provider.batch(small)
        many, why = provider.batch(big)
        assert list(why) == list(reasons[tiled]), name
        assert all(same(a, b) for a, b in zip(many[:real_context.n], pieces, strict=True))
        assert all(many[k] is many[k % real_context.n] for k in range(len(tiled))), name


@pytest.mark.parametrize("name", NAMES)
def test_no_rows(name: str, batch_store: Store) -> None:
    pieces, reasons = PROVIDERS[name].batch(
        synthetic_request(batch_store, []))
    assert len(pieces) == len(reasons) == 0


# ---------------------------------------------------------------------------- edge rows
EVENTS_CSV = """kind,ts,title,symbol,announced_at,event_id
earnings,2005-04-13T20:30Z,AAPL Q2 earnings,AAPL,2005-03-01T00:00Z,
earnings,2005-07-13T20:30Z,AAPL Q3 earnings,AAPL,2005-06-01T00:00Z,
earnings,2004-10-13T20:30Z,AAPL Q4 2004 earnings,AAPL,2004-09-01T00:00Z,
macro,2005-03-22T18:15Z,FOMC,,2004-12-01T00:00Z,
macro,2005-03-22T18:15Z,FOMC minutes,,2004-12-01T00:00Z,aaa-same-ts
earnings,2005-04-21T20:30Z,MSFT earnings,MSFT,2005-03-01T00:00Z,
holiday,2005-05-30T04:00Z,Memorial Day (imported),,2005-01-01T00:00Z,
other,2001-09-20T13:30Z,After the closure,,2001-09-12T00:00Z,
"""


@pytest.fixture(scope="module")
def edited_store(batch_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A copy of the batch store with gaps and extras the sample data lacks: AAPL bars
    without a regime snapshot or key levels (2005-02-20..2005-03-10), MSFT snapshots of
    another regime version (2008-03-01..2008-03-10), anchors of the replay user on AAPL, a
    second user with an account, and imported events."""
    folder = Path(tmp_path_factory.mktemp("pieces"))
    store = copy_store(batch_store, folder)
    with store.transaction() as con:
        con.execute("DELETE FROM regime_snapshots WHERE symbol = 'AAPL' AND timeframe = '1d' "
                    "AND ts BETWEEN '2005-02-20' AND '2005-03-10'")
        con.execute("UPDATE regime_snapshots SET version = 'older' WHERE symbol = 'MSFT' AND "
                    "timeframe = '1d' AND ts BETWEEN '2008-03-01' AND '2008-03-10'")
        con.execute("DELETE FROM key_levels WHERE symbol = 'AAPL' AND timeframe = '1d' AND "
                    "ts BETWEEN '2005-02-20' AND '2005-03-10'")
    save_level_anchor(store, USER, "AAPL", "launch", "2005-01-10T14:30Z")
    save_level_anchor(store, USER, "AAPL", "later", "2005-03-01T14:30Z")
    set_user(store, "second", equity=25_000.0, base_currency="USD")
    path = folder / "events.csv"
    path.write_text(EVENTS_CSV)
    import_events(store, path, now=pd.Timestamp("2020-01-01T00:00Z"))
    return store


EDGE_ROWS: list[Row] = [
    (USER, "AAPL", "1d", "1995-01-03T21:00Z"),  # before the data
    (USER, "AAPL", "1d", "2000-03-01T20:59:59.999999Z"),  # a microsecond before bar 1 closes
    (USER, "AAPL", "1d", "2000-03-01T21:00Z"),  # as bar 1 closes
    (USER, "AAPL", "1d", "2000-05-15T21:00Z"),  # warm-up: regime and stack incomplete
    (USER, "AAPL", "1h", "2005-03-01T21:00Z"),  # no bars of that timeframe
    (USER, "GOOG", "1d", "2004-08-19T20:00Z"),  # first daily bar, no weekly bar closed
    (USER, "EURUSD", "1h", "2016-12-01T12:00Z"),  # before the FX data
    (USER, "EURUSD", "1h", "2017-01-07T12:00Z"),  # a Saturday
    (USER, "EURUSD", "1h", "2017-06-14T09:00Z"),
    (USER, "MSFT", "1d", "2008-03-04T21:00Z"),  # snapshot of another version
    (USER, "MSFT", "1d", "2008-03-05T15:00Z"),  # the same bar, mid-session
    (USER, "MSFT", "1d", "2008-03-20T21:00Z"),
    (USER, "MSFT", "1w", "2008-03-20T21:00Z"),  # a timeframe without snapshots
    ("ghost", "MSFT", "1d", "2008-03-20T21:00Z"),  # no account
    (USER, "AAPL", "1d", "2005-01-05T21:00Z"),  # before the replay user's anchors
    (USER, "AAPL", "1d", "2005-01-20T21:00Z"),  # after the first anchor
    ("second", "AAPL", "1d", "2005-01-20T21:00Z"),  # same bar, a user without anchors
    ("ghost", "AAPL", "1d", "2005-01-20T21:00Z"),
    (USER, "AAPL", "1d", "2005-02-25T21:00Z"),  # no stored snapshot or levels
    ("second", "AAPL", "1d", "2005-02-25T21:00Z"),
    ("second", "AAPL", "1d", "2005-02-28T10:00Z"),  # split ex-date morning: same bar, new basis
    ("second", "AAPL", "1d", "2005-02-28T21:00Z"),
    ("second", "AAPL", "1d", "2005-03-05T12:00Z"),  # a Saturday
    ("second", "AAPL", "1d", "2005-03-15T21:00Z"),  # stored again
    (USER, "AAPL", "1d", "2005-06-15T21:00Z"),  # after both anchors
]


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_the_scalar_provider_on_edge_rows(name: str,
                                                       edited_store: Store) -> None:
    request = synthetic_request(edited_store, EDGE_ROWS)
    pieces, _ = assert_matches_scalar(name, request)
    keys = ["user_id"] if name == "account" else ["user_id", "symbol", "timeframe", "as_of"]
    assert_shared(pieces, request.intents[keys])


def test_edge_rows_take_every_path(edited_store: Store) -> None:
    request = synthetic_request(edited_store, EDGE_ROWS)
    got = {name: PROVIDERS[name].batch(request) for name in NAMES}
    at = {row: i for i, row in enumerate(EDGE_ROWS)}

    def piece(name: str, *row: str) -> Any:
        return got[name][0][at[row]]

    def reason(name: str, *row: str) -> str:
        return got[name][1][at[row]]

    before = (USER, "AAPL", "1d", "1995-01-03T21:00Z")
    for name in ("regime", "levels"):
        assert reason(name, *before).startswith("no 1d bars of AAPL closed at or before 1995")
        assert reason(name, USER, "AAPL", "1h", "2005-03-01T21:00Z").startswith("no 1h bars")
        for row in ((USER, "AAPL", "1d", "2005-02-25T21:00Z"),  # computed on demand
                    (USER, "MSFT", "1d", "2008-03-04T21:00Z"), (USER, "MSFT", "1w",
                                                                "2008-03-20T21:00Z")):
            assert piece(name, *row) is not None, (name, row)
    assert "not yet defined" in reason("regime", USER, "AAPL", "1d", "2000-05-15T21:00Z")
    assert "1w: no bar closed" in reason("mtfa", USER, "GOOG", "1d", "2004-08-19T20:00Z")
    # GOOG's first session: its own closed bar is the "prior day" of the next session
    first = piece("levels", USER, "GOOG", "1d", "2004-08-19T20:00Z")
    hlc = (first.prior_day_high, first.prior_day_low, first.prior_day_close)
    assert first.ts == pd.Timestamp("2004-08-19T13:30Z") and None not in hlc  # its open
    assert first.pivots["classic"]["P"] == pytest.approx(sum(hlc) / 3)  # type: ignore[arg-type]
    # the split's ex-date morning: the same bar as the evening before, on the new basis
    friday = piece("levels", "second", "AAPL", "1d", "2005-02-25T21:00Z")
    monday = piece("levels", "second", "AAPL", "1d", "2005-02-28T10:00Z")
    assert monday.ts == friday.ts and monday.prior_day_close == friday.prior_day_close / 2
    assert [v.anchor for v in piece("levels", USER, "AAPL", "1d", "2005-06-15T21:00Z")
            .anchored_vwaps if v.anchor.startswith("user:")] == ["user:later", "user:launch"]
    assert reason("account", "ghost", "MSFT", "1d", "2008-03-20T21:00Z") == (
        "user ghost has no account; run `buddy user set --user ghost ...`")


def test_stored_levels_move_to_the_as_of_basis(edited_store: Store) -> None:
    rows = [("second", "MSFT", "1d", "2003-02-14T21:00Z"),
            ("second", "MSFT", "1d", "2003-02-17T12:00Z"),  # Presidents' Day: same bar
            ("second", "MSFT", "1d", "2003-02-18T10:00Z"),  # the split's ex-date morning
            ("second", "AAPL", "1d", "2000-06-21T10:00Z")]
    pieces, _ = assert_matches_scalar("levels", synthetic_request(edited_store, rows))
    assert pieces[0] is pieces[1] and pieces[2] is not pieces[1]
    assert pieces[2].ts == pieces[1].ts
    assert pieces[2].prior_day_close == pieces[1].prior_day_close / 2


def test_levels_rows_share_a_stored_snapshot_across_users_without_anchors(
        edited_store: Store) -> None:
    rows = [("second", "AAPL", "1d", "2005-01-20T21:00Z"),
            ("ghost", "AAPL", "1d", "2005-01-20T21:00Z"),
            ("second", "AAPL", "1d", "2005-01-21T12:00Z"),  # same bar, later as_of
            (USER, "AAPL", "1d", "2005-01-20T21:00Z")]  # with its anchor's VWAP
    pieces, _ = assert_matches_scalar("levels", synthetic_request(edited_store, rows))
    assert pieces[0] is pieces[1] is pieces[2]
    assert [v.anchor for v in pieces[3].anchored_vwaps][-1] == "user:launch"


#: As_of around unscheduled XNYS closures (9/11, President Reagan's and President Ford's
#: days of mourning, Hurricane Sandy): before, at and after each announcement; one a year
#: ahead of a closure, and one whose window outruns the calendar.
CLOSURE_AS_OF = ["2001-09-10T20:00Z", "2001-09-11T13:29:59.999999Z", "2001-09-11T13:30Z",
                 "2001-09-12T12:00Z", "2001-09-14T12:00Z", "2001-09-17T12:00Z",
                 "2003-07-01T20:00Z", "2004-06-08T12:00Z", "2004-06-08T23:59:59Z",
                 "2004-06-09T00:00Z", "2004-06-10T12:00Z", "2004-06-11T12:00Z",
                 "2006-12-29T12:00Z", "2007-01-01T12:00Z", "2007-01-02T12:00Z",
                 "2012-10-28T12:00Z", "2012-10-29T01:00Z", "2012-10-29T12:00Z",
                 "2012-10-30T01:00Z", "2027-06-01T20:00Z"]


def test_schedule_around_unscheduled_closures(edited_store: Store) -> None:
    rows = [(USER, symbol, tf, t) for t in CLOSURE_AS_OF
            for symbol, tf in (("AAPL", "1d"), ("MSFT", "1d"), ("AAPL", "1h"))]
    request = synthetic_request(edited_store, rows)
    pieces, _ = assert_matches_scalar("schedule", request)
    # AAPL and MSFT at one as_of and timeframe: one sessions tuple, one piece each
    for k in range(0, len(rows), 3):
        assert pieces[k].sessions is pieces[k + 1].sessions
        assert pieces[k] is not pieces[k + 1]
    hidden = [p for p in pieces if any(s[0].date() == pd.Timestamp("2004-06-11").date()
                                       for s in p.sessions)]
    known = [p for p in pieces if any(e.event_id == "XNYS:holiday:2004-06-11"
                                      for e in p.events)]
    assert hidden and known  # the closure is a session before its announcement, then an event
    assert any(p.calendar_ends is not None for p in pieces)
    assert any(p.earnings_dates_known for p in pieces)


def test_schedule_with_imported_events_and_an_unknown_calendar(edited_store: Store) -> None:
    rows = [(USER, "AAPL", "1d", t) for t in ("2004-08-20T20:00Z", "2004-12-15T21:00Z",
                                              "2005-03-01T21:00Z", "2005-03-22T18:15Z",
                                              "2005-06-01T00:00Z", "2005-06-02T20:00Z")]
    rows += [(USER, "MSFT", "1d", "2005-03-22T18:15Z"), (USER, "EURUSD", "1h",
                                                          "2005-03-01T21:00Z"),
             (USER, "AAPL", "1d", "2005-03-01T21:00Z")]
    request = synthetic_request(edited_store, rows, calendars={len(rows) - 1: "NOPE"})
    pieces, reasons = assert_matches_scalar("schedule", request)
    assert pieces[-1] is None and reasons[-1].startswith("no schedule for AAPL: ")
    imported = {e.event_id for p in pieces[:-1] for e in p.events if e.announced_at}
    assert "aaa-same-ts" in imported and len(imported) >= 5
    assert [p.earnings_dates_known for p in pieces[:6]] == [0, 1, 2, 2, 3, 3]
