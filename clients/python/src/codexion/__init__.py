"""Codexion API client (standard library only).

    from codexion import Client

    with Client("http://127.0.0.1:4949", tenant="acme") as client:
        client.login("admin@acme.test", "correct horse")
        item = client.memory.add("Acme pays its invoices 30 days late", kind="fact")
        for hit in client.memory.search("who pays late?"):
            print(hit.score, hit.text)
        prompt = client.memory.context("Acme payment habits", budget_tokens=500).text
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._routes import ROUTES, Route
from ._transport import RetryPolicy
from .client import DEFAULT_URL, Client
from .errors import (
    BadRequest,
    CodexionError,
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationError,
)
from .memory import BATCH_LIMIT, Memory
from .models import (
    Context,
    ContextItem,
    Filter,
    Kind,
    MemoryItem,
    ModelInfo,
    NewMemory,
    SearchHit,
    SearchMode,
    SearchResult,
    Session,
    Source,
    Stats,
)

__all__ = [
    "__version__",
    "Client",
    "DEFAULT_URL",
    "Memory",
    "BATCH_LIMIT",
    "RetryPolicy",
    "ROUTES",
    "Route",
    "CodexionError",
    "TransportError",
    "BadRequest",
    "ValidationError",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "RateLimited",
    "ServerError",
    "FieldError",
    "Context",
    "ContextItem",
    "Filter",
    "Kind",
    "MemoryItem",
    "ModelInfo",
    "NewMemory",
    "SearchHit",
    "SearchMode",
    "SearchResult",
    "Session",
    "Source",
    "Stats",
]
