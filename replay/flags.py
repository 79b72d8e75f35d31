"""How often each issue code fires over a replay run: the table ``buddy replay flags`` prints.

A code's firing rate is the share of a run's intents on which it fired at least once (a
module raising one code twice on an intent counts once), with its n (the intents replayed)
and a 95% Wilson score interval (statsmodels' ``proportion_confint``). Each code carries its
module and kind from the evaluators' ``Code`` declarations: 'issue' (ranked, scored) or
'not_checked' (an input that could not be checked). The orchestrator's own items, raised
under the module they concern, have their kinds in ``ORCHESTRATOR_KINDS``: CONTEXT_MISSING
(the module was skipped for a missing piece) is 'not_checked', MODULE_ERROR (it raised) an
'issue'. A code declared nowhere shows as 'undeclared'. A warning that fires on nearly every
intent is read as never there; this table is how that is measured.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from buddy.orchestrator import ORCHESTRATOR_CLAIMS

__all__ = ["FLAG_COLUMNS", "ORCHESTRATOR_KINDS", "declared_codes", "flag_rates"]

#: The columns of ``flag_rates``, in order.
FLAG_COLUMNS: tuple[str, ...] = ("code", "module", "kind", "fired", "n", "rate", "ci_low",
                                 "ci_high")

#: The kind of each orchestrator item (declared in ``buddy.orchestrator.ORCHESTRATOR_CLAIMS``):
#: a module skipped for a missing piece was not checked (never ranked); a module that raised
#: is ranked as an issue.
ORCHESTRATOR_KINDS: Mapping[str, str] = {code: claim.kind
                                         for code, claim in ORCHESTRATOR_CLAIMS.items()}


def declared_codes(modules: list[str] | None = None) -> pd.DataFrame:
    """Return every registered evaluator's codes: module, code, kind, measure, harm.

    ``modules``: only these evaluator names (default: every registered one).
    """
    from buddy.evaluators import registry

    rows = []
    for name, cls in registry.available().items():
        if modules is not None and name not in modules:
            continue
        for code, declared in cls.codes.items():
            rows.append({"module": name, "code": code, "kind": declared.kind,
                         "measure": declared.measure, "harm": declared.harm})
    return pd.DataFrame(rows, columns=["module", "code", "kind", "measure", "harm"])


def flag_rates(issues: pd.DataFrame, n_intents: int,
               kinds: pd.DataFrame | Mapping[str, str], *, alpha: float = 0.05
               ) -> pd.DataFrame:
    """Return each code's firing rate over ``n_intents`` intents as ``FLAG_COLUMNS``.

    ``issues``: one row per issue raised, with at least intent_id, module and code (the
    replay_issues rows of a run). ``kinds``: the declared codes, either ``declared_codes()``'s
    frame (then codes that never fired are listed too, at rate 0) or a mapping code -> kind
    (then only the codes that fired); orchestrator items that fired take their kind from
    ``ORCHESTRATOR_KINDS``. ``rate`` is a fraction (0-1), ``ci_low``/``ci_high`` its
    (1 - ``alpha``) Wilson interval. Sorted by rate, highest first, then module and code.
    """
    if isinstance(n_intents, bool) or not isinstance(n_intents, int | np.integer) or (
            n_intents < 1):
        raise ValueError(f"n_intents: must be a whole number of intents >= 1 (got "
                         f"{n_intents!r})")
    missing = [c for c in ("intent_id", "module", "code") if c not in issues.columns]
    if missing:
        raise ValueError(f"issues: missing columns {missing}")
    fired = (issues.drop_duplicates(["intent_id", "module", "code"])
             .groupby(["module", "code"], sort=True).size().rename("fired").reset_index())
    if isinstance(kinds, pd.DataFrame):
        declared = kinds.loc[:, ["module", "code", "kind"]].drop_duplicates(["module", "code"])
        table = declared.merge(fired, on=["module", "code"], how="outer")
    else:
        table = fired.assign(kind=fired["code"].map(dict(kinds)))
    orchestrator = table["code"].map(ORCHESTRATOR_KINDS)
    table["kind"] = table["kind"].fillna(orchestrator).fillna("undeclared")
    counts = table["fired"].fillna(0).to_numpy(dtype=np.int64)
    too_many = counts > n_intents
    if too_many.any():
        raise ValueError(f"n_intents: {n_intents} is fewer than the intents code "
                         f"{table['code'].to_numpy()[too_many][0]} fired on")
    low, high = proportion_confint(counts, n_intents, alpha=alpha, method="wilson")
    rate = counts / n_intents
    # the interval holds its rate exactly (rounding leaves 1e-17 above a rate of 0); +0.0
    # turns a -0.0 into 0.0
    frame = pd.DataFrame({
        "code": table["code"].astype(str).to_numpy(),
        "module": table["module"].astype(str).to_numpy(),
        "kind": table["kind"].astype(str).to_numpy(), "fired": counts,
        "n": np.full(len(counts), int(n_intents), dtype=np.int64),
        "rate": rate + 0.0,
        "ci_low": np.minimum(np.asarray(low, dtype=np.float64), rate) + 0.0,
        "ci_high": np.maximum(np.asarray(high, dtype=np.float64), rate) + 0.0})
    frame = frame.sort_values(["rate", "module", "code"], ascending=[False, True, True],
                              kind="stable")
    return frame.reset_index(drop=True).loc[:, list(FLAG_COLUMNS)]
