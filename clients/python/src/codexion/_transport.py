"""HTTP with retries: one JSON request, sent again after a transient failure when that is
safe.

A request is retried, with exponential backoff and full jitter (a random wait between 0
and ``min(backoff_max_s, backoff_base_s * 2**n)`` before the n-th retry, n counting from
0), after:

- a refused connection or an unknown host: nothing was sent, so any request is retried;
- a connection that broke or timed out after the request went out, and the answers 429,
  502, 503 and 504: only when the request is *idempotent* (sending it twice does what
  sending it once does). A ``Retry-After`` on the answer is honoured: the wait is exactly
  its number of seconds, and when that is longer than ``backoff_max_s`` the error is
  raised at once instead (its ``retry_after`` says how long to wait).

At most ``max_retries`` retries are made, so a call sends its request at most
``max_retries + 1`` times; each attempt waits at most ``timeout_s`` for the server.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from .errors import CodexionError, TransportError, error_from_response

__all__ = ["RetryPolicy", "Response", "Transport", "RETRY_STATUSES"]

#: The answers after which an idempotent request is sent again.
RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry (see the module's documentation)."""

    max_retries: int = 4
    backoff_base_s: float = 0.2
    backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.backoff_base_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff_base_s and backoff_max_s must be >= 0")

    def ceiling(self, retry: int) -> float:
        """The longest wait before retry number ``retry`` (from 0)."""
        # min() first on the exponent so that a large retry count cannot overflow.
        return min(self.backoff_max_s, self.backoff_base_s * 2.0 ** min(retry, 64))

    def backoff(self, retry: int, unit: float) -> float:
        """The wait before retry number ``retry`` for a uniform ``unit`` in [0, 1)."""
        return max(0.0, min(1.0, unit)) * self.ceiling(retry)


@dataclass
class Response:
    """A successful answer: the status, its headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes
    attempts: int = 1

    def json(self) -> Any:
        """The body decoded as JSON; ``None`` for an empty body (204)."""
        if not self.body.strip():
            return None
        return json.loads(self.body.decode("utf-8"))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: urllib would turn a POST into a GET."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class _Failed(Exception):
    """No answer; ``sent`` tells whether the request may have reached the server."""

    def __init__(self, cause: BaseException, *, sent: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.sent = sent


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def _headers(message: Any) -> dict[str, str]:
    result: dict[str, str] = {}
    if message is None:
        return result
    for name, value in message.items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


@dataclass
class Transport:
    """Sends requests to ``base_url`` under a :class:`RetryPolicy`.

    ``sleep`` and ``random`` are the waits and the jitter; tests replace them.
    """

    base_url: str
    timeout_s: float = 30.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = "codexion-python"
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"base_url must be an http(s) URL, not {self.base_url!r}")
        self.base_url = self.base_url.rstrip("/")
        self._opener = urllib.request.build_opener(_NoRedirect)

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
        correlation_id: str | None = None,
    ) -> Response:
        """Sends the request, retrying as the module says; raises a
        :class:`~codexion.errors.CodexionError` for an error answer or no answer."""
        data = None
        all_headers = {
            "Accept": "application/json, application/problem+json",
            "User-Agent": self.user_agent,
        }
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        if correlation_id:
            all_headers["X-Correlation-Id"] = correlation_id
        all_headers.update(headers or {})
        url = self.url(path)
        retry = 0
        while True:
            error: CodexionError
            retryable: bool
            try:
                status, response_headers, content = self._send(method, url, data, all_headers)
            except _Failed as failed:
                error = TransportError(
                    0,
                    f"{method} {path} got no answer",
                    f"{type(failed.cause).__name__}: {failed.cause}",
                    correlation_id=correlation_id,
                )
                error.__cause__ = failed.cause
                retryable = idempotent or not failed.sent
                retry_after = None
            else:
                if 200 <= status <= 299:
                    return Response(status, response_headers, content, attempts=retry + 1)
                retry_after = parse_retry_after(response_headers.get("retry-after"))
                error = error_from_response(
                    status,
                    response_headers,
                    content,
                    retry_after=retry_after,
                    correlation_id=correlation_id,
                )
                retryable = idempotent and status in RETRY_STATUSES
            if not retryable or retry >= self.policy.max_retries:
                raise error
            if retry_after is not None:
                if retry_after > self.policy.backoff_max_s:
                    raise error
                delay = retry_after
            else:
                delay = self.policy.backoff(retry, self.random())
            self.sleep(delay)
            retry += 1

    def _send(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
        try:
            with self._opener.open(request, timeout=self.timeout_s) as answer:
                return answer.status, _headers(answer.headers), answer.read()
        except urllib.error.HTTPError as answer:
            try:
                content = answer.read()
            except (OSError, http.client.HTTPException):
                content = b""
            finally:
                answer.close()
            return answer.code, _headers(answer.headers), content
        except urllib.error.URLError as failure:
            reason = failure.reason
            # Refused, or the host unknown: the request never left.
            not_sent = isinstance(reason, (ConnectionRefusedError, socket.gaierror))
            cause = reason if isinstance(reason, BaseException) else failure
            raise _Failed(cause, sent=not not_sent) from failure
        except (OSError, http.client.HTTPException) as failure:
            # Reset, closed without an answer, timed out while waiting: it may have run.
            raise _Failed(failure, sent=True) from failure
