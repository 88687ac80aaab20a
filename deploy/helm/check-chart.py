#!/usr/bin/env python3
"""Lints and renders deploy/helm/codexion without a `helm` binary or a cluster.

    deploy/helm/check-chart.py

Helm itself is not installable from Debian, and its release binaries come from a host
these machines cannot reach. PyPI's `helm-python-sdk` wraps Helm v4's Go SDK (`helm lint`
and offline `helm template`) in a shared library: with it installed, this script runs
`lint --strict` and renders the chart for SQLite and for PostgreSQL (with and without the
migration Job), then checks what came out: every manifest parses as YAML, the kinds and
hooks expected are there, the probes and the security context are what docs say, and
the values that must fail (two replicas on SQLite, a malformed key) fail. Without it, it
parses Chart.yaml and values.yaml, checks that every template's actions balance, and says
that nothing was rendered.

Exits non-zero on any problem.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent / "codexion"
KEY_A = "a" * 64
KEY_B = "0123456789abcdef" * 4
problems: list[str] = []


def problem(text: str) -> None:
    problems.append(text)
    print(f"check-chart: FAIL {text}", file=sys.stderr)


def static_checks() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for key in ("apiVersion", "name", "version", "appVersion"):
        if not chart.get(key):
            problem(f"Chart.yaml has no {key}")
    if chart.get("apiVersion") != "v2":
        problem("Chart.yaml: apiVersion must be v2")
    yaml.safe_load((CHART / "values.yaml").read_text())
    opener = re.compile(r"\{\{-?\s*(if|range|with|define|block)\b")
    closer = re.compile(r"\{\{-?\s*end\s*-?\}\}")
    for template in sorted((CHART / "templates").iterdir()):
        text = template.read_text()
        if text.count("{{") != text.count("}}"):
            problem(f"{template.name}: unbalanced {{{{ and }}}}")
        opened, closed = len(opener.findall(text)), len(closer.findall(text))
        if opened != closed:
            problem(f"{template.name}: {opened} if/range/with/define but {closed} end")
    print("check-chart: Chart.yaml and values.yaml parse; every template's actions balance")


def render(helm, values: dict, **kw) -> dict[str, list[dict]]:
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values, name="erp", namespace="codexion", **kw)
    docs: dict[str, list[dict]] = {}
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        parsed = [d for d in yaml.safe_load_all(text) if d]
        for d in parsed:
            docs.setdefault(d["kind"], []).append(d)
    return docs


def container(docs, kind="Deployment") -> dict:
    return docs[kind][0]["spec"]["template"]["spec"]["containers"][0]


def env_of(c: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def hooks(docs) -> dict[str, str]:
    found = {}
    for kind, items in docs.items():
        for d in items:
            hook = (d["metadata"].get("annotations") or {}).get("helm.sh/hook")
            if hook:
                found[f"{kind}/{d['metadata']['name']}"] = hook
    return found


def rendered_checks(helm) -> None:
    report = helm.lint(str(CHART), {"signingKeys": {"audit": KEY_A, "token": KEY_B}}, strict=True)
    bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
    if bad:
        problem(f"helm lint --strict: {bad}")
    else:
        print(f"check-chart: helm lint --strict: {len(report.get('messages', []))} messages, no warning or error")

    # SQLite: one replica, a PVC, migrations at boot, no hook Job.
    sqlite = render(helm, {"signingKeys": {"audit": KEY_A, "token": KEY_B}}, is_install=True)
    kinds = sorted(sqlite)
    if kinds != ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Secret", "Service", "ServiceAccount"]:
        problem(f"SQLite render: kinds {kinds}")
    c = container(sqlite)
    if "--no-migrate" in c["args"]:
        problem("SQLite render: the server must migrate at boot")
    if hooks(sqlite):
        problem(f"SQLite render: unexpected hooks {hooks(sqlite)}")
    deployment = sqlite["Deployment"][0]["spec"]
    if deployment["strategy"]["type"] != "Recreate":
        problem("SQLite render: the strategy must be Recreate")
    if c["readinessProbe"]["httpGet"]["path"] != "/readyz" or c["livenessProbe"]["httpGet"]["path"] != "/healthz":
        problem("probes: readiness must be /readyz and liveness /healthz")
    security = c["securityContext"]
    pod_security = deployment["template"]["spec"]["securityContext"]
    if not (pod_security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and not security["allowPrivilegeEscalation"]):
        problem("security context: non-root, read-only root, no privilege escalation")
    env = env_of(c)
    if env.get("PREFIQ_ENV") != "production" or "PREFIQ__DATABASE__URL" in env:
        problem(f"SQLite render: environment {env}")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    if not {"/srv/codexion/data", "/srv/codexion/config", "/run/secrets/codexion", "/tmp"} <= mounts:
        problem(f"SQLite render: mounts {mounts}")
    secret = sqlite["Secret"][0]
    if secret["metadata"]["annotations"].get("helm.sh/resource-policy") != "keep":
        problem("the keys' Secret must be kept on uninstall")
    import base64
    if base64.b64decode(secret["data"]["audit-ed25519.key"]).decode() != KEY_A:
        problem("the audit key is not stored as given")
    print(f"check-chart: SQLite render: {', '.join(kinds)}; Recreate; migrations at boot; probes /readyz, /healthz")

    # PostgreSQL with NATS and Redis, three replicas: the migration Job as a hook.
    values = {
        "replicaCount": 3,
        "persistence": {"enabled": False},
        "database": {"url": "postgres://codexion:pw@db:5432/codexion"},
        "events": {"natsUrl": "nats://nats:4222"},
        "cache": {"redisUrl": "redis://redis:6379"},
        "telemetry": {"otlpEndpoint": "http://otel:4318"},
        "signingKeys": {"existingSecret": "codexion-keys"},
        "config": {"server": {"tenant_host_pattern": "{tenant}.erp.example.com"}},
    }
    pg = render(helm, values, is_upgrade=True)
    if "Job" not in pg or "PersistentVolumeClaim" in pg:
        problem(f"PostgreSQL render: kinds {sorted(pg)}")
    job = pg["Job"][0]
    annotations = job["metadata"]["annotations"]
    if annotations.get("helm.sh/hook") != "pre-install,pre-upgrade":
        problem(f"the migration Job's hook: {annotations}")
    if container(pg, "Job")["args"] != ["migrate"]:
        problem("the migration Job must run `prefiq migrate`")
    weights = {name: hook for name, hook in hooks(pg).items()}
    for needed in ("ConfigMap/erp-codexion", "Secret/erp-codexion-database", "ServiceAccount/erp-codexion"):
        if needed not in weights:
            problem(f"PostgreSQL render: {needed} must exist before the Job (a hook too); hooks: {weights}")
    c = container(pg)
    env = env_of(c)
    if "--no-migrate" not in c["args"] or pg["Deployment"][0]["spec"]["replicas"] != 3:
        problem("PostgreSQL render: servers start with --no-migrate, three replicas")
    for name in ("PREFIQ__DATABASE__URL", "PREFIQ__EVENTS__NATS_URL", "PREFIQ__CACHE__REDIS_URL", "PREFIQ__TELEMETRY__OTLP_ENDPOINT"):
        if name not in env:
            problem(f"PostgreSQL render: no {name}")
    if env["PREFIQ__DATABASE__URL"] != {"secretKeyRef": {"name": "erp-codexion-database", "key": "database-url"}}:
        problem(f"the database URL must come from the Secret: {env['PREFIQ__DATABASE__URL']}")
    config = yaml.safe_load(pg["ConfigMap"][0]["data"]["production.yaml"])
    if config != values["config"]:
        problem(f"config/production.yaml: {config}")
    if any(d["metadata"]["name"] == "erp-codexion-keys" for d in pg.get("Secret", [])):
        problem("with signingKeys.existingSecret the chart must not make a keys Secret")
    print(f"check-chart: PostgreSQL render: {', '.join(sorted(pg))}; hooks {sorted(weights.values())[:1]} on "
          f"{', '.join(sorted(weights))}; servers --no-migrate")

    # Values that must be refused.
    for label, bad_values in [
        ("two replicas on SQLite", {"replicaCount": 2, "signingKeys": {"audit": KEY_A, "token": KEY_B}}),
        ("a malformed audit key", {"signingKeys": {"audit": "abc", "token": KEY_B}}),
        ("no keys at all", {}),
        ("several replicas on one ReadWriteOnce volume",
         {"replicaCount": 2, "database": {"url": "postgres://x@db/x"}, "signingKeys": {"audit": KEY_A, "token": KEY_B}}),
    ]:
        try:
            render(helm, bad_values, is_install=True)
        except Exception as e:  # HelmRenderError
            print(f"check-chart: refused as it should be, {label}: {str(e).splitlines()[0][:160]}")
        else:
            problem(f"{label} was rendered; it must fail")


def main() -> int:
    static_checks()
    try:
        import helm_python as helm
    except ImportError:
        print("check-chart: helm-python-sdk is not installed (pip install helm-python-sdk): "
              "the chart was NOT linted or rendered", file=sys.stderr)
        return 1 if problems else 0
    rendered_checks(helm)
    if problems:
        print(f"check-chart: {len(problems)} problems", file=sys.stderr)
        return 1
    print("check-chart: the chart lints and renders as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
