//! `prefiq tenant export` and `prefiq tenant import`, run as an operator runs them: a
//! tenant with records, a custom field, a runtime entity and a submitted journal entry is
//! exported from a SQLite installation and imported under another name into PostgreSQL
//! (when `PREFIQ_TEST_POSTGRES_URL` names a server; SQLite again otherwise), and the two
//! must answer the same: record lists, the trial balance, and a verifying audit log.
#![allow(clippy::unwrap_used)]
// A server is waited for in `Server::stop`, and killed and reaped by `Drop` when a test fails.
#![allow(clippy::zombie_processes)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_prefiq");
const PASSWORD: &str = "correct horse";

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn prefiq(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("PREFIQ_ENV");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PREFIQ__")) {
        command.env_remove(key);
    }
    let out = command.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `args` and expects success.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = prefiq(dir, args);
    assert_eq!(out.code, 0, "{args:?}\n{}\n{}", out.stdout, out.stderr);
    out.stdout
}

/// Runs `args` and expects exit 1 with `expected` in the last line of stderr.
fn refused(dir: &Path, args: &[&str], expected: &str) {
    let out = prefiq(dir, args);
    assert_eq!(out.code, 1, "{args:?}\n{}\n{}", out.stdout, out.stderr);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(expected),
        "{args:?}: `{last}` lacks `{expected}`"
    );
}

/// One HTTP/1.1 request to `address` for `tenant`, with `token` if not empty.
fn request(
    address: &str,
    tenant: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nX-Tenant: {tenant}\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        if token.is_empty() {
            String::new()
        } else {
            format!("Authorization: Bearer {token}\r\n")
        },
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let json = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or_default())
        .unwrap_or_default();
    (status, json)
}

struct Server {
    child: Child,
    address: String,
    tenant: String,
    token: String,
}

fn serve(dir: &Path, tenant: &str, email: &str) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0"])
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!("serve exited:\n{log}");
        }
        log.push_str(&line);
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "listening"
        {
            let address = v["address"].as_str().unwrap().to_owned();
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            let mut server = Server {
                child,
                address,
                tenant: tenant.to_owned(),
                token: String::new(),
            };
            let (status, session) = server.login(email, PASSWORD);
            assert_eq!(status, 200, "{session}");
            server.token = session["access_token"].as_str().unwrap().to_owned();
            return server;
        }
    }
}

impl Server {
    fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.call(
            "POST",
            "/api/v1/auth/login",
            Some(json!({"email": email, "password": password})),
        )
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        request(&self.address, &self.tenant, &self.token, method, path, body)
    }

    fn create(&self, entity: &str, body: Value) -> String {
        let (status, created) =
            self.call("POST", &format!("/api/v1/resources/{entity}"), Some(body));
        assert_eq!(status, 201, "{entity}: {created}");
        created["id"].as_str().unwrap().to_owned()
    }

    fn list(&self, entity: &str) -> Value {
        let (status, body) = self.call(
            "GET",
            &format!("/api/v1/resources/{entity}?limit=500&order_by=name%20asc"),
            None,
        );
        assert_eq!(status, 200, "{entity}: {body}");
        body["data"].clone()
    }

    fn account(&self, company: &str, path: &str) -> String {
        let filters = json!([["company", "=", company], ["account_path", "=", path]]).to_string();
        let encoded: String = filters
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = self.call(
            "GET",
            &format!("/api/v1/resources/account?filters={encoded}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        body["data"][0]["id"].as_str().unwrap().to_owned()
    }

    fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A PostgreSQL database for one test, dropped at the end.
struct Postgres {
    admin: String,
    name: String,
    url: String,
}

impl Postgres {
    #[allow(clippy::print_stderr)]
    fn create() -> Option<Postgres> {
        let Ok(admin) = std::env::var("PREFIQ_TEST_POSTGRES_URL") else {
            eprintln!(
                "SKIPPED the PostgreSQL half of tenant_transfer: PREFIQ_TEST_POSTGRES_URL is not set; importing into SQLite instead"
            );
            return None;
        };
        let name = format!(
            "prefiq_tx_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        psql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Postgres { admin, name, url })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Tenant databases (database tenancy) are named `{main}__{tenant}`.
        let listed = Command::new("psql")
            .args([
                self.admin.as_str(),
                "-tAc",
                &format!(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, '{}__')",
                    self.name
                ),
            ])
            .output()
            .unwrap();
        let tenants = String::from_utf8_lossy(&listed.stdout).into_owned();
        for database in tenants.lines().chain(std::iter::once(self.name.as_str())) {
            psql(
                &self.admin,
                &format!("DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"),
            );
        }
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A source installation on SQLite with tenant `acme`: a company and its chart, a
/// customer with a custom field, a runtime entity with a row, and a submitted journal
/// entry.
fn source_installation() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(
        dir.path(),
        &[
            "tenant",
            "create",
            "acme",
            "--admin-email",
            "admin@acme.test",
            "--admin-password",
            PASSWORD,
        ],
    );
    let api = serve(dir.path(), "acme", "admin@acme.test");
    let company = api.create(
        "company",
        json!({"company_name": "Acme Ltd", "abbr": "ACME", "currency": "USD"}),
    );
    api.create(
        "fiscal_year",
        json!({"year_name": "FY 2026", "company": company, "start_date": "2026-01-01", "end_date": "2026-12-31"}),
    );
    let receivable = api.account(&company, "assets:current:receivable");
    let bank = api.account(&company, "assets:current:bank");
    let sales = api.account(&company, "income:sales");
    let (status, field) = api.call(
        "POST",
        "/api/v1/customize/customer/fields",
        Some(json!({"name": "region", "type": "data"})),
    );
    assert_eq!(status, 201, "{field}");
    api.create(
        "customer",
        json!({"customer_name": "Müller GmbH", "company": company, "receivable_account": receivable, "currency": "USD", "custom": {"region": "north"}}),
    );
    let (status, entity) = api.call(
        "POST",
        "/api/v1/customize/entities",
        Some(json!({"name": "vehicle", "fields": [{"name": "plate", "type": "data", "required": true}]})),
    );
    assert_eq!(status, 201, "{entity}");
    api.create("vehicle", json!({"plate": "B-XY 123"}));
    let entry = api.create(
        "journal_entry",
        json!({"company": company, "posting_date": "2026-03-10", "lines": [
            {"account": bank, "debit": {"amount": "250.00", "currency": "USD"}},
            {"account": sales, "credit": {"amount": "250.00", "currency": "USD"}},
        ]}),
    );
    let (status, submitted) = api.call(
        "POST",
        &format!("/api/v1/resources/journal_entry/{entry}/submit"),
        None,
    );
    assert_eq!(status, 200, "{submitted}");
    // A memory item: found by keyword through SQLite's FTS5 index (kept by a trigger)
    // or PostgreSQL's generated tsvector.
    let (status, item) = api.call(
        "POST",
        "/api/v1/memory/items",
        Some(json!({"text": "the beagle chewed the quarterly invoice"})),
    );
    assert_eq!(status, 201, "{item}");
    // Stock: a receipt and an issue; their ledger rows keep monthly totals by trigger,
    // which an import must not count a second time.
    let stock = api.account(&company, "assets:current:stock");
    let cogs = api.account(&company, "expenses:cost-of-goods-sold");
    let group = api.create(
        "warehouse",
        json!({"warehouse_name": "All Warehouses", "company": company, "is_group": true}),
    );
    let main = api.create(
        "warehouse",
        json!({"warehouse_name": "Main", "company": company, "stock_account": stock, "parent_warehouse": group}),
    );
    let nos = api.create("uom", json!({"uom_name": "Nos"}));
    let items = api.create(
        "item_group",
        json!({"item_group_name": "All Items", "is_group": true}),
    );
    let bolt = api.create(
        "item",
        json!({"item_code": "BOLT", "item_name": "Bolt", "item_group": items, "stock_uom": nos, "company": company}),
    );
    for (purpose, date, line) in [
        (
            "Receipt",
            "2026-04-01",
            json!({"item": bolt, "qty": "10", "t_warehouse": main, "basic_rate": {"amount": "4.10", "currency": "USD"}}),
        ),
        (
            "Issue",
            "2026-05-02",
            json!({"item": bolt, "qty": "3", "s_warehouse": main}),
        ),
    ] {
        let id = api.create(
            "stock_entry",
            json!({"purpose": purpose, "company": company, "posting_date": date, "expense_account": cogs, "lines": [line]}),
        );
        let (status, body) = api.call(
            "POST",
            &format!("/api/v1/resources/stock_entry/{id}/submit"),
            None,
        );
        assert_eq!(status, 200, "{body}");
    }
    api.stop();
    dir
}

/// A fresh installation: on PostgreSQL when one is configured, else SQLite.
fn target_installation(pg: Option<&Postgres>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    if let Some(pg) = pg {
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(
            dir.path().join("config/base.yaml"),
            format!("database:\n  url: {}\n", pg.url),
        )
        .unwrap();
    }
    ok(dir.path(), &["migrate"]);
    dir
}

/// The trial balance, without the line that says how long it took.
fn trial_balance(dir: &Path, tenant: &str) -> String {
    let out = ok(
        dir,
        &[
            "accounting",
            "trial-balance",
            "--company",
            "Acme Ltd",
            "--tenant",
            tenant,
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
        ],
    );
    out.lines()
        .filter(|l| !l.starts_with("trial balance in"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a record list must keep across the move (everything the API answers).
fn records(api: &Server) -> Value {
    json!({
        "customer": api.list("customer"),
        "vehicle": api.list("vehicle"),
        "journal_entry": api.list("journal_entry"),
        "account": api.list("account"),
        "custom_fields": api.call("GET", "/api/v1/customize/customer/fields", None).1,
        "stock": stock_balance(api),
        "memory": memory_hits(api),
    })
}

/// The memory items a keyword search finds (ids and texts: scores are the backend's).
fn memory_hits(api: &Server) -> Value {
    let (status, found) = api.call(
        "POST",
        "/api/v1/memory/search",
        Some(json!({"query": "beagle invoice", "mode": "keyword"})),
    );
    assert_eq!(status, 200, "{found}");
    found["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| json!([hit["id"], hit["text"]]))
        .collect()
}

/// The stock balance after every row (read from the totals a trigger keeps) and in
/// April (the months before added to the month's rows).
fn stock_balance(api: &Server) -> Value {
    let company = api.list("company")[0]["id"].as_str().unwrap().to_owned();
    let mut out = Vec::new();
    for as_of in ["2026-12-31", "2026-04-30"] {
        let (status, report) = api.call(
            "GET",
            &format!("/api/v1/stock/reports/stock-balance?company={company}&as_of={as_of}"),
            None,
        );
        assert_eq!(status, 200, "{report}");
        out.push(report["rows"].clone());
    }
    Value::Array(out)
}

#[test]
fn a_tenant_moves_from_sqlite_to_another_installation_under_another_name() {
    let source = source_installation();
    let file = source.path().join("acme.cxt");
    let file_arg = file.to_str().unwrap();
    let out = ok(
        source.path(),
        &[
            "tenant",
            "export",
            "acme",
            "--to",
            file_arg,
            "--include-password-hashes",
        ],
    );
    assert!(out.contains("exported tenant `acme`"), "{out}");
    assert!(!source.path().join("acme.cxt.partial").exists());
    let api = serve(source.path(), "acme", "admin@acme.test");
    let before = records(&api);
    api.stop();
    let stock = before["stock"][0].to_string();
    assert!(stock.contains("\"qty\":\"7"), "{stock}");
    assert_eq!(
        before["memory"].as_array().map(Vec::len),
        Some(1),
        "{before}"
    );
    let balance_before = trial_balance(source.path(), "acme");
    assert!(balance_before.contains("250.00"), "{balance_before}");

    let pg = Postgres::create();
    let target = target_installation(pg.as_ref());
    let out = ok(
        target.path(),
        &["tenant", "import", file_arg, "--as", "globex"],
    );
    assert!(
        out.contains("imported tenant `acme` as `globex` from sqlite"),
        "{out}"
    );
    assert!(
        out.contains("the imported log's first")
            && out.contains("match the source's signed checkpoint"),
        "{out}"
    );
    assert!(
        out.contains("tenant globex:") && out.contains("records verified"),
        "{out}"
    );
    ok(target.path(), &["audit", "verify"]);

    let api = serve(target.path(), "globex", "admin@acme.test");
    let after = records(&api);
    // The runtime entity answers under the new tenant, and takes new rows.
    api.create("vehicle", json!({"plate": "M-AB 1"}));
    let grown = records(&api);
    api.stop();
    assert_eq!(before, after);
    assert_eq!(trial_balance(target.path(), "globex"), balance_before);
    let list = ok(target.path(), &["tenant", "list"]);
    assert!(list.contains("globex") && list.contains("active"), "{list}");
    ok(target.path(), &["audit", "verify", "--tenant", "globex"]);

    // And back again, from the target's backend to a fresh SQLite installation.
    let back = tempfile::tempdir().unwrap();
    let round = back.path().join("globex.cxt");
    let round_arg = round.to_str().unwrap();
    ok(
        target.path(),
        &[
            "tenant",
            "export",
            "globex",
            "--to",
            round_arg,
            "--include-password-hashes",
        ],
    );
    let out = ok(
        back.path(),
        &["tenant", "import", round_arg, "--as", "acme"],
    );
    assert!(
        out.contains("match the source's signed checkpoint"),
        "{out}"
    );
    let api = serve(back.path(), "acme", "admin@acme.test");
    assert_eq!(records(&api), grown);
    api.stop();
    assert_eq!(trial_balance(back.path(), "acme"), balance_before);
    ok(back.path(), &["audit", "verify"]);

    // Importing onto an existing tenant is refused, and so is a second import of it.
    refused(
        target.path(),
        &["tenant", "import", file_arg, "--as", "globex"],
        "error: tenant `globex` already exists",
    );

    // Without password hashes the users exist but cannot log in until they reset it.
    let bare = source.path().join("bare.cxt");
    let out = ok(
        source.path(),
        &["tenant", "export", "acme", "--to", bare.to_str().unwrap()],
    );
    assert!(out.contains("must reset their passwords"), "{out}");
    let out = ok(
        target.path(),
        &[
            "tenant",
            "import",
            bare.to_str().unwrap(),
            "--as",
            "initech",
        ],
    );
    assert!(out.contains("users must reset their passwords"), "{out}");
    let probe = serve(target.path(), "globex", "admin@acme.test");
    // The right password and the empty one (the hash is empty) are both refused.
    for password in [PASSWORD, ""] {
        let login = json!({"email": "admin@acme.test", "password": password});
        let (status, body) = request(
            &probe.address,
            "initech",
            "",
            "POST",
            "/api/v1/auth/login",
            Some(login),
        );
        assert!(
            status == 401 || (password.is_empty() && status == 400),
            "{status} {body}"
        );
    }
    probe.stop();
    ok(
        target.path(),
        &[
            "tenant",
            "recover",
            "initech",
            "--admin-email",
            "admin@acme.test",
            "--admin-password",
            "a new password",
        ],
    );
}

#[test]
fn bad_files_and_missing_tenants_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    ok(
        dir.path(),
        &[
            "tenant",
            "create",
            "acme",
            "--admin-email",
            "admin@acme.test",
            "--admin-password",
            PASSWORD,
        ],
    );
    refused(
        dir.path(),
        &["tenant", "export", "nobody", "--to", "x.cxt"],
        "error: tenant `nobody` does not exist",
    );
    assert!(!dir.path().join("x.cxt").exists() && !dir.path().join("x.cxt.partial").exists());
    ok(
        dir.path(),
        &["tenant", "export", "acme", "--to", "acme.cxt"],
    );
    let bytes = std::fs::read(dir.path().join("acme.cxt")).unwrap();
    // The tenant exists here already.
    refused(
        dir.path(),
        &["tenant", "import", "acme.cxt"],
        "error: tenant `acme` already exists",
    );

    // Truncated: half the file, and a file cut inside its audit log's member.
    std::fs::write(dir.path().join("short.cxt"), &bytes[..bytes.len() / 2]).unwrap();
    let out = prefiq(dir.path(), &["tenant", "import", "short.cxt", "--as", "b"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: short.cxt: member `"), "{last}");
    let entry = b"\"entry\":";
    let at = bytes.windows(entry.len()).position(|w| w == entry).unwrap();
    std::fs::write(dir.path().join("cut.cxt"), &bytes[..at + 20]).unwrap();
    refused(
        dir.path(),
        &["tenant", "import", "cut.cxt", "--as", "b"],
        "error: cut.cxt: member `tables/main/prefiq_audit.jsonl` is truncated",
    );

    // One flipped byte inside the users' member: refused naming it.
    let needle = b"\"email\":\"admin@acme.test\"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut flipped = bytes.clone();
    flipped[at + 10] ^= 0x01;
    std::fs::write(dir.path().join("flipped.cxt"), &flipped).unwrap();
    refused(
        dir.path(),
        &["tenant", "import", "flipped.cxt", "--as", "b"],
        "error: flipped.cxt: member `tables/main/cortex_users.jsonl` does not match its SHA-256 digest in the manifest",
    );

    // Not an export at all.
    std::fs::write(dir.path().join("junk.cxt"), b"hello").unwrap();
    let out = prefiq(dir.path(), &["tenant", "import", "junk.cxt"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // Nothing of the refused imports was written.
    let list = ok(dir.path(), &["tenant", "list"]);
    assert!(!list.contains("\nb "), "{list}");
}

/// `database.tenancy: database` on the source: the tenant's rows come from its own
/// database and its users from the main one; the target keeps them in one (shared
/// SQLite) or in the tenant's own PostgreSQL database.
#[test]
fn a_tenant_with_its_own_database_moves_to_another_tenancy() {
    let source = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(source.path().join("config")).unwrap();
    std::fs::write(
        source.path().join("config/base.yaml"),
        "database:\n  tenancy: database\n",
    )
    .unwrap();
    std::fs::write(
        source.path().join("sale.journal"),
        "2026-01-02 Sale\n    assets:bank    100.00 USD\n    income:sales\n",
    )
    .unwrap();
    ok(
        source.path(),
        &[
            "tenant",
            "create",
            "acme",
            "--admin-email",
            "admin@acme.test",
            "--admin-password",
            PASSWORD,
        ],
    );
    ok(
        source.path(),
        &[
            "accounting",
            "import",
            "sale.journal",
            "--company",
            "Shop",
            "--create-currency",
            "USD",
            "--tenant",
            "acme",
        ],
    );
    let balance = |dir: &Path, tenant: &str| {
        ok(
            dir,
            &[
                "accounting",
                "balance",
                "--company",
                "Shop",
                "--tenant",
                tenant,
            ],
        )
    };
    let before = balance(source.path(), "acme");
    assert!(before.contains("assets:bank\t100.00 USD"), "{before}");
    let file = source.path().join("acme.cxt");
    let file_arg = file.to_str().unwrap();
    ok(
        source.path(),
        &["tenant", "export", "acme", "--to", file_arg],
    );
    let listing = Command::new("tar").args(["tf", file_arg]).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing.contains("tables/main/cortex_users.jsonl")
            && listing.contains("tables/tenant/ledger_posting.jsonl"),
        "{listing}"
    );

    let pg = Postgres::create();
    let target = tempfile::tempdir().unwrap();
    if let Some(pg) = &pg {
        std::fs::create_dir_all(target.path().join("config")).unwrap();
        std::fs::write(
            target.path().join("config/base.yaml"),
            format!("database:\n  url: {}\n  tenancy: database\n", pg.url),
        )
        .unwrap();
    }
    let out = ok(
        target.path(),
        &["tenant", "import", file_arg, "--as", "globex"],
    );
    assert!(
        out.contains("match the source's signed checkpoint"),
        "{out}"
    );
    assert_eq!(balance(target.path(), "globex"), before);
    ok(target.path(), &["audit", "verify", "--tenant", "globex"]);
}
