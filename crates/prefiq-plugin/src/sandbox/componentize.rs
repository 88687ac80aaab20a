//! Wrapping a plugin's core module into a component of the `codexion:plugin` world.
//!
//! Toolchains on the machines (Debian's rustc 1.63, clang) build core modules; the host
//! runs components. `prefiq plugin pack` wraps a core module with the Bytecode Alliance's
//! own encoder, embedding the world, so an author needs no component tooling at all. A
//! `plugin.wasm` that is already a component is taken as it is.

use crate::{PluginError, WIT};

/// The first bytes of every wasm binary: `\0asm`.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Whether `bytes` is a component (layer 1) rather than a core module (layer 0).
pub fn is_component(bytes: &[u8]) -> bool {
    // The preamble is magic, then a 16-bit version and a 16-bit layer: 0 for core
    // modules, 1 for components.
    bytes.len() >= 8 && &bytes[..4] == WASM_MAGIC && bytes[6..8] == [1, 0]
}

/// Wraps a core module into a component of the world, or returns a component unchanged.
/// `plugin` names the plugin in the error.
pub fn componentize(plugin: &str, wasm: &[u8]) -> Result<Vec<u8>, PluginError> {
    let invalid = |message: String| PluginError::Invalid {
        plugin: plugin.to_owned(),
        message,
    };
    if wasm.len() < 8 || &wasm[..4] != WASM_MAGIC {
        return Err(invalid("plugin.wasm is not a WebAssembly binary".into()));
    }
    if is_component(wasm) {
        return Ok(wasm.to_vec());
    }
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str("plugin.wit", WIT)
        .map_err(|e| invalid(format!("the host's WIT does not parse: {e:#}")))?;
    let world = resolve
        .select_world(&[package], Some("plugin"))
        .map_err(|e| invalid(format!("the host's WIT has no world: {e:#}")))?;
    let mut module = wasm.to_vec();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .map_err(|e| invalid(format!("cannot embed the codexion:plugin world: {e:#}")))?;
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| {
            invalid(format!(
                "the core module does not fit the codexion:plugin world: {e:#}"
            ))
        })
}

/// Packs a plugin directory (see [`crate::package::pack_dir`]) with its `plugin.wasm`
/// wrapped into a component first, so the signed package holds exactly what runs.
pub fn pack_dir_as_component(dir: &std::path::Path) -> Result<Vec<u8>, PluginError> {
    let packed = crate::package::pack_dir(dir)?;
    let opened = crate::package::open(
        &packed,
        &crate::package::TrustPolicy {
            keys: Vec::new(),
            allow_unsigned: true,
        },
    )?;
    let mut files = opened.files;
    let wasm = files.remove("plugin.wasm").unwrap_or_default();
    files.insert(
        "plugin.wasm".into(),
        componentize(&opened.manifest.name, &wasm)?,
    );
    Ok(crate::package::pack_files(&files)?)
}
