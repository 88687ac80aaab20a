"""Shared by the tests: the import path, a scripted fake server, and the live settings."""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import unittest
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# The tests run against the source tree, without installing the package.
SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

LIVE_VARIABLES = ("CODEXION_URL", "CODEXION_TENANT", "CODEXION_EMAIL", "CODEXION_PASSWORD")


def live_settings() -> dict[str, str]:
    """The live server's settings, or a skip naming what is missing. With
    ``CODEXION_REQUIRE_LIVE=1`` (as scripts/python-client-check.sh sets) a missing
    setting fails instead."""
    missing = [name for name in LIVE_VARIABLES if not os.environ.get(name)]
    if missing:
        reason = (
            f"no live server: set {', '.join(missing)} "
            "(scripts/python-client-check.sh starts one and sets them)"
        )
        if os.environ.get("CODEXION_REQUIRE_LIVE") == "1":
            raise AssertionError(reason)
        raise unittest.SkipTest(reason)
    return {name: os.environ[name] for name in LIVE_VARIABLES}


@dataclass
class Answer:
    """A scripted answer: a status, headers, and a body (bytes, or JSON for anything
    else). ``drop`` closes the connection without answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def problem(status: int, title: str, **extra: Any) -> Answer:
    headers = {"Content-Type": "application/problem+json"}
    headers.update(extra.pop("headers", {}))
    return Answer(status, {"type": "about:blank", "title": title, "status": status, **extra}, headers)


@dataclass
class Seen:
    """A request the fake server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class FakeServer:
    """An HTTP server on a free port that answers from a script, in order, and records
    the requests. When the script runs out it answers 200 ``{}``, or ``default``."""

    def __init__(self) -> None:
        self.answers: "queue.Queue[Answer]" = queue.Queue()
        self.seen: list[Seen] = []
        self.default: Answer | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.seen.append(
                    Seen(
                        self.command,
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                try:
                    answer = server.answers.get_nowait()
                except queue.Empty:
                    answer = server.default or Answer(200, {})
                if answer.drop:
                    self.close_connection = True
                    self.connection.close()
                    return
                content = answer.encoded()
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json", **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (timeouts, dropped connections) is expected

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def script(self, *answers: Answer) -> None:
        for answer in answers:
            self.answers.put(answer)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
