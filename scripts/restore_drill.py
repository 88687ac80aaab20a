#!/usr/bin/env python3
"""The restore drill: write data, back up (online, under a write load), destroy, restore,
and check that everything came back. Run by scripts/restore-drill.sh for each backend.

    restore_drill.py BIN sqlite
    restore_drill.py BIN postgres POSTGRES_URL

Checked after the restore:
  - `prefiq restore` verified every audit log, against a checkpoint signed before the
    backup and kept outside the server;
  - every record written before the backup is back, with its custom field's value;
  - the runtime entity and its record are back;
  - the company's balances are identical;
  - the journal imported during the backup is wholly present or wholly absent, and every
    journal entry's postings balance;
  - the users can log in again.
Also: a restore into an installation holding data is refused without --force; a backup
cut short and a backup with one changed byte are refused naming what does not match; a
backup killed with SIGKILL leaves no file under the name asked for.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

BIN = os.path.abspath(sys.argv[1])
BACKEND = sys.argv[2]
PG_URL = sys.argv[3] if len(sys.argv) > 3 else None
PORT = int(os.environ.get("RESTORE_DRILL_PORT", "4981"))
# `shared` (one database) or `database` (a database per tenant).
TENANCY = os.environ.get("RESTORE_DRILL_TENANCY", "shared")
PASSWORD = "correct horse battery"
BASE = f"http://127.0.0.1:{PORT}"


def fail(message):
    print(f"restore drill ({BACKEND}, {TENANCY} tenancy): FAILED: {message}", flush=True)
    sys.exit(1)


def step(message):
    print(f"restore drill ({BACKEND}, {TENANCY} tenancy): {message}", flush=True)


class Site:
    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix=f"restore-drill-{name}-")
        self.env = dict(os.environ, PREFIQ__LOG__LEVEL="warn", PREFIQ_ADMIN_PASSWORD=PASSWORD,
                        PREFIQ__DATABASE__TENANCY=TENANCY)
        self.database = None
        if BACKEND == "postgres":
            self.database = f"drill_{name}_{os.getpid()}"
            self.drop_databases()
            psql(f'CREATE DATABASE "{self.database}"')
            base = PG_URL.rsplit("/", 1)[0]
            self.env["PREFIQ__DATABASE__URL"] = f"{base}/{self.database}"
        self.server = None

    def run(self, *args, ok=True, timeout=300):
        done = subprocess.run([BIN, *args], cwd=self.dir, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if ok and done.returncode != 0:
            fail(f"prefiq {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-800:]}")
        return done

    def serve(self):
        self.server = subprocess.Popen([BIN, "serve", "--port", str(PORT)], cwd=self.dir,
                                       env=self.env, stdout=subprocess.DEVNULL,
                                       stderr=open(os.path.join(self.dir, "serve.log"), "a"))
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{BASE}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if self.server.poll() is not None:
                break
            time.sleep(0.1)
        fail("the server did not become ready: " + open(os.path.join(self.dir, "serve.log")).read()[-800:])

    def stop(self):
        if self.server:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(timeout=60)
            self.server = None

    def drop_databases(self, check=True):
        psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)', check=check)
        psql(f'DROP DATABASE IF EXISTS "{self.database}__acme" WITH (FORCE)', check=check)

    def destroy(self):
        self.stop()
        shutil.rmtree(os.path.join(self.dir, "data"), ignore_errors=True)
        if self.database:
            self.drop_databases()
            # A PostgreSQL installation is restored into an empty database made for it.
            psql(f'CREATE DATABASE "{self.database}"')

    def cleanup(self):
        self.stop()
        if self.database:
            self.drop_databases(check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def psql(sql, check=True, database=None):
    url = PG_URL if database is None else PG_URL.rsplit("/", 1)[0] + "/" + database
    done = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-qAt", url, "-c", sql],
                          capture_output=True, text=True)
    if check and done.returncode != 0:
        fail(f"psql: {done.stderr.strip()}")
    return done.stdout


def call(method, path, token=None, body=None, tenant="acme", expect=(200, 201)):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Tenant", tenant)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    if expect and status not in expect:
        fail(f"{method} {path} answered {status}: {text[:500]}")
    return status, (json.loads(text) if text else None)


def login():
    _, body = call("POST", "/api/v1/auth/login", body={"email": "admin@acme.test", "password": PASSWORD})
    return body["access_token"]


def all_rows(token, entity, fields):
    rows, cursor = [], None
    while True:
        query = f"/api/v1/resources/{entity}?limit=500"
        if fields:
            query += "&fields=" + urllib.parse.quote(json.dumps(fields))
        if cursor:
            query += "&cursor=" + urllib.parse.quote(cursor)
        _, body = call("GET", query, token)
        rows.extend(body["data"])
        cursor = body.get("next_cursor")
        if not cursor:
            return rows


def balances(site, company):
    return site.run("accounting", "balance", "--company", company, "--tenant", "acme").stdout


def query(site, sql):
    # The ledger and the documents are tenant data: in `database` tenancy they live in
    # the tenant's own database.
    if BACKEND == "postgres":
        database = site.database + ("__acme" if TENANCY == "database" else "")
        return psql(sql, database=database).split()
    file = "tenants/acme.db" if TENANCY == "database" else "codexion.db"
    done = subprocess.run(["sqlite3", os.path.join(site.dir, "data", file), sql],
                          capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"sqlite3: {done.stderr.strip()}")
    return done.stdout.split()


def journal_check(site):
    """Every journal entry's postings are present or absent together: each submitted
    entry has postings, every posted entry is a submitted one, and each balances."""
    without = query(site, "SELECT count(*) FROM journal_entry je WHERE je.tenant_id = 'acme' "
                          "AND je.docstatus = 1 AND NOT EXISTS (SELECT 1 FROM ledger_posting p "
                          "WHERE p.tenant_id = je.tenant_id AND p.journal_entry = je.id)")
    orphans = query(site, "SELECT count(DISTINCT p.journal_entry) FROM ledger_posting p WHERE "
                          "p.tenant_id = 'acme' AND NOT EXISTS (SELECT 1 FROM journal_entry je "
                          "WHERE je.tenant_id = p.tenant_id AND je.id = p.journal_entry)")
    unbalanced = query(site, "SELECT count(*) FROM (SELECT journal_entry FROM ledger_posting "
                             "WHERE tenant_id = 'acme' GROUP BY journal_entry "
                             "HAVING sum(debit) <> sum(credit)) u")
    entries = query(site, "SELECT count(*) FROM journal_entry WHERE tenant_id = 'acme' AND docstatus = 1")
    if without != ["0"] or orphans != ["0"] or unbalanced != ["0"]:
        fail(f"journal entries without postings {without}, postings without their entry {orphans}, "
             f"unbalanced entries {unbalanced}")
    step(f"{entries[0]} submitted journal entries, each with all its postings, each balanced")


def write_load(token, stop, acked):
    n = 0
    while not stop.is_set() and n < 5000:
        n += 1
        try:
            status, body = call("POST", "/api/v1/resources/todo", token,
                                {"description": f"load {n}"}, expect=None)
        except OSError:
            return
        if status == 201:
            acked.append(body["id"])


def truncated_and_damaged(site, backup):
    size = os.path.getsize(backup)
    cut = os.path.join(site.dir, "cut.backup")
    with open(backup, "rb") as source, open(cut, "wb") as out:
        out.write(source.read(size // 2))
    done = site.run("restore", cut, "--check-only", ok=False)
    if done.returncode == 0 or "refused" not in done.stderr:
        fail(f"a backup cut in half was not refused: {done.stderr.strip()}")
    step("a backup cut in half is refused: " + done.stderr.strip().splitlines()[-1][:160])
    damaged = os.path.join(site.dir, "damaged.backup")
    shutil.copy(backup, damaged)
    with open(damaged, "r+b") as out:
        # A byte inside the first member's data (after its 512-byte tar header).
        out.seek(512 + 4096)
        byte = out.read(1)
        out.seek(512 + 4096)
        out.write(bytes([byte[0] ^ 0xFF]))
    done = site.run("restore", damaged, "--check-only", ok=False)
    if done.returncode == 0 or "databases/main" not in done.stderr:
        fail(f"a damaged backup was not refused naming its member: {done.stderr.strip()}")
    step("a backup with one changed byte is refused: " + done.stderr.strip().splitlines()[-1][:200])


def killed_backups(site, rounds=3):
    for round_ in range(rounds):
        target = os.path.join(site.dir, f"killed-{round_}.backup")
        partial = target + ".partial"
        process = subprocess.Popen([BIN, "backup", "--to", target], cwd=site.dir, env=site.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill it once it has begun writing, at a random moment.
        for _ in range(2000):
            if os.path.exists(partial) or process.poll() is not None:
                break
            time.sleep(0.002)
        time.sleep(random.random() * 0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode == 0:
            step(f"SIGKILL round {round_}: the backup finished before the kill")
            continue
        if os.path.exists(target):
            fail(f"a backup killed by SIGKILL left {target}, which looks complete")
        if os.path.exists(partial):
            done = site.run("restore", partial, "--check-only", ok=False)
            if done.returncode == 0:
                fail("the partial file of a killed backup passed the check")
        step(f"SIGKILL round {round_}: no file under the name asked for; the partial one is refused")


def scheduled_backups(site):
    """`backup.schedule` runs the backup as a job; `backup.keep` bounds the folder."""
    site.env["PREFIQ__BACKUP__SCHEDULE"] = "*/2 * * * * *"
    site.env["PREFIQ__BACKUP__KEEP"] = "2"
    folder = os.path.join(site.dir, "data", "backups")
    site.serve()
    seen, deadline = set(), time.monotonic() + 60
    try:
        while len(seen) < 4 and time.monotonic() < deadline:
            if os.path.isdir(folder):
                seen.update(n for n in os.listdir(folder) if n.endswith(".backup"))
                if len([n for n in os.listdir(folder) if n.endswith(".backup")]) > 2:
                    fail(f"more than backup.keep = 2 backups in {folder}: {os.listdir(folder)}")
            time.sleep(0.2)
    finally:
        site.stop()
        del site.env["PREFIQ__BACKUP__SCHEDULE"], site.env["PREFIQ__BACKUP__KEEP"]
    left = sorted(n for n in os.listdir(folder) if n.endswith(".backup")) if os.path.isdir(folder) else []
    if len(seen) < 4 or len(left) != 2:
        fail(f"scheduled backups: {len(seen)} written in 60 s, {len(left)} kept (expected at least 4 and 2)")
    for name in left:
        site.run("restore", os.path.join(folder, name), "--check-only")
    step(f"scheduled backups: {len(seen)} written by the job, the newest 2 kept, each complete")


def older_backup():
    """A backup taken before the binary's newest migration restores, migrates, and
    verifies: an installation has a migration undone (as an older binary left it), is
    backed up, and is restored into an empty folder."""
    if BACKEND != "sqlite" or TENANCY != "shared":
        return
    old = Site("old")
    new = Site("new")
    try:
        old.run("tenant", "create", "acme", "--admin-email", "admin@acme.test")
        database = os.path.join(old.dir, "data", "codexion.db")
        undo = ("DROP TABLE stock_reorder_draft; DELETE FROM prefiq_migrations "
                "WHERE module = 'stock' AND id = '0005_stock_reorder_drafts';")
        done = subprocess.run(["sqlite3", database, undo], capture_output=True, text=True)
        if done.returncode != 0:
            fail(f"sqlite3: {done.stderr.strip()}")
        backup = os.path.join(old.dir, "old.backup")
        old.run("backup", "--to", backup, "--include-keys")
        done = new.run("restore", backup)
        if "migrated: 1 migration(s) applied" not in done.stdout:
            fail(f"the restore of an older backup did not migrate it: {done.stdout}")
        tables = query(new, "SELECT count(*) FROM sqlite_master WHERE name = 'stock_reorder_draft'")
        if tables != ["1"]:
            fail("the migration the older backup lacked was not applied")
        step("a backup older than the binary is restored, migrated (1 migration) and verified")
    finally:
        old.cleanup()
        new.cleanup()


def rotate_audit_key(site):
    """The audit key is rotated: the old public key goes to audit.retired_public_keys,
    checkpoints it signed keep verifying, and new ones are signed with the new key."""
    if BACKEND != "sqlite" or TENANCY != "shared":
        return
    site.run("audit", "checkpoint")
    old = site.run("audit", "public-key").stdout.strip()
    key_file = os.path.join(site.dir, "data", "audit-ed25519.key")
    with open(key_file, "w") as out:
        out.write(os.urandom(32).hex() + "\n")
    os.chmod(key_file, 0o600)
    if site.run("audit", "verify", ok=False).returncode == 0:
        fail("the log verified with a new key and the old one not listed")
    os.makedirs(os.path.join(site.dir, "config"), exist_ok=True)
    with open(os.path.join(site.dir, "config", "base.yaml"), "a") as out:
        out.write(f"audit:\n  retired_public_keys: [\"{old}\"]\n")
    site.run("audit", "verify")
    site.run("tenant", "create", "rotated", "--admin-email", "admin@rotated.test")
    site.run("audit", "checkpoint")
    done = site.run("audit", "verify")
    if site.run("audit", "public-key").stdout.strip() == old:
        fail("the public key did not change")
    step("the audit key rotated: old checkpoints verify through audit.retired_public_keys, new ones are signed with the new key")


def main():
    random.seed(os.getpid())
    source = Site("a")
    try:
        step("write data")
        source.run("tenant", "create", "acme", "--admin-email", "admin@acme.test")
        journal = os.path.join(source.dir, "drill.journal")
        source.run("accounting", "generate", "--postings", "3000", "--to", journal)
        source.run("accounting", "import", journal, "--company", "Drill", "--tenant", "acme",
                   "--create-currency", "USD")
        late_journal = os.path.join(source.dir, "late.journal")
        source.run("accounting", "generate", "--postings", "1500", "--to", late_journal)
        before_balances = balances(source, "Drill")
        source.serve()
        token = login()
        call("POST", "/api/v1/customize/todo/fields", token,
             {"name": "cf_colour", "type": "data", "label": "Colour"})
        call("POST", "/api/v1/customize/entities", token,
             {"name": "vehicle", "fields": [{"name": "plate", "type": "data", "unique": True}]})
        call("POST", "/api/v1/resources/vehicle", token, {"plate": "AB-123"})
        written = {}
        for i in range(50):
            _, body = call("POST", "/api/v1/resources/todo", token,
                           {"description": f"before {i}", "custom": {"cf_colour": f"c{i}"}})
            written[body["id"]] = f"c{i}"
        source.run("audit", "checkpoint")
        _, checkpoint = call("GET", "/api/v1/audit/checkpoint", token)
        checkpoint_file = os.path.join(source.dir, "checkpoint.json")
        with open(checkpoint_file, "w") as out:
            json.dump(checkpoint, out)

        step("back up online under a write load (API creates and a journal import)")
        stop, acked = threading.Event(), []
        load = threading.Thread(target=write_load, args=(token, stop, acked))
        load.start()
        importer = subprocess.Popen([BIN, "accounting", "import", late_journal, "--company", "Late",
                                     "--tenant", "acme", "--create-currency", "USD"],
                                    cwd=source.dir, env=source.env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        # The import may finish before the snapshot or not: either way it must come back
        # whole or not at all.
        time.sleep(0.2 + random.random() * 1.5)
        backup = os.path.join(source.dir, "drill.backup")
        started = time.monotonic()
        done = source.run("backup", "--to", backup, "--include-keys")
        seconds = time.monotonic() - started
        stop.set()
        load.join()
        importer.wait(timeout=300)
        step(f"{done.stdout.strip()} in {seconds:.2f} s; {len(acked)} creates acknowledged during the load")
        if "--include-keys puts" not in done.stderr:
            fail("--include-keys did not warn")
        late_balances = balances(source, "Late") if importer.returncode == 0 else None

        step("bad input: damaged and cut backups, a restore over data")
        truncated_and_damaged(source, backup)
        source.stop()
        done = source.run("restore", backup, ok=False)
        if done.returncode == 0 or "not empty" not in done.stderr:
            fail(f"a restore into an installation holding data was not refused: {done.stderr.strip()}")
        step("a restore over data without --force is refused")

        step("destroy, then restore")
        source.destroy()
        done = source.run("restore", backup, "--checkpoint", checkpoint_file, ok=False)
        if done.returncode != 0:
            fail(f"the restore failed: {done.stdout} {done.stderr.strip()}")
        if "every audit log verified" not in done.stdout:
            fail(f"the restore did not report a verified audit log: {done.stdout}")
        print(done.stdout, end="")

        step("everything is back")
        if balances(source, "Drill") != before_balances:
            fail("the company's balances differ after the restore")
        late_now = source.run("accounting", "balance", "--company", "Late", "--tenant", "acme", ok=False)
        if late_now.returncode == 0 and late_now.stdout.strip():
            if late_balances is not None and late_now.stdout != late_balances:
                fail("the journal imported during the backup came back in part")
            step("the journal imported during the backup is wholly present")
        else:
            step("the journal imported during the backup is wholly absent")
        journal_check(source)
        source.serve()
        token = login()
        todos = {row["id"]: row for row in all_rows(token, "todo", None)}
        for record, colour in written.items():
            if record not in todos:
                fail(f"the record {record} written before the backup is missing")
            _, full = call("GET", f"/api/v1/resources/todo/{record}", token)
            if (full.get("custom") or {}).get("cf_colour") != colour:
                fail(f"the custom field of {record} is {full.get('custom')!r}, not {colour!r}")
        during = sum(1 for record in acked if record in todos)
        plates = [row["plate"] for row in all_rows(token, "vehicle", ["plate"])]
        if plates != ["AB-123"]:
            fail(f"the runtime entity's records are {plates}")
        step(f"{len(written)} records with their custom field, the runtime entity, balances and logins are back; "
             f"{during} of {len(acked)} creates acknowledged during the backup made it into the snapshot")
        source.stop()

        done = source.run("restore", backup, "--force")
        step("a forced restore over the installation works")

        scheduled_backups(source)
        older_backup()
        rotate_audit_key(source)

        step("SIGKILL during a backup")
        killed_backups(source)
        step("passed")
    finally:
        source.cleanup()


if __name__ == "__main__":
    main()
