"""The strategy tests' name for the demo trader; the session fixtures ``demo_store``,
``demo_facts`` and ``demo_store_copy`` live in tests/conftest.py (the notebook tests use them
too)."""

from __future__ import annotations

DEMO_USER = "demo"
