"""Market data: calendars, validation, loaders, resampling, splits and synthetic universes.

Every loader returns the canonical frames of ``buddy.data.frames``; nothing here touches the
database or the network.
"""
