"""The main job of ``make demo``: build the store from real data and evaluate sample ideas.

Order: market data and features; the demo trader's simulated history (broker import,
grouping, reviews, journal); its entry facts, strategy profile and playbooks, the playbooks
published to the installed publisher (the MLflow registry: ``buddy-playbooks-demo`` with a
``production`` alias); then the sample ideas, so each report can say how an idea sits
against the trader's own history. Sample ideas are placed the way a trader would place them
at their as_of: entry at the last close, stop and target a multiple of the ATR of that
moment, all read point-in-time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypedDict

from buddy.api import Buddy, resolve_as_of
from buddy.context.builder import ContextPackBuilder
from buddy.evidence import round_to_tick
from buddy.jobs.features import run_features_job
from buddy.jobs.load import load_sample_into
from buddy.jobs.regime import run_regime_job
from buddy.report import BuddyReport
from buddy.store import Store
from buddy.timeframes import Timeframe

DEMO_USER = "demo"


@dataclass(frozen=True, slots=True)
class SampleIdea:
    """A trade idea described relative to the market at its as_of."""

    symbol: str
    side: str
    timeframe: str
    as_of: str
    stop_atr: float  # stop distance in ATR(14) of the as_of bar
    target_atr: float  # target distance in ATR(14)
    size: float
    horizon: int
    note: str


SAMPLE_IDEAS: tuple[SampleIdea, ...] = (
    SampleIdea("AAPL", "long", "1d", "2012-06-01", 1.5, 3.0, 100, 10,
               "swing long after a pullback, stop 1.5 ATR"),
    SampleIdea("EURUSD", "short", "1h", "2017-06-15T14:00:00Z", 0.5, 0.8, 100_000, 24,
               "intraday short with a tight stop and a target under 2R"),
    SampleIdea("MSFT", "long", "1d", "2008-10-10", 1.0, 2.5, 500, 15,
               "buying into the October 2008 sell-off"),
    SampleIdea("IBM", "short", "1d", "2013-03-08", 2.0, 4.0, 50, 20,
               "an idea evaluated after the data ends"),
    # the close of 2012-07-24 meets the demo trader's pullback_long rule (up-trend, dipped to
    # the EMA20 and closed above it, below the close 3 bars before): its own setup, sized to
    # its 1% budget
    SampleIdea("AAPL", "long", "1d", "2012-07-24", 1.5, 3.0, 60, 10,
               "the demo trader's own pullback long (in pattern)"),
    # nothing like the trader's history: a long into a falling market, a 4 ATR stop and a
    # target nearer than the stop
    SampleIdea("GOOG", "long", "1d", "2008-11-20", 4.0, 2.0, 10, 10,
               "catching a falling knife with a wide stop (out of pattern)"),
    # the demo trader holds GOOG and MSFT long when the stock data ends; IBM moves with MSFT
    # (daily returns of the year before): one correlated bet more, not diversification
    SampleIdea("IBM", "long", "1d", "2013-03-01", 1.5, 3.0, 200, 10,
               "adding IBM to the GOOG and MSFT longs (stacking)"),
)


class IdeaArguments(TypedDict):
    """The keyword arguments of ``Buddy.evaluate`` for one sample idea (prices in quote
    currency, size in units, horizon in bars)."""

    user: str
    symbol: str
    side: str
    timeframe: str
    as_of: str
    entry: float
    stop: float
    target: float
    size: float
    horizon: int


def place_idea(buddy: Buddy, idea: SampleIdea) -> IdeaArguments:
    """Return evaluate() keyword arguments for ``idea``, priced from data at its as_of."""
    instrument = buddy.instrument(idea.symbol)
    as_of = resolve_as_of(idea.as_of, instrument.timezone,
                          calendar=instrument.trading_calendar)
    ctx = buddy.builder.build(DEMO_USER, idea.symbol, Timeframe.parse(idea.timeframe), as_of)
    assert ctx.market is not None, f"no {idea.timeframe} bars of {idea.symbol} by {as_of}"
    tick = instrument.tick_size
    entry = round_to_tick(ctx.market.last_close, tick)
    atr = ctx.market.latest_features["atr_14"]
    sign = 1 if idea.side == "long" else -1
    return {"user": DEMO_USER, "symbol": idea.symbol, "side": idea.side,
            "timeframe": idea.timeframe, "as_of": idea.as_of, "entry": entry,
            "stop": round_to_tick(entry - sign * idea.stop_atr * atr, tick),
            "target": round_to_tick(entry + sign * idea.target_atr * atr, tick),
            "size": idea.size, "horizon": idea.horizon}


def ensure_demo_user(store: Store) -> None:
    """Create the demo trader if missing: USD 100,000 equity, 1% risk per trade, 2R minimum,
    and a saved '2R swing' exit template (2R target, 10-bar time stop, half off at 1R)."""
    from buddy.users.model import ExitTemplate, PartialExit
    from buddy.users.store import get_user, save_exit_template, set_user

    if get_user(store, DEMO_USER) is not None:
        return
    set_user(store, DEMO_USER, base_currency="USD", equity=100_000.0, buying_power=200_000.0,
             rules={"max_risk_per_trade_pct": 1.0, "min_reward_risk": 2.0})
    save_exit_template(store, DEMO_USER, ExitTemplate(
        name="swing_2r", target_r=2.0, time_stop_bars=10, breakeven_at_r=1.0,
        partials=(PartialExit(at_r=1.0, fraction=0.5),)))
    set_user(store, DEMO_USER, rules={"default_exit_template": "swing_2r"})


def prepare_store(store: Store, *, echo: Callable[[str], None] = print,
                  progress: bool = True) -> None:
    """Load the bundled real data if the store holds no bars, compute new features and regime
    snapshots (what a fresh evaluation reads instead of fitting an HMM on demand), and create
    the demo trader."""
    if store.bar_coverage().empty:
        echo("loading bundled real market data ...")
        echo(str(load_sample_into(store)))
    result = run_features_job(store, progress=progress)
    echo(f"features: {result.series_updated} of {result.series} series updated, "
         f"{result.rows_written:,} rows written")
    regime = run_regime_job(store, progress=progress)
    echo(f"regime: {regime.series_updated} of {regime.series} series updated, "
         f"{regime.snapshot_rows:,} snapshots written")
    ensure_demo_user(store)


def build_demo_strategy(store: Store, *, echo: Callable[[str], None] = print,
                        user_id: str = DEMO_USER) -> None:
    """Refresh the trader's entry facts, build and store its strategy profile and playbooks,
    publish the playbooks through the installed publishers, and print the profile and the
    playbooks."""
    from buddy.jobs.playbooks import run_playbook_job
    from buddy.jobs.profiles import run_profile_job
    from buddy.jobs.strategy import refresh_entry_facts
    from buddy.store.strategy import read_profile
    from buddy.strategy.profile import StrategyProfile
    from buddy.strategy.sources import publish_playbooks

    echo(f"\n{refresh_entry_facts(store, user_id)}")
    run_profile_job(store, user_id)
    stored = read_profile(store, user_id)
    if stored is not None:
        profile = StrategyProfile.from_dict(stored["profile"])
        echo(f"\n# The demo trader's strategy profile (version {stored['version']})\n"
             f"{profile.text()}")
    playbooks = run_playbook_job(store, user_id)
    echo(f"\n# The demo trader's playbooks\n{playbooks.text()}")
    echo("\n" + "\n".join(publish_playbooks(store, playbooks.fit)))


def build_demo_portfolio_and_behaviour(store: Store, *,
                                       echo: Callable[[str], None] = print) -> None:
    """Put the demo account's equity on record and write its exposure snapshots (printing
    its most stacked day); load the clean trader (the same generator, nothing injected) once;
    scan the demo trader's behaviour, print the detectors' precision and recall against the
    injected truth and the clean trader's false alarms, and one revenge nudge on the demo
    trader's own intents."""
    from buddy.behavior.showcase import show_revenge_nudge
    from buddy.behavior.validation import ensure_clean_trader, validate
    from buddy.jobs.behavior import run_behavior_job
    from buddy.jobs.portfolio import build_demo_portfolio
    from buddy.trades.demo_history import CLEAN_USER

    build_demo_portfolio(store, DEMO_USER, echo=echo)
    loaded = ensure_clean_trader(store, CLEAN_USER)
    if loaded:
        echo(f"\n{loaded}")
    echo(f"\n# The demo trader's behaviour\n{run_behavior_job(store, DEMO_USER).text()}")
    echo(f"\n# The behaviour detectors on known truth\n{validate(store).text()}")
    show_revenge_nudge(store, DEMO_USER, echo=echo)


def run_demo(store: Store, *, echo: Callable[[str], None] = print,
             ideas: tuple[SampleIdea, ...] = SAMPLE_IDEAS, history: bool = True
             ) -> Iterator[tuple[SampleIdea, BuddyReport]]:
    """Load the sample data if the store has none and compute features; then (``history``)
    load the demo trader's simulated history through the broker import, grouping, reviews
    and journal, print one post-trade review and a weekly summary, and build, print and
    publish its strategy profile and playbooks (``build_demo_strategy``); then evaluate and
    log each of ``ideas``, yielding it with its report."""
    prepare_store(store, echo=echo)
    if history:
        from buddy.trades.demo_history import demo_review_and_summary, load_demo_history

        echo("\n" + str(load_demo_history(store, user_id=DEMO_USER)))
        review, summary = demo_review_and_summary(store, DEMO_USER)
        echo(f"\n# A post-trade review of the demo trader\n{review}")
        echo(f"\n# The demo trader's week\n{summary}")
        build_demo_strategy(store, echo=echo)
        build_demo_portfolio_and_behaviour(store, echo=echo)
    buddy = Buddy(store, builder=ContextPackBuilder(store))
    for idea in ideas:
        yield idea, buddy.evaluate(**place_idea(buddy, idea))
