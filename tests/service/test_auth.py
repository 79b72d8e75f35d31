"""API keys: every endpoint answers 401 without a key, with a wrong or a revoked one; a key
works as X-API-Key and as a bearer token; only its SHA-256 is stored; the CLI prints a key
once and revokes it."""

from __future__ import annotations

import hashlib
import re

import pytest
from click.testing import CliRunner

from buddy.service.auth import create_key, hash_key, user_for_key
from buddy.service.cli import service
from buddy.store import Store
from buddy.store.api_keys import list_keys
from tests.service.conftest import DEMO, OTHER, ServedDemo

#: Every operation of the service with a body or query it accepts (auth is checked first:
#: the body need not be valid for a 401).
OPERATIONS = [("post", "/tradeIntents"), ("post", "/evaluateTradeIntent"),
              ("get", "/regimeSnapshot?symbol=AAPL"), ("get", "/keyLevels?symbol=AAPL"),
              ("get", "/strategyProfile"), ("get", "/portfolioExposure"),
              ("post", "/postTradeReview"), ("post", "/assistantSession"),
              ("post", "/feedback")]


def test_operations_cover_the_published_api(served_demo: ServedDemo) -> None:
    paths = served_demo.client.get("/openapi.json").json()["paths"]
    published = {(method, path) for path, ops in paths.items() for method in ops}
    assert published == {(m, p.split("?")[0]) for m, p in OPERATIONS}
    for path, ops in paths.items():
        for method, op in ops.items():
            assert "401" in op["responses"], (method, path)
            assert op.get("security"), (method, path)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("headers", [
    {}, {"X-API-Key": "tb_not-a-key"}, {"Authorization": "Bearer tb_not-a-key"},
    {"Authorization": "Basic dXNlcjpwYXNz"}, {"X-API-Key": ""}],
    ids=["none", "wrong", "wrong-bearer", "basic", "empty"])
def test_without_a_valid_key_every_endpoint_answers_401(
        served_demo: ServedDemo, method: str, path: str, headers: dict[str, str]) -> None:
    before = served_demo.store.evaluations(DEMO).shape[0]
    response = served_demo.client.request(method, path, headers=headers,
                                          json={} if method == "post" else None)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "key" in response.json()["detail"]
    assert served_demo.store.evaluations(DEMO).shape[0] == before


def test_a_revoked_key_answers_401(served_demo: ServedDemo) -> None:
    response = served_demo.client.get("/strategyProfile",
                                      headers={"X-API-Key": served_demo.revoked_key})
    assert response.status_code == 401


@pytest.mark.parametrize("scheme", ["x-api-key", "bearer"])
def test_a_valid_key_names_its_user(served_demo: ServedDemo, scheme: str) -> None:
    for user in (DEMO, OTHER):
        key = served_demo.keys[user]
        headers = ({"X-API-Key": key} if scheme == "x-api-key"
                   else {"Authorization": f"Bearer {key}"})
        response = served_demo.client.get("/strategyProfile", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["user_id"] == user


def test_only_the_hash_is_stored(empty_store: Store) -> None:
    made = create_key(empty_store, "alice", label="laptop")
    assert re.fullmatch(r"tb_[A-Za-z0-9_-]{43}", made.key)
    rows = empty_store.query("SELECT * FROM api_keys")
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows.iloc[0].tolist())
    assert made.key not in stored and made.key[8:] not in stored
    assert rows.iloc[0]["key_sha256"] == hashlib.sha256(made.key.encode()).hexdigest()
    assert user_for_key(empty_store, made.key) == "alice"
    assert user_for_key(empty_store, hash_key(made.key)) is None  # the hash is no key
    assert user_for_key(empty_store, made.key[:-1]) is None
    assert user_for_key(empty_store, None) is None


def test_two_keys_are_never_alike(empty_store: Store) -> None:
    made = {create_key(empty_store, "alice").key for _ in range(8)}
    assert len(made) == 8


def test_a_key_for_no_user_is_refused_and_nothing_written(empty_store: Store) -> None:
    from buddy.service.auth import ApiKeyError

    with pytest.raises(ApiKeyError) as raised:
        create_key(empty_store, "  ")
    assert raised.value.errors[0].field == "user"
    assert list_keys(empty_store) == []


def test_cli_creates_lists_and_revokes(empty_store: Store) -> None:
    runner = CliRunner()
    db = str(empty_store.path)
    made = runner.invoke(service, ["keys", "create", "--user", "bob", "--label", "ci"],
                         obj=_Root(db))
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    assert user_for_key(empty_store, key) == "bob"
    listed = runner.invoke(service, ["keys", "list"], obj=_Root(db))
    assert listed.exit_code == 0, listed.output
    assert key not in listed.output and "bob" in listed.output and "active" in listed.output
    key_id = list_keys(empty_store, "bob")[0]["key_id"]
    revoked = runner.invoke(service, ["keys", "revoke", key_id], obj=_Root(db))
    assert revoked.exit_code == 0, revoked.output
    assert user_for_key(empty_store, key) is None
    again = runner.invoke(service, ["keys", "revoke", key_id], obj=_Root(db))
    assert again.exit_code == 2 and "key_id" in again.output


class _Root:
    """What the root command puts in ctx.obj: the --db it was given."""

    def __init__(self, db: str) -> None:
        self.db = db
