"""The widget workbench: an intent form, the Buddy Report, a chart and the user's controls.

``WorkbenchApp.open(db, user).widget`` shows it in a notebook; ``python -m
buddy.widgets.serve`` serves the same app as a web page with Voila.
"""

from __future__ import annotations

from buddy.widgets.app import Workbench, WorkbenchApp

__all__ = ["Workbench", "WorkbenchApp"]
