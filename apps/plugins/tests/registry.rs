//! Installing from a registry folder, on SQLite and PostgreSQL: the index picks the
//! version, the download's digest is checked before it is opened, and its signer must be
//! its publisher's key in the index; then the installation's own trust decides.
#![allow(clippy::unwrap_used)]

mod common;

use common::{boot_with, files};
use prefiq_data::testing::databases;
use prefiq_plugin::package;
use prefiq_plugin::testing::HookBody;
use serde_json::json;

#[tokio::test]
async fn plugins_install_from_the_registry_only_as_its_index_describes_them() {
    for db in databases("plugins_registry").await {
        let folder = db.root().join("registry");
        std::fs::create_dir_all(&folder).unwrap();
        let location = folder.to_string_lossy().into_owned();
        let api = boot_with(&db, &[("PREFIQ__PLUGINS__REGISTRY", &location)]).await;
        let publisher = package::PublicKey::of(&api.key);
        let manifest = |version: &str| {
            format!(
                "name: demo\nversion: {version}\npublisher: acme-tools\ndescription: A demonstration\n"
            )
        };
        let mut versions = serde_json::Map::new();
        for version in ["0.1.0", "0.2.0"] {
            let bytes = api.signed(&files(&manifest(version), HookBody::Echo));
            let file = format!("demo-{version}.cxp");
            std::fs::write(folder.join(&file), &bytes).unwrap();
            versions.insert(
                version.into(),
                json!({"file": file, "sha256": package::digest_hex(&bytes)}),
            );
        }
        // A package whose file changed after the index was written.
        let swapped = api.signed(&files(&manifest("0.3.0"), HookBody::Refuse));
        std::fs::write(folder.join("demo-0.3.0.cxp"), &swapped).unwrap();
        versions.insert(
            "0.3.0".into(),
            json!({"file": "demo-0.3.0.cxp", "sha256": "0".repeat(64)}),
        );
        // A package signed by a key the index does not list for the publisher.
        let (stranger_secret, _) = package::generate_key();
        let stranger = package::parse_secret_key(&stranger_secret).unwrap();
        let foreign = package::sign(
            &package::pack_files(&files("name: other\nversion: 1.0.0\n", HookBody::Echo)).unwrap(),
            &stranger,
        )
        .unwrap();
        std::fs::write(folder.join("other-1.0.0.cxp"), &foreign).unwrap();
        let index = json!({
            "format": 1,
            "publishers": {"acme-tools": [publisher.to_string()]},
            "packages": {
                "demo": {"publisher": "acme-tools", "description": "A demonstration", "versions": versions},
                "other": {"publisher": "acme-tools", "versions": {"1.0.0": {"file": "other-1.0.0.cxp", "sha256": package::digest_hex(&foreign)}}}
            }
        });
        std::fs::write(folder.join("index.json"), index.to_string()).unwrap();

        let plugins = api.plugins();
        let registry = plugins.registry().unwrap();
        let found = registry.index().await.unwrap();
        assert_eq!(found.search("demonstration").len(), 1);

        let refused = |r: Result<
            std::sync::Arc<prefiq_plugin::PluginManifest>,
            plugins::PluginsError,
        >| { r.err().map(|e| e.to_string()).unwrap_or_default() };
        let e = refused(plugins.install_from_registry("demo@0.3.0", false).await);
        assert!(
            e.contains("demo-0.3.0.cxp: the registry lists sha256 0000"),
            "{e}"
        );
        let e = refused(plugins.install_from_registry("other", false).await);
        assert!(
            e.contains("other-1.0.0.cxp, checked against its publisher's keys"),
            "{e}"
        );
        let e = refused(plugins.install_from_registry("missing", false).await);
        assert!(e.contains("no plugin missing"), "{e}");
        assert!(
            plugins.state().installed.is_empty(),
            "nothing refused was installed"
        );

        let installed = plugins
            .install_from_registry("demo@0.1.0", false)
            .await
            .unwrap();
        assert_eq!(installed.version.to_string(), "0.1.0");
        let upgraded = plugins
            .install_from_registry("demo@^0.2", true)
            .await
            .unwrap();
        assert_eq!(upgraded.version.to_string(), "0.2.0");
        db.cleanup().await;
    }
}
