"""Features computed from bars: technical indicators per symbol and timeframe.

The indicators live in ``buddy.features.ta`` (``compute_features``); import it from there so
that importing this package stays cheap.
"""
