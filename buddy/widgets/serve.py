"""``python -m buddy.widgets.serve``: serve the workbench page with Voila on localhost.

Voila runs notebooks/00_evaluate_idea.ipynb and shows its widgets (not its code). The
database path reaches the notebook through $BUDDY_DB (its ``db_path`` parameter is empty),
made absolute here because Voila runs the notebook in the notebooks folder. A database
without bars is first filled from the bundled real data (``--no-prepare`` skips that).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "00_evaluate_idea.ipynb"
DEFAULT_PORT = 8866


def voila_command(port: int, notebook: Path = NOTEBOOK) -> list[str]:
    """Return the Voila command line serving ``notebook`` on 127.0.0.1:``port``."""
    return [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--show_tracebacks=True",
            "--theme=light"]


def main(argv: list[str] | None = None) -> int:
    """Prepare the database if it is empty, then replace this process with Voila."""
    parser = argparse.ArgumentParser(prog="python -m buddy.widgets.serve",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--db", default=None,
                        help="database file (default: $BUDDY_DB, else data/buddy.duckdb)")
    parser.add_argument("--no-prepare", action="store_true",
                        help="do not load the bundled data into an empty database")
    args = parser.parse_args(argv)

    from buddy.store import Store, resolve_db_path

    db = resolve_db_path(args.db).resolve()
    if not args.no_prepare:
        from buddy.demo import prepare_store

        store = Store(db)
        if store.bar_coverage().empty:
            prepare_store(store, progress=False)
    if not NOTEBOOK.exists():
        print(f"serve: {NOTEBOOK} is missing", file=sys.stderr)
        return 1
    command = voila_command(args.port)
    print(f"serving the workbench on http://127.0.0.1:{args.port}/ (database {db})",
          flush=True)
    os.execve(sys.executable, command, {**os.environ, "BUDDY_DB": str(db)})
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
