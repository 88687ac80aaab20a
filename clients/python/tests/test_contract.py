"""The client checked against the server's OpenAPI document (GET /api/v1/openapi.json).

- every route of ``codexion.ROUTES`` is an operation of the document, with that method;
- every field the client may send is a property of the operation's request schema, and
  every header it may send (``Idempotency-Key``) a parameter of the operation;
- every field the client reads is a property of the success response's schema, and the
  success status is the one the client expects;
- every ``/api/v1/memory`` operation of the document is in ``ROUTES`` (a client method).

Needs a running server: the CODEXION_* variables of test_live.py.
"""

from __future__ import annotations

import re
import unittest
from typing import Any

from _support import live_settings

from codexion import ROUTES, Client, Route
from codexion._routes import MEMORY_PREFIX

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")

document: dict[str, Any] = {}


def load_document() -> None:
    global document
    if document.get("paths"):
        return
    settings = live_settings()
    client = Client(settings["CODEXION_URL"], tenant=settings["CODEXION_TENANT"])
    client.login(settings["CODEXION_EMAIL"], settings["CODEXION_PASSWORD"])
    answer = client.request("GET", "/api/v1/openapi.json")
    if not isinstance(answer, dict) or "paths" not in answer:
        raise AssertionError("GET /api/v1/openapi.json is not an OpenAPI document")
    document = answer


def template(path: str) -> str:
    """A path with its parameters' names blanked: ``/items/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def resolve(node: Any, seen: frozenset[str] = frozenset()) -> Any:
    """``node`` with a ``$ref`` into the document followed (repeatedly)."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise AssertionError(f"unsupported $ref {ref!r}")
        if ref in seen:
            return {}
        seen = seen | {ref}
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise AssertionError(f"dangling $ref {ref}")
            target = target[part]
        # Keywords beside a $ref (3.1) apply too.
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **rest} if rest and isinstance(target, dict) else target
    return node


def alternatives(schema: Any) -> list[dict[str, Any]]:
    """The object schemas ``schema`` may be: itself, and its allOf/anyOf/oneOf branches
    (flattened). A ``null`` branch (an optional value) is left out."""
    schema = resolve(schema)
    if not isinstance(schema, dict):
        return []
    found = [schema]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword) or []:
            found.extend(alternatives(branch))
    return [s for s in found if s.get("type") != "null"]


def child(schema: Any, step: str) -> list[Any]:
    """The schemas at ``step`` below ``schema``: a property name, or ``[]`` for the
    elements of an array."""
    out: list[Any] = []
    for option in alternatives(schema):
        if step == "[]":
            if "items" in option:
                out.append(option["items"])
            if "prefixItems" in option:
                out.extend(option["prefixItems"])
        else:
            properties = option.get("properties") or {}
            if step in properties:
                out.append(properties[step])
    return out


def has_field(schema: Any, field: str) -> bool:
    """Whether the dotted ``field`` (``items[].text``) is a declared property path."""
    steps: list[str] = []
    for part in field.split("."):
        if part.endswith("[]"):
            steps.extend([part[:-2], "[]"])
        else:
            steps.append(part)
    current = [schema]
    for step in steps:
        current = [c for s in current for c in child(s, step)]
        if not current:
            return False
    return True


def operations() -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """``(METHOD, template) -> (path as written, operation)`` for the whole document."""
    found: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for path, item in document["paths"].items():
        item = resolve(item)
        for method in METHODS:
            if method in item:
                found[(method.upper(), template(path))] = (path, resolve(item[method]))
    return found


def json_schema(holder: Any) -> Any:
    """The JSON schema of a request body or response: its ``application/json`` content
    (or any ``…+json``)."""
    holder = resolve(holder)
    content = (holder or {}).get("content") or {}
    for media in ("application/json", *sorted(content)):
        if media in content and "json" in media:
            return content[media].get("schema")
    return None


class Contract(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        load_document()

    def setUp(self) -> None:
        self.operations = operations()

    def operation(self, route: Route) -> tuple[str, dict[str, Any]]:
        key = (route.method, template(route.path))
        if key not in self.operations:
            same_path = sorted(m for m, p in self.operations if p == key[1])
            self.fail(f"{route.method} {route.path} is not in the OpenAPI document"
                      + (f" (it has {', '.join(same_path)})" if same_path else ""))
        return self.operations[key]

    def test_document_is_openapi_3_1(self) -> None:
        self.assertTrue(str(document.get("openapi", "")).startswith("3.1"))

    def test_every_route_exists_with_its_method(self) -> None:
        for name, route in ROUTES.items():
            with self.subTest(name):
                self.operation(route)

    def test_request_fields_are_in_the_request_schema(self) -> None:
        for name, route in ROUTES.items():
            if not route.request:
                continue
            with self.subTest(name):
                _, operation = self.operation(route)
                self.assertIn("requestBody", operation, f"{name}: no request body")
                schema = json_schema(operation["requestBody"])
                self.assertIsNotNone(schema, f"{name}: no JSON request schema")
                missing = [f for f in route.request if not has_field(schema, f)]
                self.assertEqual(missing, [], f"{name}: request fields not in the schema")

    def test_request_headers_are_parameters(self) -> None:
        for name, route in ROUTES.items():
            if not route.headers:
                continue
            with self.subTest(name):
                path, operation = self.operation(route)
                item = resolve(document["paths"][path])
                declared = {
                    str(p.get("name", "")).lower()
                    for p in map(resolve, (item.get("parameters") or [])
                                 + (operation.get("parameters") or []))
                    if isinstance(p, dict) and p.get("in") == "header"
                }
                missing = [h for h in route.headers if h.lower() not in declared]
                self.assertEqual(missing, [], f"{name}: headers the client sends are not declared")

    def test_response_fields_are_in_the_response_schema(self) -> None:
        for name, route in ROUTES.items():
            with self.subTest(name):
                _, operation = self.operation(route)
                responses = operation.get("responses") or {}
                self.assertIn(str(route.status), responses,
                              f"{name}: no {route.status} response (has {sorted(responses)})")
                if not route.response:
                    continue
                schema = json_schema(responses[str(route.status)])
                self.assertIsNotNone(schema, f"{name}: no JSON response schema")
                missing = [f for f in route.response if not has_field(schema, f)]
                self.assertEqual(missing, [], f"{name}: response fields not in the schema")

    def test_every_memory_operation_has_a_client_method(self) -> None:
        covered = {(r.method, template(r.path)) for r in ROUTES.values()}
        uncovered = sorted(
            f"{method} {path}"
            for (method, key), (path, _) in self.operations.items()
            if path.startswith(MEMORY_PREFIX + "/") and (method, key) not in covered
        )
        self.assertEqual(uncovered, [], "memory operations without a client method")
        memory = [k for k in self.operations if k[1].startswith(MEMORY_PREFIX + "/")]
        self.assertTrue(memory, "the document has no /api/v1/memory operation")


class SchemaWalk(unittest.TestCase):
    """The schema helpers on a small document (no server needed)."""

    def test_refs_arrays_and_nullable_branches(self) -> None:
        global document
        saved = document
        document = {"components": {"schemas": {
            "Item": {"type": "object", "properties": {
                "id": {"type": "string"},
                "source": {"oneOf": [{"$ref": "#/components/schemas/Source"}, {"type": "null"}]},
            }},
            "Source": {"type": "object", "properties": {"entity": {}, "id": {}}},
            "Batch": {"allOf": [{"type": "object", "properties": {
                "data": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}]},
        }}}
        try:
            batch = {"$ref": "#/components/schemas/Batch"}
            self.assertTrue(has_field(batch, "data"))
            self.assertTrue(has_field(batch, "data[].id"))
            self.assertTrue(has_field(batch, "data[].source.entity"))
            self.assertFalse(has_field(batch, "data[].tier"))
            self.assertFalse(has_field(batch, "items"))
        finally:
            document = saved


if __name__ == "__main__":
    unittest.main()
