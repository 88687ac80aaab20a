#!/usr/bin/env python3
"""A CycloneDX 1.5 SBOM of the `prefiq` binary's crates, from `cargo metadata`.

    scripts/sbom.py [--out FILE] [--target TRIPLE] [--check-only FILE] [--workspace-features]

Reads `cargo metadata --format-version 1 --locked --filter-platform TRIPLE` (the host's
triple unless given) and walks its `resolve` graph from `prefiq-cli` along normal
dependencies only (`dep_kinds` with `kind: null`): build scripts' and dev-dependencies'
crates are not in the binary, and `--filter-platform` leaves out other platforms'
crates. That resolve unifies the features of the whole workspace and of every
dev-dependency, so (unless `--workspace-features`) an edge is only followed when
`cargo tree -p prefiq-cli -e normal` (Cargo's feature resolution for a build of this one
package) has it too: 33 crates fewer today, such as sqlx's MySQL driver. Each crate becomes a component with its purl (`pkg:cargo/NAME@VERSION`), its
licence expression as the crate declares it, and the SHA-256 that Cargo.lock pins for
crates.io packages; workspace crates are listed without a purl (they are not published).
The `dependencies` section is the graph itself.

Writes target/sbom/prefiq.cdx.json by default, then checks the document it wrote (or,
with `--check-only FILE`, a given one): the fields CycloneDX 1.5 requires, unique
bom-refs, every dependency edge naming a component, every registry crate with a purl,
a licence and a hash. When the `cyclonedx-python-lib` package (with its
`json-validation` extra) is importable, the document is also validated against the
official 1.5 JSON schema it ships.

Why a script and not `cargo-cyclonedx`: the script needs nothing but Python and Cargo,
while the cargo plugin would be compiled from source on every fresh CI machine (minutes
on two cores), for the same graph `cargo metadata` already gives.

The output is reproducible: the timestamp is SOURCE_DATE_EPOCH, else the last commit's
time, and the serial number is a UUIDv5 of the content.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
import uuid
from pathlib import Path

ROOT_PACKAGE = "prefiq-cli"
BINARY = "prefiq"
REGISTRY = "registry+https://github.com/rust-lang/crates.io-index"
SPEC_VERSION = "1.5"


def run(cmd: list[str], cwd: Path) -> str:
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def host_triple(root: Path) -> str:
    for line in run(["rustc", "-vV"], root).splitlines():
        if line.startswith("host: "):
            return line.split(" ", 1)[1].strip()
    raise SystemExit("sbom: cannot read the host triple from `rustc -vV`")


def timestamp(root: Path) -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        try:
            epoch = run(["git", "log", "-1", "--format=%ct"], root).strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            epoch = "0"
    moment = dt.datetime.fromtimestamp(int(epoch or 0), tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def normalise_licence(text: str | None) -> str | None:
    """Cargo's licence field as an SPDX expression (old `A/B` forms mean `A OR B`)."""
    if not text:
        return None
    parts = [p.strip() for p in re.split(r"\s*/\s*", text.strip()) if p.strip()]
    return " OR ".join(parts) if len(parts) > 1 else parts[0]


def lock_checksums(root: Path) -> dict[tuple[str, str], str]:
    """(name, version) -> sha256 from Cargo.lock's [[package]] entries."""
    with open(root / "Cargo.lock", "rb") as f:
        lock = tomllib.load(f)
    return {
        (p["name"], p["version"]): p["checksum"]
        for p in lock.get("package", [])
        if p.get("checksum")
    }


def reachable(metadata: dict, confirmed: set | None) -> tuple[str, dict[str, list[str]]]:
    """The root package's id and the normal-dependency graph reachable from it; with
    `confirmed` (edges of (name, version) pairs from `cargo tree`), only those edges."""
    packages = {p["id"]: p for p in metadata["packages"]}
    roots = [pid for pid in metadata["workspace_members"] if packages[pid]["name"] == ROOT_PACKAGE]
    if len(roots) != 1:
        raise SystemExit(f"sbom: expected one workspace member named {ROOT_PACKAGE}, found {len(roots)}")
    root = roots[0]
    nodes = {n["id"]: n for n in metadata["resolve"]["nodes"]}
    graph: dict[str, list[str]] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in graph:
            continue
        edges = []
        for dep in nodes[pid]["deps"]:
            # `kind: null` is a normal dependency; `dev` and `build` never reach the binary.
            if not any(k.get("kind") is None for k in dep["dep_kinds"]):
                continue
            if confirmed is not None:
                here, there = packages[pid], packages[dep["pkg"]]
                if ((here["name"], here["version"]), (there["name"], there["version"])) not in confirmed:
                    continue
            edges.append(dep["pkg"])
        graph[pid] = sorted(set(edges))
        todo.extend(graph[pid])
    return root, graph


def bom_ref(package: dict) -> str:
    if package["source"] == REGISTRY:
        return f"pkg:cargo/{package['name']}@{package['version']}"
    return f"workspace:{package['name']}@{package['version']}"


def component(package: dict, checksums: dict, kind: str = "library") -> dict:
    item: dict = {
        "type": kind,
        "bom-ref": bom_ref(package),
        "name": package["name"],
        "version": package["version"],
    }
    if package.get("description"):
        item["description"] = " ".join(package["description"].split())
    licence = normalise_licence(package.get("license"))
    if licence:
        item["licenses"] = [{"expression": licence}]
    elif package.get("license_file"):
        item["licenses"] = [{"license": {"name": f"see {package['license_file']}"}}]
    properties = []
    if package["source"] == REGISTRY:
        item["purl"] = f"pkg:cargo/{package['name']}@{package['version']}"
        digest = checksums.get((package["name"], package["version"]))
        if digest:
            item["hashes"] = [{"alg": "SHA-256", "content": digest}]
        properties.append({"name": "cdx:cargo:source", "value": "crates.io"})
    elif package["source"] is None:
        properties.append({"name": "cdx:cargo:source", "value": "workspace"})
    else:
        properties.append({"name": "cdx:cargo:source", "value": package["source"]})
    refs = []
    if package.get("repository"):
        refs.append({"type": "vcs", "url": package["repository"]})
    if package.get("homepage"):
        refs.append({"type": "website", "url": package["homepage"]})
    if refs and package["source"] == REGISTRY:
        item["externalReferences"] = refs
    item["properties"] = properties
    return item


def tree_edges(root: Path, target: str) -> set:
    """The normal-dependency edges `cargo build -p prefiq-cli` compiles: `cargo tree`
    resolves features for this one package without dev-dependencies, while
    `cargo metadata`'s resolve unifies the features of the whole workspace and of every
    dev-dependency (sqlx's MySQL driver, for one, which no test of prefiq-cli needs)."""
    out = run(
        ["cargo", "tree", "--locked", "-p", ROOT_PACKAGE, "-e", "normal", "--target", target,
         "--prefix", "depth", "-f", "{p}"],
        root,
    )
    edges = set()
    stack: list[tuple[str, str]] = []
    for line in out.splitlines():
        match = re.match(r"(\d+)(\S+) v(\S+)", line)
        if not match:
            continue
        depth, node = int(match.group(1)), (match.group(2), match.group(3))
        del stack[depth:]
        if depth > 0:
            edges.add((stack[depth - 1], node))
        stack.append(node)
    if not edges:
        raise SystemExit("sbom: `cargo tree` printed no dependency edges")
    return edges


def build(root: Path, target: str, exact: bool = True) -> dict:
    metadata = json.loads(
        run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
            root,
        )
    )
    packages = {p["id"]: p for p in metadata["packages"]}
    root_id, loose = reachable(metadata, None)
    if exact:
        root_id, graph = reachable(metadata, tree_edges(root, target))
        dropped = sorted(
            f"{packages[p]['name']} {packages[p]['version']}" for p in set(loose) - set(graph)
        )
        if dropped:
            print(f"sbom: {len(dropped)} crates reachable in cargo metadata's workspace-wide resolve "
                  f"are not built for {ROOT_PACKAGE} (features of other members or of "
                  f"dev-dependencies): {', '.join(dropped)}", file=sys.stderr)
    else:
        graph = loose
    checksums = lock_checksums(root)
    root_package = packages[root_id]
    main = component(root_package, checksums, kind="application")
    main["name"] = BINARY
    main["description"] = "The Codexion `prefiq` binary (crate prefiq-cli)."
    components = [
        component(packages[pid], checksums)
        for pid in sorted(graph, key=lambda i: (packages[i]["name"], packages[i]["version"]))
        if pid != root_id
    ]
    dependencies = [
        {"ref": bom_ref(packages[pid]), "dependsOn": [bom_ref(packages[d]) for d in graph[pid]]}
        for pid in sorted(graph, key=lambda i: bom_ref(packages[i]))
    ]
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": {
            "timestamp": timestamp(root),
            "tools": {
                "components": [
                    {
                        "type": "application",
                        "name": "scripts/sbom.py",
                        "description": "cargo metadata --filter-platform, normal dependencies of prefiq-cli",
                    }
                ]
            },
            "component": main,
            "properties": [
                {"name": "cdx:rust:target", "value": target},
                {"name": "cdx:cargo:root-package", "value": ROOT_PACKAGE},
                {"name": "cdx:cargo:feature-resolution",
                 "value": "cargo tree -p prefiq-cli -e normal" if exact else "workspace-wide"},
            ],
        },
        "components": components,
        "dependencies": dependencies,
    }
    body = json.dumps(document, sort_keys=True).encode()
    digest = hashlib.sha256(body).hexdigest()
    document["serialNumber"] = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"codexion-sbom:{digest}"))
    return document


def check(document: dict) -> list[str]:
    """Problems with `document` as a CycloneDX 1.5 SBOM of crates; empty when none."""
    problems = []
    for key, want in [("bomFormat", "CycloneDX"), ("specVersion", SPEC_VERSION)]:
        if document.get(key) != want:
            problems.append(f"{key} is {document.get(key)!r}, not {want!r}")
    if not isinstance(document.get("version"), int) or document["version"] < 1:
        problems.append("version must be an integer >= 1")
    serial = document.get("serialNumber", "")
    if not re.fullmatch(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", serial):
        problems.append(f"serialNumber {serial!r} is not a urn:uuid")
    metadata = document.get("metadata", {})
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", metadata.get("timestamp", "")):
        problems.append("metadata.timestamp is not an ISO 8601 UTC time")
    main = metadata.get("component")
    if not main or main.get("type") != "application" or not main.get("name"):
        problems.append("metadata.component must be the application")
    components = document.get("components")
    if not isinstance(components, list) or not components:
        problems.append("components must be a non-empty list")
        components = []
    refs = set()
    for c in [main or {}] + components:
        name = c.get("name", "?")
        for field in ("type", "name", "version", "bom-ref"):
            if not c.get(field):
                problems.append(f"component {name}: no {field}")
        if c.get("type") not in {"application", "library", "framework", "file"}:
            problems.append(f"component {name}: type {c.get('type')!r}")
        if c.get("bom-ref") in refs:
            problems.append(f"component {name}: bom-ref {c.get('bom-ref')} is not unique")
        refs.add(c.get("bom-ref"))
        crates_io = any(p.get("value") == "crates.io" for p in c.get("properties", []))
        if crates_io:
            if c.get("purl") != f"pkg:cargo/{c.get('name')}@{c.get('version')}":
                problems.append(f"component {name}: purl {c.get('purl')!r}")
            if not c.get("hashes"):
                problems.append(f"component {name}: no SHA-256 from Cargo.lock")
        licences = c.get("licenses")
        if not licences:
            problems.append(f"component {name}: no licence")
        for entry in licences or []:
            if not ("expression" in entry or "license" in entry):
                problems.append(f"component {name}: a licence entry without expression or license")
    for d in document.get("dependencies", []):
        if d.get("ref") not in refs:
            problems.append(f"dependency ref {d.get('ref')} names no component")
        for target in d.get("dependsOn", []):
            if target not in refs:
                problems.append(f"{d.get('ref')} depends on {target}, which is no component")
    if main and main.get("bom-ref") not in {d.get("ref") for d in document.get("dependencies", [])}:
        problems.append("the application has no entry in dependencies")
    problems.extend(schema_problems(document))
    return problems


def schema_problems(document: dict) -> list[str]:
    """Validation against the official schema, when cyclonedx-python-lib is installed."""
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        print("sbom: cyclonedx-python-lib not installed; official schema validation skipped", file=sys.stderr)
        return []
    try:
        error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(document))
    except Exception as e:  # the json-validation extra (jsonschema) may be missing
        print(f"sbom: official schema validation unavailable: {e}", file=sys.stderr)
        return []
    if error is not None:
        return [f"the CycloneDX 1.5 schema refuses the document: {error}"]
    print("sbom: the CycloneDX 1.5 JSON schema (cyclonedx-python-lib) accepts the document", file=sys.stderr)
    return []


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(root / "target" / "sbom" / "prefiq.cdx.json"))
    parser.add_argument("--target", help="the platform triple (default: rustc's host)")
    parser.add_argument("--check-only", metavar="FILE", help="check FILE instead of writing one")
    parser.add_argument("--workspace-features", action="store_true",
                        help="keep every crate of cargo metadata's workspace-wide resolve")
    args = parser.parse_args()
    if args.check_only:
        document = json.loads(Path(args.check_only).read_text())
        out = Path(args.check_only)
    else:
        target = args.target or host_triple(root)
        document = build(root, target, exact=not args.workspace_features)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2) + "\n")
    problems = check(document)
    if problems:
        for p in problems:
            print(f"sbom: {out}: {p}", file=sys.stderr)
        return 1
    licences: dict[str, int] = {}
    for c in document["components"]:
        for entry in c.get("licenses", []):
            key = entry.get("expression") or entry.get("license", {}).get("name", "?")
            licences[key] = licences.get(key, 0) + 1
    print(f"sbom: {out}: CycloneDX {document['specVersion']}, {len(document['components'])} components, "
          f"{sum(len(d['dependsOn']) for d in document['dependencies'])} dependency edges, "
          f"{len(licences)} distinct licence expressions")
    if os.environ.get("SBOM_LICENCES"):
        for key, count in sorted(licences.items(), key=lambda kv: -kv[1]):
            print(f"  {count:4}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
