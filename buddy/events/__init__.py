"""Scheduled events: imported earnings and macro dates, exchange holidays and early closes,
delivered point-in-time as the ContextPack's ``schedule`` piece."""

from __future__ import annotations

from buddy.events.model import EVENT_KINDS, ScheduleContext, UpcomingEvent
from buddy.events.provider import read_schedule, schedule_provider
from buddy.events.store import EventImportError, EventImportSummary, import_events

__all__ = ["EVENT_KINDS", "EventImportError", "EventImportSummary", "ScheduleContext",
           "UpcomingEvent", "import_events", "read_schedule", "schedule_provider"]
