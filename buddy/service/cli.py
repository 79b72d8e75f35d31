"""Command line: ``buddy service serve`` (the HTTP API under uvicorn) and ``buddy service keys
create|list|revoke`` (per-user API keys; a key is printed once, when created)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from buddy.errors import BuddyError, FieldErrors

#: Loopback by default: the service is a single user's workbench unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def _store(ctx: click.Context) -> Any:
    """Return the store the root command names (--db, $BUDDY_DB, else data/buddy.duckdb)."""
    from buddy.cli import open_store

    obj = ctx.find_root().obj
    return open_store(getattr(obj, "db", None))


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def service() -> None:
    """Serve the HTTP API (the seed's endpoints) and manage its API keys."""


@service.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Interface to listen on (0.0.0.0: every interface).")
@click.option("--port", default=DEFAULT_PORT, show_default=True,
              type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--config", "config_ref", default="production", show_default=True,
              help="Scoring config: production, default, or a reference a config source "
                   "knows (models:/NAME@ALIAS).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, config_ref: str, log_level: str) -> None:
    """Serve the API with uvicorn on the database (one process: it is the file's writer).

    Open http://HOST:PORT/docs for the endpoints; every call needs a key from
    `buddy service keys create --user U`."""
    import uvicorn

    from buddy.config_sources import resolve_scoring_config
    from buddy.service.app import create_app

    try:
        path = _store(ctx).path
        resolve_scoring_config(config_ref)  # a bad reference fails here, not at startup
    except (BuddyError, FieldErrors) as exc:
        _fail(exc)
    click.echo(f"serving {path} on http://{host}:{port} (config {config_ref}); "
               "docs at /docs", err=True)
    uvicorn.run(create_app(path, config_ref=config_ref), host=host, port=port,
                log_level=log_level, workers=1)


@service.group()
def keys() -> None:
    """Create, list and revoke per-user API keys (stored as SHA-256 hashes)."""


@keys.command("create")
@click.option("--user", "user_id", required=True, help="The user the key acts as.")
@click.option("--label", default=None, help="A note to tell your keys apart.")
@click.pass_context
def create_cmd(ctx: click.Context, user_id: str, label: str | None) -> None:
    """Create a key for --user and print it (this once: only its hash is stored)."""
    from buddy.service.auth import create_key

    try:
        made = create_key(_store(ctx), user_id, label=label)
    except (BuddyError, FieldErrors) as exc:
        _fail(exc)
    click.echo(made.key)
    click.echo(f"key {made.key_id} for user {made.user_id}: shown once, keep it safe "
               "(send it as X-API-Key or Authorization: Bearer)", err=True)


@keys.command("list")
@click.option("--user", "user_id", default=None, help="Only this user's keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_cmd(ctx: click.Context, user_id: str | None, as_json: bool) -> None:
    """List keys (id, user, first characters, label, created, revoked); never a key."""
    from buddy.service.auth import keys as read_keys

    try:
        rows = read_keys(_store(ctx), user_id)
    except (BuddyError, FieldErrors) as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no keys")
        return
    for row in rows:
        state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
        click.echo(f"{row['key_id']}  {row['user_id']:<12} {row['prefix']}...  {state:<24} "
                   f"created {row['created_at']:%Y-%m-%d %H:%M}  {row['label'] or ''}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def revoke_cmd(ctx: click.Context, key_id: str) -> None:
    """Revoke the key KEY_ID (from `keys list`): it answers 401 from now on."""
    from buddy.service.auth import revoke

    try:
        revoke(_store(ctx), key_id)
    except (BuddyError, FieldErrors) as exc:
        _fail(exc)
    click.echo(f"revoked {key_id}")
