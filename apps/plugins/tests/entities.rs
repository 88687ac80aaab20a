//! A plugin's own entities, on SQLite and PostgreSQL: named after the plugin (anything
//! else is refused at install), created for each tenant that enables it and for no other,
//! written by the plugin as its principal, and never taking over an entity the tenant
//! already has under that name.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use common::{boot, files};
use prefiq_data::testing::databases;
use prefiq_plugin::sandbox::{CallContext, Host};
use prefiq_plugin::testing::HookBody;
use serde_json::json;

const MANIFEST: &str = "name: notes-kit\nversion: 0.1.0\ncapabilities:\n  entities:\n    notes_kit_note: [read, create]\n";
const NOTE: &str =
    "name: notes_kit_note\nlabel: Note\nfields:\n  - {name: title, type: data, required: true}\n";

fn package(schema: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    let mut files = files(MANIFEST, HookBody::Echo);
    for (path, text) in schema {
        files.insert((*path).to_owned(), text.as_bytes().to_vec());
    }
    files
}

#[tokio::test]
async fn a_plugins_entities_exist_for_the_tenants_that_enabled_it() {
    for db in databases("plugins_entities").await {
        let api = boot(&db).await;
        let acme = api.tenant("acme").await;
        let globex = api.tenant("globex").await;
        let initech = api.tenant("initech").await;

        // Named after the plugin, or refused.
        let refused = api
            .plugins()
            .install(
                &api.signed(&package(&[(
                    "schema/todo.yaml",
                    "name: todo\nfields:\n  - {name: x, type: data}\n",
                )])),
                false,
            )
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains(
                "schema/todo.yaml: entity `todo`: a plugin's entities are named `notes_kit_…`"
            ),
            "{refused}"
        );

        api.plugins()
            .install(&api.signed(&package(&[("schema/note.yaml", NOTE)])), false)
            .await
            .unwrap();
        let (s, b) = api
            .call("POST", "/api/v1/plugins/notes-kit/enable", &acme, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
        let (s, _) = api
            .call("GET", "/api/v1/resources/notes_kit_note", &acme, None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = api
            .call("GET", "/api/v1/resources/notes_kit_note", &globex, None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "globex did not enable it");

        // The plugin writes its own entity, as itself.
        let host = api
            .app
            .resolver("test")
            .get::<plugins::host::RepositoryHost>()
            .unwrap();
        let context = CallContext {
            plugin: "notes-kit".into(),
            tenant: "acme".into(),
            trace_id: String::new(),
            config: "{}".into(),
            clock: false,
            http_hosts: Arc::from(Vec::new()),
        };
        let written = host
            .insert(&context, "notes_kit_note", r#"{"title":"Remember"}"#)
            .await
            .unwrap();
        let written: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(written["created_by"], "plugin:notes-kit", "{written}");

        // Enabling again (say, after a disable) keeps the entity and its rows.
        let (s, _) = api
            .call("POST", "/api/v1/plugins/notes-kit/disable", &acme, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = api
            .call("POST", "/api/v1/plugins/notes-kit/enable", &acme, None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (_, listed) = api
            .call("GET", "/api/v1/resources/notes_kit_note", &acme, None)
            .await;
        assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");

        // A tenant that made an entity of that name itself keeps it; the enable is refused.
        let (s, b) = api
            .call(
                "POST",
                "/api/v1/customize/entities",
                &initech,
                Some(
                    json!({"name": "notes_kit_note", "fields": [{"name": "body", "type": "text"}]}),
                ),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let (s, problem) = api
            .call("POST", "/api/v1/plugins/notes-kit/enable", &initech, None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("already has an entity of that name")
                || problem["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("with another definition"),
            "{problem}"
        );
        db.cleanup().await;
    }
}
