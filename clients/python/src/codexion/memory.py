"""``client.memory``: store, search and pack memories (``/api/v1/memory``)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Union

from ._routes import ROUTES
from .models import (
    Context,
    Filter,
    Kind,
    MemoryItem,
    NewMemory,
    SearchMode,
    SearchResult,
    Source,
    Stats,
    rfc3339,
)

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Memory", "BATCH_LIMIT"]

#: The most items one ``POST /items/batch`` takes; :meth:`Memory.add_many` splits.
BATCH_LIMIT = 500

Filters = Union[Sequence[Union[Filter, Sequence[Any]]], Mapping[str, Any]]


def _quote(item_id: str) -> str:
    if not isinstance(item_id, str) or not item_id:
        raise ValueError("an item id must be a non-empty string")
    return urllib.parse.quote(item_id, safe="")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def _filters(filters: Filters | None) -> list[list[Any]] | None:
    """``[[field, op, value], …]``; a mapping ``{field: value}`` is a list of equalities."""
    if filters is None:
        return None
    if isinstance(filters, Mapping):
        return [[name, "=", _json_value(value)] for name, value in filters.items()]
    result: list[list[Any]] = []
    for triple in filters:
        if isinstance(triple, (str, bytes)) or len(triple) != 3:
            raise ValueError(f"a filter is (field, op, value), not {triple!r}")
        name, op, value = triple
        result.append([name, op, _json_value(value)])
    return result


def _source(source: Source | Mapping[str, str] | None) -> dict[str, str] | None:
    if source is None:
        return None
    if isinstance(source, Source):
        return source.to_json()
    return {"entity": str(source["entity"]), "id": str(source["id"])}


def _item_body(
    text: str,
    kind: str | None,
    subject: str | None,
    tags: Iterable[str] | None,
    priority: float | None,
    occurred_at: datetime | str | None,
    source: Source | Mapping[str, str] | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if not isinstance(text, str):
        raise TypeError("text must be a string")
    body: dict[str, Any] = {"text": text}
    if kind is not None:
        body["kind"] = kind
    if subject is not None:
        body["subject"] = subject
    if tags is not None:
        if isinstance(tags, str):
            raise TypeError("tags must be a list of strings, not a string")
        body["tags"] = list(tags)
    if priority is not None:
        body["priority"] = priority
    if occurred_at is not None:
        body["occurred_at"] = rfc3339(occurred_at)
    if source is not None:
        body["source"] = _source(source)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return body


def _new_memory(item: NewMemory | Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(item) - set(ROUTES["memory.add"].request)
    if unknown:
        raise ValueError(f"unknown memory fields: {', '.join(sorted(unknown))}")
    if "text" not in item:
        raise ValueError("every memory needs a text")
    return _item_body(
        item["text"],
        item.get("kind", "note"),
        item.get("subject"),
        item.get("tags"),
        item.get("priority"),
        item.get("occurred_at"),
        item.get("source"),
        item.get("metadata"),
    )


class Memory:
    """The memory API of one :class:`~codexion.Client`, as ``client.memory``.

    Writes are not retried once sent, since a second send would store a second item: pass
    ``idempotency_key`` (a value unique to this logical write, such as a UUID) to have them
    retried like reads; the server stores the item once per key. Reads (``get``,
    ``search``, ``context``, ``stats``) and ``forget``/``restore`` are always retried.
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def add(
        self,
        text: str,
        kind: Kind = "note",
        subject: str | None = None,
        tags: Iterable[str] | None = None,
        priority: float | None = None,
        occurred_at: datetime | str | None = None,
        source: Source | Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> MemoryItem:
        """Stores one memory and returns it as stored.

        ``text``: at most 10 KB. ``priority``: 0 to 1. ``occurred_at``: when it happened, a
        ``datetime`` or RFC 3339 text. ``source``: the record it came from,
        ``{"entity": …, "id": …}``. Search by meaning finds it once it is embedded, a
        moment after this returns; search by keyword at once.
        """
        body = _item_body(text, kind, subject, tags, priority, occurred_at, source, metadata)
        answer = self._client._call("memory.add", body=body, idempotency_key=idempotency_key)
        return MemoryItem.from_json(answer)

    def add_many(
        self,
        items: Iterable[NewMemory | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> list[MemoryItem]:
        """Stores many memories, in batches of 500, and returns them in order.

        Each item is a mapping with ``text`` and any of :meth:`add`'s other arguments
        (``kind`` defaults to ``note``). Batches are sent one after the other: when one
        fails, the exception is raised and the batches before it stay stored. With an
        ``idempotency_key``, batch ``n`` is sent with the key ``f"{idempotency_key}:{n}"``,
        so calling again with the same key and items stores nothing twice.
        """
        bodies = [_new_memory(item) for item in items]
        stored: list[MemoryItem] = []
        for n, start in enumerate(range(0, len(bodies), BATCH_LIMIT)):
            key = None if idempotency_key is None else f"{idempotency_key}:{n}"
            answer = self._client._call(
                "memory.add_many",
                body={"items": bodies[start : start + BATCH_LIMIT]},
                idempotency_key=key,
            )
            data = answer.get("data") if isinstance(answer, dict) else None
            if not isinstance(data, list):
                raise ValueError("the batch answer has no `data` list")
            stored.extend(MemoryItem.from_json(item) for item in data)
        return stored

    def get(self, id: str) -> MemoryItem:
        """The memory with this id (:class:`~codexion.NotFound` when there is none)."""
        return MemoryItem.from_json(self._client._call("memory.get", params={"id": _quote(id)}))

    def forget(self, id: str) -> None:
        """Deletes a memory; search no longer finds it."""
        self._client._call("memory.forget", params={"id": _quote(id)})

    def restore(self, id: str) -> MemoryItem:
        """Brings a cold memory back to the warm tier (and its vector to the index), and
        returns it."""
        answer = self._client._call("memory.restore", params={"id": _quote(id)})
        return MemoryItem.from_json(answer)

    def search(
        self,
        query: str,
        limit: int = 10,
        mode: SearchMode = "hybrid",
        filters: Filters | None = None,
        as_of: datetime | str | None = None,
    ) -> SearchResult:
        """The memories that best match ``query``, best first.

        ``limit``: 1 to 100. ``mode``: ``hybrid`` (meaning and keywords), ``vector`` or
        ``keyword``. ``filters``: ``(field, op, value)`` triples on ``kind``, ``subject``,
        ``tags`` and ``occurred_at`` (a ``datetime`` value is sent as RFC 3339), or a
        mapping ``{field: value}`` for equalities. ``as_of``: only memories that occurred at
        or before that time.
        """
        body: dict[str, Any] = {"query": query, "limit": limit, "mode": mode}
        if filters is not None:
            body["filters"] = _filters(filters)
        if as_of is not None:
            body["as_of"] = rfc3339(as_of)
        return SearchResult.from_json(self._client._call("memory.search", body=body))

    def context(
        self,
        query: str,
        budget_tokens: int,
        tokenizer: str = "cl100k_base",
        limit: int | None = None,
        filters: Filters | None = None,
        as_of: datetime | str | None = None,
        mode: SearchMode | None = None,
    ) -> Context:
        """The memories that best match ``query``, packed as text into at most
        ``budget_tokens`` tokens of ``tokenizer`` (``cl100k_base``, ``o200k_base`` or a
        tokenizer installed on the server), best first. The other arguments are
        :meth:`search`'s (``limit`` and ``mode`` take the server's defaults when left out)."""
        body: dict[str, Any] = {
            "query": query,
            "budget_tokens": budget_tokens,
            "tokenizer": tokenizer,
        }
        if limit is not None:
            body["limit"] = limit
        if mode is not None:
            body["mode"] = mode
        if filters is not None:
            body["filters"] = _filters(filters)
        if as_of is not None:
            body["as_of"] = rfc3339(as_of)
        return Context.from_json(self._client._call("memory.context", body=body))

    def stats(self) -> Stats:
        """Items per tier, the vector index, the embedding model and the search mode."""
        return Stats.from_json(self._client._call("memory.stats"))
