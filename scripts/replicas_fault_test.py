#!/usr/bin/env python3
"""Two `prefiq serve` replicas on one PostgreSQL, with real processes.

    scripts/replicas-fault-test.sh [WRITES] [SCHEDULE_S]

Starts two replicas, A and B, on a fresh PostgreSQL database (PREFIQ_PG_ADMIN_URL, by
default the machine's postgres://postgres@127.0.0.1:5432/test, is where it is made), with
their cache invalidations on the machine's Redis (REDIS_URL, default
redis://127.0.0.1:6379). Then:

1. Jobs run once. The tenant `acme` has a webhook to a receiver in this script; eight
   clients create WRITES todos (default 10,000), half through each replica. Each create
   is an event, relayed once across the replicas, and each event a unique delivery job,
   which either replica's runner may claim. Once the queue drains, every job is
   `succeeded` after exactly one attempt, the receiver saw each event exactly once, and
   each replica's /metrics shows it ran some of them.
2. A schedule fires once per due time. An every-second schedule is created through A's
   API and left for SCHEDULE_S seconds (default 10) while both replicas tick; then it is
   disabled. There is one job per due time, no two within a second, and the record's
   `runs` equals the jobs that ran.
3. The cache invalidates across replicas. With entries trusted for five minutes (and
   for a minute even without a transport), a key used through B and then revoked
   through A is refused by B within two seconds; a session used through B and signed
   out through A likewise; and a tenant suspended by `prefiq tenant suspend` (a third
   process) likewise.

It exits non-zero naming what failed. Traffic stays on 127.0.0.1.
"""

import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

WRITES = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
SCHEDULE_S = float(sys.argv[2]) if len(sys.argv) > 2 else 10
BIN = os.environ.get("PREFIQ_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "target", "debug", "prefiq")
ADMIN_URL = os.environ.get("PREFIQ_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
PASSWORD = "correct horse battery"
DATABASE = f"codexion_replicas_{os.getpid()}"
DB_URL = re.sub(r"/[^/]*$", "/" + DATABASE, ADMIN_URL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def psql(url, sql):
    out = subprocess.run(["psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


work = tempfile.mkdtemp(prefix="replicas-fault-")
ports = {"a": free_port(), "b": free_port()}
receiver_port = free_port()
env = dict(
    os.environ,
    PREFIQ__DATABASE__URL=DB_URL,
    PREFIQ__CACHE__REDIS_URL=REDIS_URL,
    PREFIQ__CACHE__CHANNEL=f"codexion-cache.replicas.{os.getpid()}",
    # Without the invalidations, B would trust what it cached for a minute at least.
    PREFIQ__CACHE__UNSHARED_TTL_MS="60000",
    PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE="10000000",
    PREFIQ__SERVER__LOGIN_RATE_LIMIT_PER_MINUTE="100000",
    PREFIQ__LOG__LEVEL="warn",
    PREFIQ_ADMIN_PASSWORD=PASSWORD,
)
processes = {}


def start(name):
    processes[name] = subprocess.Popen(
        [BIN, "serve", "--port", str(ports[name])], cwd=work, env=env,
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"serve-{name}.log"), "a"))
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/readyz", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"replica {name} did not become ready; see {work}/serve-{name}.log")


def call(name, method, path, body=None, token=None, timeout=10):
    request = urllib.request.Request(f"http://127.0.0.1:{ports[name]}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Tenant", "acme")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def metric(name, pattern):
    """The sum of the samples of /metrics on replica `name` whose line matches `pattern`."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if not line.startswith("#") and re.search(pattern, line))


# The receiver counts deliveries per event id.
received = {}
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with lock:
            event = self.headers.get("webhook-id")
            received[event] = received.get(event, 0) + 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


failures = []


def expect(condition, message):
    if condition:
        log("ok: " + message)
    else:
        log("FAILED: " + message)
        failures.append(message)


def jobs_run_once(token):
    status, hook = call("a", "POST", "/api/v1/webhooks",
                        {"url": f"http://127.0.0.1:{receiver_port}/hook", "events": ["todo.created"]}, token)
    assert status == 201, hook
    acked = []
    next_write = iter(range(WRITES))

    def client(n):
        replica = "a" if n % 2 == 0 else "b"
        while True:
            with lock:
                i = next(next_write, None)
            if i is None:
                return
            status, body = call(replica, "POST", "/api/v1/resources/todo", {"description": f"#{i}"}, token)
            if status == 201:
                with lock:
                    acked.append(body["id"])
            else:
                with lock:
                    failures.append(f"a create through {replica} answered {status}: {body}")
                return

    started = time.time()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    log(f"{len(acked)} creates acknowledged in {time.time() - started:.1f} s; waiting for the deliveries")
    deadline = time.time() + 300
    while True:
        waiting = int(psql(DB_URL, "SELECT count(*) FROM prefiq_jobs WHERE kind = 'webhooks.deliver' "
                                   "AND state NOT IN ('succeeded', 'dead', 'cancelled')"))
        with lock:
            seen = len(received)
        if (waiting == 0 and seen >= len(acked)) or time.time() > deadline:
            break
        time.sleep(0.5)
    log(f"drained in {time.time() - started:.1f} s")
    jobs = psql(DB_URL, "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded' AND attempts = 1) "
                        "FROM prefiq_jobs WHERE kind = 'webhooks.deliver'").split("|")
    expect(len(acked) == WRITES, f"all {WRITES} creates were acknowledged ({len(acked)})")
    expect(int(jobs[0]) == WRITES, f"one delivery job per event ({jobs[0]} jobs for {WRITES} events)")
    expect(int(jobs[1]) == int(jobs[0]), f"every job succeeded after exactly one attempt ({jobs[1]} of {jobs[0]})")
    with lock:
        twice = sum(1 for n in received.values() if n > 1)
        seen = len(received)
    expect(seen == WRITES and twice == 0,
           f"the receiver saw each event exactly once ({seen} events, {twice} more than once)")
    ran = {name: metric(name, r'^prefiq_jobs_total\{.*kind="webhooks\.deliver".*outcome="succeeded"') for name in ports}
    expect(all(n > 0 for n in ran.values()) and sum(ran.values()) == WRITES,
           f"both replicas ran deliveries: A {ran['a']:.0f}, B {ran['b']:.0f}, together {sum(ran.values()):.0f}")


def schedule_fires_once(token):
    status, created = call("a", "POST", "/api/v1/resources/schedule",
                           {"title": "every second", "cron": "* * * * * *", "catch_up": "none"}, token)
    assert status == 201, created
    schedule = created["id"]
    log(f"an every-second schedule ticks on both replicas for {SCHEDULE_S:g} s")
    time.sleep(SCHEDULE_S)
    # A run already queued when the schedule is disabled finds it disabled and succeeds
    # without counting; only runs that finished before the disabling was sent must count.
    disabling_sent_ms = int(time.time() * 1000)
    status, body = call("a", "PATCH", f"/api/v1/resources/schedule/{schedule}", {"enabled": False}, token)
    assert status == 200, body
    deadline = time.time() + 30
    while True:
        waiting = int(psql(DB_URL, "SELECT count(*) FROM prefiq_jobs WHERE kind = 'schedules.fire' "
                                   "AND state NOT IN ('succeeded', 'dead', 'cancelled')"))
        if waiting == 0 or time.time() > deadline:
            break
        time.sleep(0.2)
    rows = psql(DB_URL, f"SELECT run_at, state, attempts, coalesce(finished_at, 0) FROM prefiq_jobs "
                        f"WHERE kind = 'schedules.fire' "
                        f"AND payload::text LIKE '%{schedule}%' ORDER BY run_at").splitlines()
    due = [int(r.split("|")[0]) for r in rows]
    succeeded = sum(1 for r in rows if r.split("|")[1] == "succeeded")
    before_disabling = sum(1 for r in rows
                           if r.split("|")[1] == "succeeded" and int(r.split("|")[3]) < disabling_sent_ms)
    _, record = call("b", "GET", f"/api/v1/resources/schedule/{schedule}", token=token)
    expect(len(due) >= SCHEDULE_S - 2, f"the schedule was due {len(due)} times in {SCHEDULE_S:g} s")
    expect(len(set(due)) == len(due) and all(b - a >= 1000 for a, b in zip(due, due[1:])),
           "one job per due time, none within a second of another")
    runs = record.get("runs")
    expect(isinstance(runs, int) and before_disabling <= runs <= succeeded,
           f"the record counts every run once (runs {runs}; jobs succeeded {succeeded}, "
           f"{before_disabling} of them before the schedule was disabled)")
    ticks = {name: metric(name, r'^prefiq_jobs_total\{.*kind="schedules\.fire".*outcome="succeeded"') for name in ports}
    log(f"runs by replica: A {ticks['a']:.0f}, B {ticks['b']:.0f}")


def refused_by_b_within(what, path, token, seconds=2.0):
    started = time.time()
    while time.time() - started < seconds:
        status, _ = call("b", "GET", path, token=token)
        if status == 401:
            expect(True, f"{what} was refused by B {1000 * (time.time() - started):.0f} ms after A's change")
            return
        time.sleep(0.01)
    expect(False, f"{what} was still accepted by B {seconds:g} s after A's change")


def cache_invalidates_across_replicas(token, refresh):
    status, key = call("a", "POST", "/api/v1/auth/api-keys", {"name": "replicas"}, token)
    assert status == 201, key
    status, _ = call("b", "GET", "/api/v1/resources/todo?limit=1", token=key["key"])
    assert status == 200, status
    status, _ = call("a", "DELETE", f"/api/v1/auth/api-keys/{key['id']}", token=token)
    assert status in (200, 204), status
    refused_by_b_within("an API key revoked through A", "/api/v1/resources/todo?limit=1", key["key"])

    status, _ = call("b", "GET", "/api/v1/resources/todo?limit=1", token=token)
    assert status == 200, status
    status, body = call("a", "POST", "/api/v1/auth/logout", {"refresh_token": refresh})
    assert status in (200, 204), body
    refused_by_b_within("a session signed out through A", "/api/v1/resources/todo?limit=1", token)

    _, session = call("a", "POST", "/api/v1/auth/login", {"email": "admin@acme.test", "password": PASSWORD})
    fresh = session["access_token"]
    status, _ = call("b", "GET", "/api/v1/resources/todo?limit=1", token=fresh)
    assert status == 200, status
    # An operator's CLI is a third process: it publishes the invalidation as it exits.
    subprocess.run([BIN, "tenant", "suspend", "acme"], cwd=work, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    refused_by_b_within("a tenant suspended by `prefiq tenant suspend`", "/api/v1/resources/todo?limit=1", fresh)


def main():
    psql(ADMIN_URL, f"CREATE DATABASE {DATABASE}")
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        subprocess.run([BIN, "tenant", "create", "acme", "--admin-email", "admin@acme.test"],
                       cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
        start("a")
        start("b")
        status, session = call("a", "POST", "/api/v1/auth/login", {"email": "admin@acme.test", "password": PASSWORD})
        assert status == 200, session
        token = session["access_token"]
        jobs_run_once(token)
        schedule_fires_once(token)
        cache_invalidates_across_replicas(token, session["refresh_token"])
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        psql(ADMIN_URL, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    if failures:
        print("replicas fault test FAILED:\n- " + "\n- ".join(failures), file=sys.stderr)
        print(f"logs: {work}", file=sys.stderr)
        sys.exit(1)
    log("replicas fault test passed")


main()
