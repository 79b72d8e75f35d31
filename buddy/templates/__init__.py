"""HTML from jinja2 templates shipped in this folder (package data): ``render(name, **values)``.

Templates are autoescaped: a value is escaped unless it is marked safe (``markupsafe.Markup``
or the ``safe`` filter). jinja2 is imported on the first render, not with ``buddy``: the
command line never renders HTML.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Return the environment loading this package's templates (autoescaped, strict: an
    undefined name raises instead of rendering as empty)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("buddy", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def render(name: str, **values: Any) -> str:
    """Return the template ``name`` (e.g. 'report.html.j2') rendered with ``values``."""
    return environment().get_template(name).render(**values)
