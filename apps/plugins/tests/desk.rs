//! The plugins' desk page through the installation's router, on SQLite and (when
//! configured) PostgreSQL: a System Manager sees every installed plugin with what it may
//! do, enables one for the tenant with settings typed by its schema (a setting of the
//! wrong type is refused with the plugin's message), and disables it, and the service
//! agrees; another tenant's choice stays its own; everyone else gets the desk's refusal;
//! the page renders as its snapshots say.
#![allow(clippy::unwrap_used)]

mod common;

#[path = "../../cortex/tests/common/browser.rs"]
mod browser;

use axum::http::StatusCode;
use browser::{Browser, Page, assert_has, assert_lacks, redact_ids};
use common::{Api, PASSWORD, boot, fixture};
use prefiq_data::testing::{TestDatabase, databases};
use prefiq_plugin::testing::HookBody;
use serde_json::{Value, json};

/// A plugin with one setting and a hook.
fn demo() -> std::collections::BTreeMap<String, Vec<u8>> {
    fixture(
        "demo",
        "todo",
        "validate",
        HookBody::Echo,
        "description: Checks todos.\npublisher: Acme Plugins Ltd\nconfig:\n  limit: {type: integer, default: 5, description: The most open todos.}\n",
    )
}

/// A plugin that asks for every kind of capability, with a setting of each other type.
fn flags() -> std::collections::BTreeMap<String, Vec<u8>> {
    fixture(
        "flags",
        "todo",
        "before_insert",
        HookBody::Echo,
        "  entities:\n    todo: [read, create]\n  routes:\n    - {method: GET, path: \"/items/{id}\"}\n  subscriptions: [todo.created]\n  http: [api.example.com]\n  clock: true\nconfig:\n  strict: {type: boolean, default: false}\n  label: {type: string, default: Acme}\n  ratio: {type: number}\n",
    )
}

/// An installation with `demo` and `flags` installed; tenants `acme` and `globex` with
/// their administrators, and in `acme` a user without a role.
async fn installation(db: &TestDatabase) -> Api {
    let api = boot(db).await;
    api.tenant("acme").await;
    api.tenant("globex").await;
    let identity = api
        .app
        .resolver("test")
        .get::<cortex::identity::Identity>()
        .unwrap();
    identity
        .create_user(
            "acme",
            "clerk@acme.test",
            PASSWORD,
            &[],
            &serde_json::Map::new(),
        )
        .await
        .unwrap();
    for files in [demo(), flags()] {
        api.plugins()
            .install(&api.signed(&files), false)
            .await
            .unwrap();
    }
    api
}

/// The section of the page about plugin `name`.
fn section<'p>(page: &'p Page, name: &str) -> &'p str {
    let start = page
        .body
        .find(&format!("<section class=\"card\" id=\"plugin-{name}\""))
        .unwrap_or_else(|| panic!("no section of {name}:\n{}", page.body));
    let end = start + page.body[start..].find("</section>").unwrap();
    &page.body[start..end]
}

/// The tenant's stored choice for a plugin: (enabled, settings).
fn choice(api: &Api, tenant: &str, plugin: &str) -> Option<(bool, Value)> {
    api.plugins()
        .state()
        .choices
        .iter()
        .find(|c| c.tenant == tenant && c.plugin == plugin)
        .map(|c| (c.enabled, Value::Object(c.config.clone())))
}

/// The settings the plugin runs with for the tenant, when it is enabled.
fn active(api: &Api, tenant: &str, plugin: &str) -> Option<Value> {
    api.plugins()
        .state()
        .active_for(tenant)
        .iter()
        .find(|a| a.installed.manifest.name == plugin)
        .map(|a| serde_json::from_str(&a.config).unwrap())
}

#[tokio::test]
async fn desk_lets_a_system_manager_enable_configure_and_disable_a_plugin() {
    for db in databases("plugins_desk").await {
        let api = installation(&db).await;
        let admin = Browser::new(&api, "acme");
        admin.login("admin@acme.test", PASSWORD).await;
        assert_has(&admin.get("/app").await, "href=\"/app/plugins\"");

        // Both plugins are listed, disabled, with what they may do.
        let page = admin.get("/app/plugins").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let shown = section(&page, "demo");
        for text in [
            "demo <span class=\"hint\">0.1.0</span>",
            "status-disabled\">Disabled</span>",
            "Checks todos.",
            "<dt>Publisher</dt><dd>Acme Plugins Ltd</dd>",
            "<li><code>todo</code> at <code>validate</code></li>",
            "name=\"config.limit\" value=\"5\" step=\"1\"",
            "<code>limit</code>: 5 <span class=\"hint\">(default)</span>",
            "action=\"/app/plugins/demo/enable\"",
        ] {
            assert!(shown.contains(text), "{text:?} in:\n{shown}");
        }
        assert!(!shown.contains("/app/plugins/demo/disable"), "{shown}");
        let signer = api.plugins().state().installed["demo"]
            .signer
            .clone()
            .unwrap();
        assert!(
            shown.contains(&format!(
                "<code title=\"{signer}\">{}</code>",
                plugins::desk::short_key(&signer)
            )),
            "{shown}"
        );
        let shown = section(&page, "flags");
        for text in [
            "<li><code>todo</code>: read, create</li>",
            "<li><code>todo</code> at <code>before_insert</code></li>",
            "<li><code>GET /api/v1/plugins/flags/items/{id}</code></li>",
            "<li><code>todo.created</code></li>",
            "<li><code>api.example.com</code></li>",
            "<dt>Clock</dt>",
            "type=\"checkbox\" id=\"plugin-flags-strict\" name=\"config.strict\"",
            "name=\"config.label\" value=\"Acme\"",
            "name=\"config.ratio\" value=\"\" step=\"any\"",
        ] {
            assert!(shown.contains(text), "{text:?} in:\n{shown}");
        }
        assert_has(&page, "<h2>Available</h2>");

        // Enabled through the form with limit 7: the page and the service agree.
        let sent = admin
            .post("/app/plugins/demo/enable", &[("config.limit", "7")])
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        assert_eq!(sent.location(), "/app/plugins?enabled=demo");
        assert_eq!(
            choice(&api, "acme", "demo"),
            Some((true, json!({"limit": 7})))
        );
        assert_eq!(active(&api, "acme", "demo"), Some(json!({"limit": 7})));
        let page = admin.get(&sent.location()).await;
        assert_has(&page, "demo is enabled for this organisation.");
        let shown = section(&page, "demo");
        for text in [
            "status-enabled\">Enabled</span>",
            "name=\"config.limit\" value=\"7\"",
            "<code>limit</code>: 7</dd>",
            "action=\"/app/plugins/demo/disable\"",
            ">Save settings</button>",
        ] {
            assert!(shown.contains(text), "{text:?} in:\n{shown}");
        }
        // Another tenant's page still shows it disabled, and its service state agrees.
        let globex = Browser::new(&api, "globex");
        globex.login("admin@globex.test", PASSWORD).await;
        assert!(section(&globex.get("/app/plugins").await, "demo").contains("Disabled"));
        assert_eq!(choice(&api, "globex", "demo"), None);

        // A setting of the wrong type: the plugin's message, nothing stored, the value kept.
        let refused = admin
            .post("/app/plugins/demo/enable", &[("config.limit", "many")])
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_has(
            &refused,
            "role=\"alert\" id=\"problem\"><p>config: limit: must be a integer, not &quot;many&quot;</p>",
        );
        assert!(section(&refused, "demo").contains("name=\"config.limit\" value=\"many\""));
        assert_eq!(active(&api, "acme", "demo"), Some(json!({"limit": 7})));

        // The other types: a checkbox, text and a number without a default.
        let sent = admin
            .post(
                "/app/plugins/flags/enable",
                &[
                    ("config.strict.present", "1"),
                    ("config.strict", "on"),
                    ("config.label", "Globex Ltd"),
                    ("config.ratio", "2.25"),
                ],
            )
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        assert_eq!(
            active(&api, "acme", "flags"),
            Some(json!({"strict": true, "label": "Globex Ltd", "ratio": 2.25}))
        );
        // Saving again says so; a required setting left empty is the plugin's refusal.
        let saved = admin
            .post(
                "/app/plugins/flags/enable",
                &[("config.strict.present", "1"), ("config.ratio", "3")],
            )
            .await;
        assert_eq!(saved.location(), "/app/plugins?saved=flags");
        assert_has(
            &admin.get(&saved.location()).await,
            "The settings of flags are saved.",
        );
        assert_eq!(
            choice(&api, "acme", "flags"),
            Some((true, json!({"strict": false, "ratio": 3})))
        );
        let missing = admin
            .post("/app/plugins/flags/enable", &[("config.ratio", " ")])
            .await;
        assert_eq!(
            missing.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            missing.body
        );
        assert_has(
            &missing,
            "config: ratio: required by flags, and it has no default",
        );

        // Disabled: off for the tenant, its settings kept and shown.
        let sent = admin.post("/app/plugins/demo/disable", &[]).await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        assert_eq!(sent.location(), "/app/plugins?disabled=demo");
        assert_eq!(
            choice(&api, "acme", "demo"),
            Some((false, json!({"limit": 7})))
        );
        assert_eq!(active(&api, "acme", "demo"), None);
        let page = admin.get(&sent.location()).await;
        assert_has(
            &page,
            "demo is disabled for this organisation; its settings are kept.",
        );
        let shown = section(&page, "demo");
        assert!(shown.contains("Disabled</span>"), "{shown}");
        assert!(
            shown.contains("name=\"config.limit\" value=\"7\""),
            "{shown}"
        );

        // A plugin that is not installed, and a notice naming one: neither is shown.
        let absent = admin.post("/app/plugins/nope/enable", &[]).await;
        assert_eq!(absent.status, StatusCode::NOT_FOUND, "{}", absent.body);
        assert_has(&absent, "nope is not installed");
        let absent = admin.post("/app/plugins/nope/disable", &[]).await;
        assert_eq!(absent.status, StatusCode::NOT_FOUND, "{}", absent.body);
        assert_lacks(
            &admin.get("/app/plugins?enabled=Free+money").await,
            "Free money",
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn desk_page_is_only_for_those_who_manage_plugins() {
    for db in databases("plugins_desk_refused").await {
        let api = installation(&db).await;
        let clerk = Browser::new(&api, "acme");
        clerk.login("clerk@acme.test", PASSWORD).await;
        assert_lacks(&clerk.get("/app").await, "/app/plugins");
        // (method, path): each refused with the desk's page.
        for (method, path) in [
            ("GET", "/app/plugins"),
            ("POST", "/app/plugins/demo/enable"),
            ("POST", "/app/plugins/demo/disable"),
        ] {
            let page = match method {
                "GET" => clerk.get(path).await,
                _ => clerk.post(path, &[("config.limit", "7")]).await,
            };
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{method} {path}: {}",
                page.body
            );
            assert_has(&page, "<title>Not allowed · Codexion</title>");
            assert_has(&page, "plugins.manage");
            assert_lacks(&page, "config.limit");
        }
        assert_eq!(choice(&api, "acme", "demo"), None, "nothing was enabled");
        // A forged form (another token) is refused before anything is asked.
        let admin = Browser::new(&api, "acme");
        admin.login("admin@acme.test", PASSWORD).await;
        let forged = admin
            .post(
                "/app/plugins/demo/enable",
                &[("_csrf", &"0".repeat(64)), ("config.limit", "7")],
            )
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        assert_eq!(choice(&api, "acme", "demo"), None);
        // Signed out: the login form, which comes back here.
        let anonymous = Browser::new(&api, "acme");
        let page = anonymous.get("/app/plugins").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(
            page.location().starts_with("/app/login?next="),
            "{}",
            page.location()
        );
        db.cleanup().await;
    }
}

/// The page with its random parts (the signing key, install times, digests, tokens)
/// replaced, so that a snapshot is stable.
fn redact(api: &Api, page: &Page) -> String {
    let state = api.plugins().state();
    let mut text = page.body.clone();
    for installed in state.installed.values() {
        if let Some(signer) = &installed.signer {
            text = text.replace(signer, "[key]");
            text = text.replace(&plugins::desk::short_key(signer), "[key]");
        }
        text = text.replace(&installed.installed_at, "[time]");
    }
    redact_ids(&text)
}

#[tokio::test]
async fn desk_page_renders_as_its_snapshots_say() {
    // SQLite only: the page is the same on both backends, and one snapshot is enough.
    let db = TestDatabase::sqlite().unwrap();
    let api = installation(&db).await;
    let admin = Browser::new(&api, "acme");
    admin.login("admin@acme.test", PASSWORD).await;
    insta::assert_snapshot!("plugins", redact(&api, &admin.get("/app/plugins").await));
    let sent = admin
        .post("/app/plugins/demo/enable", &[("config.limit", "7")])
        .await;
    insta::assert_snapshot!(
        "plugins_enabled",
        redact(&api, &admin.get(&sent.location()).await)
    );
    insta::assert_snapshot!(
        "plugins_refused_setting",
        redact(
            &api,
            &admin
                .post("/app/plugins/demo/enable", &[("config.limit", "many")])
                .await
        )
    );
    let clerk = Browser::new(&api, "acme");
    clerk.login("clerk@acme.test", PASSWORD).await;
    insta::assert_snapshot!(
        "plugins_refused",
        redact(&api, &clerk.get("/app/plugins").await)
    );
    db.cleanup().await;
}
