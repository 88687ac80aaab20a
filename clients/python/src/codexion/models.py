"""What the memory API answers, as dataclasses.

Responses are read leniently: a missing optional key takes its default, and every
dataclass keeps the whole decoded object as ``raw``, so fields that a newer server adds are
never lost and never break the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Literal, TypedDict, Union

__all__ = [
    "Kind",
    "SearchMode",
    "Filter",
    "Source",
    "NewMemory",
    "MemoryItem",
    "SearchHit",
    "SearchResult",
    "ContextItem",
    "Context",
    "ModelInfo",
    "Stats",
    "Session",
    "rfc3339",
]

#: What a memory is: something that happened, something true, a note, a record's copy.
Kind = Literal["episode", "fact", "note", "record"]
#: How search ranks: vectors and keywords fused (default), vectors only, keywords only.
SearchMode = Literal["hybrid", "vector", "keyword"]
#: A search filter: ``(field, op, value)`` on ``kind``, ``subject``, ``tags`` or
#: ``occurred_at``, e.g. ``("occurred_at", ">=", datetime(2026, 1, 1, tzinfo=timezone.utc))``.
Filter = tuple[str, str, Any]


def rfc3339(value: datetime | str) -> str:
    """``value`` as RFC 3339 text. A string is sent as given; a naive ``datetime`` is taken
    as local time (Python's convention) and every ``datetime`` is sent in UTC (``…Z``)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime or an RFC 3339 string, not {type(value).__name__}")
    if value.tzinfo is None:
        value = value.astimezone()
    text = value.astimezone(timezone.utc).isoformat()
    return text.replace("+00:00", "Z")


class _NewMemoryText(TypedDict):
    text: str


class NewMemory(_NewMemoryText, total=False):
    """One memory to store, as :meth:`codexion.memory.Memory.add_many` takes it: ``text``
    and the optional arguments of :meth:`~codexion.memory.Memory.add`."""

    kind: Kind
    subject: str
    tags: list[str]
    priority: float
    occurred_at: Union[datetime, str]
    source: dict[str, str]
    metadata: dict[str, Any]


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else (default if value is None else str(value))


def _opt_str(value: Any) -> str | None:
    return None if value is None else _str(value)


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


def _opt_float(value: Any) -> float | None:
    # Decimals may come as text ("0.500"), as the resource API sends them.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _str_list(value: Any) -> list[str]:
    return [_str(v) for v in value] if isinstance(value, list) else []


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected {what} as a JSON object, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Source:
    """The record a memory was made from: an entity name and the record's id."""

    entity: str
    id: str

    @classmethod
    def from_json(cls, value: Any) -> Source | None:
        if not isinstance(value, dict):
            return None
        return cls(entity=_str(value.get("entity")), id=_str(value.get("id")))

    def to_json(self) -> dict[str, str]:
        return {"entity": self.entity, "id": self.id}


@dataclass(frozen=True)
class MemoryItem:
    """A stored memory. ``tier`` is ``hot``, ``warm`` or ``cold`` (a cold item is kept but
    no longer searched; :meth:`~codexion.memory.Memory.restore` brings it back)."""

    id: str
    kind: str
    text: str
    subject: str | None = None
    tags: list[str] = field(default_factory=list)
    priority: float | None = None
    occurred_at: str | None = None
    source: Source | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tier: str | None = None
    created_at: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> MemoryItem:
        obj = _object(value, "a memory item")
        return cls(
            id=_str(obj.get("id")),
            kind=_str(obj.get("kind")),
            text=_str(obj.get("text")),
            subject=_opt_str(obj.get("subject")),
            tags=_str_list(obj.get("tags")),
            priority=_opt_float(obj.get("priority")),
            occurred_at=_opt_str(obj.get("occurred_at")),
            source=Source.from_json(obj.get("source")),
            metadata=_dict(obj.get("metadata")),
            tier=_opt_str(obj.get("tier")),
            created_at=_opt_str(obj.get("created_at")),
            raw=obj,
        )


@dataclass(frozen=True)
class SearchHit:
    """One result of a search, best first; ``score`` is higher for a better match."""

    id: str
    text: str
    score: float
    tier: str | None = None
    kind: str | None = None
    subject: str | None = None
    occurred_at: str | None = None
    source: Source | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> SearchHit:
        obj = _object(value, "a search hit")
        return cls(
            id=_str(obj.get("id")),
            text=_str(obj.get("text")),
            score=_opt_float(obj.get("score")) or 0.0,
            tier=_opt_str(obj.get("tier")),
            kind=_opt_str(obj.get("kind")),
            subject=_opt_str(obj.get("subject")),
            occurred_at=_opt_str(obj.get("occurred_at")),
            source=Source.from_json(obj.get("source")),
            raw=obj,
        )


def _model_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return _opt_str(value.get("name"))
    return _opt_str(value)


@dataclass(frozen=True)
class SearchResult:
    """The hits of a search (iterate over it, index it, take ``len``), the ``mode`` it ran
    in (``keyword`` when no embedding model is installed) and the ``model`` that embedded
    the query (``None`` without one)."""

    hits: list[SearchHit]
    mode: str | None = None
    model: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> SearchResult:
        obj = _object(value, "a search result")
        data = obj.get("data")
        return cls(
            hits=[SearchHit.from_json(h) for h in data] if isinstance(data, list) else [],
            mode=_opt_str(obj.get("mode")),
            model=_model_name(obj.get("model")),
            raw=obj,
        )

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, index: int) -> SearchHit:
        return self.hits[index]

    def ids(self) -> list[str]:
        """The ids of the hits, best first."""
        return [hit.id for hit in self.hits]


@dataclass(frozen=True)
class ContextItem:
    """A memory included in a context, and the tokens it takes there."""

    id: str
    tokens: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> ContextItem:
        obj = _object(value, "a context item")
        return cls(id=_str(obj.get("id")), tokens=_int(obj.get("tokens")), raw=obj)


@dataclass(frozen=True)
class Context:
    """Memories packed into a token budget: ``text`` (ready to put in a prompt) takes
    ``tokens`` tokens of the tokenizer asked for, never more than the budget; ``items`` are
    the memories included, best first, ``dropped`` counts the matches left out for want
    of room, and ``tokenizer`` is the tokenizer that counted."""

    text: str
    tokens: int
    items: list[ContextItem] = field(default_factory=list)
    dropped: int = 0
    tokenizer: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> Context:
        obj = _object(value, "a context")
        items = obj.get("items")
        dropped = obj.get("dropped")
        return cls(
            text=_str(obj.get("text")),
            tokens=_int(obj.get("tokens")),
            items=[ContextItem.from_json(i) for i in items] if isinstance(items, list) else [],
            # A count; a list (of ids) is counted, and kept as given in `raw`.
            dropped=len(dropped) if isinstance(dropped, list) else _int(dropped),
            tokenizer=_opt_str(obj.get("tokenizer")),
            raw=obj,
        )

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ModelInfo:
    """The embedding model: its name and the dimensions of its vectors."""

    name: str
    dims: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> ModelInfo | None:
        if isinstance(value, str):
            return cls(name=value, dims=0, raw={"name": value})
        if not isinstance(value, dict):
            return None
        return cls(name=_str(value.get("name")), dims=_int(value.get("dims")), raw=value)


_STATS_KEYS = ("tiers", "index", "model", "mode")


@dataclass(frozen=True)
class Stats:
    """The tenant's memory: items per tier (``tiers["hot"]``, or ``.hot``), the vector
    index (``index["vectors"]``, ``["bytes"]``, ``["pending"]``: items still waiting to be
    embedded), the embedding ``model`` (``None`` without one) and the search ``mode``
    (``hybrid`` or ``keyword-only``). Keys this client does not know are in ``extra``."""

    tiers: dict[str, int]
    index: dict[str, Any]
    model: ModelInfo | None
    mode: str
    extra: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> Stats:
        obj = _object(value, "memory stats")
        tiers = {k: _int(v) for k, v in _dict(obj.get("tiers")).items()}
        return cls(
            tiers=tiers,
            index=_dict(obj.get("index")),
            model=ModelInfo.from_json(obj.get("model")),
            mode=_str(obj.get("mode")),
            extra={k: v for k, v in obj.items() if k not in _STATS_KEYS},
            raw=obj,
        )

    @property
    def hot(self) -> int:
        return self.tiers.get("hot", 0)

    @property
    def warm(self) -> int:
        return self.tiers.get("warm", 0)

    @property
    def cold(self) -> int:
        return self.tiers.get("cold", 0)


@dataclass(frozen=True)
class Session:
    """A login: the bearer token, the refresh token, and their lifetimes in seconds."""

    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    expires_in: int | None = None
    refresh_expires_in: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> Session:
        obj = _object(value, "a session")
        token = obj.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValueError("the login answer has no access_token")
        expires = obj.get("expires_in")
        refresh_expires = obj.get("refresh_expires_in")
        return cls(
            access_token=token,
            refresh_token=_opt_str(obj.get("refresh_token")),
            token_type=_str(obj.get("token_type"), "Bearer"),
            expires_in=_int(expires) if expires is not None else None,
            refresh_expires_in=_int(refresh_expires) if refresh_expires is not None else None,
            raw=obj,
        )

    def __repr__(self) -> str:
        # Tokens stay out of logs.
        return f"Session(token_type={self.token_type!r}, expires_in={self.expires_in!r})"
