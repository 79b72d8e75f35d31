"""Where the project's files live, wherever a command, a notebook kernel or papermill runs.

A Jupyter kernel starts in ``notebooks/`` and papermill in whatever folder the user typed it
from, so a path relative to the working directory (``data/buddy.duckdb``,
``sqlite:///mlruns/mlflow.db``) points at a different file in each. Every default here is
absolute and anchored at the project root instead:

- ``project_root()``: $BUDDY_PROJECT_ROOT, else the checkout that holds the imported
  ``buddy`` package (an editable install, the normal case), else the nearest folder at or
  above the working directory with a ``pyproject.toml`` naming ``trading-buddy``, else the
  working directory.
- ``default_db_path()``: ``<root>/data/buddy.duckdb``; ``db_path()`` prefers $BUDDY_DB.
- ``default_tracking_uri()``: ``sqlite:///<root>/mlruns/mlflow.db``; ``tracking_uri()``
  prefers $MLFLOW_TRACKING_URI.

An explicit value (an argument or an environment variable) is taken as given: a relative
one is relative to the working directory, as for any other command-line path.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_NAME = "trading-buddy"
ROOT_ENV = "BUDDY_PROJECT_ROOT"
DB_ENV = "BUDDY_DB"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
DB_RELATIVE = Path("data") / "buddy.duckdb"
TRACKING_DB_RELATIVE = Path("mlruns") / "mlflow.db"


def _is_project_root(folder: Path) -> bool:
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return False
    # the [project] name line, without a TOML parse on every call
    return f'name = "{PROJECT_NAME}"' in text


def project_root() -> Path:
    """Return the project's root folder (absolute): $BUDDY_PROJECT_ROOT, else the checkout
    holding the ``buddy`` package, else the nearest trading-buddy folder at or above the
    working directory, else the working directory."""
    env = os.environ.get(ROOT_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    package_parent = Path(__file__).resolve().parents[1]
    if _is_project_root(package_parent):
        return package_parent
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_project_root(folder):
            return folder
    return here


def default_db_path() -> Path:
    """Return the project's database file, ``<root>/data/buddy.duckdb`` (absolute)."""
    return project_root() / DB_RELATIVE


def db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Return ``path`` if given, else $BUDDY_DB, else ``default_db_path()``."""
    if path is not None and str(path).strip():
        return Path(path).expanduser()
    env = os.environ.get(DB_ENV, "").strip()
    return Path(env).expanduser() if env else default_db_path()


def default_tracking_uri() -> str:
    """Return the project's MLflow store, ``sqlite:///<root>/mlruns/mlflow.db`` (absolute)."""
    return f"sqlite:///{project_root() / TRACKING_DB_RELATIVE}"


def tracking_uri() -> str:
    """Return $MLFLOW_TRACKING_URI, else ``default_tracking_uri()``."""
    uri = os.environ.get(TRACKING_ENV, "").strip()
    return uri or default_tracking_uri()


def database_for(path: str | os.PathLike[str] | None = None, *, field: str = "db_path",
                 build: bool = False) -> Path:
    """Return the database a notebook or command names (``path``; None or '' means
    $BUDDY_DB, else the project's), refusing a file that does not exist.

    A missing file is allowed only with ``build`` and only where no path was named (the
    project's database, or an absolute $BUDDY_DB: the caller builds it and says so), so a
    mistyped or relative path (a kernel runs in notebooks/) never starts a new, empty
    database somewhere else. Raises FieldErrors naming ``field``, the rule and the absolute
    path.
    """
    from buddy.errors import FieldError, FieldErrors

    named = path is not None and bool(str(path).strip())
    found = Path(os.path.abspath(db_path(path if named else None)))
    if found.is_file():
        return found
    env = os.environ.get(DB_ENV, "").strip()
    relative_env = not named and bool(env) and not Path(env).expanduser().is_absolute()
    if build and not named and not relative_env:
        found.parent.mkdir(parents=True, exist_ok=True)
        return found
    if named:
        how = "leave it empty for the project's database, or build one with `make demo`"
    elif relative_env:
        how = (f"${DB_ENV}={env!r} is read from the working folder {Path.cwd()}: give "
               f"${DB_ENV} as an absolute path")
    else:
        how = "build it with `make demo` (or `buddy data load-sample`)"
    raise FieldErrors([FieldError(field, f"must name an existing DuckDB file ({how})",
                                  str(found))])
