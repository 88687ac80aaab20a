#!/usr/bin/env python3
"""Events, jobs and webhooks under faults, with real processes.

    scripts/events-fault-test.sh [KILLS] [NATS_OUTAGE_S] [RECEIVER_OUTAGE_S]

Serves an installation on embedded SQLite with its own NATS (JetStream) server, a
webhook of the tenant `acme` pointing at a receiver in this script, and four clients
creating todos. While they write:

- the server is killed with SIGKILL KILLS times at random moments and started again;
- NATS is stopped for NATS_OUTAGE_S seconds, then started again on the same store;
- the receiver answers 503 to everything for RECEIVER_OUTAGE_S seconds.

Then the load stops, the outbox and the webhook queue drain, and it checks that

- JetStream holds exactly the events the outbox holds (same ids, none twice);
- every create the server acknowledged (201) has its event in JetStream;
- every acknowledged create reached the receiver at least once, and every delivery
  verifies with the Standard Webhooks library (PyPI `standardwebhooks`).

It exits non-zero naming what failed. Traffic stays on 127.0.0.1.
"""

import asyncio
import http.server
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import nats
from standardwebhooks.webhooks import Webhook

KILLS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
NATS_OUTAGE_S = float(sys.argv[2]) if len(sys.argv) > 2 else 30
RECEIVER_OUTAGE_S = float(sys.argv[3]) if len(sys.argv) > 3 else 10
BIN = os.environ.get("PREFIQ_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "target", "debug", "prefiq")
NATS_SERVER = os.environ.get("NATS_SERVER", "nats-server")
PASSWORD = "correct horse battery"
STREAM = "FAULTS"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


work = tempfile.mkdtemp(prefix="events-fault-")
port, nats_port, receiver_port = free_port(), free_port(), free_port()
base = f"http://127.0.0.1:{port}"
nats_url = f"nats://127.0.0.1:{nats_port}"
env = dict(
    os.environ,
    PREFIQ__EVENTS__NATS_URL=nats_url,
    PREFIQ__EVENTS__STREAM=STREAM,
    PREFIQ__JOBS__MAX_BACKOFF_MS="4000",
    PREFIQ__JOBS__BACKOFF_MS="200",
    PREFIQ__SERVER__RATE_LIMIT_PER_MINUTE="10000000",
    PREFIQ__SERVER__LOGIN_RATE_LIMIT_PER_MINUTE="100000",
    PREFIQ__LOG__LEVEL="warn",
    PREFIQ_ADMIN_PASSWORD=PASSWORD,
)
processes = {}


def start_nats():
    processes["nats"] = subprocess.Popen(
        [NATS_SERVER, "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd", os.path.join(work, "nats")],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "nats.log"), "a"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", nats_port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nats-server did not start; see " + os.path.join(work, "nats.log"))


def stop_nats():
    processes["nats"].send_signal(signal.SIGTERM)
    processes["nats"].wait(10)


def start_server():
    processes["serve"] = subprocess.Popen(
        [BIN, "serve", "--port", str(port)], cwd=work, env=env,
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "serve.log"), "a"))
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("prefiq serve did not become ready; see " + os.path.join(work, "serve.log"))


def kill_server():
    processes["serve"].send_signal(signal.SIGKILL)
    processes["serve"].wait(10)


def call(method, path, body=None, token=None, timeout=5):
    request = urllib.request.Request(base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Tenant", "acme")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read() or b"null")


# The receiver: verifies every delivery with the Standard Webhooks library.
received = {}          # event id -> deliveries
bad_signatures = []
receiver_down_until = [0.0]
secret = [None]
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if time.time() < receiver_down_until[0]:
            self.send_response(503)
            self.end_headers()
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = Webhook(secret[0]).verify(body, headers)
        except Exception as e:  # noqa: BLE001 - any failure to verify is a finding
            with lock:
                bad_signatures.append(f"{headers.get('webhook-id')}: {e}")
            self.send_response(400)
            self.end_headers()
            return
        with lock:
            received.setdefault(headers["webhook-id"], []).append(payload["data"]["record_id"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


receiver = http.server.ThreadingHTTPServer(("127.0.0.1", receiver_port), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()

# Load: four clients creating todos; an acknowledged create is one answered 201.
acked = set()
stop_load = threading.Event()
token = [None]


def client(n):
    i = 0
    while not stop_load.is_set():
        i += 1
        try:
            status, body = call("POST", "/api/v1/resources/todo", {"description": f"client {n} #{i}"}, token[0], 3)
            if status == 201:
                with lock:
                    acked.add(body["id"])
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.05)


def main():
    start_nats()
    subprocess.run([BIN, "tenant", "create", "acme", "--admin-email", "admin@acme.test"],
                   cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
    start_server()
    _, session = call("POST", "/api/v1/auth/login", {"email": "admin@acme.test", "password": PASSWORD})
    token[0] = session["access_token"]
    status, hook = call("POST", "/api/v1/webhooks",
                        {"url": f"http://127.0.0.1:{receiver_port}/hook", "events": ["todo.created"]}, token[0])
    assert status == 201, hook
    secret[0] = hook["secret"]
    clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    for c in clients:
        c.start()

    for k in range(KILLS):
        time.sleep(random.uniform(1.0, 3.0))
        log(f"SIGKILL prefiq serve ({len(acked)} creates acknowledged so far)")
        kill_server()
        start_server()
    time.sleep(1)
    log(f"NATS stopped for {NATS_OUTAGE_S:g} s")
    stop_nats()
    time.sleep(NATS_OUTAGE_S)
    start_nats()
    log("NATS started again")
    time.sleep(1)
    log(f"the receiver answers 503 for {RECEIVER_OUTAGE_S:g} s")
    receiver_down_until[0] = time.time() + RECEIVER_OUTAGE_S
    time.sleep(RECEIVER_OUTAGE_S + 0.5)
    stop_load.set()
    for c in clients:
        c.join(10)
    log(f"load stopped: {len(acked)} creates acknowledged; waiting for the outbox and the webhooks to drain")

    db = sqlite3.connect(os.path.join(work, "data", "codexion.db"))
    deadline = time.time() + 180
    while True:
        pending = db.execute("SELECT count(*) FROM prefiq_outbox WHERE published_at IS NULL").fetchone()[0]
        waiting = db.execute(
            "SELECT count(*) FROM prefiq_jobs WHERE queue = 'webhooks' AND state NOT IN ('succeeded', 'dead', 'cancelled')"
        ).fetchone()[0]
        with lock:
            delivered = {r for rs in received.values() for r in rs}
        if pending == 0 and waiting == 0 and acked <= delivered:
            break
        if time.time() > deadline:
            break
        time.sleep(0.5)
    log(f"outbox pending {pending}, webhook jobs waiting {waiting}")
    outbox = {row[0]: row[1] for row in db.execute("SELECT id, record_id FROM prefiq_outbox WHERE entity = 'todo'")}
    dead = db.execute("SELECT count(*) FROM prefiq_jobs WHERE state = 'dead'").fetchone()[0]
    kill_server()

    async def stream_events():
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        info = await js.stream_info(STREAM)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(STREAM, seq)
            ids.append((message.headers or {}).get("Nats-Msg-Id"))
        await nc.close()
        return ids

    stream_ids = asyncio.run(stream_events())
    all_outbox = {row[0] for row in db.execute("SELECT id FROM prefiq_outbox")}
    failures = []
    if len(stream_ids) != len(set(stream_ids)):
        failures.append(f"JetStream holds {len(stream_ids) - len(set(stream_ids))} duplicate events")
    if set(stream_ids) != all_outbox:
        failures.append(f"JetStream and the outbox differ: {len(all_outbox - set(stream_ids))} events missing "
                        f"from JetStream, {len(set(stream_ids) - all_outbox)} not in the outbox")
    created_in_stream = {outbox[i] for i in stream_ids if i in outbox}
    if not acked <= created_in_stream:
        failures.append(f"{len(acked - created_in_stream)} acknowledged creates have no event in JetStream")
    with lock:
        delivered = {r for rs in received.values() for r in rs}
        deliveries = sum(len(rs) for rs in received.values())
    if not acked <= delivered:
        failures.append(f"{len(acked - delivered)} acknowledged creates never reached the receiver")
    if bad_signatures:
        failures.append(f"{len(bad_signatures)} deliveries failed verification, e.g. {bad_signatures[0]}")
    if dead:
        failures.append(f"{dead} jobs are dead")
    log(f"{len(acked)} acknowledged creates; {len(stream_ids)} events in JetStream, {len(all_outbox)} in the outbox; "
        f"{len(delivered)} records delivered in {deliveries} deliveries, all verified")
    if failures:
        for f in failures:
            log("FAILED: " + f)
        log("work directory kept: " + work)
        return 1
    log("ok")
    return 0


try:
    code = main()
finally:
    for process in processes.values():
        if process.poll() is None:
            process.kill()
    receiver.shutdown()
sys.exit(code)
