"""The client against a running server: set CODEXION_URL, CODEXION_TENANT,
CODEXION_EMAIL and CODEXION_PASSWORD (scripts/python-client-check.sh starts a fresh
installation and sets them). Skipped, saying so, without them."""

from __future__ import annotations

import time
import unittest
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from _support import live_settings

from codexion import (
    Client,
    Context,
    NotFound,
    SearchResult,
    Unauthorized,
    ValidationError,
)

T = TypeVar("T")

# Embedding runs in a background job after the write: results by meaning may lag.
POLL_S = 10.0

client: Client
settings: dict[str, str]


def setUpModule() -> None:
    global client, settings
    settings = live_settings()
    client = Client(settings["CODEXION_URL"], tenant=settings["CODEXION_TENANT"],
                    max_retries=6, backoff_max_s=5.0)
    # One login for the module: logins have a strict rate limit of their own.
    client.login(settings["CODEXION_EMAIL"], settings["CODEXION_PASSWORD"])


def poll(fetch: Callable[[], T], done: Callable[[T], bool], seconds: float = POLL_S) -> T:
    """``fetch()`` until ``done`` holds of its result or the time is up; the last result."""
    deadline = time.monotonic() + seconds
    while True:
        result = fetch()
        if done(result) or time.monotonic() >= deadline:
            return result
        time.sleep(0.25)


def unique() -> str:
    """A word no other memory holds, so keyword searches find only this test's items."""
    return "zq" + uuid.uuid4().hex[:10]


class Live(unittest.TestCase):
    def test_add_get_and_search_by_keyword(self) -> None:
        word = unique()
        item = client.memory.add(
            f"The customer {word} always pays its invoices thirty days late.",
            kind="fact", subject="customer-payments", tags=["billing", word],
            priority=0.7, occurred_at="2026-01-15T10:00:00Z",
            source={"entity": "customer", "id": word}, metadata={"origin": "test_live"},
        )
        self.assertTrue(item.id)
        self.assertEqual(item.kind, "fact")
        self.assertEqual(item.subject, "customer-payments")
        self.assertIn("billing", item.tags)
        self.assertAlmostEqual(item.priority or 0, 0.7, places=3)
        self.assertIsNotNone(item.source)
        self.assertEqual(item.metadata.get("origin"), "test_live")
        fetched = client.memory.get(item.id)
        self.assertEqual(fetched.id, item.id)
        self.assertEqual(fetched.text, item.text)
        result = poll(lambda: client.memory.search(word, mode="keyword"),
                      lambda r: item.id in r.ids())
        self.assertIn(item.id, result.ids(), f"keyword search for {word} found {result.ids()}")
        hit = result[result.ids().index(item.id)]
        self.assertEqual(hit.text, item.text)
        self.assertEqual(hit.kind, "fact")
        self.assertIsInstance(hit.score, float)

    def test_search_by_meaning(self) -> None:
        stats = client.memory.stats()
        word = unique()
        items = client.memory.add_many([
            {"text": f"{word}: the warehouse in Lyon ships pallets every Tuesday morning.",
             "kind": "fact", "tags": [word]},
            {"text": f"{word}: our favourite lunch place serves excellent ramen noodles.",
             "kind": "note", "tags": [word]},
        ])
        self.assertEqual(len(items), 2)
        self.assertEqual([i.kind for i in items], ["fact", "note"])
        target = items[0].id
        if stats.model is None:
            # An installation without an embedding model searches by keyword only.
            result = client.memory.search(f"{word} warehouse", mode="hybrid")
            self.assertIn(target, result.ids())
            self.skipTest(f"no embedding model (mode {stats.mode!r}): meaning not checked")
        query = "when are goods dispatched from the depot"

        def by_meaning() -> SearchResult:
            return client.memory.search(query, mode="vector", limit=10,
                                        filters=[("tags", "=", word)])

        result = poll(by_meaning, lambda r: bool(r.ids()) and r.ids()[0] == target)
        self.assertTrue(result.ids(), "vector search found nothing")
        self.assertEqual(result.ids()[0], target, f"by meaning: {[h.text for h in result]}")
        hybrid = client.memory.search(query, filters=[["tags", "=", word]])
        self.assertIn(target, hybrid.ids())

    def test_filters(self) -> None:
        word = unique()
        old, new = client.memory.add_many([
            {"text": f"{word} old event", "kind": "episode", "occurred_at": "2020-01-01T00:00:00Z"},
            {"text": f"{word} new event", "kind": "episode", "occurred_at": "2026-06-01T00:00:00Z"},
        ])
        result = poll(
            lambda: client.memory.search(word, mode="keyword", filters=[
                ("kind", "=", "episode"), ("occurred_at", ">=", "2025-01-01T00:00:00Z")]),
            lambda r: new.id in r.ids())
        self.assertIn(new.id, result.ids())
        self.assertNotIn(old.id, result.ids())

    def test_context_stays_within_budget(self) -> None:
        word = unique()
        client.memory.add_many(
            [{"text": f"{word} fact number {i}: the quarterly report is due on Friday.",
              "kind": "fact"} for i in range(12)])
        budget = 100

        def context() -> Context:
            return client.memory.context(word, budget_tokens=budget, mode="keyword")

        packed = poll(context, lambda c: len(c.items) >= 2)
        self.assertGreaterEqual(len(packed.items), 2, f"context found {packed!r}")
        self.assertLessEqual(packed.tokens, budget)
        self.assertLessEqual(sum(i.tokens for i in packed.items), budget)
        for line in packed.text.splitlines():
            if line.strip():
                self.assertIn(word, line)
        self.assertGreater(packed.dropped, 0, "12 items of ~30 tokens cannot fit in 100")
        # Hybrid packing, another tokenizer, a tiny budget: never over budget either.
        for tokenizer, small in (("o200k_base", 25), ("cl100k_base", 1)):
            tight = client.memory.context(word, budget_tokens=small, tokenizer=tokenizer)
            self.assertLessEqual(tight.tokens, small)
        wide = client.memory.context(word, budget_tokens=100_000, mode="keyword", limit=100)
        self.assertEqual(len(wide.items), 12)
        self.assertEqual(wide.dropped, 0)

    def test_forget_then_search_no_longer_finds_it(self) -> None:
        word = unique()
        item = client.memory.add(f"{word} is a secret to forget", kind="note")
        found = poll(lambda: client.memory.search(word, mode="keyword"),
                     lambda r: item.id in r.ids())
        self.assertIn(item.id, found.ids())
        client.memory.forget(item.id)
        self.assertNotIn(item.id, client.memory.search(word).ids())
        self.assertNotIn(item.id, client.memory.search(word, mode="keyword").ids())
        with self.assertRaises(NotFound):
            client.memory.get(item.id)

    def test_stats_has_tiers(self) -> None:
        client.memory.add("stats need at least one item", kind="note")
        stats = client.memory.stats()
        for tier in ("hot", "warm", "cold"):
            self.assertIn(tier, stats.tiers)
        self.assertGreaterEqual(stats.hot + stats.warm + stats.cold, 1)
        self.assertIn(stats.mode, ("hybrid", "keyword-only"))
        for key in ("vectors", "bytes", "pending"):
            self.assertIn(key, stats.index)

    def test_a_20_kb_text_is_a_validation_error_on_text(self) -> None:
        with self.assertRaises(ValidationError) as caught:
            client.memory.add("x" * 20 * 1024)
        error = caught.exception
        self.assertEqual(error.status, 422)
        self.assertIn("/text", [e.pointer for e in error.errors], str(error))

    def test_a_wrong_token_is_unauthorized(self) -> None:
        stranger = Client(settings["CODEXION_URL"], tenant=settings["CODEXION_TENANT"],
                          token="not-a-token")
        with self.assertRaises(Unauthorized):
            stranger.memory.search("anything")
        with self.assertRaises(Unauthorized):
            stranger.memory.add("anything")

    def test_idempotency_key_stores_once(self) -> None:
        key = str(uuid.uuid4())
        word = unique()
        first = client.memory.add(f"{word} once", idempotency_key=key)
        second = client.memory.add(f"{word} once", idempotency_key=key)
        self.assertEqual(first.id, second.id, "the same Idempotency-Key stored two items")

    def test_unknown_item_is_not_found(self) -> None:
        with self.assertRaises(NotFound):
            client.memory.get(str(uuid.uuid4()))

    def test_raw_keeps_the_whole_answer(self) -> None:
        item = client.memory.add("raw check", kind="note")
        self.assertEqual(item.raw.get("id"), item.id)
        any_value: Any = item.raw
        self.assertIsInstance(any_value, dict)


if __name__ == "__main__":
    unittest.main()
