"""Exceptions raised by the client.

Every error answer of the server is an RFC 9457 problem (``application/problem+json``)::

    {"type", "title", "status", "detail"?, "trace_id"?,
     "errors"?: [{"pointer", "code", "message"}], "action"?}

It is raised as a :class:`CodexionError` subclass chosen by the status. A body that is not
a problem (a proxy's HTML page, an empty body) still raises the class of its status, with
the reason phrase as ``title`` and the start of the body as ``detail``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
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
    "error_from_response",
]

# The most characters of a non-problem body kept as `detail`.
_MAX_DETAIL = 2000


@dataclass(frozen=True)
class FieldError:
    """One offending value of an invalid request: ``pointer`` is a JSON pointer into the
    request body (``/text``, ``/items/3/kind``)."""

    pointer: str
    code: str
    message: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Any) -> FieldError:
        if not isinstance(value, dict):
            return cls(pointer="", code="", message=str(value), raw={})
        return cls(
            pointer=str(value.get("pointer", "")),
            code=str(value.get("code", "")),
            message=str(value.get("message", "")),
            raw=dict(value),
        )


class CodexionError(Exception):
    """An error answer of the server, or (as :class:`TransportError`) no answer at all.

    Attributes: ``status`` (the HTTP status, 0 when there was no answer), ``title``,
    ``detail``, ``errors`` (a list of :class:`FieldError`), ``trace_id`` (quote it when
    reporting a problem), ``type``, ``action`` (for a 403: the action refused),
    ``retry_after`` (seconds, from the ``Retry-After`` header), ``correlation_id`` (the
    ``X-Correlation-Id`` the call was sent with; every attempt of one call shares it),
    ``headers`` (lower-case names) and ``raw`` (the decoded problem object, or ``{}``).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        errors: list[FieldError] | None = None,
        trace_id: str | None = None,
        *,
        type: str = "about:blank",
        action: str | None = None,
        retry_after: float | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors: list[FieldError] = list(errors or [])
        self.trace_id = trace_id
        self.type = type
        self.action = action
        self.retry_after = retry_after
        self.correlation_id = correlation_id
        self.headers: dict[str, str] = dict(headers or {})
        self.raw: dict[str, Any] = dict(raw or {})
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.status} {self.title}" if self.status else self.title
        if self.detail:
            text += f": {self.detail}"
        for error in self.errors:
            text += f"\n  {error.pointer or '/'}: {error.message} ({error.code})"
        if self.trace_id:
            text += f" [trace_id {self.trace_id}]"
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments survive pickling (exceptions cross process pools).
        return (
            _rebuild,
            (
                type(self),
                self.status,
                self.title,
                self.detail,
                self.errors,
                self.trace_id,
                {
                    "type": self.type,
                    "action": self.action,
                    "retry_after": self.retry_after,
                    "correlation_id": self.correlation_id,
                    "headers": self.headers,
                    "raw": self.raw,
                },
            ),
        )


def _rebuild(
    cls: type[CodexionError],
    status: int,
    title: str,
    detail: str | None,
    errors: list[FieldError],
    trace_id: str | None,
    kwargs: dict[str, Any],
) -> CodexionError:
    return cls(status, title, detail, errors, trace_id, **kwargs)


class TransportError(CodexionError):
    """No answer: the connection was refused or reset, or the request timed out (after the
    retries the request allowed). ``status`` is 0; ``__cause__`` is the underlying error."""


class BadRequest(CodexionError):
    """400 (and, as :class:`ValidationError`, 422): the request was malformed or invalid."""


class ValidationError(BadRequest):
    """422: the body is well-formed but a value is invalid; ``errors`` points at each."""


class Unauthorized(CodexionError):
    """401: the bearer token is missing, malformed, expired or wrong, or a login failed."""


class Forbidden(CodexionError):
    """403: the caller may not do this (``action`` names what was refused)."""


class NotFound(CodexionError):
    """404."""


class Conflict(CodexionError):
    """409: the current state does not allow this."""


class RateLimited(CodexionError):
    """429: the rate limit is spent; ``retry_after`` says for how many seconds."""


class ServerError(CodexionError):
    """5xx."""


_BY_STATUS: dict[int, type[CodexionError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationError,
    429: RateLimited,
}

_REASONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_class(status: int) -> type[CodexionError]:
    """The exception class for an error ``status``: other statuses (405, 412, 413, 428, …)
    keep the base class and are told apart by ``status``."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 500 <= status <= 599:
        return ServerError
    return CodexionError


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    retry_after: float | None = None,
    reason: str | None = None,
    correlation_id: str | None = None,
) -> CodexionError:
    """The exception for an error answer: ``body`` is decoded as a problem when it is JSON,
    else kept (shortened) as ``detail``."""
    cls = error_class(status)
    fallback_title = reason or _REASONS.get(status) or f"HTTP {status}"
    problem: Any = None
    text = body.decode("utf-8", errors="replace")
    if text.strip():
        try:
            problem = json.loads(text)
        except ValueError:
            problem = None
    if isinstance(problem, dict):
        raw_errors = problem.get("errors")
        errors = (
            [FieldError.from_json(e) for e in raw_errors] if isinstance(raw_errors, list) else []
        )
        detail = problem.get("detail")
        trace_id = problem.get("trace_id")
        action = problem.get("action")
        return cls(
            status,
            str(problem.get("title") or fallback_title),
            detail if isinstance(detail, str) else (None if detail is None else str(detail)),
            errors,
            trace_id if isinstance(trace_id, str) else None,
            type=str(problem.get("type") or "about:blank"),
            action=action if isinstance(action, str) else None,
            retry_after=retry_after,
            correlation_id=correlation_id,
            headers=headers,
            raw=problem,
        )
    detail_text = text.strip()
    if len(detail_text) > _MAX_DETAIL:
        detail_text = detail_text[:_MAX_DETAIL] + "…"
    return cls(
        status,
        fallback_title,
        detail_text or None,
        [],
        None,
        retry_after=retry_after,
        correlation_id=correlation_id,
        headers=headers,
    )
