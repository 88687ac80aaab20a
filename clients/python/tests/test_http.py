"""The client's HTTP mechanics against a local fake server: retries, backoff, errors,
headers, request bodies and lenient parsing."""

from __future__ import annotations

import json
import pickle
import socket
import unittest
from datetime import datetime, timedelta, timezone
from typing import Any

from _support import Answer, FakeServer, problem

import codexion
from codexion import (
    BadRequest,
    Client,
    CodexionError,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    ValidationError,
)
from codexion._transport import RetryPolicy, parse_retry_after

ITEM = {
    "id": "mem_1",
    "kind": "fact",
    "text": "Acme pays late",
    "subject": "acme",
    "tags": ["billing"],
    "priority": 0.5,
    "occurred_at": "2026-01-02T03:04:05Z",
    "source": {"entity": "customer", "id": "CUST-1"},
    "metadata": {"k": 1},
    "tier": "hot",
    "created_at": "2026-01-02T03:04:06Z",
}

SEARCH = {
    "data": [
        {"id": "mem_1", "text": "Acme pays late", "score": 0.9, "tier": "hot", "kind": "fact",
         "subject": "acme", "occurred_at": None},
    ],
    "mode": "hybrid",
    "model": "all-minilm",
}


class FakeServerCase(unittest.TestCase):
    """A fresh fake server per test, and a client whose waits are recorded, not slept."""

    def setUp(self) -> None:
        self.server = FakeServer().__enter__()
        self.addCleanup(self.server.__exit__)
        self.sleeps: list[float] = []

    def client(self, **options: Any) -> Client:
        options.setdefault("tenant", "acme")
        options.setdefault("token", "tok-1")
        options.setdefault("timeout_s", 5.0)
        client = Client(self.server.url, **options)
        client._transport.sleep = self.sleeps.append
        return client


class Retries(FakeServerCase):
    def test_503_with_retry_after_is_retried_after_that_many_seconds(self) -> None:
        self.server.script(problem(503, "Service Unavailable", headers={"Retry-After": "2"}),
                           Answer(200, SEARCH))
        result = self.client().memory.search("who pays late")
        self.assertEqual(result.ids(), ["mem_1"])
        self.assertEqual(len(self.server.seen), 2)
        self.assertEqual(self.sleeps, [2.0])

    def test_429_with_retry_after_is_retried(self) -> None:
        self.server.script(problem(429, "Too Many Requests", headers={"Retry-After": "1"}),
                           problem(429, "Too Many Requests", headers={"Retry-After": "0"}),
                           Answer(200, {"text": "x", "tokens": 1, "items": [], "dropped": 0}))
        context = self.client().memory.context("q", budget_tokens=10)
        self.assertEqual(context.text, "x")
        self.assertEqual(self.sleeps, [1.0, 0.0])

    def test_502_and_504_are_retried_for_reads(self) -> None:
        self.server.script(Answer(502, b"<html>bad gateway</html>", {"Content-Type": "text/html"}),
                           Answer(504, b""), Answer(200, ITEM))
        self.assertEqual(self.client().memory.get("mem_1").id, "mem_1")
        self.assertEqual(len(self.server.seen), 3)
        self.assertEqual([s.method for s in self.server.seen], ["GET"] * 3)

    def test_gives_up_after_max_retries(self) -> None:
        self.server.default = problem(503, "Service Unavailable", detail="draining")
        with self.assertRaises(ServerError) as caught:
            self.client(max_retries=3).memory.search("q")
        self.assertEqual(len(self.server.seen), 4)
        self.assertEqual(len(self.sleeps), 3)
        self.assertEqual(caught.exception.status, 503)
        self.assertEqual(caught.exception.detail, "draining")

    def test_no_retries_when_max_retries_is_0(self) -> None:
        self.server.default = Answer(502, b"")
        with self.assertRaises(ServerError):
            self.client(max_retries=0).memory.stats()
        self.assertEqual(len(self.server.seen), 1)
        self.assertEqual(self.sleeps, [])

    def test_500_is_not_retried(self) -> None:
        self.server.default = problem(500, "Internal Server Error")
        with self.assertRaises(ServerError):
            self.client().memory.search("q")
        self.assertEqual(len(self.server.seen), 1)

    def test_add_is_not_retried_once_sent(self) -> None:
        self.server.default = problem(503, "Service Unavailable", headers={"Retry-After": "1"})
        with self.assertRaises(ServerError) as caught:
            self.client().memory.add("a note")
        self.assertEqual(len(self.server.seen), 1)
        self.assertEqual(caught.exception.retry_after, 1.0)
        self.assertNotIn("idempotency-key", self.server.seen[0].headers)

    def test_add_many_is_not_retried_once_sent(self) -> None:
        self.server.default = Answer(502, b"")
        with self.assertRaises(ServerError):
            self.client().memory.add_many([{"text": "a"}])
        self.assertEqual(len(self.server.seen), 1)

    def test_add_is_not_retried_when_the_connection_drops_after_sending(self) -> None:
        self.server.script(Answer(drop=True), Answer(201, ITEM))
        with self.assertRaises(TransportError) as caught:
            self.client().memory.add("a note")
        self.assertEqual(len(self.server.seen), 1)
        self.assertEqual(caught.exception.status, 0)

    def test_search_is_retried_when_the_connection_drops(self) -> None:
        self.server.script(Answer(drop=True), Answer(200, SEARCH))
        self.assertEqual(len(self.client().memory.search("q")), 1)
        self.assertEqual(len(self.server.seen), 2)

    def test_add_with_an_idempotency_key_is_retried_with_the_same_key(self) -> None:
        self.server.script(Answer(503, b""), Answer(drop=True), Answer(201, ITEM))
        item = self.client().memory.add("a note", idempotency_key="k-123")
        self.assertEqual(item.id, "mem_1")
        self.assertEqual(len(self.server.seen), 3)
        self.assertEqual({s.headers["idempotency-key"] for s in self.server.seen}, {"k-123"})
        bodies = {s.body for s in self.server.seen}
        self.assertEqual(len(bodies), 1, "every attempt sends the same body")

    def test_attempts_of_one_call_share_a_correlation_id(self) -> None:
        self.server.script(Answer(503, b""), Answer(200, SEARCH))
        client = self.client()
        client.memory.search("q")
        client.memory.search("q")
        ids = [s.headers["x-correlation-id"] for s in self.server.seen]
        self.assertEqual(ids[0], ids[1])
        self.assertNotEqual(ids[1], ids[2])

    def test_refused_connection_is_retried_even_for_add(self) -> None:
        # Nothing was sent, so even a write may be sent again.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        client = Client(f"http://127.0.0.1:{port}", max_retries=2)
        client._transport.sleep = self.sleeps.append
        with self.assertRaises(TransportError) as caught:
            client.memory.add("a note")
        self.assertEqual(len(self.sleeps), 2)
        self.assertIsInstance(caught.exception.__cause__, ConnectionRefusedError)

    def test_a_timeout_is_a_transport_error(self) -> None:
        import threading

        release = threading.Event()
        self.addCleanup(release.set)

        def slow(handler: Any) -> None:
            # Never answers: the client gives up first.
            release.wait(5)

        self.server.httpd.RequestHandlerClass.do_GET = slow  # type: ignore[attr-defined]
        client = self.client(timeout_s=0.2, max_retries=1)
        with self.assertRaises(TransportError):
            client.memory.stats()
        self.assertEqual(len(self.sleeps), 1)


class Backoff(FakeServerCase):
    def test_full_jitter_is_bounded_by_backoff_max(self) -> None:
        self.server.default = Answer(503, b"")
        client = self.client(max_retries=8, backoff_base_s=0.5, backoff_max_s=3.0)
        client._transport.random = lambda: 0.999999
        with self.assertRaises(ServerError):
            client.memory.stats()
        ceilings = [0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0]
        self.assertEqual(len(self.sleeps), 8)
        for slept, ceiling in zip(self.sleeps, ceilings):
            self.assertLessEqual(slept, ceiling)
            self.assertGreater(slept, ceiling * 0.99)

    def test_jitter_spreads_waits_from_zero(self) -> None:
        self.server.default = Answer(503, b"")
        client = self.client(max_retries=3, backoff_base_s=1.0, backoff_max_s=10.0)
        client._transport.random = lambda: 0.0
        with self.assertRaises(ServerError):
            client.memory.stats()
        self.assertEqual(self.sleeps, [0.0, 0.0, 0.0])

    def test_real_random_waits_stay_within_their_ceilings(self) -> None:
        policy = RetryPolicy(max_retries=50, backoff_base_s=0.2, backoff_max_s=5.0)
        import random

        for retry in range(200):
            wait = policy.backoff(retry, random.random())
            self.assertGreaterEqual(wait, 0.0)
            self.assertLessEqual(wait, min(5.0, 0.2 * 2**retry))

    def test_retry_after_longer_than_backoff_max_raises_at_once(self) -> None:
        self.server.default = problem(429, "Too Many Requests", headers={"Retry-After": "60"})
        with self.assertRaises(RateLimited) as caught:
            self.client(backoff_max_s=5.0).memory.search("q")
        self.assertEqual(len(self.server.seen), 1)
        self.assertEqual(self.sleeps, [])
        self.assertEqual(caught.exception.retry_after, 60.0)

    def test_retry_after_as_an_http_date(self) -> None:
        now = datetime(2026, 1, 1, tzinfo=timezone.utc)
        later = (now + timedelta(seconds=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")
        self.assertAlmostEqual(parse_retry_after(later, now=now.timestamp()) or 0, 3.0)
        self.assertEqual(parse_retry_after("soon"), None)
        self.assertEqual(parse_retry_after("-5"), 0.0)

    def test_real_sleeps_are_short(self) -> None:
        # With the real clock: 3 retries of at most 0.05 s.
        import time

        self.server.default = Answer(503, b"")
        client = Client(self.server.url, max_retries=3, backoff_base_s=0.05, backoff_max_s=0.05)
        started = time.monotonic()
        with self.assertRaises(ServerError):
            client.memory.stats()
        self.assertLess(time.monotonic() - started, 2.0)
        self.assertEqual(len(self.server.seen), 4)

    def test_bad_settings_are_refused(self) -> None:
        with self.assertRaises(ValueError):
            Client(self.server.url, max_retries=-1)
        with self.assertRaises(ValueError):
            Client(self.server.url, timeout_s=0)
        with self.assertRaises(ValueError):
            Client("ftp://example.com")


class Errors(FakeServerCase):
    CASES: list[tuple[int, type[CodexionError]]] = [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (422, ValidationError),
        (429, RateLimited),
        (500, ServerError),
        (501, ServerError),
    ]

    def test_statuses_map_to_classes(self) -> None:
        client = self.client(max_retries=0)
        for status, cls in self.CASES:
            with self.subTest(status=status):
                self.server.script(problem(status, f"title {status}", detail="why",
                                           trace_id="trace-9"))
                with self.assertRaises(cls) as caught:
                    client.memory.get("x")
                error = caught.exception
                self.assertIs(type(error), cls)
                self.assertEqual(error.status, status)
                self.assertEqual(error.title, f"title {status}")
                self.assertEqual(error.detail, "why")
                self.assertEqual(error.trace_id, "trace-9")
                self.assertIn("trace-9", str(error))

    def test_validation_error_is_a_bad_request(self) -> None:
        self.assertTrue(issubclass(ValidationError, BadRequest))
        for cls in (BadRequest, Unauthorized, Forbidden, NotFound, Conflict, RateLimited,
                    ServerError, TransportError):
            self.assertTrue(issubclass(cls, CodexionError))

    def test_validation_errors_point_at_fields(self) -> None:
        self.server.script(problem(422, "Unprocessable Entity", errors=[
            {"pointer": "/text", "code": "too_long", "message": "at most 10240 bytes"},
            {"pointer": "/priority", "code": "range", "message": "0 to 1"},
        ]))
        with self.assertRaises(ValidationError) as caught:
            self.client().memory.add("x" * 20_000)
        error = caught.exception
        self.assertEqual([e.pointer for e in error.errors], ["/text", "/priority"])
        self.assertEqual(error.errors[0].code, "too_long")
        self.assertIn("/text: at most 10240 bytes", str(error))

    def test_forbidden_carries_the_action(self) -> None:
        self.server.script(problem(403, "Forbidden", action="create"))
        with self.assertRaises(Forbidden) as caught:
            self.client().memory.add("x")
        self.assertEqual(caught.exception.action, "create")

    def test_non_json_bodies(self) -> None:
        client = self.client(max_retries=0)
        self.server.script(Answer(500, b"<html>oops</html>", {"Content-Type": "text/html"}))
        with self.assertRaises(ServerError) as caught:
            client.memory.stats()
        self.assertEqual(caught.exception.title, "Internal Server Error")
        self.assertEqual(caught.exception.detail, "<html>oops</html>")
        self.server.script(Answer(404, b""))
        with self.assertRaises(NotFound) as missing:
            client.memory.get("x")
        self.assertIsNone(missing.exception.detail)
        self.server.script(Answer(418, b"\xff\xfe not utf-8"))
        with self.assertRaises(CodexionError) as teapot:
            client.memory.get("x")
        self.assertEqual(teapot.exception.status, 418)
        self.server.script(Answer(400, [1, 2, 3]))
        with self.assertRaises(BadRequest):
            client.memory.get("x")

    def test_long_non_json_bodies_are_shortened(self) -> None:
        self.server.script(Answer(500, b"x" * 100_000, {"Content-Type": "text/plain"}))
        with self.assertRaises(ServerError) as caught:
            self.client(max_retries=0).memory.stats()
        self.assertLess(len(caught.exception.detail or ""), 2100)

    def test_redirects_are_not_followed(self) -> None:
        self.server.script(Answer(307, b"", {"Location": "/elsewhere"}))
        with self.assertRaises(CodexionError) as caught:
            self.client().memory.search("q")
        self.assertEqual(caught.exception.status, 307)
        self.assertEqual(len(self.server.seen), 1)

    def test_errors_pickle(self) -> None:
        self.server.script(problem(422, "Unprocessable", errors=[
            {"pointer": "/text", "code": "c", "message": "m"}], trace_id="t"))
        with self.assertRaises(ValidationError) as caught:
            self.client().memory.add("x")
        copy = pickle.loads(pickle.dumps(caught.exception))
        self.assertIs(type(copy), ValidationError)
        self.assertEqual(copy.errors[0].pointer, "/text")
        self.assertEqual(copy.trace_id, "t")


class Headers(FakeServerCase):
    def test_login_then_calls_carry_token_and_tenant(self) -> None:
        self.server.script(Answer(200, {"access_token": "jwt-1", "token_type": "Bearer",
                                        "expires_in": 900, "refresh_token": "r-1",
                                        "refresh_expires_in": 86400}),
                           Answer(200, SEARCH))
        client = Client(self.server.url, tenant="acme")
        session = client.login("admin@acme.test", "correct horse")
        self.assertEqual(session.access_token, "jwt-1")
        self.assertNotIn("jwt-1", repr(session))
        client.memory.search("q")
        login, search = self.server.seen
        self.assertEqual((login.method, login.path), ("POST", "/api/v1/auth/login"))
        self.assertEqual(login.headers["x-tenant"], "acme")
        self.assertNotIn("authorization", login.headers)
        self.assertEqual(login.json(), {"email": "admin@acme.test", "password": "correct horse"})
        self.assertEqual(login.headers["content-type"], "application/json")
        self.assertEqual(search.headers["authorization"], "Bearer jwt-1")
        self.assertEqual(search.headers["x-tenant"], "acme")
        self.assertTrue(search.headers["user-agent"].startswith("codexion-python/"))

    def test_a_failed_login_raises_unauthorized(self) -> None:
        self.server.script(problem(401, "Unauthorized"))
        client = Client(self.server.url, tenant="acme")
        with self.assertRaises(Unauthorized):
            client.login("a@b.c", "wrong")
        self.assertIsNone(client.token)

    def test_an_expired_token_is_refreshed_once(self) -> None:
        self.server.script(
            Answer(200, {"access_token": "jwt-1", "refresh_token": "r-1"}),
            problem(401, "Unauthorized", detail="expired"),
            Answer(200, {"access_token": "jwt-2", "refresh_token": "r-2"}),
            Answer(201, ITEM),
        )
        client = Client(self.server.url, tenant="acme")
        client.login("a@b.c", "pw")
        self.assertEqual(client.memory.add("x").id, "mem_1")
        paths = [(s.method, s.path) for s in self.server.seen]
        self.assertEqual(paths[2], ("POST", "/api/v1/auth/refresh"))
        self.assertEqual(self.server.seen[2].json(), {"refresh_token": "r-1"})
        self.assertEqual(self.server.seen[3].headers["authorization"], "Bearer jwt-2")
        self.assertEqual(client.token, "jwt-2")

    def test_a_given_token_is_not_refreshed(self) -> None:
        self.server.script(problem(401, "Unauthorized"))
        with self.assertRaises(Unauthorized):
            self.client(token="wrong").memory.stats()
        self.assertEqual(len(self.server.seen), 1)

    def test_no_token_and_no_tenant_send_neither_header(self) -> None:
        Client(self.server.url).memory.stats()
        headers = self.server.seen[0].headers
        self.assertNotIn("authorization", headers)
        self.assertNotIn("x-tenant", headers)

    def test_context_manager_forgets_the_token(self) -> None:
        with self.client() as client:
            client.memory.stats()
            self.assertEqual(client.token, "tok-1")
        self.assertIsNone(client.token)

    def test_base_url_with_a_prefix_and_trailing_slash(self) -> None:
        Client(self.server.url + "/erp/", tenant="acme").memory.stats()
        self.assertEqual(self.server.seen[0].path, "/erp/api/v1/memory/stats")

    def test_from_env(self) -> None:
        import os
        from unittest import mock

        env = {"CODEXION_URL": self.server.url, "CODEXION_TENANT": "t1", "CODEXION_TOKEN": "z"}
        with mock.patch.dict(os.environ, env):
            client = Client.from_env(max_retries=0)
        client.memory.stats()
        self.assertEqual(self.server.seen[0].headers["x-tenant"], "t1")
        self.assertEqual(self.server.seen[0].headers["authorization"], "Bearer z")

    def test_request_reaches_any_route(self) -> None:
        self.server.script(Answer(200, {"data": []}))
        answer = self.client().request("get", "/api/v1/resources/customer")
        self.assertEqual(answer, {"data": []})
        self.assertEqual(self.server.seen[0].method, "GET")


class Memory(FakeServerCase):
    def test_add_sends_only_the_given_fields(self) -> None:
        self.server.script(Answer(201, ITEM))
        item = self.client().memory.add("Acme pays late")
        seen = self.server.seen[0]
        self.assertEqual((seen.method, seen.path), ("POST", "/api/v1/memory/items"))
        self.assertEqual(seen.json(), {"text": "Acme pays late", "kind": "note"})
        self.assertEqual(item.kind, "fact")
        self.assertEqual(item.source, codexion.Source("customer", "CUST-1"))
        self.assertEqual(item.tags, ["billing"])
        self.assertEqual(item.priority, 0.5)
        self.assertEqual(item.tier, "hot")

    def test_add_sends_every_field(self) -> None:
        self.server.script(Answer(201, ITEM))
        when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
        self.client().memory.add(
            "Acme pays late", kind="fact", subject="acme", tags=("billing", "risk"),
            priority=0.8, occurred_at=when, source=codexion.Source("customer", "CUST-1"),
            metadata={"by": "agent"},
        )
        self.assertEqual(self.server.seen[0].json(), {
            "text": "Acme pays late", "kind": "fact", "subject": "acme",
            "tags": ["billing", "risk"], "priority": 0.8, "occurred_at": "2026-03-04T03:06:07Z",
            "source": {"entity": "customer", "id": "CUST-1"}, "metadata": {"by": "agent"},
        })

    def test_occurred_at_as_text_is_sent_as_given(self) -> None:
        self.server.script(Answer(201, ITEM))
        self.client().memory.add("x", occurred_at="2026-01-01T00:00:00+01:00",
                                 source={"entity": "order", "id": "7"})
        body = self.server.seen[0].json()
        self.assertEqual(body["occurred_at"], "2026-01-01T00:00:00+01:00")
        self.assertEqual(body["source"], {"entity": "order", "id": "7"})

    def test_add_refuses_tags_as_a_string(self) -> None:
        with self.assertRaises(TypeError):
            self.client().memory.add("x", tags="billing")
        self.assertEqual(self.server.seen, [])

    def test_add_many_splits_into_batches_of_500_in_order(self) -> None:
        def batch(start: int, count: int) -> Answer:
            return Answer(201, {"data": [dict(ITEM, id=f"m{i}") for i in range(start, start + count)]})

        self.server.script(batch(0, 500), batch(500, 500), batch(1000, 201))
        items = [{"text": f"note {i}", "tags": ["t"]} for i in range(1201)]
        stored = self.client().memory.add_many(items, idempotency_key="bulk")
        self.assertEqual([i.id for i in stored], [f"m{i}" for i in range(1201)])
        sizes = [len(s.json()["items"]) for s in self.server.seen]
        self.assertEqual(sizes, [500, 500, 201])
        self.assertEqual({s.path for s in self.server.seen}, {"/api/v1/memory/items/batch"})
        self.assertEqual(self.server.seen[1].json()["items"][0],
                         {"text": "note 500", "kind": "note", "tags": ["t"]})
        self.assertEqual([s.headers["idempotency-key"] for s in self.server.seen],
                         ["bulk:0", "bulk:1", "bulk:2"])

    def test_add_many_of_nothing_sends_nothing(self) -> None:
        self.assertEqual(self.client().memory.add_many([]), [])
        self.assertEqual(self.server.seen, [])

    def test_add_many_refuses_unknown_fields_before_sending(self) -> None:
        with self.assertRaises(ValueError):
            self.client().memory.add_many([{"text": "a"}, {"txt": "b"}])
        self.assertEqual(self.server.seen, [])

    def test_get_forget_restore(self) -> None:
        self.server.script(Answer(200, ITEM), Answer(204, None), Answer(200, dict(ITEM, tier="warm")))
        client = self.client()
        self.assertEqual(client.memory.get("mem/1 x").id, "mem_1")
        client.memory.forget("mem_1")  # a 204: no body to decode
        self.assertEqual(client.memory.restore("mem_1").tier, "warm")
        self.assertEqual([(s.method, s.path) for s in self.server.seen], [
            ("GET", "/api/v1/memory/items/mem%2F1%20x"),
            ("DELETE", "/api/v1/memory/items/mem_1"),
            ("POST", "/api/v1/memory/items/mem_1/restore"),
        ])

    def test_search_body_and_result(self) -> None:
        self.server.script(Answer(200, SEARCH))
        since = datetime(2026, 1, 1, tzinfo=timezone.utc)
        result = self.client().memory.search(
            "who pays late", limit=5, mode="keyword",
            filters=[("kind", "=", "fact"), ["occurred_at", ">=", since]], as_of=since)
        self.assertEqual(self.server.seen[0].json(), {
            "query": "who pays late", "limit": 5, "mode": "keyword",
            "filters": [["kind", "=", "fact"], ["occurred_at", ">=", "2026-01-01T00:00:00Z"]],
            "as_of": "2026-01-01T00:00:00Z",
        })
        self.assertEqual(result.mode, "hybrid")
        self.assertEqual(result.model, "all-minilm")
        hits = list(result)
        self.assertEqual(hits[0].score, 0.9)
        self.assertEqual(result[0].subject, "acme")
        self.assertIsNone(result[0].occurred_at)

    def test_search_defaults_and_filter_mapping(self) -> None:
        self.server.script(Answer(200, {"data": []}))
        result = self.client().memory.search("q", filters={"kind": "fact"})
        self.assertEqual(self.server.seen[0].json(), {
            "query": "q", "limit": 10, "mode": "hybrid", "filters": [["kind", "=", "fact"]]})
        self.assertEqual(len(result), 0)
        with self.assertRaises(ValueError):
            self.client().memory.search("q", filters=[("kind", "=")])

    def test_context(self) -> None:
        self.server.script(Answer(200, {"text": "- Acme pays late", "tokens": 5,
                                        "items": [{"id": "mem_1", "tokens": 5}], "dropped": 2}))
        context = self.client().memory.context("acme", budget_tokens=100, limit=3)
        self.assertEqual(self.server.seen[0].json(), {
            "query": "acme", "budget_tokens": 100, "tokenizer": "cl100k_base", "limit": 3})
        self.assertEqual(str(context), "- Acme pays late")
        self.assertEqual(context.tokens, 5)
        self.assertEqual(context.items[0].id, "mem_1")
        self.assertEqual(context.dropped, 2)

    def test_stats(self) -> None:
        self.server.script(Answer(200, {
            "tiers": {"hot": 3, "warm": 1, "cold": 0},
            "index": {"vectors": 4, "bytes": 1024, "pending": 0},
            "model": {"name": "all-minilm", "dims": 384}, "mode": "hybrid", "jobs": {"x": 1}}))
        stats = self.client().memory.stats()
        self.assertEqual((stats.hot, stats.warm, stats.cold), (3, 1, 0))
        self.assertEqual(stats.index["vectors"], 4)
        self.assertEqual(stats.model, codexion.ModelInfo("all-minilm", 384))
        self.assertEqual(stats.mode, "hybrid")
        self.assertEqual(stats.extra, {"jobs": {"x": 1}})

    def test_stats_without_a_model(self) -> None:
        self.server.script(Answer(200, {"tiers": {}, "index": {}, "model": None,
                                        "mode": "keyword-only"}))
        stats = self.client().memory.stats()
        self.assertIsNone(stats.model)
        self.assertEqual(stats.hot, 0)


class Lenient(FakeServerCase):
    def test_unknown_keys_are_kept_and_missing_ones_default(self) -> None:
        self.server.script(Answer(201, {"id": "m", "kind": "note", "text": "t",
                                        "embedding_state": "pending", "version": 3}))
        item = self.client().memory.add("t")
        self.assertEqual(item.raw["embedding_state"], "pending")
        self.assertEqual(item.tags, [])
        self.assertIsNone(item.source)
        self.assertEqual(item.metadata, {})

    def test_search_hits_keep_unknown_keys(self) -> None:
        self.server.script(Answer(200, {"data": [{"id": "m", "text": "t", "score": 1,
                                                  "highlights": ["t"]}], "next": None}))
        result = self.client().memory.search("q")
        self.assertEqual(result[0].raw["highlights"], ["t"])
        self.assertEqual(result.raw["next"], None)
        self.assertIsNone(result.mode)

    def test_a_non_object_answer_is_a_clear_error(self) -> None:
        self.server.script(Answer(200, [1, 2]))
        with self.assertRaises(ValueError):
            self.client().memory.get("m")


class Typing(unittest.TestCase):
    def test_the_package_is_marked_typed(self) -> None:
        from pathlib import Path

        package = Path(codexion.__file__).parent
        self.assertTrue((package / "py.typed").exists())

    def test_routes_table_is_complete(self) -> None:
        public = [name for name in dir(codexion.Memory) if not name.startswith("_")]
        for name in public:
            self.assertIn(f"memory.{name}", codexion.ROUTES, name)
        self.assertEqual(json.loads(json.dumps(sorted(codexion.ROUTES))), sorted(codexion.ROUTES))


if __name__ == "__main__":
    unittest.main()
