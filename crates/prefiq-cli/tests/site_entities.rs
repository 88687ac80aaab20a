//! An entity declared in YAML in the installation's `schema/` folder becomes a table, a REST
//! resource and an OpenAPI schema at the next start, without a line of Rust; a new field
//! is added by a generated migration; a destructive change stops boot.
#![allow(clippy::unwrap_used)]
// A server is waited for in `Server::stop`, and killed and reaped by `Drop` when a test fails.
#![allow(clippy::zombie_processes)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_prefiq");

fn prefiq(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Server {
    child: Child,
    address: String,
    /// The acme administrator's access token.
    token: String,
}

fn serve(dir: &Path) -> Server {
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
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "listening"
        {
            let address = v["address"].as_str().unwrap().to_owned();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            let mut server = Server {
                child,
                address,
                token: String::new(),
            };
            let (status, session) = server.call(
                "POST",
                "/api/v1/auth/login",
                Some(r#"{"email": "admin@acme.test", "password": "correct horse"}"#),
            );
            assert_eq!(status, 200, "{session}");
            server.token = session["access_token"].as_str().unwrap().to_owned();
            return server;
        }
    }
}

impl Server {
    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        let body = body.unwrap_or("");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nX-Tenant: acme\r\n{}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            if self.token.is_empty() {
                String::new()
            } else {
                format!("Authorization: Bearer {}\r\n", self.token)
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

const NOTE_V1: &str = "name: note\nfields:\n  - {name: title, type: data, required: true}\n";
const NOTE_V2: &str = "name: note\nfields:\n  - {name: title, type: data, required: true}\n  - {name: pinned, type: bool, default: false, indexed: true}\n";

#[test]
fn yaml_entities_appear_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schema")).unwrap();
    std::fs::write(dir.path().join("schema/note.yaml"), NOTE_V1).unwrap();
    let (code, _, err) = prefiq(
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
    );
    assert_eq!(code, 0, "{err}");

    let server = serve(dir.path());
    let (status, note) = server.call(
        "POST",
        "/api/v1/resources/note",
        Some(r#"{"title": "first"}"#),
    );
    assert_eq!(status, 201, "{note}");
    let id = note["id"].as_str().unwrap().to_owned();
    let (_, openapi) = server.call("GET", "/api/v1/openapi.json", None);
    assert!(openapi["paths"].get("/api/v1/resources/note").is_some());
    assert!(
        openapi["components"]["schemas"]
            .get("note_create")
            .is_some()
    );
    server.stop();

    // A new field: the dry run shows the ALTER, the next start applies it, data stays.
    std::fs::write(dir.path().join("schema/note.yaml"), NOTE_V2).unwrap();
    let (code, out, err) = prefiq(dir.path(), &["migrate", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ALTER TABLE \"note\" ADD COLUMN \"pinned\" INTEGER;"),
        "{out}"
    );
    let server = serve(dir.path());
    let (status, old) = server.call("GET", &format!("/api/v1/resources/note/{id}"), None);
    assert_eq!(
        (status, old["title"].as_str(), &old["pinned"]),
        (200, Some("first"), &serde_json::Value::Null)
    );
    let (status, pinned) = server.call(
        "POST",
        "/api/v1/resources/note",
        Some(r#"{"title": "second", "pinned": true}"#),
    );
    assert_eq!((status, &pinned["pinned"]), (201, &serde_json::json!(true)));
    server.stop();
    let (_, out, _) = prefiq(dir.path(), &["migrate"]);
    assert_eq!(out.trim(), "nothing to migrate (sqlite)");

    // Removing a field is destructive: boot stops and names it.
    std::fs::write(dir.path().join("schema/note.yaml"), NOTE_V1).unwrap();
    let (code, _, err) = prefiq(dir.path(), &["serve", "--port", "0"]);
    assert_eq!(code, 1);
    assert!(err.trim_end().ends_with("error: migration error: entity `note` (schema/note.yaml): field `pinned` was removed; a destructive change needs an explicit migration"), "{err}");

    // An invalid schema stops boot naming file and field.
    std::fs::write(
        dir.path().join("schema/note.yaml"),
        "name: note\nfields:\n  - {name: title, type: strnig}\n",
    )
    .unwrap();
    let (code, _, err) = prefiq(dir.path(), &["boot", "--dry-run"]);
    assert_eq!(code, 1);
    assert!(err.trim_end().ends_with("invalid entity schema schema/note.yaml, field `title`: unknown type `strnig`; use data, text, int, decimal, money, bool, date, datetime, select, link, table, json or email"), "{err}");
}
