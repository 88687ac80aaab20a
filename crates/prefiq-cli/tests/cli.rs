//! The `prefiq` binary, run as a user runs it: in a directory, with files and variables.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_prefiq");

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn prefiq(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("PREFIQ_ENV");
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PREFIQ__")) {
        command.env_remove(key);
    }
    command.envs(vars.iter().copied());
    let out = command.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    dir
}

/// Runs `args` in a directory holding `files` and compares the exit code and the first line
/// of stderr (for failures) or whether stdout contains `expected` (for successes).
fn check(
    files: &[(&str, &str)],
    vars: &[(&str, &str)],
    args: &[&str],
    expected_code: i32,
    expected: &str,
) {
    let dir = dir_with(files);
    let out = prefiq(dir.path(), args, vars);
    assert_eq!(
        out.code, expected_code,
        "{args:?}\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    if expected_code == 0 {
        assert!(
            squeeze(&out.stdout).contains(expected),
            "{args:?}: stdout lacks {expected:?}:\n{}",
            out.stdout
        );
    } else {
        assert_eq!(
            out.stderr.lines().last().unwrap_or_default(),
            expected,
            "{args:?}"
        );
    }
}

#[test]
fn bad_input_gives_one_line_and_a_non_zero_exit() {
    check(
        &[("config/base.yaml", "server:\n  port: lots\n")],
        &[],
        &["boot", "--dry-run"],
        1,
        "error: invalid config value `server.port` from config/base.yaml (key `server.port`): invalid type: found string \"lots\", expected u16",
    );
    check(
        &[],
        &[("PREFIQ__SERVER__PORT", "99999")],
        &["serve"],
        1,
        "error: invalid config value `server.port` from environment variable `PREFIQ__SERVER__PORT`: invalid value unsigned int `99999`, expected u16",
    );
    check(
        &[(".env", "PREFIQ__DATABASE__URL=mysql://db\n")],
        &[],
        &["doctor"],
        1,
        "error: doctor found problems",
    );
    check(
        &[],
        &[],
        &["--env", "../x", "boot", "--dry-run"],
        1,
        "error: invalid environment name `../x`: use a-z, 0-9, `-` and `_` (at most 32)",
    );
    check(
        &[],
        &[],
        &["make:module", "Bad-Name"],
        1,
        "error: invalid module name `Bad-Name`: use snake_case: a-z, 0-9 and _, starting with a letter, at most 64",
    );
    check(
        &[],
        &[],
        &[
            "config",
            "set",
            "--tenant",
            "acme",
            "database.url",
            "sqlite://x.db",
        ],
        1,
        "error: config key `database.url` cannot be overridden per tenant",
    );
    check(
        &[],
        &[],
        &["config", "show", "--tenant", "acme"],
        1,
        "error: the database does not exist yet; run `prefiq migrate` first",
    );
    check(
        &[],
        &[
            (
                "PREFIQ__DATABASE__URL",
                "postgres://nobody@127.0.0.1:1/none",
            ),
            ("PREFIQ__DATABASE__ACQUIRE_TIMEOUT_MS", "300"),
        ],
        &["migrate"],
        1,
        "error: provider `prefiq_data::DatabaseProvider` failed to boot: cannot connect to postgres://nobody@127.0.0.1:1/none: pool timed out while waiting for an open connection",
    );
}

#[test]
fn boot_dry_run_prints_the_plan_and_writes_nothing() {
    let dir = dir_with(&[]);
    let out = prefiq(dir.path(), &["boot", "--dry-run"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for needle in [
        "modules, in boot order:\n  1. cortex 0.1.0",
        "prefiq: prefiq_data::DatabaseProvider",
        "GET     /healthz",
        "pending migrations (sqlite):\n  prefiq/0000_migrations",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle:?} in\n{}",
            out.stdout
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "the dry run wrote something"
    );
    let steps: Vec<String> = boot_steps(&out.stderr)
        .into_iter()
        .map(|(step, _)| step)
        .collect();
    assert_eq!(
        steps,
        [
            "config", "register", "boot", "modules", "routes", "ready", "shutdown"
        ]
    );

    let out = prefiq(dir.path(), &["migrate", "--dry-run"], &[]);
    assert!(
        out.stdout
            .contains("-- prefiq/0001_tenant_config\nCREATE TABLE prefiq_tenant_config"),
        "{}",
        out.stdout
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "migrate --dry-run wrote something"
    );
}

/// The (step, trace_id) of every boot-step JSON line.
fn boot_steps(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["message"] == "boot step" && v["step"] != "hook")
        .map(|v| {
            assert!(
                v["duration_ms"].is_number() && v["timestamp"].is_string(),
                "{v}"
            );
            (
                v["step"].as_str().unwrap().to_owned(),
                v["trace_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn migrate_then_doctor_then_tenant_config() {
    let dir = dir_with(&[("config/base.yaml", "app:\n  locale: en\n")]);
    check_in(dir.path(), &["doctor"], 0, "database warn");
    check_in(
        dir.path(),
        &["migrate"],
        0,
        "applied prefiq/0001_tenant_config",
    );
    check_in(dir.path(), &["migrate"], 0, "nothing to migrate (sqlite)");
    check_in(dir.path(), &["doctor"], 0, "migrations ok all applied");
    check_in(
        dir.path(),
        &["config", "set", "--tenant", "acme", "app.locale", "de-CH"],
        0,
        "acme: app.locale = \"de-CH\"",
    );
    check_in(
        dir.path(),
        &["config", "show", "--tenant", "acme"],
        0,
        "app.locale = \"de-CH\"",
    );
    check_in(
        dir.path(),
        &["config", "show", "--tenant", "acme"],
        0,
        "# tenant override (acme)",
    );
    check_in(
        dir.path(),
        &["config", "show", "--tenant", "globex"],
        0,
        "app.locale = \"en\"",
    );
    check_in(
        dir.path(),
        &["config", "show"],
        0,
        "# config/base.yaml (key `app.locale`)",
    );
    let out = prefiq(
        dir.path(),
        &[
            "config",
            "set",
            "--tenant",
            "acme",
            "app.locale",
            "not a locale",
        ],
        &[],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "error: invalid config value `app.locale` from tenant override (acme): `not a locale` is not a BCP 47 locale such as `en` or `de-CH`"
    );
    let out = prefiq(
        dir.path(),
        &[
            "config",
            "set",
            "--tenant",
            "acme",
            "app.timezone",
            "Mars/Olympus",
        ],
        &[],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "error: invalid config value `app.timezone` from tenant override (acme): `Mars/Olympus` is not a time zone name such as `UTC` or `Europe/Zurich` (the time zone database has no zone of that name)"
    );
    check_in(
        dir.path(),
        &["config", "show", "--tenant", "acme"],
        0,
        "\"de-CH\"",
    );
    check_in(
        dir.path(),
        &["config", "unset", "--tenant", "acme", "app.locale"],
        0,
        "acme: app.locale removed",
    );
    check_in(dir.path(), &["modules"], 0, "1. cortex 0.1.0 depends: -");
    check_in(dir.path(), &["routes"], 0, "GET /api/v1/system/info cortex");
}

fn check_in(dir: &Path, args: &[&str], code: i32, expected: &str) {
    let out = prefiq(dir, args, &[]);
    assert_eq!(out.code, code, "{args:?}\n{}\n{}", out.stdout, out.stderr);
    assert!(
        squeeze(&out.stdout).contains(expected),
        "{args:?}: stdout lacks {expected:?}:\n{}",
        out.stdout
    );
}

/// Output with every run of spaces made one, so column widths do not matter.
fn squeeze(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn config_show_redacts_secrets_and_names_sources() {
    check(
        &[],
        &[("PREFIQ__DATABASE__URL", "postgres://app:hunter2@db/erp")],
        &["config", "show"],
        0,
        "\"postgres://app:***@db/erp\" # environment variable `PREFIQ__DATABASE__URL`",
    );
    check(&[], &[], &["config", "show"], 0, "server.port = 4949");
    check(
        &[],
        &[],
        &["config", "show", "--json"],
        0,
        "\"source\": \"built-in default\"",
    );
}

#[test]
fn serve_answers_and_exits_cleanly_on_sigterm() {
    let dir = dir_with(&[]);
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let started = Instant::now();
    let address = loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve exited early:\n{log}"
        );
        log.push_str(&line);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "listening"
        {
            break v["address"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no listening line:\n{log}"
        );
    };
    assert!(get(&address, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(get(&address, "/readyz").starts_with("HTTP/1.1 200"));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap();
    stderr.read_to_string(&mut log).unwrap();
    assert_eq!(code.code(), Some(0), "{log}");
    assert!(
        dir.path().join("data/codexion.db").exists(),
        "serve creates the SQLite file"
    );

    let steps = boot_steps(&log);
    let names: Vec<&str> = steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "config", "register", "boot", "modules", "routes", "ready", "shutdown"
        ],
        "{log}"
    );
    assert!(
        steps.iter().all(|(_, t)| *t == steps[0].1),
        "one trace id for the whole boot"
    );
    let access: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "prefiq::access")
        .collect();
    assert_eq!(access.len(), 2);
    assert_eq!(access[0]["route"], "/healthz");
    assert_eq!(access[0]["status"], 200);
}

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn make_module_writes_a_crate() {
    let dir = dir_with(&[]);
    let out = prefiq(dir.path(), &["make:module", "demo"], &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for file in [
        "Cargo.toml",
        "module.yaml",
        "schema/demo_item.yaml",
        "migrations/0001_create_demo_items.sql",
        "src/lib.rs",
        "tests/module.rs",
    ] {
        assert!(
            dir.path().join("apps/demo").join(file).exists(),
            "missing {file}"
        );
    }
    let again = prefiq(dir.path(), &["make:module", "demo"], &[]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}

#[test]
fn tenant_create_list_suspend_resume() {
    let dir = tempfile::tempdir().unwrap();
    let create = [
        "tenant",
        "create",
        "acme",
        "--admin-email",
        "admin@acme.test",
        "--admin-password",
        "correct horse",
    ];
    check_in(
        dir.path(),
        &create,
        0,
        "created tenant `acme` with administrator admin@acme.test",
    );
    // In development the token signing key was made on first use.
    let key = std::fs::read_to_string(dir.path().join("data/auth-ed25519.key")).unwrap();
    assert_eq!(key.trim().len(), 64);
    check_in(dir.path(), &["tenant", "list"], 0, "acme active");
    check_in(
        dir.path(),
        &["tenant", "suspend", "acme"],
        0,
        "suspended tenant `acme`",
    );
    check_in(
        dir.path(),
        &["tenant", "list", "--json"],
        0,
        "\"status\": \"suspended\"",
    );
    check_in(
        dir.path(),
        &["tenant", "resume", "acme"],
        0,
        "resumed tenant `acme`",
    );
    for (args, message) in [
        (create.to_vec(), "error: tenant `acme` already exists"),
        (
            vec!["tenant", "suspend", "initech"],
            "error: tenant `initech` does not exist",
        ),
        (
            vec![
                "tenant",
                "create",
                "Acme",
                "--admin-email",
                "a@b.co",
                "--admin-password",
                "correct horse",
            ],
            "error: a tenant name is 1 to 63 of a-z, 0-9 and `-`, not starting with `-`",
        ),
        (
            vec![
                "tenant",
                "create",
                "b",
                "--admin-email",
                "nobody",
                "--admin-password",
                "correct horse",
            ],
            "error: not an email address",
        ),
        (
            vec![
                "tenant",
                "create",
                "b",
                "--admin-email",
                "a@b.co",
                "--admin-password",
                "short",
            ],
            "error: a password has at least 8 characters and at most 1024 bytes",
        ),
    ] {
        let out = prefiq(dir.path(), &args, &[]);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().last(), Some(message), "{args:?}");
    }
}

#[test]
fn tenant_recover_restores_an_administrator_and_says_what_it_did() {
    let dir = tempfile::tempdir().unwrap();
    check_in(
        dir.path(),
        &[
            "tenant",
            "create",
            "acme",
            "--admin-email",
            "admin@acme.test",
            "--admin-password",
            "correct horse",
        ],
        0,
        "created tenant `acme`",
    );
    // The signing keys made on first use are readable by their owner only.
    #[cfg(unix)]
    for key in ["data/auth-ed25519.key", "data/audit-ed25519.key"] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(format!("{:o}", mode & 0o777), "600", "{key}");
    }
    check_in(
        dir.path(),
        &["tenant", "recover", "acme"],
        0,
        "tenant `acme` had no policies of its own\nadministrator admin@acme.test of tenant `acme`: already active",
    );
    check_in(
        dir.path(),
        &[
            "tenant",
            "recover",
            "acme",
            "--admin-email",
            "rescue@acme.test",
            "--admin-password",
            "another long one",
        ],
        0,
        "administrator rescue@acme.test of tenant `acme`: created",
    );
    for (args, message) in [
        (
            vec!["tenant", "recover", "initech"],
            "error: tenant `initech` does not exist",
        ),
        (
            vec![
                "tenant",
                "recover",
                "acme",
                "--admin-email",
                "ghost@acme.test",
            ],
            "error: ghost@acme.test is not a user of tenant `acme`; give --admin-password (or PREFIQ_ADMIN_PASSWORD) to create it",
        ),
    ] {
        let out = prefiq(dir.path(), &args, &[]);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().last(), Some(message), "{args:?}");
    }
}

#[test]
fn production_refuses_to_start_without_a_signing_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = prefiq(
        dir.path(),
        &["tenant", "list"],
        &[("PREFIQ_ENV", "production")],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("in production the signing key must be provided"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("data/auth-ed25519.key").exists());
}

#[test]
fn production_refuses_to_start_without_an_audit_key() {
    let dir = dir_with(&[(
        "data/auth-ed25519.key",
        "0101010101010101010101010101010101010101010101010101010101010101\n",
    )]);
    let out = prefiq(
        dir.path(),
        &["tenant", "list"],
        &[("PREFIQ_ENV", "production")],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("audit signing key")
            && last.contains(
                "audit-ed25519.key does not exist; in production the signing key must be provided"
            ),
        "{last}"
    );
    assert!(!dir.path().join("data/audit-ed25519.key").exists());
}

/// Runs `sql` on the installation's SQLite database, as someone with the file could.
fn tamper(dir: &Path, sql: &str) {
    rusqlite::Connection::open(dir.join("data/codexion.db"))
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

#[test]
fn audit_verify_export_and_archive_name_a_tampered_record() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        prefiq(
            dir.path(),
            args,
            &[("PREFIQ_ADMIN_PASSWORD", "correct horse")],
        )
    };
    for tenant in ["acme", "globex"] {
        let out = run(&["tenant", "create", tenant, "--admin-email", "a@b.test"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let out = run(&["tenant", "suspend", "acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["config", "set", "--tenant", "acme", "app.locale", "fr"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["audit", "checkpoint"]);
    assert_eq!(
        out.stdout,
        "tenant acme: checkpoint of size 3 signed\ntenant globex: checkpoint of size 1 signed\n"
    );
    let out = run(&["audit", "verify"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("tenant acme: 3 records verified"),
        "{}",
        out.stdout
    );
    let out = run(&["audit", "export", "--to", "audit.archive"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["audit", "verify-archive", "audit.archive"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "codexion/acme: 3 records match the signed checkpoint\ncodexion/globex: 1 records match the signed checkpoint\n"
    );

    // A changed archive is refused, naming the log.
    let archive = std::fs::read_to_string(dir.path().join("audit.archive")).unwrap();
    std::fs::write(
        dir.path().join("changed.archive"),
        archive.replace("tenant_suspend", "tenant_resume"),
    )
    .unwrap();
    let out = run(&["audit", "verify-archive", "changed.archive"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("codexion/acme: record 1 or one after it up to 3 was changed"),
        "{}",
        out.stderr
    );

    // The database refuses the change; someone who drops the trigger is named by verify.
    tamper(
        dir.path(),
        "DROP INDEX prefiq_audit_record; DROP TRIGGER prefiq_audit_no_update; UPDATE prefiq_audit SET entry = replace(entry, 'tenant_suspend', 'tenant_resume') WHERE tenant_id = 'acme' AND seq = 2",
    );
    let out = run(&["audit", "verify"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.lines().last(),
        Some(
            "error: audit log of tenant `acme`: record 2 was changed: it does not match the signed checkpoint of size 3"
        )
    );
    // The other tenant's log is not affected.
    let out = run(&["audit", "verify", "--tenant", "globex"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A change to a record an earlier verification covered: `--incremental` does not read
/// it, says so and does not count it as verified; the full verification names it. (The
/// regression: "496 records verified (0 walked…)" and exit 0 after such a change.)
#[test]
fn audit_verify_incremental_says_what_it_did_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        prefiq(
            dir.path(),
            args,
            &[("PREFIQ_ADMIN_PASSWORD", "correct horse")],
        )
    };
    let out = run(&["tenant", "create", "acme", "--admin-email", "a@b.test"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["tenant", "suspend", "acme"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(&["audit", "checkpoint"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // A full verification leaves a signed snapshot of what it checked.
    let out = run(&["audit", "verify"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    tamper(
        dir.path(),
        "DROP INDEX prefiq_audit_record; DROP TRIGGER prefiq_audit_no_update; UPDATE prefiq_audit SET entry = replace(entry, 'tenant_suspend', 'tenant_resume') WHERE tenant_id = 'acme' AND seq = 2",
    );
    let out = run(&["audit", "verify", "--incremental"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "tenant acme: no records verified: none were added since the snapshot, 0 signed checkpoints checked, signatures cover 2; records 1 to 2 were not read: trusted from the signed snapshot an earlier verification left, so a change to them is not detected (run `prefiq audit verify` without --incremental to check them)\n"
    );
    let out = run(&["audit", "verify"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(
        out.stderr.lines().last(),
        Some(
            "error: audit log of tenant `acme`: record 2 was changed: it does not match the signed checkpoint of size 2"
        )
    );
}

const BAD_JOURNAL: &str = "\
2026-01-02 Sale
    assets:bank        100.00 USD
    income:sales

2026-01-03 Does not balance
    assets:bank        100.00 USD
    income:sales      -90.00 USD
";

#[test]
fn accounting_import_names_bad_lines_writes_nothing_then_imports_and_exports() {
    let dir = dir_with(&[("bad.journal", BAD_JOURNAL)]);
    let import = [
        "accounting",
        "import",
        "bad.journal",
        "--company",
        "Shop",
        "--create-currency",
        "USD",
    ];
    let out = prefiq(dir.path(), &import, &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("bad.journal:5: transaction does not balance: USD 10.00 left over"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.lines().last().unwrap_or_default(),
        "error: bad.journal: 1 invalid transaction(s); nothing was written (use --skip-invalid to import the rest)"
    );
    let balance = prefiq(
        dir.path(),
        &["accounting", "balance", "--company", "Shop"],
        &[],
    );
    assert_eq!(
        (balance.code, balance.stdout.as_str()),
        (0, ""),
        "{}",
        balance.stderr
    );
    let mut skipping = import.to_vec();
    skipping.push("--skip-invalid");
    check_in(
        dir.path(),
        &skipping,
        0,
        "imported 1 transactions, 2 postings",
    );
    check_in(
        dir.path(),
        &["accounting", "balance", "--company", "Shop"],
        0,
        "assets:bank 100.00 USD",
    );
    check_in(
        dir.path(),
        &[
            "accounting",
            "trial-balance",
            "--company",
            "Shop",
            "--from",
            "2026-01-01",
            "--to",
            "2026-12-31",
        ],
        0,
        "total 100.00 100.00 100.00 100.00",
    );
    check_in(
        dir.path(),
        &["accounting", "export", "--company", "Shop"],
        0,
        "2026-01-02 Sale\nassets:bank 100.00 USD\nincome:sales -100.00 USD",
    );
    let missing = prefiq(
        dir.path(),
        &["accounting", "import", "nope.journal", "--company", "Shop"],
        &[],
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("error: cannot read nope.journal:"),
        "{}",
        missing.stderr
    );
}

/// The audit log's section is the data layer's provider's, not a module's: it was refused
/// as an unknown section, so `audit.checkpoint_every` could not be set at all.
#[test]
fn the_audit_section_of_a_platform_provider_is_a_known_config_section() {
    let audit = [("config/base.yaml", "audit:\n  checkpoint_every: 5000\n")];
    check(&audit, &[], &["boot", "--dry-run"], 0, "");
    check(&audit, &[], &["config", "show"], 0, "checkpoint_every");
    check(
        &[("config/base.yaml", "audt:\n  checkpoint_every: 5000\n")],
        &[],
        &["boot", "--dry-run"],
        1,
        "error: unknown config section `audt` from config/base.yaml (key `audt`); known sections: app, server, database, log, telemetry, cortex, accounting, webhooks, plugins, memory, trade, crm, selling, buying, stock, audit, events, jobs, cache, backup",
    );
}
