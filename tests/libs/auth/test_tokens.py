"""TokenStore against a real nats-server: hashed at rest, verified from memory, revocable."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from nats.js import JetStreamContext

from modelplane.libs import subjects
from modelplane.libs.auth.bearer import authorization, bearer_token
from modelplane.libs.auth.roles import parse_role
from modelplane.libs.auth.tokens import Principal, TokenStore, generate_token, hash_token
from modelplane.libs.errors import ConflictError, InvalidError, NotFoundError


@pytest.fixture
async def store(js: JetStreamContext) -> AsyncIterator[TokenStore]:
    tokens = await TokenStore.open(js)
    await tokens.start()
    yield tokens
    await tokens.close()


def test_generated_tokens_have_the_documented_shape() -> None:
    """mpt_ and 43 url-safe characters, different every time."""
    a, b = generate_token(), generate_token()
    assert re.fullmatch(r"mpt_[A-Za-z0-9_-]{43}", a)
    assert a != b
    assert hash_token(a) != hash_token(b)
    assert len(hash_token(a)) == 64


async def test_created_token_verifies_with_its_role(store: TokenStore) -> None:
    """A created token maps to its name and role; anything else is unknown."""
    token = await store.create("ci", "deployer")
    assert await store.verify(token) == Principal("ci", "deployer")
    assert await store.verify(generate_token()) is None
    assert await store.verify(token + "x") is None
    assert await store.verify("") is None


async def test_the_bucket_holds_the_hash_not_the_token(store: TokenStore, js: JetStreamContext) -> None:
    """A reader of the KV bucket never sees the token itself."""
    token = await store.create("ci", "viewer")
    kv = await js.key_value(subjects.KV_TOKENS)
    raw = (await kv.get("ci")).value or b""
    assert token.encode() not in raw
    assert token[4:].encode() not in raw
    assert hash_token(token).encode() in raw


async def test_revoked_token_stops_at_once(store: TokenStore) -> None:
    """After revoke, the same process refuses the token without waiting for its watch."""
    token = await store.create("ci", "admin")
    await store.revoke("ci")
    assert await store.verify(token) is None
    with pytest.raises(NotFoundError):
        await store.revoke("ci")


async def test_another_process_sees_tokens_through_the_watch(store: TokenStore, js: JetStreamContext) -> None:
    """A second store (another service) learns of a token and of its revocation from KV."""
    existing = await store.create("before", "viewer")
    other = await TokenStore.open(js)
    await other.start()
    try:
        assert await other.verify(existing) == Principal("before", "viewer")
        await store.revoke("before")
        # The watch delivers in order: once a later change is seen, the revoke was seen too.
        later = await store.create("after", "inference")
        while await other.verify(later) is None:
            await other.list()  # a NATS round trip lets the watch deliver
        assert await other.verify(existing) is None
    finally:
        await other.close()


async def test_list_shows_names_and_roles_without_secrets(store: TokenStore) -> None:
    """list() gives name, role and creation time only."""
    await store.create("b", "viewer")
    await store.create("a", "deployer")
    listed = await store.list()
    assert [(t.name, t.role) for t in listed] == [("a", "deployer"), ("b", "viewer")]
    assert all(t.created for t in listed)
    assert not any(hasattr(t, "sha256") for t in listed)


async def test_bad_names_roles_and_duplicates_are_refused(store: TokenStore) -> None:
    """Errors name the field; an existing name is a conflict."""
    with pytest.raises(InvalidError) as bad_role:
        await store.create("ci", "root")
    assert bad_role.value.field == "role"
    with pytest.raises(InvalidError) as bad_name:
        await store.create("Not A Name", "viewer")
    assert bad_name.value.field == "name"
    await store.create("ci", "viewer")
    with pytest.raises(ConflictError):
        await store.create("ci", "viewer")


async def test_ensure_replaces_a_bootstrap_token(store: TokenStore) -> None:
    """ensure() stores a token its owner made; a new one replaces the old one."""
    first, second = generate_token(), generate_token()
    await store.ensure("admin", "admin", first)
    assert await store.verify(first) == Principal("admin", "admin")
    await store.ensure("admin", "admin", second)
    assert await store.verify(first) is None
    assert await store.verify(second) == Principal("admin", "admin")


def test_bearer_header_parsing() -> None:
    """Only "Bearer <token>" yields a token."""
    assert bearer_token(authorization("mpt_abc")) == "mpt_abc"
    assert bearer_token("bearer mpt_abc") == "mpt_abc"
    for bad in (None, "", "Bearer", "Bearer ", "Basic mpt_abc", "mpt_abc", "Bearer a b"):
        assert bearer_token(bad) is None


def test_parse_role_names_the_field() -> None:
    assert parse_role("viewer") == "viewer"
    with pytest.raises(InvalidError) as exc:
        parse_role("superuser")
    assert exc.value.field == "role"
