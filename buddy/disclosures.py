"""Disclosures: the fixed notices a report carries, and which of them a trader switched off.

A trader may switch disclosures off (``AccountContext.disclosures_off``), except the
no-prediction one: the workbench never predicts prices or outcomes, and every report says so.
The report lists what was switched off, and which requests to switch off were not honoured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from buddy.config import did_you_mean
from buddy.errors import ConfigError, FieldError

__all__ = [
    "DISCLOSURES",
    "NO_PREDICTION",
    "Disclosure",
    "DisclosureSelection",
    "select_disclosures",
    "validate_disclosures_off",
]

#: The report's disclaimer: shown on every report, cannot be switched off.
NO_PREDICTION = ("This report audits process, risk and fit with your own history. It does not "
                 "predict prices or outcomes.")


@dataclass(frozen=True, slots=True, kw_only=True)
class Disclosure:
    """One named notice; ``mandatory`` ones are shown whatever the trader's opt-outs."""

    name: str
    title: str
    text: str
    mandatory: bool = False


DISCLOSURES: Mapping[str, Disclosure] = {d.name: d for d in (
    Disclosure(name="no_prediction", title="No predictions", text=NO_PREDICTION,
               mandatory=True),
    Disclosure(
        name="data_sources", title="Data sources",
        text=("Market data is the history you imported or the bundled sample, read only up to "
              "the evaluation time. It can hold gaps or errors; the data-quality check reports "
              "the ones it finds.")),
    Disclosure(
        name="hypothetical", title="Hypothetical figures",
        text=("Replay and calibration figures describe simulated past trades. They are "
              "hypothetical, are not a record of real trading, and say nothing about future "
              "results.")),
    Disclosure(
        name="generated_text", title="Reworded explanations",
        text=("An explanation marked as reworded was written by a language model from the "
              "finding's own facts, and shown only after it passed checks for invented numbers "
              "and predictive wording; otherwise you read the fixed template text.")),
)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DisclosureSelection:
    """The disclosures a report shows, and what it says about the trader's opt-outs."""

    shown: tuple[Disclosure, ...]
    switched_off: tuple[str, ...]  # honoured opt-outs, in DISCLOSURES order
    kept_on: tuple[str, ...]  # opt-outs refused because the disclosure is mandatory
    unknown: tuple[str, ...]  # names that are not disclosures (ignored)

    def notes(self) -> tuple[str, ...]:
        """Return the lines a report prints about opt-outs (empty when there were none)."""
        lines = []
        if self.switched_off:
            lines.append("Disclosures switched off: " + ", ".join(self.switched_off) + ".")
        for name in self.kept_on:
            lines.append(f"The {name} disclosure cannot be switched off and is shown.")
        for name in self.unknown:
            lines.append(f"Ignored unknown disclosure {name!r} "
                         f"({did_you_mean(name, DISCLOSURES)}).")
        return tuple(lines)

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict."""
        return {"shown": [{"name": d.name, "title": d.title, "text": d.text}
                          for d in self.shown],
                "switched_off": list(self.switched_off), "kept_on": list(self.kept_on),
                "unknown": list(self.unknown), "notes": list(self.notes())}


def select_disclosures(disclosures_off: Iterable[str] = ()) -> DisclosureSelection:
    """Return the disclosures shown given a trader's ``disclosures_off`` names.

    Mandatory disclosures (no_prediction) stay on, and the selection says the opt-out was
    refused; unknown names are ignored and reported, so a stale profile never breaks a report.
    """
    off = {name.strip() for name in disclosures_off}
    return DisclosureSelection(
        shown=tuple(d for d in DISCLOSURES.values() if d.mandatory or d.name not in off),
        switched_off=tuple(n for n, d in DISCLOSURES.items() if n in off and not d.mandatory),
        kept_on=tuple(n for n, d in DISCLOSURES.items() if n in off and d.mandatory),
        unknown=tuple(sorted(off - set(DISCLOSURES))))


def validate_disclosures_off(disclosures_off: Iterable[str]) -> tuple[str, ...]:
    """Return the names sorted and deduplicated; raise ConfigError for an unknown name or a
    mandatory disclosure (for use where a trader edits the profile)."""
    names = tuple(sorted({n.strip() for n in disclosures_off}))
    errors = [FieldError("disclosures_off",
                         f"{n!r} is not a disclosure ({did_you_mean(n, DISCLOSURES)})", n)
              for n in names if n not in DISCLOSURES]
    errors += [FieldError("disclosures_off", f"{n!r} cannot be switched off", n)
               for n in names if n in DISCLOSURES and DISCLOSURES[n].mandatory]
    if errors:
        raise ConfigError(errors)
    return names
