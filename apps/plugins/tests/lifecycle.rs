//! Installing, upgrading and uninstalling, on SQLite and PostgreSQL: a package whose
//! signature is missing, wrong, untrusted or tampered with is refused with a message that
//! names the problem, and so is one this installation or its plugins cannot satisfy;
//! upgrades move forward only; uninstalling keeps settings unless purged.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use common::{Api, boot, files};
use prefiq_data::testing::databases;
use prefiq_plugin::package;
use prefiq_plugin::testing::HookBody;
use serde_json::json;

fn manifest(name: &str, version: &str, extra: &str) -> String {
    format!("name: {name}\nversion: {version}\n{extra}")
}

/// What installing `bytes` comes to: Ok, or the error's text.
async fn install(api: &Api, bytes: &[u8], upgrade: bool) -> Result<(), String> {
    api.plugins()
        .install(bytes, upgrade)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check(got: Result<(), String>, expected: Result<(), &str>, case: &str) {
    match (&got, expected) {
        (Ok(()), Ok(())) => {}
        (Err(e), Err(fragment)) if e.contains(fragment) => {}
        _ => panic!("{case}: {got:?}, wanted {expected:?}"),
    }
}

#[tokio::test]
async fn bad_packages_are_refused_naming_the_problem() {
    for db in databases("plugins_packages").await {
        let api = boot(&db).await;
        let good = files(&manifest("demo", "1.0.0", ""), HookBody::Echo);
        let packed = package::pack_files(&good).unwrap();
        let (other_secret, _) = package::generate_key();
        let other = package::parse_secret_key(&other_secret).unwrap();

        // Unsigned: refused once unsigned packages are not allowed (production never
        // allows them; this installation is told not to).
        let strict = plugins::Plugins::new(
            plugins::PluginsConfig {
                allow_unsigned: Some(true),
                ..Default::default()
            },
            "production",
        );
        let refused = package::open(&packed, &strict.trust().unwrap())
            .err()
            .map(|e| e.to_string());
        assert!(
            refused.as_deref().is_some_and(|e| e.contains("not signed")),
            "production refuses unsigned packages whatever the config says: {refused:?}"
        );
        // Untrusted: signed by a key this installation does not list.
        check(
            install(&api, &package::sign(&packed, &other).unwrap(), false).await,
            Err("which this installation does not trust"),
            "untrusted",
        );
        // Tampered: one byte of the module changed after signing.
        let signed = api.signed(&good);
        let mut tampered = signed.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 0x01;
        check(
            install(&api, &tampered, false).await,
            Err("plugin.wasm"),
            "tampered",
        );
        // Wrong: the signature block of another package.
        let other_package = api.signed(&files(&manifest("demo", "1.0.1", ""), HookBody::Echo));
        let mut swapped = signed.clone();
        let (a, b) = (
            find(&signed, b"\"signature\":\""),
            find(&other_package, b"\"signature\":\""),
        );
        swapped[a..a + 100].copy_from_slice(&other_package[b..b + 100]);
        check(
            install(&api, &swapped, false).await,
            Err("signature"),
            "wrong signature",
        );
        // Incompatible: a Codexion this is not, or a plugin that is not installed.
        check(
            install(
                &api,
                &api.signed(&files(
                    &manifest("future", "1.0.0", "requires:\n  prefiq: \">=9\"\n"),
                    HookBody::Echo,
                )),
                false,
            )
            .await,
            Err("requires prefiq >=9"),
            "incompatible prefiq",
        );
        check(
            install(
                &api,
                &api.signed(&files(
                    &manifest("addon", "1.0.0", "requires:\n  plugins: {demo: \"^1\"}\n"),
                    HookBody::Echo,
                )),
                false,
            )
            .await,
            Err("requires demo ^1, which is not installed"),
            "missing dependency",
        );
        // A module that does not fit the world.
        let mut broken = good.clone();
        broken.insert("plugin.wasm".into(), wat::parse_str("(module)").unwrap());
        check(
            install(&api, &api.signed(&broken), false).await,
            Err("plugin demo"),
            "not a plugin",
        );
        // Nothing of the refused packages was stored.
        assert!(api.plugins().state().installed.is_empty());

        // The good one installs, once.
        check(install(&api, &signed, false).await, Ok(()), "good");
        check(
            install(&api, &signed, false).await,
            Err("already installed; upgrade it instead"),
            "twice",
        );
        db.cleanup().await;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len()
}

#[tokio::test]
async fn upgrades_move_forward_and_uninstall_keeps_settings_unless_purged() {
    for db in databases("plugins_lifecycle").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let config = "config:\n  limit: {type: integer, default: 5}\n";
        let v1 = api.signed(&files(&manifest("demo", "1.0.0", config), HookBody::Echo));
        let v2 = api.signed(&files(&manifest("demo", "1.1.0", config), HookBody::Echo));
        check(
            install(&api, &v1, true).await,
            Err("not installed; install it first"),
            "upgrade of nothing",
        );
        check(install(&api, &v1, false).await, Ok(()), "v1");
        let (s, b) = api
            .call(
                "POST",
                "/api/v1/plugins/demo/enable",
                &acme,
                Some(json!({"config": {"limit": 7}})),
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        // Settings are checked against the schema.
        let (s, problem) = api
            .call(
                "POST",
                "/api/v1/plugins/demo/enable",
                &acme,
                Some(json!({"config": {"limit": "seven"}})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("limit: must be a integer"),
            "{problem}"
        );

        check(
            install(&api, &v1, true).await,
            Err("an upgrade must be to a later version"),
            "same version",
        );
        check(install(&api, &v2, true).await, Ok(()), "v2");
        let state = api.plugins().state();
        assert_eq!(
            state.installed["demo"].manifest.version.to_string(),
            "1.1.0"
        );
        assert_eq!(
            state.active_for("acme").len(),
            1,
            "still enabled after the upgrade"
        );

        // A plugin that another requires cannot go.
        let addon = api.signed(&files(
            &manifest(
                "addon",
                "1.0.0",
                "requires:\n  plugins: {demo: \">=1.1\"}\n",
            ),
            HookBody::Echo,
        ));
        check(install(&api, &addon, false).await, Ok(()), "addon");
        let refused = api
            .plugins()
            .uninstall("demo", false)
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("addon requires demo")),
            "{refused:?}"
        );
        api.plugins().uninstall("addon", true).await.unwrap();

        // Uninstalled, its settings stay; reinstalled, it is off until enabled again.
        api.plugins().uninstall("demo", false).await.unwrap();
        assert!(api.plugins().state().installed.is_empty());
        check(install(&api, &v2, false).await, Ok(()), "reinstall");
        let (_, listed) = api.call("GET", "/api/v1/plugins", &acme, None).await;
        assert_eq!(listed["data"][0]["enabled"], false, "{listed}");
        assert_eq!(listed["data"][0]["config"], json!({"limit": 7}), "{listed}");
        // Purged, they are gone.
        api.plugins().uninstall("demo", true).await.unwrap();
        check(
            install(&api, &v2, false).await,
            Ok(()),
            "reinstall after purge",
        );
        let (_, listed) = api.call("GET", "/api/v1/plugins", &acme, None).await;
        assert_eq!(listed["data"][0]["config"], json!({}), "{listed}");
        assert_eq!(
            api.plugins()
                .uninstall("nothing", false)
                .await
                .err()
                .map(|e| e.to_string()),
            Some("nothing is not installed".into())
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_change_made_by_another_process_is_picked_up() {
    for db in databases("plugins_refresh").await {
        let api = boot(&db).await;
        api.tenant("acme").await;
        let plugins = api.plugins();
        check(
            install(
                &api,
                &api.signed(&files(&manifest("demo", "1.0.0", ""), HookBody::Echo)),
                false,
            )
            .await,
            Ok(()),
            "install",
        );
        assert!(
            !plugins.refresh().await.unwrap(),
            "nothing changed since this process read it"
        );
        // What `prefiq plugin enable` in another process (or another replica) writes.
        let repository = plugins.repository().unwrap().clone();
        let handle = repository.main_database();
        plugins::store::put_tenant(
            handle.get().unwrap(),
            &plugins::store::TenantRow {
                tenant: "acme".into(),
                plugin: "demo".into(),
                enabled: true,
                config: Default::default(),
            },
            None,
        )
        .await
        .unwrap();
        assert!(plugins.state().active_for("acme").is_empty());
        assert!(plugins.refresh().await.unwrap());
        assert_eq!(plugins.state().active_for("acme").len(), 1);
        db.cleanup().await;
    }
}
