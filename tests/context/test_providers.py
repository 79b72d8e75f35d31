"""The provider contract and registry: validation on registration, plain functions adapted."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buddy.api import default_providers
from buddy.context.builder import ContextPackBuilder
from buddy.context.providers import (
    BatchPieceRequest,
    PieceProvider,
    PieceRequest,
    ProviderRegistry,
    RowByRow,
)
from buddy.errors import ConfigError
from buddy.store import Store

STANDARD = ("account", "regime", "levels", "mtfa", "schedule", "strategy", "portfolio",
            "behavior")


def test_the_standard_providers_implement_the_protocol() -> None:
    registry = default_providers()
    assert set(registry) == set(STANDARD)
    for piece in STANDARD:
        provider = registry[piece]
        assert isinstance(provider, PieceProvider), piece
        assert not isinstance(provider, RowByRow), piece  # each has its own batch form
        assert pickle.loads(pickle.dumps(provider)) == provider  # replay ships them


@pytest.mark.parametrize(("piece", "provider", "field", "rule", "value"), [
    ("market", print, "providers.market", "provider slot", "market"),
    ("levles", print, "providers.levles", "provider slot", "levles"),
    ("levels", "levels_provider", "providers.levels", "callable", "levels_provider"),
])
def test_registration_refuses_naming_field_rule_and_value(
        piece: str, provider: object, field: str, rule: str, value: object) -> None:
    registry = ProviderRegistry()
    with pytest.raises(ConfigError) as caught:
        registry.register(piece, provider)  # type: ignore[arg-type]
    (error,) = caught.value.errors
    assert error.field == field
    assert rule in error.rule
    assert error.value == value
    assert len(registry) == 0  # nothing registered


def test_a_batch_attribute_that_is_not_callable_is_refused() -> None:
    class Broken:
        batch = 3

        def __call__(self, request: PieceRequest) -> tuple[None, str]:
            return None, "x"

    with pytest.raises(ConfigError) as caught:
        ProviderRegistry({"regime": Broken()})  # type: ignore[dict-item]
    assert caught.value.fields == ("providers.regime.batch",)


def test_builders_refuse_an_unknown_piece(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"providers\.levles"):
        ContextPackBuilder(Store(tmp_path / "x.duckdb"),
                           providers={"levles": lambda r: (None, "x")})


def test_a_plain_function_runs_row_by_row_with_the_builders_reasons(tmp_path: Path) -> None:
    def scalar(request: PieceRequest) -> tuple[str | None, str | None]:
        if request.user_id == "boom":
            raise RuntimeError("broken row")
        return (request.user_id, None) if request.user_id != "none" else (None, None)

    registered = ProviderRegistry().register("regime", scalar)
    assert isinstance(registered, RowByRow)
    intents = pd.DataFrame({"user_id": ["a", "boom", "none"], "symbol": ["X"] * 3,
                            "timeframe": ["1d"] * 3,
                            "as_of": pd.to_datetime(["2020-01-02"] * 3, utc=True)})
    instrument = pd.DataFrame([{
        "symbol": "X", "name": "X Corp", "asset_class": "equity", "exchange": "XNYS",
        "currency": "USD", "sector": None, "tick_size": 0.01, "lot_size": 1.0,
        "contract_multiplier": 1.0, "trading_calendar": "XNYS", "benchmark": None,
        "timezone": "America/New_York"}] * 3)
    request = BatchPieceRequest(store=Store(tmp_path / "x.duckdb"), intents=intents,
                                instrument=instrument, market=pd.DataFrame(index=range(3)),
                                market_data=lambda i: None)
    pieces, reasons = registered.batch(request)
    assert list(pieces) == ["a", None, None]
    assert list(reasons) == [None, "the regime provider failed: RuntimeError: broken row",
                             "provider returned nothing"]
    assert isinstance(pieces, np.ndarray) and pieces.dtype == object


def test_replay_records_a_provider_instance_by_its_import_path() -> None:
    from replay.engine import STANDARD_PROVIDERS, load_provider, provider_path

    registry = default_providers()
    for piece, path in STANDARD_PROVIDERS.items():
        assert provider_path(registry[piece]) == path
        assert load_provider(path) is registry[piece]
    with pytest.raises(ValueError, match="bound to no name"):
        provider_path(RowByRow("regime", lambda r: (None, "x")))
