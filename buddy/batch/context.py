"""BatchContext: the ContextPacks of many intents, column-wise.

Row i of a BatchContext holds what ``ContextPackBuilder.build`` gives intent i, arranged so
a module can audit every row with array operations:

- ``intents``: the intents (INTENT_COLUMNS, plus ``exit_template`` and the derived ``sign``
  (+1 long, -1 short), ``stop_distance``, ``reward_distance`` and ``reward_risk``, NaN where
  the scalar property is None);
- ``instrument``: the Instrument fields of each row's symbol;
- ``market``: MARKET_COLUMNS per row (``has_market`` False: no bar closed by as_of, and the
  market piece is missing);
- ``latest``: ``MarketData.latest_features`` per row as columns (NaN where the key is absent
  or the value is NaN; ``market.has_latest`` tells an empty mapping apart);
- ``bars`` and ``features``: each row's window (the pack's ``market.bars`` and
  ``market.features``: the last ``lookback`` closed rows, on the row's as-of split basis) as
  a slice of one concatenated frame; ``Windows.tail`` gives the last k values of every
  window as an (N, k) matrix;
- ``pieces``: the other pieces per row (an object array of the piece or None), and
  ``missing``: the reason per piece and row (None where present).

``pack(i)`` rebuilds row i's ContextPack from these columns (the fallback for a module that
has no batch form); ``from_packs`` builds a BatchContext from packs (the reference the fast
builder, ``buddy.batch.builder``, is tested against).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from buddy.batch.columns import objects
from buddy.context.pack import PIECES, ContextPack, Instrument, MarketData
from buddy.context.piece_columns import PieceColumn
from buddy.domain import OrderType, Side, TradeIntent
from buddy.timeframes import Timeframe

#: The pieces besides ``market`` (which is columns and windows).
OTHER_PIECES: tuple[str, ...] = tuple(p for p in PIECES if p != "market")

#: Per-row market columns (MarketData's scalars).
MARKET_COLUMNS: tuple[str, ...] = (
    "has_market",  # bool: a bar closed at or before as_of
    "last_close",  # float: the last closed bar's close (as-of basis), NaN without market
    "last_bar_close",  # datetime64[us, UTC]: that bar's ts_close, NaT without market
    "sessions_since_last_bar",  # int64
    "window_sessions",  # int64
    "n_missing_sessions",  # int64: len(missing_sessions)
    "bars_without_features",  # int64
    "n_bars",  # int64: len(market.bars)
    "has_latest",  # bool: latest_features is not empty
)

INSTRUMENT_FIELDS: tuple[str, ...] = tuple(Instrument.__dataclass_fields__)


# ---------------------------------------------------------------------------- windows
@dataclass(frozen=True, slots=True)
class Windows:
    """Row i's window is ``data.iloc[start[i]:stop[i]]`` (empty when start == stop)."""

    data: pd.DataFrame
    start: np.ndarray  # int64
    stop: np.ndarray  # int64, exclusive
    _columns: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def lengths(self) -> np.ndarray:
        """Rows per window (int64)."""
        return self.stop - self.start

    def frame(self, i: int) -> pd.DataFrame:
        """Return row i's window as a frame indexed 0..len-1."""
        return self.data.iloc[int(self.start[i]):int(self.stop[i])].reset_index(drop=True)

    def column(self, name: str) -> np.ndarray:
        """Return the concatenated column ``name`` as a numpy array (cached)."""
        values = self._columns.get(name)
        if values is None:
            series = self.data[name]
            values = (series.to_numpy(dtype=np.float64) if series.dtype.kind in "fiub"
                      else series.to_numpy())
            # shared by every module (and, over the whole tables, by every chunk): read only
            values = values.view()
            values.flags.writeable = False
            self._columns[name] = values
        return values

    def tail(self, name: str, k: int) -> np.ndarray:
        """Return an (N, k) float matrix: each window's last ``k`` values of ``name``, oldest
        first, NaN-padded on the left where a window holds fewer than ``k`` rows."""
        values = self.column(name)
        index = self.stop[:, None] - k + np.arange(k)[None, :]
        valid = index >= self.start[:, None]
        out = values[np.where(valid, index, 0)] if len(values) else np.full(index.shape,
                                                                           np.nan)
        out = np.asarray(out, dtype=np.float64)
        out[~valid] = np.nan
        return out

    def last(self, name: str, back: int = 0) -> np.ndarray:
        """Return each window's value ``back`` rows before its last (NaN when too short)."""
        return self.tail(name, back + 1)[:, 0]

    def take(self, rows: np.ndarray) -> Windows:
        """Return the windows of ``rows`` (same data)."""
        return Windows(self.data, self.start[rows], self.stop[rows], self._columns)


# ---------------------------------------------------------------------------- the context
@dataclass(frozen=True, kw_only=True)
class BatchContext:
    """The ContextPacks of N intents as columns; see the module docstring."""

    intents: pd.DataFrame
    instrument: pd.DataFrame
    market: pd.DataFrame
    latest: pd.DataFrame
    bars: Windows
    features: Windows
    missing_sessions: np.ndarray  # object: tuple[date, ...] per row
    splits_applied: np.ndarray  # object: tuple[(date, ratio), ...] per row
    pieces: Mapping[str, np.ndarray | PieceColumn]  # OTHER_PIECES -> piece or None per row
    missing: Mapping[str, np.ndarray]  # PIECES -> object array (reason or None)
    _codes: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.intents)

    @property
    def n(self) -> int:
        """Rows (intents)."""
        return len(self.intents)

    # ------------------------------------------------------------------ column access
    def piece(self, name: str) -> np.ndarray | PieceColumn:
        """Return piece ``name`` per row (None where missing): an object array, or a
        PieceColumn when its provider keeps it as columns."""
        if name not in OTHER_PIECES:
            raise KeyError(f"{name!r} is not a non-market ContextPack piece: {OTHER_PIECES}")
        return self.pieces[name]

    def present(self, name: str) -> np.ndarray:
        """Return a bool array: piece ``name`` is present on the row."""
        if name == "market":
            return self.market["has_market"].to_numpy(dtype=bool)
        pieces = self.piece(name)
        if isinstance(pieces, PieceColumn):
            return pieces.present()
        return np.array([p is not None for p in pieces], dtype=bool)

    def piece_values(self, name: str, get: Callable[[Any], Any], *, dtype: Any = np.float64,
                     default: Any = math.nan) -> np.ndarray:
        """Return ``get(piece)`` per row, ``default`` where the piece is missing; ``get`` runs
        once per distinct piece object (rows at the same snapshot share one)."""
        pieces = self.piece(name)
        codes, first = self.piece_codes(name)
        values = [default if pieces[i] is None else get(pieces[i]) for i in first]
        if np.dtype(dtype) == object:
            return objects(values)[codes]
        return np.asarray(values, dtype=dtype).reshape(len(first))[codes]

    def piece_codes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Return (per row, the number of its distinct piece object; the first row of each
        distinct object): rows sharing a snapshot share a number. Cached."""
        cached = self._codes.get(name)
        if cached is None:
            objects = self.piece(name)
            codes, uniques = pd.factorize(objects.code if isinstance(objects, PieceColumn)
                                          else np.fromiter(map(id, objects), dtype=np.int64,
                                                           count=len(objects)))
            first = np.zeros(len(uniques), dtype=np.int64)
            first[codes[::-1]] = np.arange(len(objects))[::-1]
            cached = self._codes[name] = (codes, first)
        return cached

    def distinct_pieces(self, name: str) -> tuple[np.ndarray, list[Any]]:
        """Return (per row, the number of its distinct piece object; those objects)."""
        codes, first = self.piece_codes(name)
        pieces = self.piece(name)
        return codes, [pieces[i] for i in first.tolist()]

    def missing_reasons(self, names: frozenset[str] | set[str]) -> list[dict[str, str]]:
        """Return per row {piece: reason} for those of ``names`` absent on it (sorted)."""
        absent = {n: ~self.present(n) for n in sorted(names)}
        out: list[dict[str, str]] = [{} for _ in range(self.n)]
        for name, mask in absent.items():
            reasons = self.missing[name]
            for i in np.flatnonzero(mask):
                out[i][name] = reasons[i] if reasons[i] is not None else "not provided"
        return out

    # ------------------------------------------------------------------ rows
    def take(self, rows: np.ndarray | Sequence[int]) -> BatchContext:
        """Return the context of ``rows`` (renumbered 0..len(rows)-1)."""
        rows = np.asarray(rows, dtype=np.int64)
        return BatchContext(
            intents=self.intents.iloc[rows].reset_index(drop=True),
            instrument=self.instrument.iloc[rows].reset_index(drop=True),
            market=self.market.iloc[rows].reset_index(drop=True),
            latest=self.latest.iloc[rows].reset_index(drop=True),
            bars=self.bars.take(rows), features=self.features.take(rows),
            missing_sessions=self.missing_sessions[rows],
            splits_applied=self.splits_applied[rows],
            pieces={k: v[rows] for k, v in self.pieces.items()},
            missing={k: v[rows] for k, v in self.missing.items()})

    def intent(self, i: int) -> TradeIntent:
        """Return row i's TradeIntent."""
        row = self.intents.iloc[i]
        template = row.get("exit_template")
        horizon = _optional(row["holding_horizon"])
        return TradeIntent(
            intent_id=str(row["intent_id"]), user_id=str(row["user_id"]),
            symbol=str(row["symbol"]), side=Side(row["side"]),
            timeframe=Timeframe.parse(row["timeframe"]),
            proposed_entry=float(row["proposed_entry"]),
            proposed_stop=_optional(row["proposed_stop"]),
            proposed_target=_optional(row["proposed_target"]),
            proposed_size=float(row["proposed_size"]),
            proposed_risk_amount=_optional(row["proposed_risk_amount"]),
            as_of=pd.Timestamp(row["as_of"]).to_pydatetime(),
            holding_horizon=None if horizon is None else int(horizon),
            order_type=OrderType(row["order_type"]),
            exit_template=None if template is None or pd.isna(template) else str(template))

    def market_data(self, i: int) -> MarketData | None:
        """Return row i's MarketData (None without market)."""
        m = self.market.iloc[i]
        if not bool(m["has_market"]):
            return None
        return MarketData(
            bars=self.bars.frame(i), features=self.features.frame(i),
            last_bar_close=pd.Timestamp(m["last_bar_close"]).to_pydatetime(),
            sessions_since_last_bar=int(m["sessions_since_last_bar"]),
            missing_sessions=tuple(self.missing_sessions[i]),
            window_sessions=int(m["window_sessions"]),
            bars_without_features=int(m["bars_without_features"]),
            splits_applied=tuple(self.splits_applied[i]))

    def pack(self, i: int) -> ContextPack:
        """Return row i's ContextPack, rebuilt from the columns."""
        row = self.intents.iloc[i]
        inst = self.instrument.iloc[i].to_dict()
        missing = {name: self.missing[name][i] for name in PIECES
                   if self.missing[name][i] is not None}
        return ContextPack(
            user_id=str(row["user_id"]), symbol=str(row["symbol"]),
            timeframe=Timeframe.parse(row["timeframe"]),
            as_of=pd.Timestamp(row["as_of"]).to_pydatetime(),
            instrument=Instrument.from_row(inst), market=self.market_data(i),
            missing=missing, **{name: self.pieces[name][i] for name in OTHER_PIECES})


# ---------------------------------------------------------------------------- building
def intent_columns(intents: pd.DataFrame) -> pd.DataFrame:
    """Return ``intents`` with ``exit_template`` (None when absent), ``proposed_risk_amount``
    (NaN when absent) and the derived columns ``sign``, ``stop_distance``,
    ``reward_distance`` and ``reward_risk`` (TradeIntent's properties, column-wise).

    Numeric columns are float64 and NaN where the TradeIntent field or property is None
    (``proposed_stop``, ``proposed_target``, ``proposed_risk_amount``, ``holding_horizon``).
    """
    frame = intents.reset_index(drop=True).copy()
    if "exit_template" not in frame.columns:
        frame["exit_template"] = pd.Series([None] * len(frame), dtype=object)
    if "proposed_risk_amount" not in frame.columns:
        frame["proposed_risk_amount"] = np.nan
    for column in ("proposed_entry", "proposed_stop", "proposed_target", "proposed_size",
                   "proposed_risk_amount", "holding_horizon"):
        frame[column] = pd.to_numeric(frame[column]).astype(np.float64)
    entry = frame["proposed_entry"].to_numpy(np.float64)
    stop = frame["proposed_stop"].to_numpy(np.float64)
    target = frame["proposed_target"].to_numpy(np.float64)
    frame["sign"] = np.where(frame["side"].to_numpy() == Side.LONG.value, 1.0, -1.0)
    stop_distance = np.abs(entry - stop)
    reward_distance = np.abs(target - entry)
    with np.errstate(invalid="ignore", divide="ignore"):
        reward_risk = reward_distance / stop_distance
    frame["stop_distance"] = stop_distance
    frame["reward_distance"] = reward_distance
    frame["reward_risk"] = reward_risk
    return frame


def from_packs(intents: Sequence[TradeIntent], packs: Sequence[ContextPack]) -> BatchContext:
    """Return the BatchContext of ``packs`` (one per intent, same order): the reference."""
    if len(intents) != len(packs):
        raise ValueError(f"{len(intents)} intents but {len(packs)} packs")
    rows = []
    for intent in intents:
        row = intent.as_row()
        row["as_of"] = pd.Timestamp(intent.as_of).tz_convert("UTC")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not len(frame):
        frame = pd.DataFrame(columns=["intent_id", "user_id", "symbol", "side", "timeframe",
                                      "as_of", "proposed_entry", "proposed_stop",
                                      "proposed_target", "proposed_size", "holding_horizon",
                                      "order_type", "exit_template"])
    instrument = pd.DataFrame([{f: getattr(p.instrument, f) for f in INSTRUMENT_FIELDS}
                               for p in packs], columns=list(INSTRUMENT_FIELDS))
    market_rows: list[dict[str, Any]] = []
    latest_rows: list[dict[str, Any]] = []
    bar_frames, feature_frames = [], []
    bar_len, feature_len = [], []
    missing_sessions: list[tuple[date, ...]] = []
    splits: list[tuple[tuple[date, float], ...]] = []
    for pack in packs:
        m = pack.market
        if m is None:
            market_rows.append({"has_market": False, "last_close": math.nan,
                                "last_bar_close": pd.NaT, "sessions_since_last_bar": 0,
                                "window_sessions": 0, "n_missing_sessions": 0,
                                "bars_without_features": 0, "n_bars": 0,
                                "has_latest": False})
            latest_rows.append({})
            bar_len.append(0)
            feature_len.append(0)
            missing_sessions.append(())
            splits.append(())
            continue
        market_rows.append({
            "has_market": True, "last_close": m.last_close,
            "last_bar_close": pd.Timestamp(m.last_bar_close).tz_convert("UTC"),
            "sessions_since_last_bar": m.sessions_since_last_bar,
            "window_sessions": m.window_sessions,
            "n_missing_sessions": len(m.missing_sessions),
            "bars_without_features": m.bars_without_features, "n_bars": len(m.bars),
            "has_latest": bool(m.latest_features)})
        latest_rows.append(dict(m.latest_features))
        bar_frames.append(m.bars)
        feature_frames.append(m.features)
        bar_len.append(len(m.bars))
        feature_len.append(len(m.features))
        missing_sessions.append(tuple(m.missing_sessions))
        splits.append(tuple(m.splits_applied))
    market = market_frame(market_rows)
    latest = pd.DataFrame(latest_rows, index=range(len(packs))).astype(np.float64)
    return BatchContext(
        intents=intent_columns(frame), instrument=instrument, market=market, latest=latest,
        bars=_windows(bar_frames, bar_len), features=_windows(feature_frames, feature_len),
        missing_sessions=objects(missing_sessions), splits_applied=objects(splits),
        pieces={name: objects([p.piece(name) for p in packs]) for name in OTHER_PIECES},
        missing={name: objects([p.missing.get(name) if (
            p.market is None if name == "market" else p.piece(name) is None) else None
            for p in packs]) for name in PIECES})


def from_pack(intent: TradeIntent, pack: ContextPack) -> BatchContext:
    """Return the BatchContext of one intent and its pack: the row an interactive evaluation
    runs every module on. Equal to ``from_packs([intent], [pack])``, built straight from
    typed one-element columns (each frame constructed once, no conversions)."""
    return _from_pack(intent_frame(intent), pack)


def intent_frame(intent: TradeIntent) -> pd.DataFrame:
    """Return the one-row ``intents`` columns of ``intent`` (``from_pack``'s; an
    interactive session that re-evaluates against one pack rebuilds only these)."""
    row = intent.as_row()
    numbers = {c: np.array([math.nan if row[c] is None else float(row[c])])
               for c in _NUMERIC_INTENT_COLUMNS}
    side = intent.side.value
    entry, stop, target = (numbers[c] for c in ("proposed_entry", "proposed_stop",
                                                "proposed_target"))
    with np.errstate(invalid="ignore", divide="ignore"):
        derived = {"sign": np.array([1.0 if side == Side.LONG.value else -1.0]),
                   "stop_distance": np.abs(entry - stop),
                   "reward_distance": np.abs(target - entry),
                   "reward_risk": np.abs(target - entry) / np.abs(entry - stop)}
    frame = pd.DataFrame({
        **{c: _text(row[c]) for c in ("intent_id", "user_id", "symbol", "side", "timeframe")},
        "proposed_entry": numbers["proposed_entry"], "proposed_stop": numbers["proposed_stop"],
        "proposed_target": numbers["proposed_target"],
        "proposed_size": numbers["proposed_size"],
        "proposed_risk_amount": numbers["proposed_risk_amount"],
        "holding_horizon": numbers["holding_horizon"], "order_type": _text(row["order_type"]),
        "exit_template": _text(row["exit_template"]),
        "as_of": pd.DatetimeIndex([pd.Timestamp(intent.as_of).tz_convert("UTC")]),
        "status": _text(row["status"]), **derived}, copy=False)
    return _object_labels(frame)


def _object_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with its column labels held as Python objects: the modules read ~80
    columns of an interactive evaluation's frames, and a label looked up in pandas' Arrow-
    backed text Index costs ~3 us more."""
    frame.columns = pd.Index(frame.columns.tolist(), dtype=object)
    return frame


def _from_pack(intents: pd.DataFrame, pack: ContextPack) -> BatchContext:
    instrument = pd.DataFrame({f: _typed(getattr(pack.instrument, f))
                               for f in INSTRUMENT_FIELDS}, copy=False)
    m = pack.market
    if m is None:
        market = market_frame([_NO_MARKET])
        latest = pd.DataFrame(index=range(1))
        bars = features = Windows(pd.DataFrame(), np.zeros(1, np.int64), np.zeros(1, np.int64))
        sessions: tuple[Any, ...] = ()
        splits: tuple[Any, ...] = ()
    else:
        market = pd.DataFrame({
            "has_market": np.array([True]), "last_close": np.array([float(m.last_close)]),
            "last_bar_close": pd.DatetimeIndex([pd.Timestamp(m.last_bar_close)
                                                .tz_convert("UTC")]).as_unit("us"),
            "sessions_since_last_bar": np.array([m.sessions_since_last_bar], np.int64),
            "window_sessions": np.array([m.window_sessions], np.int64),
            "n_missing_sessions": np.array([len(m.missing_sessions)], np.int64),
            "bars_without_features": np.array([m.bars_without_features], np.int64),
            "n_bars": np.array([len(m.bars)], np.int64),
            "has_latest": np.array([bool(m.latest_features)])}, copy=False)
        latest = pd.DataFrame({k: np.array([v], np.float64)
                               for k, v in m.latest_features.items()}, index=range(1))
        bars = Windows(m.bars, np.zeros(1, np.int64), np.array([len(m.bars)], np.int64))
        features = Windows(m.features, np.zeros(1, np.int64),
                           np.array([len(m.features)], np.int64))
        sessions, splits = tuple(m.missing_sessions), tuple(m.splits_applied)
    instrument, market, latest = map(_object_labels, (instrument, market, latest))
    return BatchContext(
        intents=intents, instrument=instrument, market=market, latest=latest, bars=bars,
        features=features, missing_sessions=objects([sessions]),
        splits_applied=objects([splits]),
        pieces={name: objects([pack.piece(name)]) for name in OTHER_PIECES},
        missing={name: objects([pack.missing.get(name) if (
            m is None if name == "market" else pack.piece(name) is None) else None])
            for name in PIECES})


_NUMERIC_INTENT_COLUMNS = ("proposed_entry", "proposed_stop", "proposed_target",
                           "proposed_size", "proposed_risk_amount", "holding_horizon")
_NO_MARKET: dict[str, Any] = {
    "has_market": False, "last_close": math.nan, "last_bar_close": pd.NaT,
    "sessions_since_last_bar": 0, "window_sessions": 0, "n_missing_sessions": 0,
    "bars_without_features": 0, "n_bars": 0, "has_latest": False}


def _typed(value: Any) -> np.ndarray:
    """Return a one-element column: numbers and flags typed, anything else an object."""
    if isinstance(value, bool | int | float) and value is not None:
        return np.array([value])
    return _one(value)


def _one(value: Any) -> np.ndarray:
    out = np.empty(1, dtype=object)
    out[0] = value
    return out


#: A column of text as pandas infers it: its dtype, and whether Arrow holds it.
_STR_SAMPLE = pd.array(["text"], dtype="str")
_STR_DTYPE = _STR_SAMPLE.dtype
_ARROW_STR = isinstance(_STR_SAMPLE, pd.arrays.ArrowStringArray)


def _text(value: Any) -> Any:
    """Return a one-value column of ``value``: a str as the text column pandas would infer
    from it, made from its Arrow array directly (~5 us, not ~25 through inference); anything
    else (None) as an object column, as ``_one``."""
    if type(value) is not str or not _ARROW_STR:
        return _one(value)
    return pd.arrays.ArrowStringArray(pa.chunked_array([pa.array([value], pa.large_string())]),
                                      dtype=_STR_DTYPE)


def market_frame(rows: list[dict[str, Any]] | Mapping[str, Any]) -> pd.DataFrame:
    """Return MARKET_COLUMNS typed (from row dicts or a mapping of columns)."""
    frame = pd.DataFrame(rows, columns=list(MARKET_COLUMNS))
    frame["last_bar_close"] = pd.to_datetime(frame["last_bar_close"], utc=True).astype(
        "datetime64[us, UTC]")
    return frame.astype({"has_market": bool, "last_close": np.float64,
                         "sessions_since_last_bar": np.int64, "window_sessions": np.int64,
                         "n_missing_sessions": np.int64, "bars_without_features": np.int64,
                         "n_bars": np.int64, "has_latest": bool})


def _windows(frames: list[pd.DataFrame], lengths: list[int]) -> Windows:
    stop = np.cumsum(np.asarray(lengths, dtype=np.int64))
    start = stop - np.asarray(lengths, dtype=np.int64)
    if len(frames) == 1:  # a batch of one: the pack's own frame, positions are all we use
        return Windows(frames[0], start, stop)
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Windows(data, start, stop)


def _optional(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)
