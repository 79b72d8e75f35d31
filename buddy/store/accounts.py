"""Account equity as it stood at a past moment, read point-in-time from ``user_accounts``.

The table keeps one row per user: the latest equity snapshot and when that row was written
(``updated_at``). A snapshot is known to have been in force at ``as_of`` only when it was
written at or before ``as_of``; earlier values are not kept, so for an earlier ``as_of`` the
equity is unknown (NaN), never the later value read backwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from buddy.store.core import Store


def equity_as_of(store: Store, user_ids: Sequence[str], as_of: Sequence[object] | pd.Series
                 ) -> pd.DataFrame:
    """Return the equity snapshot each user had at each ``as_of`` (UTC), with its currency.

    Row i pairs ``user_ids[i]`` with ``as_of[i]``; columns ``equity`` (account currency; NaN
    where the user has no account, no positive snapshot, or one written after ``as_of``) and
    ``base_currency`` (None where the equity is unknown).
    """
    users = pd.Series(np.asarray(user_ids, dtype=object)).astype(str)
    when = pd.to_datetime(pd.Series(as_of), utc=True)
    if len(users) != len(when):
        raise ValueError(f"user_ids and as_of must have one value per row; got {len(users)} "
                         f"user ids and {len(when)} times")
    if not len(users):
        return pd.DataFrame({"equity": pd.Series(dtype="float64"),
                             "base_currency": pd.Series(dtype=object)})
    accounts = store.query("SELECT user_id, base_currency, equity_snapshot, updated_at FROM "
                           "user_accounts WHERE list_contains(?, user_id)",
                           [sorted(set(users))]).set_index("user_id")
    equity = accounts["equity_snapshot"].reindex(users).to_numpy(dtype=np.float64)
    written = pd.to_datetime(accounts["updated_at"], utc=True).reindex(users)
    in_force = ((written.reset_index(drop=True) <= when.reset_index(drop=True)).to_numpy()
                & (equity > 0))  # NaT and NaN compare False: unknown
    currency = accounts["base_currency"].reindex(users).to_numpy(dtype=object)
    return pd.DataFrame({"equity": np.where(in_force, equity, np.nan),
                         "base_currency": np.where(in_force, currency, None)})
