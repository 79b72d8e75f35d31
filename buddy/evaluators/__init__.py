"""Evaluators: pluggable audit modules and their registry.

Importing this package registers the built-in evaluators.
"""

from __future__ import annotations

from buddy.evaluators import behavior_nudges as _behavior_nudges  # noqa: F401  (registers)
from buddy.evaluators import (  # noqa: F401  (registers)
    correlation_exposure as _correlation_exposure,
)
from buddy.evaluators import data_quality as _data_quality  # noqa: F401  (registers)
from buddy.evaluators import entry_quality as _entry_quality  # noqa: F401  (registers)
from buddy.evaluators import exit_plan as _exit_plan  # noqa: F401  (registers)
from buddy.evaluators import missing_scanner as _missing_scanner  # noqa: F401  (registers)
from buddy.evaluators import mtfa as _mtfa  # noqa: F401  (registers)
from buddy.evaluators import regime_fit as _regime_fit  # noqa: F401  (registers)
from buddy.evaluators import risk_reward as _risk_reward  # noqa: F401  (registers)
from buddy.evaluators import (  # noqa: F401  (registers)
    strategy_consistency as _strategy_consistency,
)
from buddy.evaluators.base import Evaluator, IssueTemplate
from buddy.evaluators.registry import available, get, load_entry_points, register

__all__ = ["Evaluator", "IssueTemplate", "available", "get", "load_entry_points", "register"]
