"""Bar timeframes: the closed set of bar lengths the workbench understands."""

from __future__ import annotations

from enum import StrEnum

import pandas as pd


class Timeframe(StrEnum):
    """A bar length. The value is the label used everywhere (CLI, tables, configs)."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"
    W1 = "1w"

    @property
    def nominal(self) -> pd.Timedelta:
        """Return the nominal bar length (a week is 7 calendar days, a day 24 hours)."""
        return _NOMINAL[self]

    @property
    def is_intraday(self) -> bool:
        """Return True for bars shorter than one trading session."""
        return self.nominal < pd.Timedelta(days=1)

    @classmethod
    def parse(cls, value: str | Timeframe) -> Timeframe:
        """Return the Timeframe for a label such as '1h', or raise ValueError naming the choices."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            choices = ", ".join(t.value for t in cls)
            raise ValueError(f"timeframe: must be one of {choices} (got {value!r})") from None


_NOMINAL = {
    Timeframe.M1: pd.Timedelta(minutes=1),
    Timeframe.M5: pd.Timedelta(minutes=5),
    Timeframe.M15: pd.Timedelta(minutes=15),
    Timeframe.M30: pd.Timedelta(minutes=30),
    Timeframe.H1: pd.Timedelta(hours=1),
    Timeframe.H4: pd.Timedelta(hours=4),
    Timeframe.D1: pd.Timedelta(days=1),
    Timeframe.W1: pd.Timedelta(days=7),
}
