"""``python -m buddy.widgets.serve``: serve the workbench page with Voila on localhost.

Voila runs notebooks/00_evaluate_idea.ipynb and shows its widgets only: no code, no
notebook text (the page carries its own words) and no Python tracebacks (``--debug`` shows
them). The database path reaches the notebook through $BUDDY_DB (its ``db_path`` parameter
is empty), made absolute here because Voila runs the notebook in the notebooks folder; the
user shown first through $BUDDY_USER (``--user``; else a user with an account, else the page
asks for one). A database without bars is first filled from the bundled real data
(``--no-prepare`` skips that).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "00_evaluate_idea.ipynb"
DEFAULT_PORT = 8866
#: Passes ``--user`` to the page's kernel (read by ``WorkbenchApp.open``).
USER_ENV = "BUDDY_USER"


def voila_command(port: int, notebook: Path = NOTEBOOK, *, debug: bool = False) -> list[str]:
    """Return the Voila command line serving ``notebook`` on 127.0.0.1:``port`` (tracebacks
    on the page only with ``debug``)."""
    return [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
            f"--show_tracebacks={debug}", "--strip_sources=True",
            # the notebook's markdown speaks to a notebook reader (make targets, parameters)
            "--VoilaExporter.exclude_markdown=True",
            "--theme=light"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True,
              help="Port on 127.0.0.1.")
@click.option("--db", envvar="BUDDY_DB", default=None, metavar="PATH",
              help="DuckDB file (default data/buddy.duckdb in the project; env BUDDY_DB).")
@click.option("--user", envvar=USER_ENV, default=None,
              help="User shown first (default: a user with an account; the page asks when "
                   "there is none; env BUDDY_USER).")
@click.option("--prepare/--no-prepare", default=True, show_default=True,
              help="Load the bundled real data into a database without bars first.")
@click.option("--debug", is_flag=True,
              help="Show Python tracebacks on the page (for developers).")
def main(port: int, db: str | None, user: str | None, prepare: bool, debug: bool) -> None:
    """Serve the workbench page with Voila on http://127.0.0.1:PORT/."""
    from buddy.store import Store, resolve_db_path

    path = resolve_db_path(db).resolve()
    if prepare:
        from buddy.demo import prepare_store

        store = Store(path)
        if store.bar_coverage().empty:
            prepare_store(store, progress=False)
    if not NOTEBOOK.exists():
        raise click.ClickException(f"the page's notebook {NOTEBOOK} is missing")
    click.echo(f"serving the workbench on http://127.0.0.1:{port}/ (database {path})")
    sys.stdout.flush()
    env = {**os.environ, "BUDDY_DB": str(path)}
    if user:
        env[USER_ENV] = user
    os.execve(sys.executable, voila_command(port, debug=debug), env)


if __name__ == "__main__":
    main()
