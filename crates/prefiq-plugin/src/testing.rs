//! Plugins written in the WebAssembly text format, for tests: a well-behaved one and the
//! hostile fixtures (an endless loop, a memory bomb, a trap, host calls the plugin was
//! not granted or that name another tenant's record).
//!
//! Every fixture's `on-job` inserts the job's payload as a record of the entity the job's
//! name names (a job `todo` writes a todo), and fails with the host's message when that
//! insert is refused; `on-route` answers `{"ok": true}`; `on-event` accepts.
//!
//! Each is a core module in WAT: parse it with the `wat` crate and hand the bytes to
//! [`crate::sandbox::Sandbox::load`], which wraps it into a component like any plugin.

/// What a fixture's `on-hook` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookBody {
    /// Answers the document unchanged.
    Echo,
    /// Refuses with the message "refused by the fixture".
    Refuse,
    /// Loops forever.
    EndlessLoop,
    /// Grows its memory until it is stopped.
    MemoryBomb,
    /// Executes `unreachable`.
    Trap,
    /// Calls the host's `get(entity, doc)` (the `doc` argument taken as a record id) and
    /// answers what the host answered.
    GetByDoc,
    /// Calls the host's `insert(entity, doc)` and answers what the host answered.
    InsertDoc,
    /// Calls the host's `now-ms` and answers "ok" or the host's refusal.
    ReadClock,
    /// Calls the host's `fetch(doc)` (the `doc` argument taken as the request) and answers
    /// what the host answered.
    FetchDoc,
}

const SCAFFOLD_HEAD: &str = r#"(module
  (import "codexion:plugin/host@0.1.0" "get" (func $get (param i32 i32 i32 i32 i32)))
  (import "codexion:plugin/host@0.1.0" "insert" (func $insert (param i32 i32 i32 i32 i32)))
  (import "codexion:plugin/host@0.1.0" "now-ms" (func $now (param i32)))
  (import "codexion:plugin/host@0.1.0" "fetch" (func $fetch (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (data (i32.const 512) "{\"status\":200,\"headers\":{},\"body\":{\"ok\":true}}")
  (data (i32.const 640) "refused by the fixture")
  (data (i32.const 672) "ok")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p
      (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
        (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (block $fits
      (br_if $fits (i32.le_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536))))
      (br_if $fits
        (i32.ne
          (memory.grow
            (i32.add
              (i32.shr_u (i32.sub (global.get $bump) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16))
              (i32.const 1)))
          (i32.const -1)))
      unreachable)
    (local.get $p))
  (func (export "on-route") (param i32 i32) (result i32)
    (i32.store (i32.const 32) (i32.const 512))
    (i32.store (i32.const 36) (i32.const 46))
    (i32.const 32))
  ;; A job inserts its payload as a record of the entity its name names, and fails
  ;; with the host's message if the insert does.
  (func (export "on-job") (param $name i32) (param $name_len i32) (param $payload i32) (param $payload_len i32) (result i32)
    (call $insert (local.get $name) (local.get $name_len) (local.get $payload) (local.get $payload_len) (i32.const 96))
    (i32.store8 (i32.const 48) (i32.load8_u (i32.const 96)))
    (i32.store (i32.const 52) (i32.load (i32.const 100)))
    (i32.store (i32.const 56) (i32.load (i32.const 104)))
    (i32.const 48))
  (func (export "on-event") (param i32 i32) (result i32)
    (i32.store8 (i32.const 48) (i32.const 0))
    (i32.const 48))
  (func (export "on-hook") (param $event i32) (param $event_len i32) (param $entity i32) (param $entity_len i32)
                           (param $doc i32) (param $doc_len i32) (param $old i32) (param $old_len i32) (result i32)
"#;

/// The fixture's WAT: a complete plugin whose `on-hook` does `body`.
pub fn wat(body: HookBody) -> String {
    let hook = match body {
        HookBody::Echo => {
            r#"    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (local.get $doc))
    (i32.store (i32.const 24) (local.get $doc_len))
    (i32.const 16))"#
        }
        HookBody::Refuse => {
            r#"    (i32.store8 (i32.const 16) (i32.const 1))
    (i32.store (i32.const 20) (i32.const 640))
    (i32.store (i32.const 24) (i32.const 22))
    (i32.const 16))"#
        }
        HookBody::EndlessLoop => {
            r#"    (loop $forever (br $forever))
    (i32.const 16))"#
        }
        HookBody::MemoryBomb => {
            r#"    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable)"#
        }
        HookBody::Trap => r#"    unreachable)"#,
        HookBody::GetByDoc => {
            r#"    (call $get (local.get $entity) (local.get $entity_len) (local.get $doc) (local.get $doc_len) (i32.const 16))
    (i32.const 16))"#
        }
        HookBody::InsertDoc => {
            r#"    (call $insert (local.get $entity) (local.get $entity_len) (local.get $doc) (local.get $doc_len) (i32.const 16))
    (i32.const 16))"#
        }
        HookBody::FetchDoc => {
            r#"    (call $fetch (local.get $doc) (local.get $doc_len) (i32.const 16))
    (i32.const 16))"#
        }
        HookBody::ReadClock => {
            // now-ms answers result<s64, string> at 64: ok → "ok", err → pass its message on.
            r#"    (call $now (i32.const 64))
    (if (i32.eqz (i32.load8_u (i32.const 64)))
      (then
        (i32.store8 (i32.const 16) (i32.const 0))
        (i32.store (i32.const 20) (i32.const 672))
        (i32.store (i32.const 24) (i32.const 2)))
      (else
        (i32.store8 (i32.const 16) (i32.const 1))
        (i32.store (i32.const 20) (i32.load (i32.const 72)))
        (i32.store (i32.const 24) (i32.load (i32.const 76)))))
    (i32.const 16))"#
        }
    };
    format!("{SCAFFOLD_HEAD}{hook}\n)\n")
}
