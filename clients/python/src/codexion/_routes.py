"""The routes the client calls, with the fields it sends and reads.

This table is what the client builds its requests from, and what
``tests/test_contract.py`` checks against the server's OpenAPI document: every route must
be an operation of the document, every field the client may send a property of the
operation's request schema, every field it reads a property of the success response's
schema; and every ``/api/v1/memory`` operation of the document must be in the table.

A field is a path of property names: ``items[].text`` is the ``text`` of each element of
the array ``items``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Route", "ROUTES", "MEMORY_PREFIX"]

MEMORY_PREFIX = "/api/v1/memory"

_ITEM_IN = ("kind", "text", "subject", "tags", "priority", "occurred_at", "source", "metadata")
_ITEM_OUT = (
    "id",
    "kind",
    "text",
    "subject",
    "tags",
    "priority",
    "occurred_at",
    "source",
    "source.entity",
    "source.id",
    "metadata",
    "tier",
    "created_at",
)
_FILTERS = ("filters", "as_of")


@dataclass(frozen=True)
class Route:
    """One operation: ``(method, path)``, whether sending it twice is harmless, its success
    status, the request fields the client may send and the response fields it reads.
    ``headers`` are request headers the client may send besides Authorization, X-Tenant,
    X-Correlation-Id and the content headers."""

    method: str
    path: str
    idempotent: bool
    status: int
    request: tuple[str, ...] = ()
    response: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()

    def format(self, **params: str) -> str:
        """The path with its ``{parameters}`` filled in (already percent-encoded)."""
        return self.path.format(**params)


ROUTES: dict[str, Route] = {
    # Sign-in (the client's own session handling).
    "login": Route(
        "POST",
        "/api/v1/auth/login",
        idempotent=False,
        status=200,
        request=("email", "password"),
        response=("access_token", "refresh_token", "token_type", "expires_in", "refresh_expires_in"),
    ),
    "refresh": Route(
        "POST",
        "/api/v1/auth/refresh",
        idempotent=False,
        status=200,
        request=("refresh_token",),
        response=("access_token", "refresh_token", "token_type", "expires_in", "refresh_expires_in"),
    ),
    # The memory API.
    "memory.add": Route(
        "POST",
        f"{MEMORY_PREFIX}/items",
        # Not idempotent: a second send stores a second item, unless the caller gives an
        # Idempotency-Key (then it is retried like the read-only calls).
        idempotent=False,
        status=201,
        request=_ITEM_IN,
        response=_ITEM_OUT,
        headers=("Idempotency-Key",),
    ),
    "memory.add_many": Route(
        "POST",
        f"{MEMORY_PREFIX}/items/batch",
        idempotent=False,
        status=201,
        request=("items",) + tuple(f"items[].{f}" for f in _ITEM_IN),
        response=("data",) + tuple(f"data[].{f}" for f in _ITEM_OUT),
        headers=("Idempotency-Key",),
    ),
    "memory.get": Route(
        "GET", f"{MEMORY_PREFIX}/items/{{id}}", idempotent=True, status=200, response=_ITEM_OUT
    ),
    "memory.forget": Route("DELETE", f"{MEMORY_PREFIX}/items/{{id}}", idempotent=True, status=204),
    "memory.restore": Route(
        "POST",
        f"{MEMORY_PREFIX}/items/{{id}}/restore",
        idempotent=True,
        status=200,
        response=_ITEM_OUT,
    ),
    "memory.search": Route(
        "POST",
        f"{MEMORY_PREFIX}/search",
        # A read: POST only because the query and filters are a body.
        idempotent=True,
        status=200,
        request=("query", "limit", "mode") + _FILTERS,
        response=(
            "data",
            "data[].id",
            "data[].text",
            "data[].score",
            "data[].tier",
            "data[].kind",
            "data[].subject",
            "data[].occurred_at",
            "data[].source",
            "data[].source.entity",
            "data[].source.id",
            "mode",
            "model",
        ),
    ),
    "memory.context": Route(
        "POST",
        f"{MEMORY_PREFIX}/context",
        idempotent=True,
        status=200,
        request=("query", "budget_tokens", "tokenizer", "limit", "mode") + _FILTERS,
        response=(
            "text",
            "tokens",
            "items",
            "items[].id",
            "items[].tokens",
            "dropped",
            "tokenizer",
        ),
    ),
    "memory.stats": Route(
        "GET",
        f"{MEMORY_PREFIX}/stats",
        idempotent=True,
        status=200,
        response=("tiers", "index", "model", "mode"),
    ),
}
