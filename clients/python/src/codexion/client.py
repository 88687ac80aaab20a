"""The client: a session with one Codexion installation, as one tenant."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from . import __version__
from ._routes import ROUTES, Route
from ._transport import Response, RetryPolicy, Transport
from .errors import Unauthorized
from .memory import Memory
from .models import Session

__all__ = ["Client", "DEFAULT_URL"]

DEFAULT_URL = "http://127.0.0.1:4949"

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Client:
    """A client of the Codexion API.

    ``tenant`` is sent as ``X-Tenant`` on every call; ``token`` (or the one
    :meth:`login` gets) as ``Authorization: Bearer``. ``timeout_s`` bounds each attempt;
    ``max_retries``, ``backoff_base_s`` and ``backoff_max_s`` bound the retries (see
    :mod:`codexion._transport`). After :meth:`login`, a call answered 401 because the token
    expired is made again once with a refreshed token.

    A client may be shared between threads. ``with Client(...) as client:`` forgets the
    tokens on leaving.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        tenant: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 4,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 5.0,
        *,
        refresh_token: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.tenant = tenant
        self._token = token
        self._refresh_token = refresh_token
        self._lock = threading.Lock()
        self._transport = Transport(
            base_url,
            timeout_s=timeout_s,
            policy=RetryPolicy(max_retries, backoff_base_s, backoff_max_s),
            user_agent=user_agent or f"codexion-python/{__version__}",
        )
        self.memory = Memory(self)

    @classmethod
    def from_env(cls, **overrides: Any) -> Client:
        """A client from ``CODEXION_URL``, ``CODEXION_TENANT`` and ``CODEXION_TOKEN``;
        keyword arguments override them (and pass the others of the constructor)."""
        options: dict[str, Any] = {
            "base_url": os.environ.get("CODEXION_URL") or DEFAULT_URL,
            "tenant": os.environ.get("CODEXION_TENANT") or None,
            "token": os.environ.get("CODEXION_TOKEN") or None,
        }
        options.update(overrides)
        return cls(**options)

    # -- session -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def token(self) -> str | None:
        """The bearer token sent, if any."""
        return self._token

    @token.setter
    def token(self, value: str | None) -> None:
        with self._lock:
            self._token = value
            self._refresh_token = None

    def login(self, email: str, password: str) -> Session:
        """Signs in to the client's tenant; later calls carry the token."""
        session = Session.from_json(
            self._call("login", body={"email": email, "password": password}, auth=False)
        )
        with self._lock:
            self._token = session.access_token
            self._refresh_token = session.refresh_token
        return session

    def refresh(self) -> Session:
        """Exchanges the refresh token for a new session (done by itself after a 401)."""
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> Session:
        if not self._refresh_token:
            raise RuntimeError("no refresh token: log in first")
        session = Session.from_json(
            self._call("refresh", body={"refresh_token": self._refresh_token}, auth=False)
        )
        self._token = session.access_token
        self._refresh_token = session.refresh_token
        return session

    def close(self) -> None:
        """Forgets the tokens (the server keeps the session until it expires)."""
        with self._lock:
            self._token = None
            self._refresh_token = None

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(base_url={self.base_url!r}, tenant={self.tenant!r})"

    # -- requests ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotent: bool | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Any call of the API, with the client's headers and retries: returns the decoded
        JSON answer (``None`` for an empty one). ``idempotent`` defaults to true for GET,
        HEAD, OPTIONS, PUT and DELETE."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        return self._send(method, path, body, idempotent, headers or {}, auth=True).json()

    def _call(
        self,
        name: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        auth: bool = True,
    ) -> Any:
        route: Route = ROUTES[name]
        headers: dict[str, str] = {}
        idempotent = route.idempotent
        if idempotency_key is not None:
            if not idempotency_key:
                raise ValueError("idempotency_key must not be empty")
            headers["Idempotency-Key"] = idempotency_key
            idempotent = True
        path = route.format(**(params or {}))
        return self._send(route.method, path, body, idempotent, headers, auth=auth).json()

    def _send(
        self,
        method: str,
        path: str,
        body: Any,
        idempotent: bool,
        headers: Mapping[str, str],
        *,
        auth: bool,
    ) -> Response:
        correlation_id = uuid.uuid4().hex
        token = self._token
        try:
            return self._transport.request(
                method,
                path,
                body=body,
                headers=self._headers(headers, token if auth else None),
                idempotent=idempotent,
                correlation_id=correlation_id,
            )
        except Unauthorized:
            # An expired token: refresh once (unless another thread already did) and send
            # again. A 401 is answered before the request runs, so this is safe for writes.
            if not auth or token is None:
                raise
            with self._lock:
                if self._refresh_token is None:
                    raise
                if self._token == token:
                    self._refresh_locked()
                token = self._token
            return self._transport.request(
                method,
                path,
                body=body,
                headers=self._headers(headers, token),
                idempotent=idempotent,
                correlation_id=correlation_id,
            )

    def _headers(self, extra: Mapping[str, str], token: str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.tenant:
            headers["X-Tenant"] = self.tenant
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(extra)
        return headers
