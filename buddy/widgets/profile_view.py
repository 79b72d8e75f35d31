"""The profile tab of the workbench: the trader's strategy profile from their closed trades.

``ProfileBook`` is the view-model (the user, an optional as-of, the profile built through
``buddy.jobs.profiles.profile_as_of`` and the error, if any); ``ProfileView`` draws it as
HTML tables: the overall figures, the red flags, the usual ranges with winners against
losers, the share, win rate and mean R per value, and the drift. It reads only; the stored
profiles (strategy_profiles) are written by the profiles job.
"""

from __future__ import annotations

import html
from datetime import datetime

import ipywidgets as w

from buddy.errors import BuddyError
from buddy.store import Store
from buddy.strategy.profile import FLAG_ALPHA, MIN_GROUP, StrategyProfile
from buddy.trades.summary import Stat

_STYLE = {"description_width": "70px"}
_CELL = "padding:2px 8px;text-align:right"
_HEAD = "padding:2px 8px;text-align:left;border-bottom:1px solid #cfd8dc"


class ProfileBook:
    """The view-model: whose profile, as of when, and the profile or why there is none."""

    def __init__(self, store: Store, user: str, as_of: datetime | None = None) -> None:
        self.store = store
        self.user = user.strip()
        self.as_of = as_of
        self.profile: StrategyProfile | None = None
        self.error: str | None = None
        self.refresh()

    def set_user(self, user: str) -> None:
        """Show ``user``'s profile."""
        self.user = user.strip()
        self.refresh()

    def refresh(self) -> None:
        """Build the profile again from the stored entry facts."""
        from buddy.jobs.profiles import profile_as_of

        self.profile, self.error = None, None
        if not self.user:
            self.error = "enter a user to see their profile"
            return
        try:
            self.profile = profile_as_of(self.store, self.user, self.as_of)
        except BuddyError as exc:
            self.error = f"no profile: {exc}"


class ProfileView:
    """The profile tab: a Refresh button and the profile as HTML."""

    def __init__(self, store: Store, user: str) -> None:
        self.model = ProfileBook(store, user)
        self.refresh_button = w.Button(description="Refresh", icon="refresh",
                                       layout=w.Layout(width="100px"))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.body = w.HTML()
        self.body.add_class("tb-profile-body")
        self.widget = w.VBox([self.refresh_button, self.body])
        self.widget.add_class("tb-profile")
        self._show()

    def set_user(self, user: str) -> None:
        """Show ``user``'s profile."""
        self.model.set_user(user)
        self._show()

    def refresh(self) -> None:
        """Build the profile again (as the Refresh button does)."""
        self.model.refresh()
        self._show()

    def _show(self) -> None:
        profile = self.model.profile
        self.body.value = (profile_html(profile) if profile is not None else
                           f"<i>{html.escape(self.model.error or '')}</i>")


def profile_html(profile: StrategyProfile) -> str:
    """Return the profile as HTML: headline, red flags, usual ranges, values, drift."""
    e = html.escape
    parts = [f"<h3 style='margin:0 0 4px'>Strategy profile of {e(profile.user_id)}</h3>",
             f"<div class='tb-profile-head'>as of {profile.as_of:%Y-%m-%d %H:%M} UTC: "
             f"{profile.n_trades} closed trades"
             + (f" ({profile.n_open_left_out} open left out)" if profile.n_open_left_out
                else "") + "</div>"]
    if not profile.enough:
        parts.append(f"<p class='tb-profile-reason'>{e(profile.reason)}</p>")
        if profile.n_trades == 0 and profile.n_open_left_out == 0:
            parts.append("<p class='tb-profile-empty' style='font-size:12px;"
                         "color:#607d8b'>No closed trades of yours have been read yet: your "
                         "profile appears once your trades are imported and processed.</p>")
        return "".join(parts)
    parts.append(f"<p>Win rate {e(profile.win_rate.text())}<br>"
                 f"Mean R {e(profile.mean_r.text(' R'))}</p>")
    parts.append(f"<h4 style='margin:8px 0 2px'>Red flags</h4><div style='font-size:12px;"
                 f"color:#607d8b'>one-sided Welch t-test on R, Holm-corrected at "
                 f"{FLAG_ALPHA:g}; {profile.n_flags_tested} conditions tested</div>")
    if profile.red_flags:
        parts.append("<ul class='tb-profile-flags'>" + "".join(
            f"<li>{e(flag.text())}</li>" for flag in profile.red_flags) + "</ul>")
    else:
        parts.append("<p class='tb-profile-flags'>none significant</p>")
    rows = []
    for s in profile.numeric:
        if not s.checked or s.n == 0:
            rows.append(f"<tr><td style='{_HEAD}'>{e(s.feature)}</td>"
                        f"<td colspan='5' style='{_CELL}'>"
                        f"{e(s.note or 'not checked: no trade has it')}</td></tr>")
            continue
        rows.append(
            f"<tr><td style='{_HEAD}'>{e(s.feature)}</td>"
            f"<td style='{_CELL}'>{s.n}</td>"
            f"<td style='{_CELL}'>{_stat(s.median)}</td>"
            f"<td style='{_CELL}'>{s.p10:.2f} to {s.p90:.2f} {e(s.unit)}</td>"
            f"<td style='{_CELL}'>{_plain(s.winners)} / {_plain(s.losers)}</td>"
            f"<td style='{_CELL}'>{_stat(s.difference, signed=True)}</td></tr>")
    parts.append(
        "<h4 style='margin:8px 0 2px'>Usual ranges</h4>"
        "<table class='tb-profile-numeric' style='border-collapse:collapse;font-size:12px'>"
        f"<tr><th style='{_HEAD}'>fact</th><th style='{_HEAD}'>n</th>"
        f"<th style='{_HEAD}'>median [95%]</th><th style='{_HEAD}'>usual (10th-90th)</th>"
        f"<th style='{_HEAD}'>winners / losers (n)</th>"
        f"<th style='{_HEAD}'>difference [95%]</th></tr>" + "".join(rows) + "</table>")
    rows = []
    for c in profile.categorical:
        win = _stat(c.win_rate) if c.win_rate.value is not None else _small_n(c.n)
        mean = (_stat(c.mean_r, signed=True) if c.mean_r.value is not None
                else _small_n(c.mean_r.n))
        rows.append(
            f"<tr><td style='{_HEAD}'>{e(c.feature)}</td><td style='{_HEAD}'>{e(c.value)}</td>"
            f"<td style='{_CELL}'>{c.n}</td><td style='{_CELL}'>{_stat(c.share)}</td>"
            f"<td style='{_CELL}'>{win}</td><td style='{_CELL}'>{mean}</td></tr>")
    parts.append(
        "<h4 style='margin:8px 0 2px'>By value</h4>"
        "<table class='tb-profile-values' style='border-collapse:collapse;font-size:12px'>"
        f"<tr><th style='{_HEAD}'>fact</th><th style='{_HEAD}'>value</th>"
        f"<th style='{_HEAD}'>n</th><th style='{_HEAD}'>share [95%]</th>"
        f"<th style='{_HEAD}'>win rate [95%]</th><th style='{_HEAD}'>mean R [95%]</th></tr>"
        + "".join(rows) + "</table>")
    drift = profile.drift
    if drift is not None:
        head = (f"<h4 style='margin:8px 0 2px'>Drift</h4><div style='font-size:12px'>trades "
                f"closed in the last {drift.recent_days} days against the "
                f"{drift.prior_days} before: ")
        if not drift.checked:
            body = f"not checked: {e(drift.reason)}"
        elif not drift.drifts:
            body = (f"none (n recent={drift.n_recent}, n before={drift.n_prior}, "
                    f"{drift.n_tested} facts tested)")
        else:
            body = "<ul>" + "".join(f"<li>{e(d.text())}</li>" for d in drift.drifts) + "</ul>"
        parts.append(f"<div class='tb-profile-drift'>{head}{body}</div></div>")
    return "".join(parts)


def _small_n(n: int) -> str:
    return f"n too small (n={n}, at least {MIN_GROUP})"


def _plain(s: Stat) -> str:
    return "n/a" if s.value is None else f"{s.value:.2f} ({s.n})"


def _stat(s: Stat, *, signed: bool = False) -> str:
    fmt = "+.2f" if signed else ".2f"
    if s.value is None:
        return "n/a"
    if s.low is None or s.high is None:
        return f"{s.value:{fmt}} (no interval)"
    return f"{s.value:{fmt}} [{s.low:{fmt}}, {s.high:{fmt}}]"
