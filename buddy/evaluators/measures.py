"""What each warning claims, and the outcome measure that can show it.

A process audit does not promise a better mean R: each issue code warns of a specific harm
(``Code.harm``, in words) and names the measure that shows that harm (``Code.measure``, a key
of ``MEASURES``), so replay calibration can test each warning against its own yardstick:
intents where the code fired against intents where it did not, with n and an interval.

The vocabulary lives here because evaluators declare it; the measures are computed from
labelled outcomes in ``replay`` (``replay.measures``), never by an evaluator. ``None`` as a
code's measure means the warning is about the report's own inputs or the plan's form (stale
data, no stop on an intent that replay always gives one) and no outcome can judge it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: Bars after the fill within which a stop-out counts as "stopped early".
EARLY_BARS = 3


@dataclass(frozen=True, slots=True)
class Measure:
    """One outcome measure: what it is, over which intents, and which direction is harm.

    ``kind``: 'rate' (a share of intents, 0-1) or 'mean' (the mean of a per-intent value);
    ``over``: 'all' (every intent with an outcome, filled or not) or 'filled' (only intents
    whose entry filled); ``worse``: the direction that shows the harm the code warns of.
    """

    name: str
    description: str
    unit: str
    kind: Literal["rate", "mean"]
    over: Literal["all", "filled"]
    worse: Literal["higher", "lower"]


MEASURES: Mapping[str, Measure] = {m.name: m for m in (
    Measure("not_filled", "the entry never traded within the fill window", "share",
            "rate", "all", "higher"),
    Measure("stopped_early", f"stopped out within {EARLY_BARS} bars of the fill", "share",
            "rate", "filled", "higher"),
    Measure("stopped_out", "the trade ended at its stop", "share", "rate", "filled", "higher"),
    Measure("target_reached", "the trade reached its target", "share", "rate", "filled",
            "lower"),
    Measure("time_stopped", "the holding horizon ended the trade before stop or target",
            "share", "rate", "filled", "higher"),
    Measure("loss_beyond_stop", "the loss exceeded the planned risk (R below -1: a gap or "
            "slippage through the stop)", "share", "rate", "filled", "higher"),
    Measure("adverse_excursion", "the deepest move against the trade before its exit",
            "R", "mean", "filled", "higher"),
    Measure("equity_loss", "the loss as a share of the account's equity at the decision, on "
            "losing trades", "% equity", "mean", "filled", "higher"),
    Measure("realized_r", "the realized result in multiples of the planned risk", "R",
            "mean", "filled", "lower"),
)}

#: What a code is: an issue ranked in the report, or an input that could not be checked,
#: listed once in the report's "not checked" line and never ranked or scored as good.
KINDS = ("issue", "not_checked")
